"""The view synthesis agrees with drive.world.camera's pinhole model, and zero deviation changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive.replay.homography import ViewSynthesizer, view_homographies
from drive.world.camera import Camera, CameraConfig

MOVES = [(0.0, 0.5, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, math.radians(5)), (0.3, -0.7, math.radians(-3)), (0.0, 1.0, 0.1)]
CAMERAS = [CameraConfig(), CameraConfig(height_m=1.6, pitch_rad=0.05, fov_deg=60.0, yaw_rad=0.1, width=160, height=90)]


def _apply(h: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = h @ np.stack([u, v, np.ones_like(u)])
    return q[0] / q[2], q[1] / q[2], q[2]


@pytest.mark.parametrize("cfg", CAMERAS)
@pytest.mark.parametrize("move", MOVES)
def test_ground_points_land_where_the_pinhole_camera_puts_them(cfg, move):
    dx, dy, dyaw = move
    cam = Camera(cfg)
    rng = np.random.default_rng(0)
    fwd, left = rng.uniform(3, 60, 200), rng.uniform(-8, 8, 200)
    u_l, v_l, depth_l = cam.project(fwd, left, np.zeros(200))  # the learner's camera
    c, s = math.cos(dyaw), math.sin(dyaw)
    fwd_r, left_r = dx + fwd * c - left * s, dy + fwd * s + left * c  # the same points, recorded car's frame
    u_r, v_r, depth_r = cam.project(fwd_r, left_r, np.zeros(200))
    seen = (depth_l > 0.5) & (depth_r > 0.5) & (v_l > cfg.horizon_row)
    assert seen.sum() > 100
    h_ground, _ = view_homographies(cfg, dx, dy, dyaw)
    u, v, w = _apply(h_ground, u_l[seen], v_l[seen])
    assert (w > 0).all()  # in front of the recorded camera
    np.testing.assert_allclose(u, u_r[seen], atol=1e-6)
    np.testing.assert_allclose(v, v_r[seen], atol=1e-6)


@pytest.mark.parametrize("cfg", CAMERAS)
@pytest.mark.parametrize("move", MOVES)
def test_sky_moves_by_the_rotation_alone(cfg, move):
    """Far points above the horizon: the learner's view is the recorded one turned by the yaw, within a pixel."""
    dx, dy, dyaw = move
    cam = Camera(cfg)
    az = np.linspace(-0.5, 0.5, 50)
    el = np.linspace(0.02, 0.3, 50)
    far = 1e7
    fwd, left, up = far * np.cos(el) * np.cos(az), far * np.cos(el) * np.sin(az), far * np.sin(el)
    u_l, v_l, _ = cam.project(fwd, left, up)
    c, s = math.cos(dyaw), math.sin(dyaw)
    u_r, v_r, _ = cam.project(dx + fwd * c - left * s, dy + fwd * s + left * c, up)
    _, h_sky = view_homographies(cfg, dx, dy, dyaw)
    u, v, w = _apply(h_sky, u_l, v_l)
    assert (w > 0).all()
    np.testing.assert_allclose(u, u_r, atol=1e-3)
    np.testing.assert_allclose(v, v_r, atol=1e-3)


def test_zero_deviation_gives_back_the_frame_exactly():
    frame = np.random.default_rng(1).integers(0, 256, (78, 200, 3), dtype=np.uint8)
    synth = ViewSynthesizer(CameraConfig())
    out, fill = synth.warp(frame, 0.0, 0.0, 0.0)
    assert np.array_equal(out, frame) and fill == 0.0 and synth.valid.all()


@pytest.mark.parametrize("fill", ["reflect", "replicate"])
def test_pixels_without_source_are_filled_from_the_frame_not_a_constant(fill):
    """A turned view has pixels with no source; they hold the frame's colours (no black wedge) and are counted."""
    frame = np.full((78, 200, 3), 120, np.uint8)
    frame[:, :, 1] = np.linspace(60, 200, 200).astype(np.uint8)
    synth = ViewSynthesizer(CameraConfig(), fill=fill)
    out, share = synth.warp(frame, 0.0, 0.0, math.radians(8))
    assert 0.0 < share == pytest.approx(1 - synth.valid.mean())
    filled = out[~synth.valid]
    assert filled.min() >= 60 and (filled[:, 0] == 120).all()


def test_an_unknown_fill_is_refused():
    with pytest.raises(ValueError, match="fill"):
        ViewSynthesizer(CameraConfig(), fill="black")
