"""Issue 20 (reliability) for datasets: meta/info.json and video lengths are checked on reading, a full
disk during `drive record` is one line naming the file and leaves a valid dataset, seeds are checked
before any work, and snapshot() lists and hashes the episodes under the folder's lock."""

import errno
import json
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.reader import DatasetReader, snapshot
from drive.errors import UserError
from drive.io import output_lock

# ---------------------------------------------------------------- case 11: meta/info.json and videos checked


def edit_info(root, **changes):
    path = layout.info_path(root)
    info = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            info.pop(key)
        else:
            info[key] = value
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fps": 1e9}, r"field 'fps' must be a number in \(0, 1000\] Hz, got 1000000000.0"),
        ({"features": None}, r"missing field 'features'"),
        ({"image_height": -78}, r"field 'image_height' must be a positive integer, got -78"),
        ({"total_frames": 999}, r"field 'total_frames' is 999, but its 2 complete episode\(s\) hold 18 frame"),
        ({"total_episodes": 5}, r"field 'total_episodes' is 5, but the dataset has 2 complete episode"),
    ],
)
def test_bad_info_json_is_a_one_line_error_naming_file_field_value(make_dataset, changes, message):
    root, _ = make_dataset(lengths=(10, 8))
    edit_info(root, **changes)
    with pytest.raises(UserError, match=r"meta/info.json: " + message):
        DatasetReader(root)


def test_negative_feature_shape_is_an_error(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    info = json.loads(layout.info_path(root).read_text())
    info["features"][layout.VIDEO_KEY]["shape"] = [-78, 200, 3]
    layout.info_path(root).write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"info.json: field 'features.observation.images.front.shape' must be a list"):
        DatasetReader(root)


def test_video_longer_than_its_table_is_an_error(make_dataset, pattern_frames, write_episode_files):
    root, _ = make_dataset(lengths=(10,))
    write_episode_files(root, 0, pattern_frames(14, 0), np.zeros(14), 10.0, 0, table_rows=10)
    with pytest.raises(UserError, match=r"file-000.mp4: video has more frames than the 10 row\(s\) of its table"):
        DatasetReader(root).read_frames(0)


