"""The dataset reader: tables of complete episodes, frames decoded to RGB, errors that name the file."""

import json

import numpy as np
import pandas as pd
import pytest

from drive.data import layout
from drive.data.reader import DatasetReader, decode_video
from drive.errors import UserError


def test_reads_tables_and_rgb_frames_close_to_what_was_written(make_dataset):
    root, episodes = make_dataset(lengths=(12, 9))
    reader = DatasetReader(root)
    assert reader.episodes == [0, 1]
    table = reader.frames_table()
    assert len(table) == 21
    assert list(table[layout.EPISODE_INDEX].unique()) == [0, 1]
    np.testing.assert_allclose(table[layout.STEERING_LABEL].to_numpy()[:12], episodes[0][1], atol=1e-6)
    frames = reader.read_frames(1)
    assert frames.shape == (9, 78, 200, 3) and frames.dtype == np.uint8
    # mp4v is lossy; but colours must come back in RGB order, not BGR.
    err_rgb = np.abs(frames.astype(float) - episodes[1][0]).mean()
    err_bgr = np.abs(frames.astype(float) - episodes[1][0][..., ::-1]).mean()
    assert err_rgb < 6 and err_rgb < err_bgr


def test_incomplete_episode_is_skipped(make_dataset):
    root, _ = make_dataset(lengths=(10, 10))
    layout.episode_meta_path(root, 1).unlink()  # episode 1 still being written: its meta row comes last,
    info = json.loads(layout.info_path(root).read_text())  # and info.json's totals after it
    info.update(total_episodes=1, total_frames=10)
    layout.info_path(root).write_text(json.dumps(info))
    assert DatasetReader(root).episodes == [0]


def test_missing_video_names_the_file(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    layout.video_path(root, 0).unlink()
    with pytest.raises(UserError, match="file-000.mp4"):
        DatasetReader(root).read_frames(0)


def test_video_shorter_than_table_names_both_files(make_dataset, pattern_frames, write_episode_files):
    root, _ = make_dataset(lengths=(10,))
    write_episode_files(root, 0, pattern_frames(6, 0), np.zeros(10), 10.0, 0, table_rows=10)
    with pytest.raises(
        ValueError, match=r"file-000.mp4: video has 6 frame\(s\) but its table .*file-000.parquet has 10"
    ):
        DatasetReader(root).read_frames(0)


def test_unreadable_video_names_the_file(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    layout.video_path(root, 0).write_bytes(b"this is not a video")
    with pytest.raises(ValueError, match="file-000.mp4: unreadable video"):
        DatasetReader(root).read_frames(0)
    with pytest.raises(ValueError, match="unreadable video"):
        decode_video(layout.video_path(root, 0))


def test_nan_steering_names_file_column_and_frame(make_dataset):
    root, _ = make_dataset(lengths=(10,))
    path = layout.data_path(root, 0)
    table = pd.read_parquet(path)
    table.loc[4, layout.STEERING_LABEL] = np.nan
    table.to_parquet(path, index=False)
    with pytest.raises(
        ValueError, match=r"file-000.parquet: column 'action.steering' is not a finite number at frame 4"
    ):
        DatasetReader(root).frames_table()


def test_missing_info_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match="dataset folder not found"):
        DatasetReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="meta/info.json"):  # drive.io.read_json: a one-line user error
        DatasetReader(tmp_path / "empty")
