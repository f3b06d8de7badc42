"""drive record: the dataset round trip, DART labels, appending, interruption and mismatches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from drive.cli import main as cli_main
from drive.data import layout, recorder
from drive.data.reader import iter_video
from drive.data.recorder import episode_reset_seed, episode_track_seed, record
from drive.world.env import DriveEnv
from drive.world.scenario import Scenario, load_scenario


def _scenario(duration_s: float = 1.5, **kw) -> Scenario:
    """A short training scenario (a second or two per episode), at one speed (train.yaml draws 7..16 m/s)."""
    kw.setdefault("speed_mps", 10.0)
    return dataclasses.replace(load_scenario("train"), duration_s=duration_s, **kw)


def _video_frames(path) -> list[np.ndarray]:
    return list(iter_video(path))


def test_record_round_trip(tmp_path):
    sc = _scenario()
    root = record(sc, 1, tmp_path / "ds", seed=3, progress=False)
    assert layout.complete_episodes(root) == [0]
    info = layout.read_info(root)
    assert (info.fps, info.image_height, info.image_width, info.max_steer_rad) == (20.0, 78, 200, 0.35)
    assert info.total_episodes == 1 and info.total_frames == 30 and info.scenario["name"] == "train"
    table = pd.read_parquet(layout.data_path(root, 0))
    assert list(table.columns) == list(layout.FRAME_COLUMNS)
    assert len(table) == 30 and table[layout.FRAME_INDEX].tolist() == list(range(30))
    assert table[layout.INDEX].tolist() == list(range(30))
    np.testing.assert_allclose(table[layout.TIMESTAMP], np.arange(30) / 20.0, atol=1e-6)
    # no noise: what was applied is the label
    np.testing.assert_array_equal(table[layout.STEERING_LABEL], table[layout.STEERING_APPLIED])
    assert (table[layout.SPEED] == 10.0).all() and table[layout.LATERAL_OFFSET].abs().max() < 0.05
    frames = _video_frames(layout.video_path(root, 0))
    assert len(frames) == len(table)
    meta = pd.read_parquet(layout.episode_meta_path(root, 0))
    assert meta["episode_index"].tolist() == [0] and meta["length"].tolist() == [30]
    assert meta["source"].tolist() == ["drive record"]
    track_seed = int(meta["track_seed"].iloc[0])
    assert track_seed == episode_track_seed(sc.track.seed_list(), 3, 0) and track_seed in sc.track.seed_list()
    # the video holds the env's frames (mp4v is lossy: compare loosely)
    env = DriveEnv(sc)
    obs, _ = env.reset(seed=int(meta["reset_seed"].iloc[0]), options={"track_seed": track_seed})
    assert np.abs(frames[0].astype(int) - obs).mean() < 6


def test_noise_injection_labels_are_the_experts_steering_for_the_visited_states(tmp_path):
    sc = _scenario(duration_s=2.0)
    root = record(sc, 1, tmp_path / "ds", seed=1, noise_injection=0.2, progress=False)
    table = pd.read_parquet(layout.data_path(root, 0))
    meta = pd.read_parquet(layout.episode_meta_path(root, 0))
    label, applied = table[layout.STEERING_LABEL].to_numpy(), table[layout.STEERING_APPLIED].to_numpy()
    assert np.abs(applied - label).mean() > 0.05  # perturbed
    # replay the applied steering: the expert's steering in each visited state is the label
    env = DriveEnv(sc, render_camera=False)
    obs, info = env.reset(seed=int(meta["reset_seed"].iloc[0]), options={"track_seed": int(meta["track_seed"].iloc[0])})
    replay, lat = [], []
    for a in applied:
        replay.append(info["expert_steering"])
        lat.append(info["lateral_offset_m"])
        obs, r, term, trunc, info = env.step(np.array([a], np.float32))
    np.testing.assert_allclose(label, np.array(replay, np.float32), atol=1e-6)
    np.testing.assert_allclose(table[layout.LATERAL_OFFSET], np.array(lat, np.float32), atol=1e-6)
    assert np.abs(lat).max() > 0.05  # the noise moved the car off the centre; the labels steer back


def test_second_record_appends_with_new_tracks(tmp_path):
    sc = _scenario(duration_s=1.0)
    root = tmp_path / "ds"
    record(sc, 2, root, seed=0, progress=False)
    record(sc, 1, root, seed=0, progress=False)
    assert layout.complete_episodes(root) == [0, 1, 2]
    info = layout.read_info(root)
    assert info.total_episodes == 3 and info.total_frames == 60
    t2 = pd.read_parquet(layout.data_path(root, 2))
    assert t2[layout.EPISODE_INDEX].unique().tolist() == [2] and t2[layout.INDEX].tolist() == list(range(40, 60))
    seeds = [int(pd.read_parquet(layout.episode_meta_path(root, e))["track_seed"].iloc[0]) for e in range(3)]
    assert len(set(seeds)) == 3
    resets = {episode_reset_seed(0, e) for e in range(3)}
    assert len(resets) == 3


def test_interrupted_recording_keeps_finished_episodes(tmp_path, monkeypatch):
    sc = _scenario(duration_s=1.0)
    root = tmp_path / "ds"
    calls = {"n": 0}
    real_step = DriveEnv.step

    def flaky_step(self, action):
        calls["n"] += 1
        if calls["n"] == 30:  # halfway through the second episode
            raise KeyboardInterrupt
        return real_step(self, action)

    monkeypatch.setattr(DriveEnv, "step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        record(sc, 3, root, seed=0, progress=False)
    monkeypatch.setattr(DriveEnv, "step", real_step)
    assert layout.complete_episodes(root) == [0]
    assert len(pd.read_parquet(layout.data_path(root, 0))) == 20
    assert len(_video_frames(layout.video_path(root, 0))) == 20
    assert not [
        p for p in root.rglob("*") if p.name.startswith(".") and p.name != ".drive.lock"
    ]  # no temporary files left
    assert not layout.video_path(root, 1).exists()
    # a half-written episode (table and video, no meta file) is not complete ...
    layout.data_path(root, 1).write_bytes(layout.data_path(root, 0).read_bytes())
    layout.video_path(root, 1).write_bytes(layout.video_path(root, 0).read_bytes())
    assert layout.complete_episodes(root) == [0]
    # ... and the next recording replaces it
    record(sc, 1, root, seed=0, progress=False)
    assert layout.complete_episodes(root) == [0, 1]
    t1 = pd.read_parquet(layout.data_path(root, 1))
    assert t1[layout.EPISODE_INDEX].unique().tolist() == [1] and t1[layout.INDEX].iloc[0] == 20
    assert layout.read_info(root).total_frames == 40


def test_mismatched_recording_is_refused(tmp_path):
    sc = _scenario(duration_s=0.5)
    root = tmp_path / "ds"
    record(sc, 1, root, progress=False)
    small = dataclasses.replace(sc, camera=dataclasses.replace(sc.camera, width=160))
    with pytest.raises(ValueError, match=r"image_width: the dataset has 200, this writer 160"):
        record(small, 1, root, progress=False)
    faster = dataclasses.replace(sc, speed_mps=12.0)
    with pytest.raises(ValueError, match=r"scenario.speed_mps: the dataset has 10.0, this writer 12.0"):
        record(faster, 1, root, progress=False)
    record(dataclasses.replace(sc, duration_s=0.25), 1, root, progress=False)  # only the length differs: fine
    assert layout.complete_episodes(root) == [0, 1]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--episodes"):
        record(_scenario(), 0, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="--noise-injection"):
        record(_scenario(), 1, tmp_path / "a", noise_injection=float("nan"), progress=False)
    with pytest.raises(ValueError, match="--duration-s"):
        record(_scenario(), 1, tmp_path / "a", duration_s=-1, progress=False)
    with pytest.raises(ValueError, match="nope"):  # drive.errors.UserError
        record("nope", 1, tmp_path / "a", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        record(_scenario(), 1, tmp_path / "full", progress=False)


def test_cli_record(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        cli_main(
            [
                "record",
                "--scenario",
                "train",
                "--episodes",
                "1",
                "--out",
                str(out),
                "--seed",
                "2",
                "--noise-injection",
                "0.05",
                "--duration-s",
                "0.5",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "1 episodes, 10 frames" in printed
    assert "lane position" in printed and "middle_of_3" in printed and "dusk" in printed  # the coverage table
    assert cli_main(["record", "--scenario", "nope", "--episodes", "1", "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err
    assert recorder.TASK and layout.complete_episodes(out) == [0]


def test_world_values_at_reset_go_into_the_episode_table(tmp_path, monkeypatch):
    real_reset = DriveEnv.reset
    drawn = {"lane_width_m": 3.25, "weather": "fog", "parked_cars": 2, "night": True}

    def reset_with_world(self, *, seed=None, options=None):
        obs, info = real_reset(self, seed=seed, options=options)
        return obs, {**info, "world": dict(drawn, parked_cars=seed % 5)}  # what a randomized world reports

    monkeypatch.setattr(DriveEnv, "reset", reset_with_world)
    root = record(_scenario(duration_s=0.25), 2, tmp_path / "ds", seed=4, progress=False)
    from drive.data.reader import DatasetReader

    reader = DatasetReader(root)
    for e in reader.episodes:
        world = reader.world(e)
        assert world == dict(drawn, parked_cars=episode_reset_seed(4, e) % 5)
        assert reader.episode_meta(e)["world.weather"] == "fog"
    monkeypatch.setattr(DriveEnv, "reset", real_reset)
    plain = record(_scenario(duration_s=0.25), 1, tmp_path / "plain", progress=False)
    world = DatasetReader(plain).world(0)  # the real env reports its drawn world (train.yaml randomizes it)
    assert 2.75 <= world["lane_width_m"] <= 4.75 and world["lanes"] in (1, 2, 3)
    assert 0 <= world["ego_lane"] < world["lanes"]  # drawn together with the lane count (track.lane_position)


def test_same_seed_records_byte_identical_datasets_in_one_process(tmp_path):
    # libx264 reads the padding of FFmpeg's frame rows; left uninitialised it made the second and later
    # videos of a process encode differently (up to 38/255 after decoding) for the same frames.
    sc = _scenario(duration_s=1.0)
    a = record(sc, 2, tmp_path / "a", seed=5, noise_injection=0.2, progress=False)
    b = record(sc, 2, tmp_path / "b", seed=5, noise_injection=0.2, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and "videos" in p.parts)
    assert len(files) >= 1
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for e in (0, 1):
        pd.testing.assert_frame_equal(pd.read_parquet(layout.data_path(a, e)), pd.read_parquet(layout.data_path(b, e)))


def test_coverage_table_counts_episodes_per_lane_position_width_and_light_bin():
    rows = [
        {
            "episode_index": 0,
            "world.lanes": 3,
            "world.ego_lane": 1,
            "world.lane_width_m": 3.0,
            "world.sun_elevation_rad": 0.03,
        },
        {
            "episode_index": 1,
            "world.lanes": 3,
            "world.ego_lane": 1,
            "world.lane_width_m": 4.5,
            "world.sun_elevation_rad": 0.8,
        },
        {
            "episode_index": 2,
            "world.lanes": 1,
            "world.ego_lane": 0,
            "world.lane_width_m": 3.5,
            "world.sun_elevation_rad": 0.25,
        },
        {"episode_index": 3, "source": "clip.mp4"},  # an imported episode: no drawn world
    ]
    table = recorder.coverage_table(pd.DataFrame(rows))
    counts = {(r.what, r.bin.split()[0]): r.episodes for r in table.itertuples()}
    assert counts[("lane position", "middle_of_3")] == 2 and counts[("lane position", "only_of_1")] == 1
    assert counts[("lane position", "left_of_2")] == 0  # every bin is listed, empty ones too
    assert counts[("lane width", "narrow")] == counts[("lane width", "standard")] == counts[("lane width", "wide")] == 1
    assert counts[("light", "dusk")] == counts[("light", "low_sun")] == counts[("light", "day")] == 1
    assert counts[("lane position", "unknown")] == counts[("light", "unknown")] == 1
    for what in ("lane position", "lane width", "light"):
        assert table[table["what"] == what]["episodes"].sum() == 4
    assert table["share"].max() == pytest.approx(0.5)
    text = recorder.format_coverage(table)
    assert "middle_of_3 (lane 1 of 3)" in text and "50 %" in text and len(text.splitlines()) == len(table) + 2
