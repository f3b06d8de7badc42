"""drive.data.writer: the one dataset writer, its LeRobot v3.0 schema, statistics, world metadata and locking."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drive.data import layout
from drive.data.layout import DatasetInfo, columns_from_info, world_meta
from drive.data.reader import DatasetReader
from drive.data.writer import DatasetWriter

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "lerobot_v3_schema.json").read_text())
FPS = 10.0


def _fake_info(t: int, world: dict | None = None) -> dict:
    """What the env's info holds for one step (the keys the recorder and DAgger read)."""
    info = {
        "expert_steering": 0.5 * math.sin(t / 3.0),
        "curvature_ahead_inv_m": 0.01 * t,
        "speed_mps": 10.0 + t,
        "lateral_offset_m": -0.1 * t,
        "heading_error_rad": 0.02 * t,
    }
    if world is not None:
        info["world"] = world
    return info


def _write(root: Path, lengths=(12, 7), worlds=(None, None), pattern_frames=None) -> tuple[DatasetWriter, dict]:
    writer = DatasetWriter(root, DatasetInfo(fps=FPS, image_height=78, image_width=200, max_steer_rad=0.5))
    frames = {}
    for e, n in enumerate(lengths):
        frames[e] = pattern_frames(n, e)
        reset_info = _fake_info(0, worlds[e])
        for t in range(n):
            writer.add_frame(frames[e][t], **columns_from_info(_fake_info(t), applied=0.1 * t))
        assert writer.save_episode({"source": "test", **world_meta(reset_info)}) == e
    writer.close()
    return writer, frames


def test_dataset_matches_the_lerobot_v3_schema(tmp_path, pattern_frames):
    root = tmp_path / "ds"
    _write(root, pattern_frames=pattern_frames)
    info = json.loads(layout.info_path(root).read_text())
    assert set(SCHEMA["info"]["required_keys"]) <= set(info)
    assert info["codebase_version"] == SCHEMA["info"]["codebase_version"]
    assert (info["data_path"], info["video_path"]) == (SCHEMA["info"]["data_path"], SCHEMA["info"]["video_path"])
    assert info["total_episodes"] == 2 and info["total_frames"] == 19 and info["total_tasks"] == 1
    assert info["splits"] == {"train": "0:2"} and info["fps"] == 10 and isinstance(info["fps"], int)
    assert set(info["features"]) == set(SCHEMA["features"])
    for name, expected in SCHEMA["features"].items():
        for key, value in expected.items():
            assert info["features"][name][key] == value, (name, key)
    video_info = info["features"][layout.VIDEO_KEY]["info"]
    for key, value in SCHEMA["video_info"].items():
        assert video_info[key] == value, key
    assert video_info["video.fps"] == 10
    # the video's own stream says the same (LeRobot's get_video_info reads these)
    from drive.video_io import video_info as probe

    stream = probe(layout.video_path(root, 1))
    for key in ("video.codec", "video.pix_fmt", "video.height", "video.width", "video.channels", "has_audio"):
        assert stream[key] == video_info[key], key

    tasks = pd.read_parquet(layout.tasks_path(root))
    assert (
        list(tasks.index) == SCHEMA["tasks"]["index"] and tasks["task_index"].tolist() == SCHEMA["tasks"]["task_index"]
    )

    data = pd.read_parquet(layout.data_path(root, 1))
    assert {c: str(t) for c, t in data.dtypes.items()} == SCHEMA["data_columns"]
    assert data["index"].tolist() == list(range(12, 19)) and (data["task_index"] == 0).all()

    meta = pd.read_parquet(layout.episode_meta_path(root, 1)).iloc[0]
    assert set(SCHEMA["episode_columns"]) <= set(meta.index)
    assert (meta["dataset_from_index"], meta["dataset_to_index"], meta["length"]) == (12, 19, 7)
    assert list(meta["tasks"]) == ["keep the lane"]
    assert meta[f"videos/{layout.VIDEO_KEY}/to_timestamp"] == pytest.approx(7 / FPS)
    assert (meta["data/chunk_index"], meta["data/file_index"]) == (0, 1)

    st = json.loads(layout.stats_path(root).read_text())
    assert set(st) == set(SCHEMA["features"])
    for feature, s in st.items():
        assert set(s) == set(SCHEMA["stats_keys"]), feature
        shape = SCHEMA["image_stat_shape"] if feature == layout.VIDEO_KEY else SCHEMA["scalar_stat_shape"]
        assert list(np.asarray(s["mean"]).shape) == shape, feature
        assert s["count"] == [19]


def test_stats_are_those_of_all_frames(tmp_path, pattern_frames):
    root = tmp_path / "ds"
    _, frames = _write(root, pattern_frames=pattern_frames)
    st = json.loads(layout.stats_path(root).read_text())
    table = DatasetReader(root).frames_table()
    for column in (layout.STEERING_LABEL, layout.STEERING_APPLIED, layout.SPEED, layout.INDEX):
        v = table[column].to_numpy(np.float64)
        assert st[column]["mean"][0] == pytest.approx(v.mean(), rel=1e-5, abs=1e-6), column
        assert st[column]["std"][0] == pytest.approx(v.std(), rel=1e-4, abs=1e-6), column
        assert (st[column]["min"][0], st[column]["max"][0]) == pytest.approx((v.min(), v.max()), abs=1e-6)
    pixels = np.concatenate([f.reshape(-1, 3) for f in frames.values()]).astype(np.float64) / 255.0
    assert np.asarray(st[layout.VIDEO_KEY]["mean"]).reshape(3) == pytest.approx(pixels.mean(0), abs=1e-9)
    assert np.asarray(st[layout.VIDEO_KEY]["std"]).reshape(3) == pytest.approx(pixels.std(0), abs=1e-9)
    assert np.asarray(st[layout.VIDEO_KEY]["max"]).reshape(3) == pytest.approx(pixels.max(0), abs=1e-12)


