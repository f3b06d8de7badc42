"""Issue 25, item 1 (import side): drive import records the camera for the frames as stored, after its crop
and resize; the clips of one dataset share one camera; replay reads it (and refuses stretched pixels)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.importers import ImportOptions, camera_metadata, fit_frame
from drive.data.reader import DatasetReader
from drive.errors import UserError
from drive.io import read_json
from drive.replay.recording import camera_config
from drive.video_io import VideoWriter
from drive.world.camera import Camera, CameraConfig

CAMERA = ["--camera-height-m", "1.4", "--camera-pitch-rad", "0.08", "--fov-deg", "70"]


def video(folder, name, size_hw, frames=3, fps=20.0):
    """A video of ``frames`` grey frames of ``size_hw`` and its CSV (frame, steering in degrees) beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with VideoWriter(folder / f"{name}.mp4", fps, size_hw) as writer:
        for k in range(frames):
            writer.write(np.full((*size_hw, 3), 40 + 20 * k, np.uint8), timestamp_s=k / fps)
    (folder / f"{name}.csv").write_text("frame,steering\n" + "".join(f"{k},{k}.0\n" for k in range(frames)))
    return folder / f"{name}.mp4"


def run_import(*argv):
    return main(["import", *map(str, argv), "--format", "video-csv", "--steering-unit", "deg", "--no-progress"])


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("source_hw", [(120, 400), (300, 400), (78, 200)])
def test_the_stored_camera_puts_ground_points_where_the_cropped_and_resized_source_has_them(source_hw):
    """The crop's FOV formula: a ground point seen by the source camera, carried through the centre crop and
    the resize, lands where the pinhole camera of the stored metadata puts it (within half a pixel)."""
    options = ImportOptions(camera_height_m=1.3, camera_pitch_rad=0.1, fov_deg=90.0)
    h, w = source_hw
    camera = camera_metadata(options, source_hw, 78, 200)
    source = Camera(CameraConfig(height_m=1.3, pitch_rad=0.1, fov_deg=90.0, width=w, height=h))
    stored = Camera(CameraConfig(height_m=1.3, pitch_rad=0.1, fov_deg=camera["fov_deg"], width=200, height=78))
    assert camera["pixel_aspect"] == pytest.approx(1.0, abs=0.01)
    rng = np.random.default_rng(0)
    fwd, left = rng.uniform(4, 40, 300), rng.uniform(-6, 6, 300)
    u_s, v_s, _ = source.project(fwd, left, np.zeros(300))
    u_d, v_d, _ = stored.project(fwd, left, np.zeros(300))
    rows = fit_frame(np.arange(h)[:, None, None].repeat(w, 1).repeat(3, 2).astype(np.float32), 78, 200)[:, 0, 0]
    kept_w = round(h * 200 / 78) if w / h > 200 / 78 else w
    kept_h = round(w * 78 / 200) if w / h < 200 / 78 else h
    x0, y0 = (w - kept_w) // 2, (h - kept_h) // 2
    u_crop = (u_s - x0 + 0.5) * 200 / kept_w - 0.5  # OpenCV's resize maps pixel centres
    v_crop = (v_s - y0 + 0.5) * 78 / kept_h - 0.5
    inside = (u_crop > 0) & (u_crop < 199) & (v_crop > 0) & (v_crop < 77)
    assert inside.sum() > 50
    np.testing.assert_allclose(u_d[inside], u_crop[inside], atol=0.5)
    np.testing.assert_allclose(v_d[inside], v_crop[inside], atol=0.5)
    assert rows[0] >= y0 - 1  # the crop is the one fit_frame makes
    expected = math.degrees(2 * math.atan(math.tan(math.radians(45)) * kept_w / w))
    assert camera["fov_deg"] == pytest.approx(expected)


