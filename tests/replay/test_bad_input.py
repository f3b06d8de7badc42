"""A dataset replay cannot use is refused in one line naming the file and the field (a UserError: exit 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drive.data import layout
from drive.errors import UserError
from drive.replay.env import ReplayEnv


def _refusal(data) -> str:
    with pytest.raises(UserError) as caught:
        ReplayEnv(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_dataset_without_camera_metadata_names_the_flags(recording):
    root = recording(camera={})
    message = _refusal(root)
    assert str(layout.info_path(root)) in message and "'camera'" in message
    for flag in ("--camera-height-m", "--camera-pitch-rad", "--fov-deg"):
        assert flag in message


def test_a_dataset_with_part_of_the_camera_metadata_names_the_missing_field(recording):
    root = recording(camera={"world.camera_height_m": 1.2, "world.camera_fov_deg": 80.0})
    message = _refusal(root)
    assert str(layout.episode_meta_path(root, 0)) in message and "world.camera_pitch_rad" in message
    assert "--camera-pitch-rad" in message


def test_the_camera_may_come_from_info_json(recording):
    """What drive import is to write: a 'camera' object in meta/info.json."""
    import json

    root = recording(camera={})
    path = layout.info_path(root)
    info = json.loads(path.read_text())
    info["camera"] = {"height_m": 1.5, "pitch_rad": 0.1, "fov_deg": 70.0}
    path.write_text(json.dumps(info))
    cam = ReplayEnv(root).recording.cameras[0]
    assert (cam.height_m, cam.pitch_rad, cam.fov_deg, cam.yaw_rad) == (1.5, 0.1, 70.0, 0.0)


def test_a_dataset_without_speed(recording):
    root = recording(speed_mps=None)
    message = _refusal(root)
    assert str(layout.data_path(root, 0)) in message and layout.SPEED in message


def test_frame_times_that_go_backwards(recording):
    root = recording()
    path = layout.data_path(root, 0)
    table = pd.read_parquet(path)
    t = table[layout.TIMESTAMP].to_numpy().copy()
    t[7] = t[5] - 0.01
    table[layout.TIMESTAMP] = t.astype(np.float32)
    table.to_parquet(path, index=False)
    message = _refusal(root)
    assert str(path) in message and f"'{layout.TIMESTAMP}'" in message and "frame 7" in message
