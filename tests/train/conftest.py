"""Fixture factories for the training tests: tiny datasets written with drive's own DatasetWriter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drive.data.layout import DatasetInfo
from drive.data.writer import DatasetWriter
from drive.train.config import TrainConfig


def road_frames(steering: np.ndarray, seed: int, h: int = 78, w: int = 200) -> np.ndarray:
    """Frames whose content encodes the steering label: a bright stripe whose x position follows it,
    on a textured background, so a model can learn the mapping from pixels."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 90, size=(h, w, 3), dtype=np.uint8)
    xs = np.arange(w)
    out = np.empty((len(steering), h, w, 3), dtype=np.uint8)
    for i, s in enumerate(steering):
        frame = background.copy()
        centre = w / 2 + s * w / 3
        frame[:, np.abs(xs - centre) < 8] = (230, 230, 200)
        out[i] = frame
    return out


@pytest.fixture
def make_train_dataset(tmp_path):
    """make_train_dataset(lengths=(40, 40, 40), fps=10.0) -> dataset folder."""

    def factory(lengths=(40, 40, 40), fps: float = 10.0, name: str = "data"):
        root = tmp_path / name
        writer = DatasetWriter(
            root, DatasetInfo(fps=fps, image_height=78, image_width=200, max_steer_rad=0.5, source="test")
        )
        for e, n in enumerate(lengths):
            steering = (0.7 * np.sin(np.arange(n) / 4.0 + 1.3 * e)).astype(np.float32)
            writer.add_episode(iter(road_frames(steering, e)), steering, np.arange(n) / fps)
        writer.close()
        return root

    return factory


@pytest.fixture
def small_config(tmp_path):
    """small_config(data, **changes) -> a TrainConfig that trains in seconds."""

    def factory(data, out="ckpt", **changes):
        base = TrainConfig(
            data=str(data),
            out=str(tmp_path / out),
            model="ncp19",
            epochs=1,
            batch_size=4,
            seq_len=8,
            progress=False,
            threads=0,
        )
        return dataclasses.replace(base, **changes)

    return factory
