"""Recovery views (drive train --viewpoint-augment): windows re-rendered from off the recorded path, with
labels that steer back; zero deviation changes nothing; the views are drive.replay's; seeded; trains."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.data.reader import DatasetReader
from drive.data.sequences import FrameCache
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.replay.homography import ViewSynthesizer
from drive.replay.path import camera_move, path_from_table
from drive.train.config import TrainConfig
from drive.train.viewpoint import ViewpointAugmenter, recovery_correction
from drive.world.camera import CameraConfig

H, W, FPS, MAX_STEER_RAD = 78, 200, 20.0, 0.35
CAMERA = {"world.camera_height_m": 1.2, "world.camera_pitch_rad": 0.12, "world.camera_fov_deg": 80.0}


def texture_frames(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(30, 225, size=(n, 10, 25, 3)).astype(np.float32)
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_CUBIC) for f in small]).clip(0, 255).astype(np.uint8)


def write_dataset(root, steering, cameras=(CAMERA, CAMERA), speed_mps=10.0):
    """One episode per entry of ``cameras`` (None: no camera metadata), len(steering) frames each."""
    info = DatasetInfo(fps=FPS, image_height=H, image_width=W, max_steer_rad=MAX_STEER_RAD, source="drive record")
    with DatasetWriter(root, info) as writer:
        for e, camera in enumerate(cameras):
            for k, (frame, u) in enumerate(zip(texture_frames(len(steering), e), steering)):
                columns = {layout.STEERING_LABEL: float(u), layout.STEERING_APPLIED: float(u), layout.SPEED: speed_mps}
                writer.add_frame(frame, timestamp_s=k / FPS, **columns)
            writer.save_episode(dict(camera or {}))
    return root


@pytest.fixture
def dataset(tmp_path):
    def factory(steering=None, name="data", **kwargs):
        steering = np.sin(np.arange(32) / 5.0) * 0.2 if steering is None else np.asarray(steering, float)
        return write_dataset(tmp_path / name, steering, **kwargs)

    return factory


def open_cache(root) -> FrameCache:
    return FrameCache(root, progress=False)


def augmenter(cache, **kwargs) -> ViewpointAugmenter:
    return ViewpointAugmenter(cache, cache.episodes, **{"prob": 1.0, **kwargs})


def windows(cache, starts=(0, 8), length=16):
    """Cache rows (B, T) and the recorded frames and labels of windows of episode 0 starting at ``starts``."""
    rows = np.asarray(starts)[:, None] + np.arange(length)
    return rows, torch.from_numpy(np.array(cache.frames[rows])), torch.from_numpy(cache.steering[rows])


def params(offsets, yaws, apply=None):
    offsets, yaws = torch.tensor(offsets, dtype=torch.float64), torch.tensor(yaws, dtype=torch.float64)
    apply = torch.ones(len(offsets), dtype=torch.bool) if apply is None else torch.tensor(apply)
    return {"apply": apply, "offset_m": offsets, "yaw_rad": yaws}


def test_zero_deviation_leaves_frames_and_labels_unchanged(dataset):
    cache = open_cache(dataset())
    aug = augmenter(cache, max_offset_m=0.0, max_yaw_rad=0.0)
    rows, frames, labels = windows(cache)
    out_frames, out_labels = aug.augment_batch(frames, labels, rows, seed=0, epoch=0, batch=0, batch_size=2)
    assert torch.equal(out_frames, frames) and torch.equal(out_labels, labels)
    poses, corrections = aug.recover(0, 16, 0.0, 0.0)
    assert not corrections.any() and all(p == (0.0, 0.0, 0.0) for p in poses)


@pytest.mark.parametrize("curvature", [0.0, 0.01, -0.02])
def test_an_offset_or_heading_to_the_left_steers_right_and_vice_versa(curvature):
    for deviation in ((0.5, 0.0), (0.0, 0.05), (0.3, 0.03)):
        left = recovery_correction(*deviation, curvature, 10.0, 1.0)
        right = recovery_correction(-deviation[0], -deviation[1], curvature, 10.0, 1.0)
        assert left < 0 < right  # positive steering = left


def test_relabelled_windows_steer_back_to_the_path(dataset):
    cache = open_cache(dataset(steering=np.zeros(32)))  # a straight recorded path
    aug = augmenter(cache)
    rows, frames, labels = windows(cache)
    _, out = aug.apply(frames, labels, rows, params([0.8, -0.8], [0.0, 0.0]))
    assert (out[0] < 0).all() and (out[1] > 0).all()
    assert torch.allclose(out[0], -out[1])  # symmetric on a straight path
    poses, _ = aug.recover(0, 32, 0.8, 0.0)
    dy = np.array([p[1] for p in poses])
    assert 0 < dy[-1] < dy[0] == pytest.approx(0.8)  # the deviation decays as the car recovers


def test_the_correction_shrinks_to_zero_with_the_deviation():
    sizes = [recovery_correction(s * 1.0, s * 0.08, 0.01, 12.0, 1.0) for s in (1.0, 0.1, 0.01, 0.001)]
    assert all(abs(a) > abs(b) for a, b in zip(sizes, sizes[1:]))
    assert abs(sizes[-1]) < 1e-3 * abs(sizes[0]) * 1.5  # linear near zero
    assert recovery_correction(0.0, 0.0, 0.01, 12.0, 1.0) == 0.0


def test_the_correction_is_the_stated_law_and_settles_faster_with_a_shorter_horizon():
    # straight path, offset only: kappa = -e / D^2 with D = v T; delta = atan(2 tan(asin(kappa L / 2)))
    e, v, T, L = 0.5, 10.0, 1.0, 5.0
    kappa = -e / (v * T) ** 2
    assert recovery_correction(e, 0.0, 0.0, v, T) == pytest.approx(np.arctan(2 * np.tan(np.arcsin(kappa * L / 2))))
    assert abs(recovery_correction(e, 0.0, 0.0, v, 0.5)) > abs(recovery_correction(e, 0.0, 0.0, v, T))
    # at a standstill the lookahead stays 4 m (no division by zero)
    assert np.isfinite(recovery_correction(e, 0.0, 0.0, 0.0, T))


def test_the_views_are_drive_replay_views_from_the_same_pose(dataset):
    root = dataset()
    cache = open_cache(root)
    aug = augmenter(cache)
    rows, frames, labels = windows(cache, starts=(3,), length=8)
    out, _ = aug.apply(frames, labels, rows, params([0.5], [-0.04]))
    path = path_from_table(DatasetReader(root).episode_table(0), MAX_STEER_RAD, "t")
    synth = ViewSynthesizer(CameraConfig(height_m=1.2, pitch_rad=0.12, fov_deg=80.0, width=W, height=H))
    first = synth.warp(frames[0, 0].numpy(), *camera_move(0.5, -0.04, path.slip_rad[3]))[0]
    assert np.array_equal(out[0, 0].numpy(), first)
    poses, _ = aug.recover(3, 8, 0.5, -0.04)
    for k in range(8):
        assert np.array_equal(out[0, k].numpy(), synth.warp(frames[0, k].numpy(), *poses[k])[0])
    assert not torch.equal(out, frames)


def test_draws_are_seeded_and_a_slice_is_changed_as_in_the_whole_batch(dataset):
    cache = open_cache(dataset())
    aug = augmenter(cache, prob=0.5)
    rows, frames, labels = windows(cache, starts=(0, 4, 8, 12))
    a = aug.augment_batch(frames, labels, rows, 7, 1, 2, batch_size=4)
    b = aug.augment_batch(frames, labels, rows, 7, 1, 2, batch_size=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    draws = [aug.sample(4, torch.Generator().manual_seed(s)) for s in range(2)]
    assert not torch.equal(draws[0]["offset_m"], draws[1]["offset_m"])
    half = aug.augment_batch(frames[2:], labels[2:], rows[2:], 7, 1, 2, batch_size=4, first=2)
    assert torch.equal(half[0], a[0][2:]) and torch.equal(half[1], a[1][2:])


def test_a_dataset_without_camera_is_refused_in_one_line(dataset):
    cache = open_cache(dataset(cameras=(None, None)))
    cfg = TrainConfig(data="d", out="o", viewpoint_augment=True)
    with pytest.raises(UserError) as err:
        ViewpointAugmenter.from_config(cfg, cache, cache.episodes)
    assert "--viewpoint-augment" in str(err.value) and "--camera-height-m" in str(err.value)
    assert "\n" not in str(err.value)
    assert ViewpointAugmenter.from_config(TrainConfig(data="d", out="o"), cache, cache.episodes) is None


def test_only_windows_of_episodes_with_a_camera_are_changed(dataset):
    cache = open_cache(dataset(cameras=(CAMERA, None)))
    cfg = TrainConfig(data="d", out="o", viewpoint_augment=True, viewpoint_prob=1.0)
    with pytest.warns(UserWarning, match="1 of 2 training episode"):
        aug = ViewpointAugmenter.from_config(cfg, cache, cache.episodes)
    assert list(aug.cameras) == [0] and list(aug.skipped) == [1]
    o = cache.offsets[1]
    rows = np.array([np.arange(8), o + np.arange(8)])
    frames, labels = torch.from_numpy(np.array(cache.frames[rows])), torch.from_numpy(cache.steering[rows])
    out_frames, out_labels = aug.apply(frames, labels, rows, params([0.5, 0.5], [0.0, 0.0]))
    assert not torch.equal(out_frames[0], frames[0]) and torch.equal(out_frames[1], frames[1])
    assert torch.equal(out_labels[1], labels[1])


def test_bad_viewpoint_options_are_refused():
    for change in ({"viewpoint_prob": 1.5}, {"viewpoint_max_offset_m": -1.0}, {"viewpoint_horizon_s": 0.0}):
        with pytest.raises(UserError, match="--viewpoint-"):
            TrainConfig(data="d", out="o", **change).validate()


def test_a_tiny_training_with_recovery_views_runs_end_to_end(dataset, small_config):
    from drive.train.loop import train

    root = dataset(cameras=(CAMERA, CAMERA, CAMERA))
    cfg = small_config(root, viewpoint_augment=True, viewpoint_prob=1.0, batch_size=2, max_steps=3)
    result = train(cfg)
    assert result.progress["step"] == 3 and np.isfinite(result.progress["losses"]).all()
    recorded = json.loads((Path(cfg.out) / "config.json").read_text())
    assert recorded["training"]["viewpoint_augment"] is True and recorded["training"]["viewpoint_prob"] == 1.0


def test_several_datasets_each_with_its_own_camera(dataset):
    from drive.data.sequences import open_frame_cache

    low = {**CAMERA, "world.camera_height_m": 0.9}
    roots = [dataset(name="a", cameras=(CAMERA,)), dataset(name="b", cameras=(None, low))]
    cache = open_frame_cache(roots, [None, None], progress=False)
    with pytest.warns(UserWarning, match="1 of 3"):
        aug = ViewpointAugmenter.from_config(
            TrainConfig(data="d", out="o", viewpoint_augment=True), cache, cache.episodes
        )
    second = cache.episodes[-1]
    assert aug.cameras[cache.episodes[0]].height_m == 1.2 and aug.cameras[second].height_m == 0.9
    assert (aug.episode[cache.offsets[second] : cache.offsets[second] + cache.lengths[second]] == second).all()
