"""Several datasets train as one (``drive train --data A,B``): windows from all of them, one split by episode,
each dataset recorded in config.json, checked on --resume; one --data trains exactly as before."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from drive.cli import main
from drive.data.layout import DatasetInfo
from drive.data.sequences import ConcatFrames, MultiFrameCache, SequenceDataset, open_frame_cache
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.policy.checkpoint import read_config
from drive.train import selection
from drive.train.config import TrainConfig
from drive.train.loop import train
from tests.train.conftest import road_frames

LOSS_TOL = {"rtol": 1e-4, "atol": 1e-6}  # as tests/train/test_loop.py: float32 rounding on another CPU

# Losses of small_config(make_train_dataset(), epochs=2, val_fraction=0.34) before several datasets were
# possible (the code of the commit before, seed 0): one --data must still train exactly so.
BEFORE_LOSSES = [0.7295999526977539, 1.0955381393432617, 0.9635108113288879, 0.7982174158096313]
BEFORE_VAL_LOSSES = [0.7127120852470398, 0.7062330842018127]


def write_dataset(root: Path, phases, length: int = 40, fps: float = 10.0, max_steer_rad: float = 0.5) -> Path:
    """A dataset whose episode k has the content of make_train_dataset's episode ``phases[k]``."""
    writer = DatasetWriter(
        root, DatasetInfo(fps=fps, image_height=78, image_width=200, max_steer_rad=max_steer_rad, source="test")
    )
    for phase in phases:
        steering = (0.7 * np.sin(np.arange(length) / 4.0 + 1.3 * phase)).astype(np.float32)
        writer.add_episode(iter(road_frames(steering, phase)), steering, np.arange(length) / fps)
    writer.close()
    return root


def test_two_datasets_train_together_and_both_are_recorded(tmp_path, capsys):
    a, b = write_dataset(tmp_path / "a", (0, 1)), write_dataset(tmp_path / "b", (2, 3))
    out = tmp_path / "ck"
    argv = ["train", "--data", f"{a},{b}", "--out", str(out), "--batch-size", "4", "--seq-len", "8"]
    assert main([*argv, "--epochs", "1", "--val-fraction", "0.25", "--no-progress"]) == 0
    config = read_config(out)
    assert config["training"]["data"] == "a,b"  # folder names only, in order
    data = config["data"]
    assert isinstance(data, list) and [d["name"] for d in data] == ["a", "b"]
    assert all(len(d["sha256"]) == 64 and d["episodes"] == [0, 1] and d["frames"] == 80 for d in data)
    assert all(d["info"]["fps"] == 10.0 for d in data)
    # one split by episode over all four (one validates); each dataset's segments by its own episode indices
    held = [(k, *s) for k, d in enumerate(data) for s in d["val_segments"]]
    trained = [(k, *s) for k, d in enumerate(data) for s in d["train_segments"]]
    assert len(held) == 1 and sorted(trained + held) == [(k, e, 0, 40) for k in (0, 1) for e in (0, 1)]
    # training windows from both datasets (each episode gives 5 windows of 8 frames)
    assert sorted(d["train_windows"] for d in data) == [5, 10] and sum(d["val_windows"] for d in data) == 5
    assert config["metrics"]["steps"] == 15 // 4
    assert (a / "cache" / "frames.u8").is_file() and (b / "cache" / "frames.u8").is_file()  # a cache each


def test_the_whole_reads_each_datasets_frames_and_labels(tmp_path):
    a, b = write_dataset(tmp_path / "a", (0, 1)), write_dataset(tmp_path / "b", (5,), length=30)
    whole = open_frame_cache([a, b], [None, None], cache_dir=tmp_path / "cache", progress=False)
    assert isinstance(whole, MultiFrameCache) and (tmp_path / "cache" / "2-b" / "frames.u8").is_file()
    first, second = whole.caches
    assert whole.episodes == [0, 1, 2] and whole.locate(2) == (1, 0) and whole.num_frames == 110
    train_segments, _ = whole.split(0.0, 0)
    data = SequenceDataset(whole, train_segments, seq_len=8)
    assert len(data) == 5 + 5 + 4  # 40, 40 and 30 frames: the last window of a 30-frame episode ends at 30
    rows = data.rows(np.arange(len(data)))  # every window, across both memory maps
    frames, steering, dt = data.get_batch(np.arange(len(data)))
    own = np.concatenate([np.asarray(first.frames), np.asarray(second.frames)])
    np.testing.assert_array_equal(frames.numpy(), own[rows])
    np.testing.assert_array_equal(steering.numpy(), np.concatenate([first.steering, second.steering])[rows])
    np.testing.assert_array_equal(whole.frames[75:85], own[75:85])  # a slice across the boundary
    assert dt.shape == (14, 8)
    with pytest.raises(IndexError):
        ConcatFrames([first.frames, second.frames])[[110]]