def test_table_rows_must_match_the_episode_length(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    path = layout.data_path(root, 0)
    pd.read_parquet(path).iloc[:7].to_parquet(path, index=False)
    with pytest.raises(UserError, match=r"file-000.parquet: 7 row\(s\), but .* gives episode 0 a length of 10"):
        DatasetReader(root).episode_table(0)


def test_stale_totals_are_read_again_under_the_lock(make_dataset):
    """A writer between its meta row and its info.json: the reader waits for the lock and reads again."""
    root, _ = make_dataset(lengths=(10, 8))
    edit_info(root, total_episodes=1, total_frames=10)
    holder = threading.Thread(target=lambda: _hold_then_fix(root))
    with output_lock(root):
        holder.start()
        time.sleep(0.2)
    holder.join()
    assert DatasetReader(root).info.total_frames == 18


def _hold_then_fix(root):
    with output_lock(root, timeout_s=5):
        edit_info(root, total_episodes=2, total_frames=18)


# ---------------------------------------------------------------- case 12: snapshot under the lock


def test_snapshot_lists_and_hashes_only_the_complete_episodes(make_dataset, pattern_frames, write_episode_files):
    root, _ = make_dataset(lengths=(10, 8))
    episodes, fp = snapshot(root)
    assert episodes == [0, 1] and fp["name"] == "ds" and fp["files"] == 1 + 2 * 3  # info.json + 3 per episode
    assert snapshot(root)[1] == fp
    (root / "cache").mkdir()
    (root / "cache" / "frames.u8").write_bytes(b"x")
    assert snapshot(root)[1] == fp  # the frame cache is not the data
    write_episode_files(root, 2, pattern_frames(5, 2), np.zeros(5), 10.0, 18)
    episodes2, fp2 = snapshot(root)
    assert episodes2 == [0, 1, 2] and fp2["sha256"] != fp["sha256"]


def test_snapshot_waits_for_a_writer_holding_the_lock(make_dataset, pattern_frames, write_episode_files):
    root, _ = make_dataset(lengths=(10,))
    got = {}
    with output_lock(root):
        reader = threading.Thread(target=lambda: got.update(result=snapshot(root)))
        reader.start()
        time.sleep(0.3)
        assert "result" not in got  # blocked while a save is in progress
        write_episode_files(root, 1, pattern_frames(5, 2), np.zeros(5), 10.0, 10)
    reader.join()
    assert got["result"][0] == [0, 1] and got["result"][1]["files"] == 1 + 2 * 3


def test_snapshot_times_out_with_one_line(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    held, release = threading.Event(), threading.Event()

    def writer():  # another writer (a thread waits like another process; only the holding thread re-enters)
        with output_lock(root):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(UserError, match="another drive process is writing to this folder"):
            snapshot(root, lock_timeout_s=0.1)
    finally:
        release.set()
        thread.join()


# ---------------------------------------------------------------- case 10: seeds checked before any work


def test_record_refuses_a_seed_beyond_the_limit_before_any_work(tmp_path, capsys):
    out = tmp_path / "rec"
    with pytest.raises(SystemExit) as exit_:  # argparse's own one-line error
        main(["record", "--seed", str(2**64), "--out", str(out), "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "2**32" in err and str(2**64) in err
    assert not out.exists()


def test_record_library_refuses_a_seed_beyond_the_limit_before_any_work(tmp_path):
    from drive.data.recorder import record

    with pytest.raises(UserError, match=r"--seed: must be a whole number 0 <= seed < 2\*\*32, got 4294967296"):
        record("train", 1, tmp_path / "rec", seed=2**32)
    assert not (tmp_path / "rec").exists()


def test_record_takes_the_largest_seed(tmp_path):
    out = tmp_path / "rec"
    args = ["record", "--seed", str(2**32 - 1), "--episodes", "1", "--duration-s", "0.1", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert DatasetReader(out).episode_meta(0)["seed"] == 2**32 - 1


# ---------------------------------------------------------------- case 9: disk full during `drive record`


def test_record_disk_full_while_saving_names_the_file_and_leaves_a_valid_dataset(tmp_path, capsys, monkeypatch):
    """ENOSPC from pyarrow (no file name in the error) while writing episode 1's meta row."""
    out = tmp_path / "rec"
    real = pd.DataFrame.to_parquet
    calls = {"meta": 0}

    def to_parquet(self, path, *a, **k):
        if "length" in self.columns:  # an episode's meta row
            calls["meta"] += 1
            if calls["meta"] == 2:
                raise OSError(errno.ENOSPC, None)  # as pyarrow raises it: no file name
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    args = ["record", "--episodes", "3", "--duration-s", "0.2", "--out", str(out), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meta/episodes/chunk-000/file-001.parquet" in err and "No space left" in err
    monkeypatch.undo()
    reader = DatasetReader(out)  # valid: totals match, episode 0 whole
    assert reader.episodes == [0] and reader.info.total_episodes == 1
    assert layout.foreign_entries(out) == []
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [n for n in names if "file-001" in n or "drive-tmp" in n]  # no part of episode 1 left behind
    assert main(args) == 0  # the next run is not blocked
    assert DatasetReader(out).episodes == [0, 1, 2, 3]


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_record_on_a_full_disk(small_disk, capsys):
    out = small_disk / "rec"
    assert main(["record", "--episodes", "20", "--duration-s", "2", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and str(out) in err
    if out.exists():
        assert layout.foreign_entries(out) == []
        reader = DatasetReader(out)  # valid, with the episodes that fitted
        assert reader.info.total_episodes == len(reader.episodes) >= 1
        for e in reader.episodes:
            assert len(reader.read_frames(e)) == reader.episode_length(e)
        leftovers = [p for p in out.rglob("*") if p.is_file() and "drive-tmp" in p.name]
        assert leftovers == []


def test_record_on_a_disk_too_full_for_one_episode_leaves_nothing(tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        out = disk / "rec"
        assert main(["record", "--episodes", "2", "--duration-s", "2", "--out", str(out), "--no-progress"]) == 1
        assert "No space left on device" in capsys.readouterr().err
        assert not out.exists()  # no half-made dataset to fix the next run's scenario
    finally:
        subprocess.run(["umount", str(disk)], check=True)
