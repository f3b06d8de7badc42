"""Fixtures for the replay tests: tiny recorded datasets written with the library's writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.data.writer import DatasetWriter

H, W = 78, 200
FPS = 20.0
MAX_STEER_RAD = 0.35
CAMERA = {"world.camera_height_m": 1.2, "world.camera_pitch_rad": 0.12, "world.camera_fov_deg": 80.0}


def texture_frames(n: int, seed: int) -> np.ndarray:
    """RGB uint8 frames of smooth random texture (cheap to encode, every pixel different)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(30, 225, size=(n, 10, 25, 3)).astype(np.float32)
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_CUBIC) for f in small]).clip(0, 255).astype(np.uint8)


def write_recording(
    root: Path,
    steering: np.ndarray,
    speed_mps: float | None = 10.0,
    camera: dict | None = CAMERA,
    episodes: int = 1,
) -> Path:
    """A dataset of ``episodes`` episodes of len(steering) frames at FPS, with the given per-frame steering."""
    info = DatasetInfo(fps=FPS, image_height=H, image_width=W, max_steer_rad=MAX_STEER_RAD, source="drive record")
    with DatasetWriter(root, info) as writer:
        for e in range(episodes):
            for k, (frame, u) in enumerate(zip(texture_frames(len(steering), e), steering)):
                columns = {layout.STEERING_LABEL: float(u), layout.STEERING_APPLIED: float(u)}
                if speed_mps is not None:
                    columns[layout.SPEED] = speed_mps
                writer.add_frame(frame, timestamp_s=k / FPS, **columns)
            writer.save_episode(dict(camera or {}))
    return root


@pytest.fixture
def recording(tmp_path):
    """recording(steering=..., speed_mps=10.0, camera=CAMERA, episodes=1) -> dataset folder."""

    def factory(steering=None, name: str = "rec", **kwargs) -> Path:
        steering = np.sin(np.arange(24) / 4.0) * 0.3 if steering is None else np.asarray(steering, float)
        return write_recording(tmp_path / name, steering, **kwargs)

    return factory


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """An untrained ncp19 policy for 78x200 frames saved as a checkpoint folder (weights seeded, so repeatable)."""
    import torch

    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy

    torch.manual_seed(0)
    policy = build_policy("ncp19", frame_period_s=1.0 / FPS, max_steer_rad=MAX_STEER_RAD)
    return save_checkpoint(policy, tmp_path / "checkpoints" / "ncp19")
