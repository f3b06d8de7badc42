"""Issue 24, item 1 (import half): many clips into one dataset. Several sources in one call give one
episode each in order; a call into an imported dataset appends, keeping every earlier episode, and
refuses in one line a clip whose frame size, frame rate or max_steer_rad differs; max_steer_rad is
printed and stored; labels beyond it are counted in one warning line, never clipped silently."""

import json
import math

import cv2
import numpy as np
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.importers import import_source
from drive.data.reader import DatasetReader
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.video_io import VideoWriter


def solid(h, w, value):
    return np.full((h, w, 3), value, dtype=np.uint8)


def clip(folder, name, grey, steering_deg, fps=20.0, size=(78, 200)):
    """A video ``name.mp4`` of len(steering_deg) frames at ``fps``, frame k grey level ``grey + 10 k``, and
    ``name.csv`` beside it (frame, steering in degrees)."""
    folder.mkdir(parents=True, exist_ok=True)
    with VideoWriter(folder / f"{name}.mp4", fps, size) as writer:
        for k in range(len(steering_deg)):
            writer.write(solid(*size, grey + 10 * k), timestamp_s=k / fps)
    rows = "".join(f"{k},{a}\n" for k, a in enumerate(steering_deg))
    (folder / f"{name}.csv").write_text("frame,steering\n" + rows)
    return folder / f"{name}.mp4"


def run_import(*argv):
    return main(["import", *map(str, argv), "--no-progress"])


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def grey_levels(reader, episode):
    return reader.read_frames(episode)[:, 39, 100, 0].astype(int)


def snapshot(root):
    """Every file of the dataset but its totals (meta/info.json, meta/stats.json), with its bytes."""
    skip = {layout.info_path(root), layout.stats_path(root)}
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p not in skip}


def test_several_videos_in_one_call_give_one_episode_each_in_order(tmp_path, capsys):
    a = clip(tmp_path / "src", "a", 20, [0.0, 5.0, 10.0])
    b = clip(tmp_path / "src", "b", 120, [-10.0, -5.0])
    out = tmp_path / "ds"
    assert run_import(a, b, "--format", "video-csv", "--steering-unit", "deg", "--out", out) == 0  # CSVs beside
    printed = capsys.readouterr().out
    # the default rule is printed: the largest |angle| of both logs
    assert f"max_steer_rad {math.radians(10.0):.6g} rad (the largest |steering| in the log(s)" in printed
    assert "2 episode(s) added" in printed
    reader = DatasetReader(out)
    assert (reader.info.total_episodes, reader.info.total_frames) == (2, 5)
    assert reader.info.max_steer_rad == pytest.approx(math.radians(10.0))
    info = json.loads(layout.info_path(out).read_text())
    assert (info["steering_positive"], info["source_steering_positive"]) == ("left", "left")
    assert np.all(np.abs(grey_levels(reader, 0) - [20, 30, 40]) <= 4)
    assert np.all(np.abs(grey_levels(reader, 1) - [120, 130]) <= 4)
    np.testing.assert_allclose(reader.episode_table(1)[layout.STEERING_LABEL], [-1.0, -0.5], atol=1e-6)
    assert [reader.episode_meta(e)["source"] for e in (0, 1)] == [str(a), str(b)]


