"""Issue 25, item 1 (the speed): drive import stores each frame's speed where replay reads it
(``observation.speed_mps``): a video-csv column or a constant, Udacity's mph converted; bad speeds are one
line naming the file, line and value; replay takes a video-csv import with a camera and a speed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.importers import MPH_TO_MPS, import_source
from drive.data.reader import DatasetReader
from drive.errors import UserError
from drive.replay.recording import open_recording
from drive.video_io import VideoWriter

FPS = 20.0
CAMERA = ["--camera-height-m", "1.2", "--camera-pitch-rad", "0.12", "--fov-deg", "80"]


def clip(folder, frames=6, speeds=None, name="clip"):
    """A 78x200 H.264 video of ``frames`` textured frames and its CSV beside it: frame, steering (normalised)
    and, when ``speeds`` is given, a column ``v`` (the values as written, strings included)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with VideoWriter(folder / f"{name}.mp4", FPS, (78, 200)) as writer:
        for k in range(frames):
            small = rng.uniform(30, 225, size=(10, 25, 3)).astype(np.float32)
            frame = cv2.resize(small, (200, 78), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
            writer.write(frame, timestamp_s=k / FPS)
    header = "frame,steering" + (",v" if speeds is not None else "")
    rows = [f"{k},{0.1 * np.sin(k / 3):.4f}" + (f",{speeds[k]}" if speeds is not None else "") for k in range(frames)]
    (folder / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / f"{name}.mp4"


def speeds_of(root, episode=0) -> np.ndarray:
    return DatasetReader(root).episode_table(episode)[layout.SPEED].to_numpy(dtype=np.float64)


def run_import(*argv) -> int:
    argv = ["import", *map(str, argv), "--steering-unit", "normalized", "--max-steer-rad", "0.35", "--no-progress"]
    return main(argv)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_speed_column_round_trips(tmp_path, capsys):
    speeds = [0.0, 3.5, 7.25, 10.0, 12.5, 80.0]
    video = clip(tmp_path / "src", speeds=speeds)
    assert run_import(video, "--format", "video-csv", "--speed-column", "v", "--out", tmp_path / "ds") == 0
    assert "speed column 'v', m/s" in capsys.readouterr().out
    np.testing.assert_allclose(speeds_of(tmp_path / "ds"), speeds, rtol=1e-6)


def test_a_constant_speed_round_trips_and_replaces_the_logs(tmp_path, capsys):
    video = clip(tmp_path / "src", speeds=[5.0] * 6)
    assert run_import(video, "--format", "video-csv", "--speed-mps", "11.5", "--out", tmp_path / "ds") == 0
    assert "speed 11.5 m/s (--speed-mps)" in capsys.readouterr().out
    np.testing.assert_array_equal(speeds_of(tmp_path / "ds"), np.full(6, 11.5))


def test_without_a_speed_the_column_is_nan_and_the_report_names_the_flags(tmp_path, capsys):
    assert run_import(clip(tmp_path / "src"), "--format", "video-csv", "--out", tmp_path / "ds") == 0
    assert "speed none (drive replay and --viewpoint-augment need one: --speed-column or --speed-mps)" in (
        capsys.readouterr().out
    )
    assert np.isnan(speeds_of(tmp_path / "ds")).all()


@pytest.mark.parametrize(
    "value, said",
    [
        ("nan", "speed 'nan' is not a finite number"),
        ("-0.5", "speed '-0.5' m/s is negative"),
        ("80.5", "speed '80.5' m/s is over 80 m/s"),
        ("fast", "speed 'fast' is not a number"),
        ("", "speed '' is not a number"),
    ],
)
def test_a_bad_speed_is_one_line_naming_file_line_and_value(tmp_path, capsys, value, said):
    speeds = [10.0, 10.0, value, 10.0, 10.0, 10.0]  # the third data row: CSV line 4
    video = clip(tmp_path / "src", speeds=speeds)
    assert run_import(video, "--format", "video-csv", "--speed-column", "v", "--out", tmp_path / "ds") == 2
    err = one_line(capsys)
    assert f"{tmp_path / 'src' / 'clip.csv'} line 4: {said}" in err
    assert not (tmp_path / "ds").exists()


def test_a_missing_speed_column_and_bad_flags_are_one_line(tmp_path, capsys):
    video = clip(tmp_path / "src")
    assert run_import(video, "--format", "video-csv", "--speed-column", "kmh", "--out", tmp_path / "ds") == 2
    assert "clip.csv line 1: no speed column 'kmh' (--speed-column; columns: ['frame', 'steering'])" in one_line(capsys)
    for flags, said in (
        (["--speed-mps", "-3"], "--speed-mps: speed -3.0 m/s is negative"),
        (["--speed-mps", "nan"], "--speed-mps: speed nan m/s is not a finite number"),
        (["--speed-mps", "100"], "--speed-mps: speed 100.0 m/s is over 80 m/s"),
        (["--speed-mps", "5", "--speed-column", "v"], "--speed-column 'v' and --speed-mps 5.0: give one"),
    ):
        assert run_import(video, "--format", "video-csv", *flags, "--out", tmp_path / "ds") == 2
        assert said in one_line(capsys)
    with pytest.raises(UserError, match=r"--speed-column 'speed': for --format video-csv only"):
        import_source("udacity", tmp_path / "nowhere", tmp_path / "ds", speed_column="speed", progress=False)
    assert not (tmp_path / "ds").exists()


def udacity_log(root, speeds_mph):
    """A Udacity log of centre images only, one row per speed (mph, as the simulator logs it)."""
    (root / "IMG").mkdir(parents=True)
    lines = ["center,left,right,steering,throttle,brake,speed"]
    for i, mph in enumerate(speeds_mph):
        name = f"center_2016_12_01_13_30_10_{100 * i:03d}.jpg"
        cv2.imwrite(str(root / "IMG" / name), np.full((160, 320, 3), 60 + 20 * i, np.uint8))
        lines.append(f"IMG/{name}, IMG/l.jpg, IMG/r.jpg, 0.05, 0.5, 0, {mph}")
    (root / "driving_log.csv").write_text("\n".join(lines) + "\n")
    return root


def test_udacity_speed_is_mph_converted_to_mps(tmp_path):
    speeds = [0.0, 9.1, 30.19]
    log = udacity_log(tmp_path / "sim", speeds)
    import_source("udacity", log, tmp_path / "ds", cameras=("center",), progress=False)
    np.testing.assert_allclose(speeds_of(tmp_path / "ds"), np.array(speeds) * MPH_TO_MPS, rtol=1e-6)
    log = udacity_log(tmp_path / "fast", [10.0, 200.0, 10.0])
    with pytest.raises(UserError) as caught:
        import_source("udacity", log, tmp_path / "ds2", cameras=("center",), progress=False)
    assert str(caught.value) == (
        f"{log / 'driving_log.csv'} line 3: speed '200.0' mph (89.41 m/s) is over 80 m/s (288 km/h): not a road "
        "speed in m/s (another unit, or another column?)"
    )
    import_source("udacity", log, tmp_path / "ds3", cameras=("center",), speed_mps=9.0, progress=False)
    np.testing.assert_array_equal(speeds_of(tmp_path / "ds3"), [9.0, 9.0, 9.0])  # the constant replaces the log's


def test_sully_chen_has_no_speed_replay_names_the_flag_and_speed_mps_gives_one(tmp_path):
    src = tmp_path / "sully"
    src.mkdir()
    for i in range(4):
        cv2.imwrite(str(src / f"{i}.jpg"), np.full((120, 300, 3), 50 + 30 * i, np.uint8))
    (src / "data.txt").write_text("".join(f"{i}.jpg {i - 1.5}\n" for i in range(4)))
    camera = dict(camera_height_m=1.2, camera_pitch_rad=0.1, fov_deg=70.0)
    import_source("sully-chen", src, tmp_path / "none", fps=20.0, progress=False, **camera)
    with pytest.raises(UserError, match=r"holds no speed .* drive import --speed-column or --speed-mps"):
        open_recording(tmp_path / "none")
    import_source("sully-chen", src, tmp_path / "const", fps=20.0, speed_mps=8.0, progress=False, **camera)
    assert open_recording(tmp_path / "const").paths[0].speed_mps.tolist() == [8.0] * 4


def test_replay_takes_a_video_csv_import_with_camera_and_speed(tmp_path, capsys):
    """One second of video (20 frames) imported with the camera and a speed column, replayed closed loop."""
    video = clip(tmp_path / "src", frames=20, speeds=[10.0 + 0.1 * k for k in range(20)])
    data = tmp_path / "ds"
    assert run_import(video, "--format", "video-csv", *CAMERA, "--speed-column", "v", "--out", data) == 0
    path = open_recording(data).paths[0]
    assert len(path) == 20 and path.ds_m.sum() == pytest.approx(sum(10.0 + 0.1 * k for k in range(19)) / FPS)
    out = tmp_path / "replay"
    argv = ["replay", "--checkpoint", "expert", "--data", str(data), "--perturb", "gaussian:0.1", "--workers", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    assert (out / "results.csv").is_file()