def test_the_camera_flags_round_trip_into_info_json_and_replay_reads_them(tmp_path, capsys):
    out = tmp_path / "ds"
    assert run_import(video(tmp_path / "src", "a", (120, 400)), "--out", out, *CAMERA, "--camera-yaw-rad", "0.02") == 0
    assert "camera height_m 1.4, pitch_rad 0.08" in capsys.readouterr().out
    camera = json.loads(layout.info_path(out).read_text())["camera"]
    fov = math.degrees(2 * math.atan(math.tan(math.radians(35)) * 308 / 400))  # 308 of 400 columns kept
    assert camera["fov_deg"] == pytest.approx(fov) and camera["source_fov_deg"] == 70.0
    assert (camera["height_m"], camera["pitch_rad"], camera["yaw_rad"]) == (1.4, 0.08, 0.02)
    assert (camera["source_height"], camera["source_width"], camera["resize"]) == (120, 400, "crop")
    reader = DatasetReader(out)
    assert reader.info.camera == camera
    cam = camera_config(reader, 0, read_json(layout.info_path(out)))
    assert (cam.height_m, cam.pitch_rad, cam.fov_deg, cam.yaw_rad) == (1.4, 0.08, pytest.approx(fov), 0.02)
    assert (cam.height, cam.width) == (78, 200)


def test_appending_keeps_one_camera(tmp_path, capsys):
    out = tmp_path / "ds"
    assert run_import(video(tmp_path / "src", "a", (120, 400)), "--out", out, *CAMERA) == 0
    assert run_import(video(tmp_path / "src", "b", (120, 400)), "--out", out, *CAMERA) == 0  # the same camera
    assert DatasetReader(out).info.total_episodes == 2
    capsys.readouterr()
    other = CAMERA[:-1] + ["60"]
    assert run_import(video(tmp_path / "src", "c", (120, 400)), "--out", out, *other) == 2
    err = one_line(capsys)
    assert "fov_deg 47.936" in err and "differs from the dataset's" in err and "fov_deg 56.6635" in err
    assert run_import(video(tmp_path / "src", "d", (120, 400)), "--out", out) == 2  # no flags
    err = one_line(capsys)
    assert "camera none differs" in err and "--fov-deg" in err
    assert run_import(video(tmp_path / "src", "e", (78, 200)), "--out", out, *CAMERA) == 2  # no crop: another fov
    assert "camera height_m 1.4, pitch_rad 0.08, fov_deg 70" in one_line(capsys)
    assert DatasetReader(out).info.total_episodes == 2


def test_clips_of_one_call_share_one_camera(tmp_path, capsys):
    a, b = video(tmp_path / "src", "a", (120, 400)), video(tmp_path / "src", "b", (78, 200))
    assert run_import(a, b, "--out", tmp_path / "ds", *CAMERA) == 2
    err = one_line(capsys)
    assert str(tmp_path / "src" / "b.csv") in err and str(tmp_path / "src" / "a.csv") in err
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--fov-deg", "70"], "--camera-height-m, --camera-pitch-rad: missing"),
        (["--camera-yaw-rad", "0.1"], "missing"),
        (CAMERA[:-1] + ["180"], "--fov-deg: must be in (0, 180)"),
        (["--camera-height-m", "-1"] + CAMERA[2:], "--camera-height-m: must be a positive"),
    ],
)
def test_bad_camera_flags_are_one_line(tmp_path, capsys, flags, words):
    assert run_import(video(tmp_path / "src", "a", (78, 200)), "--out", tmp_path / "ds", *flags) == 2
    assert words in one_line(capsys)


def test_replay_refuses_a_stretch_to_another_aspect_ratio(tmp_path):
    out = tmp_path / "ds"
    assert run_import(video(tmp_path / "src", "a", (120, 400)), "--out", out, *CAMERA, "--resize", "stretch") == 0
    camera = json.loads(layout.info_path(out).read_text())["camera"]
    assert camera["fov_deg"] == 70.0 and camera["pixel_aspect"] == pytest.approx((78 / 120) / (200 / 400))
    with pytest.raises(UserError, match="not square.*--resize crop") as caught:
        camera_config(DatasetReader(out), 0, read_json(layout.info_path(out)))
    assert "\n" not in str(caught.value)
