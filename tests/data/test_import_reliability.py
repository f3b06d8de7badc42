"""Issue 20 (reliability) for `drive import`: --overwrite deletes only datasets, every format's steering
sign ends up as ours (positive = left), frames pair with labels by their real presentation times, and
a source too small for the dataset is refused."""

import json
import math

import cv2
import numpy as np
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.importers import import_source
from drive.data.reader import DatasetReader
from drive.errors import UserError
from drive.video_io import VideoWriter


def write_image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def solid(h, w, value):
    return np.full((h, w, 3), value, dtype=np.uint8)


def vfr_video(path, times, h=78, w=200):
    """An H.264 video whose frame k is grey level 20 * k, shown at ``times[k]`` s."""
    with VideoWriter(path, 10.0, (h, w)) as writer:
        for k, t in enumerate(times):
            writer.write(solid(h, w, 20 * k), timestamp_s=t)


def run_import(*argv):
    return main(["import", *map(str, argv), "--no-progress"])


def sully(folder, angles, size=(256, 455)):
    for i in range(len(angles)):
        write_image(folder / f"{i}.jpg", solid(*size, 100))
    (folder / "data.txt").write_text("".join(f"{i}.jpg {a}\n" for i, a in enumerate(angles)))


# ---------------------------------------------------------------- case 1: --overwrite deletes only a dataset