def test_a_dataset_of_another_fps_is_refused_in_one_line_before_any_decoding(tmp_path, capsys):
    a, b = write_dataset(tmp_path / "a", (0, 1)), write_dataset(tmp_path / "b", (2,), fps=20.0)
    cfg = TrainConfig(data=f"{a},{b}", out=str(tmp_path / "ck"), progress=False)
    with pytest.raises(UserError, match=r"^--data .*b: fps 20\.0 differs from 10\.0 of --data .*a; datasets"):
        train(cfg)
    assert not (a / "cache").exists() and not (b / "cache").exists()
    c = write_dataset(tmp_path / "c", (2,), max_steer_rad=0.4)
    code = main(["train", "--data", f"{a},{c}", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "max_steer_rad 0.4 differs from 0.5" in err


def test_the_data_flag_names_each_dataset_once(tmp_path):
    for data, what in (("a,,b", "empty folder name"), (f"{tmp_path}/a,{tmp_path}/x/../a", "twice")):
        with pytest.raises(UserError, match=what):
            TrainConfig(data=data, out=str(tmp_path / "o")).validate()
    with pytest.raises(UserError, match="--dagger-rounds trains on one dataset"):
        TrainConfig(data="a,b", out="o", dagger_rounds=1, scenario="default").validate()


def test_resume_refuses_a_changed_second_dataset(tmp_path, small_config):
    a, b = write_dataset(tmp_path / "a", (0, 1)), write_dataset(tmp_path / "b", (2, 3))
    train(small_config(f"{a},{b}", epochs=1))
    with pytest.raises(UserError, match=r"--resume: --data .*a: 1 dataset\(s\), but .* records 2 \(a, b\)"):
        train(small_config(a, epochs=2, resume=True))
    writer = DatasetWriter(b, DatasetInfo(fps=10.0, image_height=78, image_width=200, max_steer_rad=0.5, source="test"))
    steering = np.zeros(40, dtype=np.float32)
    writer.add_episode(iter(road_frames(steering, 9)), steering, np.arange(40) / 10.0)
    writer.close()
    with pytest.raises(UserError, match=r"--resume: --data .*b: its content \(SHA-256\) .* differs from the dataset"):
        train(small_config(f"{a},{b}", epochs=2, resume=True))


def test_one_data_trains_as_before_and_as_the_same_episodes_in_two_datasets(tmp_path, make_train_dataset, small_config):
    whole = make_train_dataset(lengths=(40, 40, 40))
    cfg = small_config(whole, epochs=2, val_fraction=0.34)
    before = train(cfg).progress
    np.testing.assert_allclose(before["losses"], BEFORE_LOSSES, **LOSS_TOL)
    np.testing.assert_allclose([e["val_loss"] for e in before["epochs"]], BEFORE_VAL_LOSSES, **LOSS_TOL)
    config = read_config(cfg.out)
    assert isinstance(config["data"], dict) and config["data"]["val_segments"] == [[2, 0, 40]]
    assert config["training"]["data"] == "data"
    # the same three episodes as two datasets: the same split, the same windows, the same losses
    a, b = write_dataset(tmp_path / "a", (0, 1)), write_dataset(tmp_path / "b", (2,))
    split = train(dataclasses.replace(cfg, data=f"{a},{b}", out=str(tmp_path / "split"))).progress
    np.testing.assert_allclose(split["losses"], before["losses"], **LOSS_TOL)
    np.testing.assert_allclose([e["val_loss"] for e in split["epochs"]], BEFORE_VAL_LOSSES, **LOSS_TOL)
    data = read_config(tmp_path / "split")["data"]
    assert [d["val_segments"] for d in data] == [[], [[0, 0, 40]]]
    assert [d["train_segments"] for d in data] == [[[0, 0, 40], [1, 0, 40]], []]


def test_closed_loop_selection_avoids_the_tracks_of_every_dataset(monkeypatch, tmp_path):
    from drive.world.tracks import TRAIN_SEEDS

    used = {"a": ({TRAIN_SEEDS[0], TRAIN_SEEDS[1]}, {7_000_000}), "b": ({TRAIN_SEEDS[2]}, {7_000_001})}
    monkeypatch.setattr(selection, "recorded_seeds", lambda root: used[Path(root).name])
    spec = selection.held_out_spec([tmp_path / "a", tmp_path / "b"], episodes=len(TRAIN_SEEDS) - 3, duration_s=1.0)
    assert len(spec.tracks) == len(TRAIN_SEEDS) - 3  # every other training track
    assert not set(spec.tracks) & {TRAIN_SEEDS[0], TRAIN_SEEDS[1], TRAIN_SEEDS[2]}
    assert not set(spec.reset_seeds) & {7_000_000, 7_000_001}
    assert selection.held_out_spec(tmp_path / "a", 2, 1.0) == selection.held_out_spec([tmp_path / "a"], 2, 1.0)
