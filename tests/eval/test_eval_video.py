"""The evaluation video: a fixed-size composed picture, written atomically as H.264 (yuv420p), RGB in and out."""

from __future__ import annotations

import numpy as np
import pytest

from drive.eval.video import EXPERT_RGB, Compositor, read_video, steering_panel, video_writer


def test_compositor_has_a_fixed_even_size_and_shows_the_camera():
    comp = Compositor((78, 200), [f"n{i}" for i in range(19)])
    red = np.zeros((78, 200, 3), np.uint8)
    red[..., 0] = 220
    for t in range(5):
        pic = comp.compose(red, 0.3, -0.2, np.full((300, 150, 3), 90, np.uint8), np.arange(19) * t, ["line"])
        assert pic.shape == (comp.height, comp.width, 3) and pic.dtype == np.uint8
    assert comp.height % 2 == 0 and comp.width % 2 == 0
    cam = pic[20:150, 20:380]
    assert cam[..., 0].mean() > 200 and cam[..., 1].mean() < 30  # RGB kept: the red camera is red


def test_steering_bars_point_the_right_way():
    panel = steering_panel(0.8, -0.8, 50, 400)
    x0, x1 = 60, 400 - 64  # the bars' extent, between the labels and the values
    centre = (x0 + x1) // 2
    policy_row, expert_row = panel[12, x0:x1], panel[36, x0:x1]
    c = centre - x0
    orange = (policy_row[:, 0] > 200) & (policy_row[:, 2] < 50)
    grey = np.all(expert_row == EXPERT_RGB, axis=1)  # the expert's colour (drive.eval.plots)
    assert orange[:c].sum() > 50 and orange[c + 2 :].sum() == 0  # positive = left
    assert grey[c + 2 :].sum() > 50 and grey[: c - 1].sum() == 0


def test_video_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "v.mp4"
    frames = [np.full((64, 96, 3), (200, 30, 30), np.uint8) for _ in range(6)]
    with video_writer(path, 10.0, (64, 96)) as vw:
        for f in frames:
            vw.write(f)
        assert not path.exists()  # appears only when finished
    back = read_video(path)
    assert len(back) == 6 and back[0].shape == (64, 96, 3)
    assert abs(int(back[3][..., 0].mean()) - 200) < 12 and back[3][..., 2].mean() < 50


def test_video_is_discarded_on_error(tmp_path):
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError):
        with video_writer(path, 10.0, (64, 96)) as vw:
            vw.write(np.zeros((64, 96, 3), np.uint8))
            vw.write(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def _moving_frames(n: int, h: int = 78, w: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack(
        [
            np.stack(
                [
                    np.clip(128 + 70 * np.sin((xx + 4 * i) / (10 + 4 * c)) + 30 * np.cos(yy / 8), 0, 255)
                    for c in range(3)
                ],
                axis=-1,
            ).astype(np.uint8)
            for i in range(n)
        ]
    )


def test_written_video_is_h264_yuv420p_and_reads_back_frame_exact(tmp_path):
    import av

    frames = _moving_frames(37)
    path = tmp_path / "v.mp4"
    with video_writer(path, 20.0, (78, 200)) as vw:
        for f in frames:
            vw.write(f)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(20.0)
        times = [float(f.time) for f in container.decode(stream)]
    assert times == pytest.approx(np.arange(37) / 20.0, abs=1e-4)  # one frame per 1/fps, none dropped or doubled
    back = np.stack(read_video(path))
    assert back.shape == frames.shape
    err = np.abs(back.astype(np.int16) - frames.astype(np.int16))
    assert err.mean() < 4.0 and np.percentile(err, 99) < 24  # lossy codec, chroma subsampled


def test_timestamps_become_the_frames_presentation_times(tmp_path):
    import av

    path = tmp_path / "vfr.mp4"
    ts = [0.0, 0.05, 0.12, 0.3, 0.31]
    with video_writer(path, 20.0, (32, 48)) as vw:
        for t in ts:
            vw.write(np.full((32, 48, 3), 100, np.uint8), timestamp_s=t)
    with av.open(str(path)) as container:
        assert [float(f.time) for f in container.decode(video=0)] == pytest.approx(ts, abs=1e-4)


def test_old_mp4v_videos_still_decode(tmp_path):
    import cv2

    frames = _moving_frames(12)
    path = tmp_path / "old.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (200, 78))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    back = np.stack(read_video(path))
    assert back.shape == frames.shape
    assert np.abs(back.astype(np.int16) - frames.astype(np.int16)).mean() < 6.0


def test_odd_sizes_are_refused_before_any_file_is_made(tmp_path):
    with pytest.raises(ValueError, match="even frame size"):
        video_writer(tmp_path / "odd.mp4", 10.0, (77, 200)).__enter__()
    assert list(tmp_path.iterdir()) == []