def test_overwrite_refuses_a_folder_with_the_source_and_other_files(tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    vfr_video(out / "drive.mp4", [0.0, 0.1, 0.2])
    (out / "log.csv").write_text("frame,steering\n0,0.1\n1,0.2\n")
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "a.txt").write_text("mine too")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code = run_import(
        out / "drive.mp4", "--format", "video-csv", "--csv", out / "log.csv", "--max-steer-rad", 0.5,
        "--out", out, "--overwrite",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"--out {out}: holds the import's input" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_overwrite_refuses_a_non_dataset_folder_and_a_dataset_with_foreign_files(tmp_path, capsys):
    src = tmp_path / "sc"
    sully(src, [1.0, 2.0])
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", out, "--overwrite") == 2
    assert "is not one (no readable meta/info.json): refusing to delete it" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", out) == 0
    (out / "data" / "notes.txt").write_text("mine")  # a dataset, plus a file of the user's
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", out, "--overwrite") == 2
    assert "also holds data/notes.txt (1 file(s) not of a dataset)" in capsys.readouterr().err
    (out / "data" / "notes.txt").unlink()
    sully(src, [1.0, 2.0, 3.0])
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", out, "--overwrite") == 0
    assert DatasetReader(out).info.total_frames == 3  # a dataset and nothing else: replaced


def test_out_inside_the_source_folder_is_refused(tmp_path, capsys):
    src = tmp_path / "sc"
    sully(src, [1.0])
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", src / "ds") == 2
    assert "is inside the source folder" in capsys.readouterr().err
    assert not (src / "ds").exists()


# ---------------------------------------------------------------- case 2: steering signs


def test_udacity_left_turn_is_positive_and_the_left_camera_steers_more_right(tmp_path):
    src = tmp_path / "udacity"
    lines = []
    for i in range(3):
        stamp = f"2016_12_01_13_30_10_{100 * i:03d}"
        for k, cam in enumerate(("center", "left", "right")):
            write_image(src / "IMG" / f"{cam}_{stamp}.jpg", solid(160, 320, 40 + 60 * k))
        # Udacity's simulator: negative steering = turning left
        lines.append(f"IMG/center_{stamp}.jpg,IMG/left_{stamp}.jpg,IMG/right_{stamp}.jpg,-0.4,0.5,0,20")
    (src / "driving_log.csv").write_text("\n".join(lines) + "\n")
    import_source("udacity", src, tmp_path / "ds", steering_correction=0.2, progress=False)
    reader = DatasetReader(tmp_path / "ds")
    center, left, right = (reader.episode_table(e)[layout.STEERING_LABEL].to_numpy() for e in (0, 1, 2))
    np.testing.assert_allclose(center, 0.4, atol=1e-6)  # a left turn: positive, as the env's action
    np.testing.assert_allclose(left, 0.2, atol=1e-6)  # seen from the left, the car must steer more right
    np.testing.assert_allclose(right, 0.6, atol=1e-6)
    info = json.loads(layout.info_path(tmp_path / "ds").read_text())
    assert (info["steering_positive"], info["source_steering_positive"]) == ("left", "right")


def test_sully_chen_right_turn_is_negative(tmp_path):
    src = tmp_path / "sc"
    sully(src, [0.0, 10.0, 20.0])  # Sully Chen: positive angle = wheel turned clockwise = right turn
    import_source("sully-chen", src, tmp_path / "ds", fps=20.0, progress=False)
    steering = DatasetReader(tmp_path / "ds").frames_table()[layout.STEERING_LABEL].to_numpy()
    np.testing.assert_allclose(steering, [0.0, -0.5, -1.0], atol=1e-6)
    assert json.loads(layout.info_path(tmp_path / "ds").read_text())["source_steering_positive"] == "right"


@pytest.mark.parametrize("sign, expected", [(None, 0.3), ("left-positive", 0.3), ("right-positive", -0.3)])
def test_video_csv_steering_sign(tmp_path, sign, expected):
    vfr_video(tmp_path / "v.mp4", [0.0, 0.1])
    (tmp_path / "log.csv").write_text("frame,steering\n0,0.3\n1,0.3\n")
    flags = [] if sign is None else ["--steering-sign", sign]
    code = run_import(
        tmp_path / "v.mp4", "--format", "video-csv", "--csv", tmp_path / "log.csv", "--max-steer-rad", 0.5,
        "--out", tmp_path / "ds", *flags,
    )  # fmt: skip
    assert code == 0
    steering = DatasetReader(tmp_path / "ds").frames_table()[layout.STEERING_LABEL].to_numpy()
    np.testing.assert_allclose(steering, expected, atol=1e-6)
    info = json.loads(layout.info_path(tmp_path / "ds").read_text())
    assert info["source_steering_positive"] == ("right" if sign == "right-positive" else "left")


def test_import_help_states_the_steering_sign_default(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--steering-sign {left-positive,right-positive}" in text and "default left-positive" in text


# ---------------------------------------------------------------- case 3: frames paired by presentation time

VFR = [0.0, 0.1, 0.2, 0.3, 1.1, 1.2, 1.3]  # a 0.8 s gap after 0.3 s


def test_time_column_pairs_labels_with_the_frames_shown_then(tmp_path):
    vfr_video(tmp_path / "v.mp4", VFR)
    labels = [0.01, 0.1, 0.19, 1.1, 1.31]  # a little jitter
    (tmp_path / "log.csv").write_text("t,steering\n" + "".join(f"{t},0.1\n" for t in labels))
    import_source(
        "video-csv", tmp_path / "v.mp4", tmp_path / "ds", csv=str(tmp_path / "log.csv"), max_steer_rad=0.5,
        progress=False,
    )  # fmt: skip
    reader = DatasetReader(tmp_path / "ds")
    grey = reader.read_frames(0)[:, 39, 100, 0].astype(int)
    assert np.all(np.abs(grey - 20 * np.array([0, 1, 2, 4, 6])) <= 6)  # frames 0, 1, 2, 4 (at 1.1 s), 6
    np.testing.assert_allclose(reader.frames_table()[layout.TIMESTAMP], [0, 0.1, 0.2, 1.1, 1.3], atol=1e-5)


def test_label_in_a_gap_of_the_video_is_an_error_naming_the_times(tmp_path, capsys):
    vfr_video(tmp_path / "v.mp4", VFR)
    (tmp_path / "log.csv").write_text("t,steering\n0.0,0.1\n0.1,0.1\n0.2,0.1\n0.3,0.1\n0.4,0.1\n")
    code = run_import(
        tmp_path / "v.mp4", "--format", "video-csv", "--csv", tmp_path / "log.csv", "--max-steer-rad", 0.5,
        "--out", tmp_path / "ds",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "log.csv line 6: no frame of" in err and "label's time 0.4 s (nearest frame at 0.3 s)" in err
    assert not (tmp_path / "ds").exists()


def test_labels_denser_than_the_video_are_an_error(tmp_path):
    vfr_video(tmp_path / "v.mp4", [0.0, 0.1, 0.2])
    (tmp_path / "log.csv").write_text("t,steering\n0.0,0.1\n0.09,0.1\n0.11,0.1\n")
    with pytest.raises(UserError, match=r"lines 3 and 4: the labels at 0.09 s and 0.11 s both fall on the frame"):
        import_source(
            "video-csv", tmp_path / "v.mp4", tmp_path / "ds", csv=str(tmp_path / "log.csv"), max_steer_rad=0.5,
            progress=False,
        )  # fmt: skip


def test_frame_column_takes_the_frames_real_timestamps(tmp_path):
    vfr_video(tmp_path / "v.mp4", VFR)
    (tmp_path / "log.csv").write_text("frame,steering\n" + "".join(f"{k},0.1\n" for k in (2, 3, 4, 5)))
    import_source(
        "video-csv", tmp_path / "v.mp4", tmp_path / "ds", csv=str(tmp_path / "log.csv"), max_steer_rad=0.5,
        progress=False,
    )  # fmt: skip
    table = DatasetReader(tmp_path / "ds").frames_table()
    np.testing.assert_allclose(table[layout.TIMESTAMP], [0, 0.1, 0.9, 1.0], atol=1e-5)


# ---------------------------------------------------------------- case 11: a source too small


def test_tiny_source_image_is_refused(tmp_path, capsys):
    src = tmp_path / "sc"
    sully(src, [1.0, 2.0], size=(1, 1))
    assert run_import(src, "--format", "sully-chen", "--fps", 20, "--out", tmp_path / "ds") == 2
    err = capsys.readouterr().err
    assert "data.txt line 1: image" in err and "0.jpg: frame is 1x1 (HxW)" in err and "at least 20x50" in err
    assert not (tmp_path / "ds").exists()


def test_tiny_source_video_is_refused(tmp_path):
    vfr_video(tmp_path / "v.mp4", [0.0, 0.1], h=8, w=16)
    (tmp_path / "log.csv").write_text("frame,steering\n0,0.1\n1,0.1\n")
    with pytest.raises(UserError, match=r"v.mp4: frame is 8x16 \(HxW\), 6x16 after the crop: too small"):
        import_source(
            "video-csv", tmp_path / "v.mp4", tmp_path / "ds", csv=str(tmp_path / "log.csv"), max_steer_rad=0.5,
            progress=False,
        )  # fmt: skip
    assert not (tmp_path / "ds").exists()


def test_small_but_usable_source_is_imported(tmp_path):
    src = tmp_path / "sc"
    sully(src, [1.0], size=(40, 100))  # half the dataset's size: enlarged 2x, allowed
    info = import_source("sully-chen", src, tmp_path / "ds", fps=20.0, max_steer_rad=math.radians(30), progress=False)
    assert info.total_frames == 1