def test_csv_flags_pair_with_the_videos_in_order(tmp_path, capsys):
    a = clip(tmp_path / "src", "a", 20, [1.0, 2.0])
    b = clip(tmp_path / "src", "b", 120, [3.0])
    (tmp_path / "src" / "a.csv").rename(tmp_path / "first.csv")
    (tmp_path / "src" / "b.csv").rename(tmp_path / "second.csv")
    out = tmp_path / "ds"
    common = ["--format", "video-csv", "--steering-unit", "deg", "--max-steer-rad", 0.5, "--out", out]
    assert run_import(a, b, *common, "--csv", tmp_path / "first.csv") == 2
    err = one_error_line(capsys)
    assert "--csv: 1 given for 2 video(s): give one per video, in the videos' order" in err
    assert run_import(a, b, *common) == 2  # no --csv: a.csv beside a.mp4, which is not there
    assert "a.csv: CSV not found (the default for video" in one_error_line(capsys)
    assert run_import(a, b, *common, "--csv", tmp_path / "first.csv", "--csv", tmp_path / "second.csv") == 0
    table = DatasetReader(out).frames_table()
    np.testing.assert_allclose(table[layout.STEERING_LABEL], np.radians([1.0, 2.0, 3.0]) / 0.5, atol=1e-6)
    assert list(table[layout.EPISODE_INDEX]) == [0, 0, 1]