def test_world_values_are_stored_per_episode_and_read_back(tmp_path, pattern_frames):
    root = tmp_path / "ds"
    world = {"lane_width_m": 3.4, "weather": "rain", "traffic_cars": 3, "night": False}
    _write(root, worlds=(world, {**world, "weather": "sun"}), pattern_frames=pattern_frames)
    reader = DatasetReader(root)
    assert reader.world(0) == world
    assert reader.world(1)["weather"] == "sun"
    assert reader.episodes_table()["world.weather"].tolist() == ["rain", "sun"]
    assert not any(k.startswith("stats/") for k in reader.episode_meta(0))
    plain = tmp_path / "plain"
    _write(plain, pattern_frames=pattern_frames)
    assert DatasetReader(plain).world(0) == {}  # no info["world"]: nothing stored
    with pytest.raises(TypeError, match="weather"):
        world_meta({"world": {"weather": ["rain"]}})


def test_old_datasets_are_read_and_appended_to(make_dataset, pattern_frames):
    root, _ = make_dataset(lengths=(8,))  # the layout before v3.0 fields: mp4v, no tasks, no task_index
    reader = DatasetReader(root)
    assert len(reader.read_frames(0)) == 8
    writer = DatasetWriter(root, DatasetInfo(fps=10.0, image_height=78, image_width=200, max_steer_rad=0.5))
    steering = np.linspace(-0.5, 0.5, 5)
    assert writer.add_episode(iter(pattern_frames(5, 9)), steering) == 1
    reader = DatasetReader(root)
    assert reader.episodes == [0, 1] and reader.info.total_frames == 13
    assert reader.episode_table(1)[layout.INDEX].tolist() == list(range(8, 13))
    assert layout.tasks_path(root).exists()


def test_bad_frames_and_empty_episodes_are_refused(tmp_path, pattern_frames):
    writer = DatasetWriter(tmp_path / "ds", DatasetInfo(fps=FPS, image_height=78, image_width=200, max_steer_rad=0.5))
    with pytest.raises(ValueError, match="at least one frame"):
        writer.save_episode()
    with pytest.raises(ValueError, match="expected uint8"):
        writer.add_frame(np.zeros((78, 200, 3), np.float32), **{layout.STEERING_LABEL: 0.0})
    with pytest.raises(ValueError, match="unknown per-frame column"):
        writer.add_frame(pattern_frames(1, 0)[0], **{layout.STEERING_LABEL: 0.0, "steer": 1.0})
    writer.add_frame(pattern_frames(1, 0)[0], **{layout.STEERING_LABEL: 0.0})
    writer.discard_episode()
    writer.close()
    assert layout.complete_episodes(tmp_path / "ds") == []
    assert not [p for p in (tmp_path / "ds").rglob("*.mp4")]
    with pytest.raises(ValueError, match="even"):
        DatasetWriter(tmp_path / "odd", DatasetInfo(fps=FPS, image_height=77, image_width=200, max_steer_rad=0.5))


def test_two_writers_in_one_folder_keep_every_episode(tmp_path, pattern_frames):
    info = DatasetInfo(fps=FPS, image_height=78, image_width=200, max_steer_rad=0.5)
    a, b = DatasetWriter(tmp_path / "ds", info), DatasetWriter(tmp_path / "ds", info)
    for t in range(4):  # interleaved: both start before either saves
        a.add_frame(pattern_frames(1, t)[0], **{layout.STEERING_LABEL: 0.1})
        b.add_frame(pattern_frames(1, t)[0], **{layout.STEERING_LABEL: -0.1})
    assert (a.save_episode(), b.save_episode()) == (0, 1)
    reader = DatasetReader(tmp_path / "ds")
    assert reader.info.total_episodes == 2 and reader.info.total_frames == 8
    assert reader.episode_table(1)[layout.STEERING_LABEL].iloc[0] == pytest.approx(-0.1)


@pytest.mark.slow
def test_two_concurrent_record_processes_keep_every_episode(tmp_path):
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "drive.cli",
        "record",
        "--episodes",
        "3",
        "--duration-s",
        "0.5",
        "--out",
        str(out),
        "--no-progress",
    ]
    procs = [
        subprocess.Popen(cmd + ["--seed", str(s)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for s in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    reader = DatasetReader(out)
    assert reader.episodes == list(range(6))
    assert reader.info.total_episodes == 6 and reader.info.total_frames == 6 * 10
    assert sorted(reader.episode_meta(e)["seed"] for e in reader.episodes) == [1, 1, 1, 2, 2, 2]
    index = reader.frames_table()[layout.INDEX].to_numpy()
    assert np.array_equal(index, np.arange(60))
    assert all(len(reader.read_frames(e)) == 10 for e in reader.episodes)
