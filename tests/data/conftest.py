"""Fixture factories for the data tests: small datasets written straight in the layout of drive.data.layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from drive.data import layout
from drive.data.layout import DatasetInfo

H, W = 78, 200


def pattern_frames(n: int, seed: int, h: int = H, w: int = W) -> np.ndarray:
    """RGB uint8 frames: smooth colour gradients that move, so mp4v keeps them close to the original."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            out[i, :, :, c] = np.clip(base[c] + 30 * np.sin((xx + 3 * i) / (12 + 5 * c)) + 20 * np.cos(yy / 9), 0, 255)
    return out


def write_episode_files(
    root: Path,
    episode: int,
    frames: np.ndarray,
    steering: np.ndarray,
    fps: float,
    first_index: int,
    table_rows: int | None = None,
) -> None:
    """Write one episode's video, table and meta file directly (no drive writer involved)."""
    n = len(steering) if table_rows is None else table_rows
    video = layout.video_path(root, episode)
    video.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames.shape[2], frames.shape[1]))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    table = pd.DataFrame(
        {
            layout.EPISODE_INDEX: np.full(n, episode, dtype=np.int64),
            layout.FRAME_INDEX: np.arange(n, dtype=np.int64),
            layout.TIMESTAMP: (np.arange(n) / fps).astype(np.float32),
            layout.INDEX: np.arange(first_index, first_index + n, dtype=np.int64),
            layout.STEERING_LABEL: np.asarray(steering[:n], dtype=np.float32),
        }
    )
    path = layout.data_path(root, episode)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    meta = layout.episode_meta_path(root, episode)
    meta.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"episode_index": [episode], "length": [n]}).to_parquet(meta, index=False)
    if layout.info_path(root).exists():  # keep info.json's totals, as the drive writer does after each episode
        update_totals(root)


def update_totals(root: Path) -> None:
    """Rewrite meta/info.json's totals from the episodes' meta rows."""
    info = json.loads(layout.info_path(root).read_text())
    episodes = layout.complete_episodes(root)
    info["total_episodes"] = len(episodes)
    info["total_frames"] = int(
        sum(pd.read_parquet(layout.episode_meta_path(root, e))["length"].iloc[0] for e in episodes)
    )
    layout.info_path(root).write_text(json.dumps(info))


@pytest.fixture
def make_dataset(tmp_path):
    """make_dataset(lengths=(40, 30), fps=10.0) -> (root, {episode: (frames, steering)})."""

    def factory(lengths=(40, 30), fps: float = 10.0, name: str = "ds", seed: int = 0):
        root = tmp_path / name
        episodes, index = {}, 0
        for e, n in enumerate(lengths):
            frames = pattern_frames(n, seed + e)
            steering = np.sin(np.arange(n) / 5.0 + e).astype(np.float32) * 0.8
            write_episode_files(root, e, frames, steering, fps, index)
            episodes[e] = (frames, steering)
            index += n
        info = DatasetInfo(
            fps=fps, image_height=H, image_width=W, max_steer_rad=0.5, total_episodes=len(lengths), total_frames=index
        )
        layout.info_path(root).parent.mkdir(parents=True, exist_ok=True)
        layout.info_path(root).write_text(json.dumps(info.to_dict()))
        return root, episodes

    return factory


@pytest.fixture(name="pattern_frames")
def pattern_frames_fixture():
    """The frame factory :func:`pattern_frames`, for tests."""
    return pattern_frames


@pytest.fixture(name="write_episode_files")
def write_episode_files_fixture():
    """The episode writer :func:`write_episode_files`, for tests."""
    return write_episode_files
