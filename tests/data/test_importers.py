"""Importers: video+CSV, Udacity and Sully-Chen logs become datasets; broken logs fail naming file and line."""

import math

import cv2
import numpy as np
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.importers import fit_frame, import_source
from drive.data.reader import DatasetReader
from drive.errors import UserError


def write_video(path, frames, fps=20.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames.shape[2], frames.shape[1]))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def write_image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def solid(h, w, value):
    return np.full((h, w, 3), value, dtype=np.uint8)


# ---------------------------------------------------------------- video-csv


def test_video_csv_with_frame_index_column_in_degrees(tmp_path, pattern_frames):
    frames = pattern_frames(12, 3, h=120, w=160)
    write_video(tmp_path / "drive.mp4", frames, fps=20.0)
    (tmp_path / "log.csv").write_text("frame,steer\n" + "".join(f"{i},{(i - 5) * 2.0}\n" for i in range(0, 12, 2)))
    out = tmp_path / "ds"
    info = import_source(
        "video-csv",
        tmp_path / "drive.mp4",
        out,
        csv=str(tmp_path / "log.csv"),
        steering_column="steer",
        steering_unit="deg",
        max_steer_rad=math.radians(20.0),
        progress=False,
    )
    assert (info.total_episodes, info.total_frames, info.fps) == (1, 6, 10.0)  # every 2nd frame of 20 Hz
    reader = DatasetReader(out)
    table = reader.frames_table()
    np.testing.assert_allclose(table[layout.STEERING_LABEL], [(i - 5) * 2.0 / 20.0 for i in range(0, 12, 2)], atol=1e-6)
    np.testing.assert_allclose(table[layout.TIMESTAMP], np.arange(6) * 0.1, atol=1e-6)
    got = reader.read_frames(0)
    assert got.shape == (6, 78, 200, 3)
    # frame k of the dataset is frame 2k of the source, centre-cropped and resized
    expect = np.stack([fit_frame(frames[i], 78, 200) for i in range(0, 12, 2)])
    assert np.abs(got.astype(float) - expect).mean() < 8


def test_video_csv_with_time_column_picks_nearest_frames(tmp_path):
    frames = np.stack([solid(78, 200, 25 * i) for i in range(10)])
    write_video(tmp_path / "v.mp4", frames, fps=10.0)
    (tmp_path / "log.csv").write_text("timestamp,steering\n100.0,0.1\n100.29,0.2\n100.52,-0.3\n")
    import_source(
        "video-csv",
        tmp_path / "v.mp4",
        tmp_path / "ds",
        csv=str(tmp_path / "log.csv"),
        time_offset_s=100.0,
        max_steer_rad=0.5,
        progress=False,
    )
    reader = DatasetReader(tmp_path / "ds")
    got = reader.read_frames(0)[:, 39, 100, 0].astype(int)
    assert np.all(np.abs(got - np.array([0, 75, 125])) <= 10)  # frames 0, 3 and 5 (neighbours differ by 25)
    # the frames' own presentation times, not the labels'
    np.testing.assert_allclose(reader.frames_table()[layout.TIMESTAMP], [0, 0.3, 0.5], atol=1e-5)


def test_video_csv_log_longer_than_video_names_file_and_line(tmp_path, pattern_frames):
    write_video(tmp_path / "v.mp4", pattern_frames(5, 0), fps=10.0)
    (tmp_path / "log.csv").write_text("frame_index,steering\n" + "".join(f"{i},0.0\n" for i in range(8)))
    with pytest.raises(ValueError, match=r"log.csv line 7: frame 5 is beyond the end of video .*v.mp4 \(5 frame"):
        import_source(
            "video-csv",
            tmp_path / "v.mp4",
            tmp_path / "ds",
            csv=str(tmp_path / "log.csv"),
            max_steer_rad=0.5,
            progress=False,
        )
    assert not (tmp_path / "ds").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")] == []  # no half-built folder left


@pytest.mark.parametrize("value, message", [("nan", "is not a finite number"), ("left", "is not a number")])
def test_video_csv_bad_steering_names_file_and_line(tmp_path, pattern_frames, value, message):
    write_video(tmp_path / "v.mp4", pattern_frames(5, 0), fps=10.0)
    (tmp_path / "log.csv").write_text(f"frame,steering\n0,0.1\n1,0.2\n2,{value}\n")
    with pytest.raises(ValueError, match=rf"log.csv line 4: steering '{value}' {message}"):
        import_source(
            "video-csv",
            tmp_path / "v.mp4",
            tmp_path / "ds",
            csv=str(tmp_path / "log.csv"),
            max_steer_rad=0.5,
            progress=False,
        )


