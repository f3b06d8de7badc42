"""The helpers of the checks against the simulator (drive.replay.check): poses, masked scores, and the
simulator under replay's intervention rule."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from drive.replay.check import PathInterventions, deviated_pose, masked_psnr, masked_ssim, scored_pixels
from drive.replay.homography import ViewSynthesizer
from drive.world.camera import Camera, CameraConfig, scenery_for
from drive.world.env import DriveEnv
from drive.world.scenario import as_scenario


def test_deviated_pose_moves_across_the_cars_own_yaw():
    assert deviated_pose(1.0, 2.0, 0.0, 0.5, 0.1) == pytest.approx((1.0, 2.5, 0.1))
    assert deviated_pose(1.0, 2.0, math.pi / 2, 0.5, -0.1) == pytest.approx((0.5, 2.0, math.pi / 2 - 0.1))


def test_deviated_pose_is_where_the_synthesized_view_looks_from():
    """The true render from deviated_pose matches the warp of the render from the original pose."""
    env = DriveEnv("default", render_camera=False)
    _, info = env.reset(seed=0)
    cam = Camera(env.camera.config)
    scenery = scenery_for(env.track, world=env.world)
    x, y, yaw = info["x_m"], info["y_m"], info["yaw_rad"]
    recorded = cam.render(scenery, x, y, yaw).copy()
    synth = ViewSynthesizer(cam.config)
    view, _ = synth.warp(recorded, 0.0, 0.5, math.radians(2.0))
    mask = scored_pixels(synth)
    true = cam.render(scenery, *deviated_pose(x, y, yaw, 0.5, math.radians(2.0))).copy()
    moved_wrongly = cam.render(scenery, *deviated_pose(x, y, yaw, -0.5, math.radians(2.0))).copy()
    assert masked_ssim(true, view, mask) > 0.95
    assert masked_ssim(true, view, mask) > masked_ssim(moved_wrongly, view, mask) + 0.1


def test_scored_pixels_are_the_valid_ground_pixels():
    cfg = CameraConfig()
    synth = ViewSynthesizer(cfg)
    frame = np.zeros((cfg.height, cfg.width, 3), np.uint8)
    synth.warp(frame, 0.0, 0.0, 0.0)
    mask = scored_pixels(synth)
    assert mask.shape == (cfg.height, cfg.width)
    assert np.array_equal(mask, synth.ground.reshape(mask.shape))  # nothing is filled at zero deviation
    synth.warp(frame, 0.0, 1.0, math.radians(5.0))
    mask = scored_pixels(synth)
    assert np.array_equal(mask, synth.valid & synth.ground.reshape(mask.shape))
    assert 0 < mask.sum() < synth.ground.sum()


def test_masked_scores():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 250, (20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:25] = True
    assert masked_ssim(a, a, mask) == pytest.approx(1.0)
    assert masked_psnr(a, a, mask) == math.inf
    b = a.copy()
    b[mask] += 1  # every masked value off by one: MSE 1
    b[~mask] = 0  # what lies outside the mask does not count in PSNR
    assert masked_psnr(a, b, mask) == pytest.approx(10 * math.log10(255.0**2))
    assert masked_ssim(a, b, mask) < 1.0
    empty = np.zeros_like(mask)
    assert math.isnan(masked_ssim(a, b, empty)) and math.isnan(masked_psnr(a, b, empty))


def _twin(start=None, duration_s=6.0):
    sc = dataclasses.replace(as_scenario("default"), duration_s=duration_s)
    return PathInterventions(DriveEnv(sc, off_road="recover", render_camera=False), start=start)


def test_path_interventions_count_and_put_the_car_back():
    env = _twin()
    _, info = env.reset(seed=3)
    assert info["interventions"] == 0 and info["off_road_events"] == 0 and not info["intervened"]
    seen = []
    truncated = False
    while not truncated:
        _, _, terminated, truncated, info = env.step(np.array([1.0], np.float32))  # hard left: off the lane
        assert not terminated
        if info["intervened"]:
            seen.append(info)
            assert abs(info["lateral_offset_m"]) < 1e-4 and abs(info["heading_error_rad"]) < 1e-4  # the projection
        else:
            assert abs(info["lateral_offset_m"]) <= 1.0 and abs(info["heading_error_rad"]) <= math.radians(10)
    assert seen, "a hard left must pass the 1 m limit"
    assert info["interventions"] == len(seen)
    assert info["off_road_events"] == info["interventions"] + info["env_off_road_events"]
    _, info = env.reset(seed=3)
    assert info["interventions"] == 0


def test_path_interventions_start_pins_the_reset():
    env = _twin(start=(11, 1004))
    _, a = env.reset(seed=0)
    track_a = env.unwrapped.track_seed
    _, b = env.reset(seed=99)
    assert track_a == env.unwrapped.track_seed == 1004
    assert (a["x_m"], a["y_m"], a["yaw_rad"]) == (b["x_m"], b["y_m"], b["yaw_rad"])
    plain = DriveEnv("default", off_road="recover", render_camera=False)
    _, c = plain.reset(seed=11, options={"track_seed": 1004})
    assert (c["x_m"], c["y_m"], c["yaw_rad"]) == (a["x_m"], a["y_m"], a["yaw_rad"])


def test_record_test_episodes_records_only_what_is_missing(tmp_path):
    from drive.data.layout import complete_episodes
    from drive.replay.check import record_test_episodes

    data = tmp_path / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the test-split warning is silenced
        assert record_test_episodes("default", data, 1, 0.5) == 1
    assert record_test_episodes("default", data, 1, 0.5) == 0
    assert record_test_episodes("default", data, 2, 0.5) == 1
    assert len(complete_episodes(data)) == 2
