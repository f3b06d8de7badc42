"""The evaluation video: a fixed-size composed picture, written atomically as mp4v, RGB in and out."""

from __future__ import annotations

import numpy as np
import pytest

from drive.eval.video import Compositor, read_video, steering_panel, video_writer


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
    green = (expert_row[:, 1] > 150) & (expert_row[:, 0] < 100)
    assert orange[:c].sum() > 50 and orange[c + 2 :].sum() == 0  # positive = left
    assert green[c + 2 :].sum() > 50 and green[: c - 1].sum() == 0


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