def test_video_csv_unreadable_video_and_cli_error_line(tmp_path, capsys):
    (tmp_path / "v.mp4").write_bytes(b"garbage")
    (tmp_path / "log.csv").write_text("frame,steering\n0,0.1\n")
    code = main(
        [
            "import",
            "--format",
            "video-csv",
            str(tmp_path / "v.mp4"),
            "--csv",
            str(tmp_path / "log.csv"),
            "--max-steer-rad",
            "0.5",
            "--out",
            str(tmp_path / "ds"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "v.mp4: unreadable video" in err and err.count("\n") == 1
    assert not (tmp_path / "ds").exists()


def test_normalized_unit_needs_max_steer(tmp_path, pattern_frames):
    write_video(tmp_path / "v.mp4", pattern_frames(3, 0), fps=10.0)
    (tmp_path / "log.csv").write_text("frame,steering\n0,0.1\n")
    with pytest.raises(ValueError, match="--max-steer-rad is required"):
        import_source("video-csv", tmp_path / "v.mp4", tmp_path / "ds", csv=str(tmp_path / "log.csv"), progress=False)


# ---------------------------------------------------------------- udacity


def make_udacity(root, n=6, header=True, gap_after=None):
    lines = ["center,left,right,steering,throttle,brake,speed"] if header else []
    t0 = 30 * 60 + 10.0
    for i in range(n):
        t = t0 + i * 0.1 + (5.0 if gap_after is not None and i > gap_after else 0.0)
        stamp = f"2016_12_01_13_{int(t // 60):02d}_{int(t % 60):02d}_{int(round((t % 1) * 1000)) % 1000:03d}"
        names = {cam: f"{cam}_{stamp}.jpg" for cam in ("center", "left", "right")}
        for k, cam in enumerate(("center", "left", "right")):
            write_image(root / "IMG" / names[cam], solid(160, 320, 40 + 60 * k))
        # absolute Windows-style paths from the recording machine, as real logs have
        lines.append(
            ", ".join(f"C:\\Users\\me\\data\\IMG\\{names[c]}" for c in ("center", "left", "right"))
            + f", {0.1 * i - 0.2:.3f}, 0.5, 0, 20.1"
        )
    (root / "driving_log.csv").write_text("\n".join(lines) + "\n")


def test_udacity_three_cameras_with_correction(tmp_path):
    src = tmp_path / "udacity"
    make_udacity(src, n=6)
    info = import_source("udacity", src, tmp_path / "ds", steering_correction=0.25, progress=False)
    assert info.total_episodes == 3 and info.total_frames == 18
    assert info.max_steer_rad == pytest.approx(math.radians(25))
    assert info.fps == pytest.approx(10.0, rel=0.02)
    reader = DatasetReader(tmp_path / "ds")
    base = -np.array([0.1 * i - 0.2 for i in range(6)])  # Udacity's positive steers right, ours left
    # the left camera's label steers more right (more negative here), the right camera's more left
    for episode, shift, value in ((0, 0.0, 40), (1, -0.25, 100), (2, 0.25, 160)):
        table = reader.episode_table(episode)
        np.testing.assert_allclose(table[layout.STEERING_LABEL], base + shift, atol=1e-5)
        np.testing.assert_allclose(table[layout.TIMESTAMP], np.arange(6) * 0.1, atol=2e-3)
        assert abs(int(reader.read_frames(episode)[2, 39, 100, 0]) - value) <= 8  # jpeg + mp4v are lossy


def test_udacity_header_after_a_utf8_bom_is_recognised(tmp_path):
    src = tmp_path / "udacity"
    make_udacity(src, n=4)
    log = src / "driving_log.csv"
    log.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())  # as Excel and Notepad save "UTF-8" CSVs
    info = import_source("udacity", src, tmp_path / "ds", cameras=("center",), progress=False)
    assert info.total_episodes == 1 and info.total_frames == 4  # the header is not taken for a data line


def test_udacity_time_gap_starts_new_episode_and_headerless_log(tmp_path):
    src = tmp_path / "udacity"
    make_udacity(src, n=6, header=False, gap_after=2)
    info = import_source("udacity", src / "driving_log.csv", tmp_path / "ds", cameras=("center",), progress=False)
    assert info.total_episodes == 2
    reader = DatasetReader(tmp_path / "ds")
    assert [reader.episode_length(e) for e in reader.episodes] == [3, 3]


def test_udacity_missing_image_names_file_and_line(tmp_path):
    src = tmp_path / "udacity"
    make_udacity(src, n=4)
    victim = sorted((src / "IMG").glob("left_*"))[2]
    victim.unlink()
    with pytest.raises(UserError, match=rf"driving_log.csv line 4: image .*{victim.name} not found"):
        import_source("udacity", src, tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_udacity_bad_steering_and_unreadable_image(tmp_path):
    src = tmp_path / "udacity"
    make_udacity(src, n=4)
    log = src / "driving_log.csv"
    lines = log.read_text().splitlines()
    good = list(lines)
    lines[3] = lines[3].replace(", 0.000,", ", abc,")
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"driving_log.csv line 4: steering ' abc' is not a number"):
        import_source("udacity", src, tmp_path / "ds", progress=False)
    log.write_text("\n".join(good) + "\n")
    sorted((src / "IMG").glob("center_*"))[1].write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"driving_log.csv line 3: image .* is unreadable"):
        import_source("udacity", src, tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------- sully-chen


def test_sully_chen_degrees_and_fps(tmp_path):
    src = tmp_path / "driving_dataset"
    angles = [0.0, 12.5, -30.0, 45.0, 7.0]
    for i in range(len(angles)):
        write_image(src / f"{i}.jpg", solid(256, 455, 20 * i + 30))
    (src / "data.txt").write_text("".join(f"{i}.jpg {a:.6f}\n" for i, a in enumerate(angles)))
    info = import_source("sully-chen", src, tmp_path / "ds", fps=20.0, progress=False)
    assert info.max_steer_rad == pytest.approx(math.radians(45.0))  # default: the largest angle
    assert (info.total_episodes, info.total_frames, info.fps) == (1, 5, 20.0)
    reader = DatasetReader(tmp_path / "ds")
    # Sully Chen's positive angle turns right; ours steers left
    np.testing.assert_allclose(reader.frames_table()[layout.STEERING_LABEL], -np.array(angles) / 45.0, atol=1e-6)
    assert abs(int(reader.read_frames(0)[3, 39, 100, 1]) - 90) <= 8


def test_sully_chen_2018_format_with_times(tmp_path):
    src = tmp_path / "sc"
    for i in range(4):
        write_image(src / f"{i}.jpg", solid(256, 455, 100))
    stamps = [
        "2018-07-01 17:09:44:912",
        "2018-07-01 17:09:44:962",
        "2018-07-01 17:09:45:012",
        "2018-07-01 17:09:45:062",
    ]
    (src / "data.txt").write_text("".join(f"{i}.jpg {i * 1.5},{s}\n" for i, s in enumerate(stamps)))
    info = import_source(
        "sully-chen", src / "data.txt", tmp_path / "ds", max_steer_rad=math.radians(90), progress=False
    )
    assert info.fps == pytest.approx(20.0, rel=1e-3)
    table = DatasetReader(tmp_path / "ds").frames_table()
    np.testing.assert_allclose(table[layout.TIMESTAMP], [0, 0.05, 0.1, 0.15], atol=1e-5)
    np.testing.assert_allclose(table[layout.STEERING_LABEL], -np.arange(4) * 1.5 / 90, atol=1e-6)


@pytest.mark.parametrize(
    "bad_line, error, message",
    [
        ("2.jpg nan", ValueError, r"data.txt line 3: steering 'nan' is not a finite number"),
        ("2.jpg", ValueError, r"data.txt line 3: expected 'FILENAME ANGLE'"),
        ("9.jpg 1.0", UserError, r"data.txt line 3: image .*9.jpg not found"),
    ],
)
def test_sully_chen_broken_lines(tmp_path, bad_line, error, message):
    src = tmp_path / "sc"
    for i in range(4):
        write_image(src / f"{i}.jpg", solid(256, 455, 100))
    (src / "data.txt").write_text(f"0.jpg 1.0\n1.jpg 2.0\n{bad_line}\n3.jpg 3.0\n")
    with pytest.raises(error, match=message):
        import_source("sully-chen", src, tmp_path / "ds", fps=20.0, progress=False)
    assert not (tmp_path / "ds").exists()


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    src = tmp_path / "sc"
    write_image(src / "0.jpg", solid(256, 455, 100))
    (src / "data.txt").write_text("0.jpg 1.0\n")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="exists and is not empty"):
        import_source("sully-chen", src, tmp_path / "ds", fps=20.0, progress=False)
    with pytest.raises(UserError, match="not one"):  # --overwrite replaces datasets only
        import_source("sully-chen", src, tmp_path / "ds", fps=20.0, overwrite=True, progress=False)
    assert (tmp_path / "ds" / "keep.txt").read_text() == "x"
    (tmp_path / "ds" / "keep.txt").unlink()
    import_source("sully-chen", src, tmp_path / "ds", fps=20.0, progress=False)
    (src / "data.txt").write_text("0.jpg 1.0\n0.jpg 2.0\n")
    import_source("sully-chen", src, tmp_path / "ds", fps=20.0, overwrite=True, progress=False)
    assert DatasetReader(tmp_path / "ds").info.total_frames == 2  # the dataset was replaced


def test_fit_frame_crops_to_aspect_then_resizes():
    img = np.zeros((100, 400, 3), np.uint8)
    img[:, 150:250] = 255  # a bright band in the middle; the sides are cropped away at 78x200 (aspect 2.56)
    out = fit_frame(img, 78, 200)
    assert out.shape == (78, 200, 3)
    assert fit_frame(img, 78, 200, "stretch").shape == (78, 200, 3)
    # crop keeps the central 256 columns: the band covers 100/256 of the width
    assert abs((out[:, :, 0] > 127).mean() - 100 / 256) < 0.02