def test_appending_keeps_every_earlier_episode_and_uses_the_stored_max_steer(tmp_path, capsys):
    src = tmp_path / "src"
    out = tmp_path / "ds"
    assert run_import(clip(src, "a", 20, [0.0, 4.0, 8.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--max-steer-rad", 0.5, "--out", out) == 0  # fmt: skip
    before = snapshot(out)
    capsys.readouterr()
    assert run_import(clip(src, "b", 120, [2.0, -2.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--out", out) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"appending to {out}: 78x200 at 20 Hz, max_steer_rad 0.5 rad (the dataset's" in printed
    assert "1 episode(s) added; 2 episode(s), 5 frame(s)" in printed
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before  # episode 0's files byte for byte
    reader = DatasetReader(out)
    assert (reader.info.total_episodes, reader.info.total_frames, reader.info.max_steer_rad) == (2, 5, 0.5)
    np.testing.assert_allclose(reader.episode_table(1)[layout.STEERING_LABEL], np.radians([2.0, -2.0]) / 0.5, atol=1e-6)
    assert list(reader.frames_table()[layout.INDEX]) == [0, 1, 2, 3, 4]
    assert np.all(np.abs(grey_levels(reader, 1) - [120, 130]) <= 4)
    # and the API appends the same way
    import_source("video-csv", clip(src, "c", 60, [1.0]), out, steering_unit="deg", progress=False)
    assert DatasetReader(out).info.total_episodes == 3


@pytest.mark.parametrize(
    "extra, clip_kwargs, message",
    [
        (["--height", 66], {}, "--height/--width: 66x200 differs from the dataset's image size 78x200 ("),
        ([], {"fps": 10.0}, "frame rate 10 Hz differs from the dataset's ("),
        (["--max-steer-rad", 0.25], {}, "--max-steer-rad 0.25 differs from the dataset's ("),
    ],
)
def test_a_clip_that_differs_from_the_dataset_is_refused_in_one_line(tmp_path, capsys, extra, clip_kwargs, message):
    src = tmp_path / "src"
    out = tmp_path / "ds"
    assert run_import(clip(src, "a", 20, [0.0, 4.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--max-steer-rad", 0.5, "--out", out) == 0  # fmt: skip
    before = snapshot(out)
    capsys.readouterr()
    code = run_import(clip(src, "b", 120, [1.0, 2.0], **clip_kwargs), "--format", "video-csv",
                      "--steering-unit", "deg", "--out", out, *extra)  # fmt: skip
    err = one_error_line(capsys)
    assert code == 2 and message in err
    # both values named
    assert {"--height": "78x200", "--max-steer-rad": "0.5"}.get(str(extra[0]) if extra else "", "20 Hz") in err
    assert snapshot(out) == before and DatasetReader(out).info.total_episodes == 1


def test_clips_of_one_call_with_different_rates_are_refused(tmp_path, capsys):
    a = clip(tmp_path / "src", "a", 20, [1.0, 2.0], fps=20.0)
    b = clip(tmp_path / "src", "b", 20, [1.0, 2.0], fps=30.0)
    out = tmp_path / "ds"
    assert run_import(a, b, "--format", "video-csv", "--steering-unit", "deg", "--out", out) == 2
    err = one_error_line(capsys)
    assert "b.csv: frame rate 30 Hz differs from that of" in err and "a.csv, 20 Hz" in err
    assert not out.exists()


def test_labels_beyond_max_steer_are_counted_in_one_warning_line(tmp_path, capsys):
    src = tmp_path / "src"
    out = tmp_path / "ds"
    assert run_import(clip(src, "a", 20, [0.0, 10.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--out", out) == 0  # fmt: skip
    capsys.readouterr()
    # appended: the stored max_steer_rad (10 deg) is used; 2 of 3 labels are beyond it
    assert run_import(clip(src, "b", 20, [20.0, -5.0, -15.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--out", out) == 0  # fmt: skip
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "b.csv: 2 of 3 steering label(s) beyond max_steer_rad 0.1745 rad (up to 0.3491 rad) clipped" in warnings[0]
    np.testing.assert_allclose(DatasetReader(out).episode_table(1)[layout.STEERING_LABEL], [1.0, -0.5, -1.0], atol=1e-6)


def sully(folder, angles, start=0, corrupt=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(angles)):
        path = folder / f"{i}.jpg"
        if i == corrupt:
            path.write_bytes(b"not a jpeg")
        else:
            assert cv2.imwrite(str(path), solid(256, 455, 100))
    (folder / "data.txt").write_text("".join(f"{i}.jpg {a}\n" for i, a in enumerate(angles)))
    return folder


def test_several_logs_in_one_call_and_a_failed_append_leaves_the_dataset_as_it_was(tmp_path, capsys):
    one, two = sully(tmp_path / "one", [1.0, 2.0]), sully(tmp_path / "two", [3.0])
    out = tmp_path / "ds"
    assert run_import(one, two, "--format", "sully-chen", "--fps", 20, "--max-steer-rad", 0.5, "--out", out) == 0
    reader = DatasetReader(out)
    assert [reader.episode_length(e) for e in (0, 1)] == [2, 1]
    assert [reader.episode_meta(e)["source"] for e in (0, 1)] == [
        f"{one / 'data.txt'} lines 1-2",
        f"{two / 'data.txt'} lines 1-1",
    ]
    before = snapshot(out)
    # the second log's image is unreadable: found only while decoding, after the first log's episode
    three, bad = sully(tmp_path / "three", [1.0]), sully(tmp_path / "bad", [1.0, 1.0], corrupt=1)
    assert run_import(three, bad, "--format", "sully-chen", "--fps", 20, "--out", out) == 2
    assert "is unreadable" in one_error_line(capsys)
    assert snapshot(out) == before and DatasetReader(out).info.total_episodes == 2
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name != ".drive.lock"]


def test_a_dataset_not_made_by_import_is_not_appended_to(tmp_path, capsys):
    out = tmp_path / "rec"
    with DatasetWriter(out, layout.DatasetInfo(fps=20.0, image_height=78, image_width=200, max_steer_rad=0.5)) as w:
        w.add_episode(iter([solid(78, 200, 0)]), np.zeros(1))
    assert run_import(clip(tmp_path / "src", "a", 20, [1.0]), "--format", "video-csv", "--steering-unit", "deg",
                      "--out", out) == 2  # fmt: skip
    assert "holds a dataset made by 'drive record': clips are appended only to a dataset made by drive import" in (
        one_error_line(capsys)
    )
    (out / "meta" / "info.json").unlink()
    with pytest.raises(UserError, match="holds no dataset to append to"):
        import_source("video-csv", tmp_path / "src" / "a.mp4", out, steering_unit="deg", progress=False)


def test_import_help_states_the_sign_convention_and_appending(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "positive = left (counter-clockwise, ISO 8855), recorded in meta/info.json as steering_positive" in text
    assert "appended, keeping every earlier episode" in text
    assert "SRC [SRC ...]" in text
