"""Camera geometry: lane lines where the pinhole model puts them, horizon vs pitch, boxes, top-down view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive.world.camera import Camera, CameraConfig, Scenery, TopDownCamera, VehicleBox, scenery_for
from drive.world.tracks import EDGE_LINE_INSET_M, procedural_track


def _peak(row: np.ndarray, lo: int, hi: int) -> float:
    """Sub-pixel column of the brightest blob in row[lo:hi] (brightness-weighted centroid)."""
    lum = row[lo:hi].astype(float).mean(axis=1)
    w = np.clip(lum - (lum.min() + 0.5 * (lum.max() - lum.min())), 0, None)
    return lo + float((w * np.arange(len(w))).sum() / w.sum())


@pytest.fixture(scope="module")
def straight():
    from tests.world.conftest import stadium_track

    t = stadium_track(lanes=1, lane_width_m=3.5, straight_m=400.0, radius_m=60.0)
    return t, Scenery(t, 0)


def _edge_columns(cam, img, forward_m, half, car_left_m=0.0):
    """Predicted and found columns of the left and right edge lines, ``forward_m`` ahead."""
    u, v, _ = cam.project(
        np.array([forward_m, forward_m]), np.array([half - car_left_m, -half - car_left_m]), np.zeros(2)
    )
    row = img[int(round(v[0]))]
    uL, uR = u
    return uL, uR, _peak(row, int(uL) - 8, int(uL) + 9), _peak(row, int(uR) - 8, int(uR) + 9)


def test_lane_lines_symmetric_when_centred_and_shift_right_when_car_is_left(straight):
    track, scenery = straight
    cam = Camera(CameraConfig())
    half = track.half_width_m - EDGE_LINE_INSET_M
    assert track.lanes == 1 and track.curvature_at(200.0) == pytest.approx(0.0, abs=1e-9)
    img = cam.render(scenery, 200.0, 0.0, 0.0)
    cx = cam.config.cx
    for fwd in (6.0, 9.0, 14.0):
        uL, uR, pL, pR = _edge_columns(cam, img, fwd, half)
        assert pL == pytest.approx(uL, abs=1.0) and pR == pytest.approx(uR, abs=1.0)  # where the pinhole model says
        assert (pL + pR) / 2 == pytest.approx(cx, abs=0.75)  # symmetric about the image centre
        assert pL < cx < pR
    # car 0.6 m left of the centre line: the lines move right, by f * 0.6 / depth
    img2 = cam.render(scenery, 200.0, 0.6, 0.0)
    for fwd in (6.0, 9.0):
        uL, uR, pL, pR = _edge_columns(cam, img, fwd, half)
        vL, vR, qL, qR = _edge_columns(cam, img2, fwd, half, car_left_m=0.6)
        assert qL == pytest.approx(vL, abs=1.0) and qR == pytest.approx(vR, abs=1.0)
        _, _, depth = cam.project(np.array([fwd]), np.array([0.0]), np.array([0.0]))
        shift = cam.config.focal_px * 0.6 / depth[0]
        assert qL - pL == pytest.approx(shift, abs=1.0) and qR - pR == pytest.approx(shift, abs=1.0)
        assert (qL + qR) / 2 > cx + 2


@pytest.mark.parametrize("pitch", [-0.1, 0.0, 0.05, 0.12, 0.2, 0.3])
def test_horizon_row_follows_the_pinhole_formula(straight, flat_scenery, pitch):
    track, _ = straight
    cfg = CameraConfig(pitch_rad=pitch)
    cam = Camera(cfg)
    img = cam.render(flat_scenery(track), 200.0, 0.0, 0.0)
    sky = np.all(img == (0, 0, 255), axis=2).all(axis=1)
    ground = np.all(img == (0, 255, 0), axis=2).all(axis=1)
    assert np.all(sky | ground)
    first_ground = int(np.argmax(ground)) if ground.any() else cfg.height
    assert not ground[:first_ground].any() and ground[first_ground:].all()
    v_h = cfg.cy - cfg.focal_px * math.tan(pitch)
    assert cfg.horizon_row == pytest.approx(v_h)
    assert first_ground - 1 < v_h < first_ground  # pixel centres at or above the horizon are sky


def test_same_seed_same_frames_and_other_tracks_differ():
    t = procedural_track(1004, 2, 3.5, 0.03)
    cam = Camera(CameraConfig())
    a = cam.render(Scenery(t, 0), *t.pose_at(100.0, -1.75))
    b = cam.render(Scenery(t, 0), *t.pose_at(100.0, -1.75))
    np.testing.assert_array_equal(a, b)
    c = cam.render(Scenery(t, 1), *t.pose_at(100.0, -1.75))
    assert np.abs(a.astype(int) - c).mean() > 2
    t2 = procedural_track(1005, 2, 3.5, 0.03)
    d = cam.render(scenery_for(t2), *t2.pose_at(100.0, -1.75))
    assert np.abs(a.astype(int) - d).mean() > 2
    assert a.dtype == np.uint8 and a.shape == (78, 200, 3)


def test_frame_has_sky_road_and_grass(straight):
    track, scenery = straight
    cam = Camera(CameraConfig())
    img = cam.render(scenery, 200.0, 0.0, 0.0).astype(int)
    top, bottom = img[:5].mean(axis=(0, 1)), img[-3:, 90:110].mean(axis=(0, 1))
    _, v, _ = cam.project(np.array([12.0]), np.array([0.0]), np.array([0.0]))  # row of the ground 12 m ahead
    grass = img[int(v[0]) - 1 : int(v[0]) + 2, :10].mean(axis=(0, 1))  # ~10 m to the left: beyond the road
    assert top[2] > top[0]  # sky: blue above red
    assert abs(bottom[0] - bottom[1]) < 15 and abs(bottom[1] - bottom[2]) < 15  # asphalt: grey
    assert grass[1] > grass[0] + 15 and grass[1] > grass[2] + 15  # grass: green


def test_vehicle_boxes_project_left_right_and_near_over_far(straight):
    track, scenery = straight
    cam = Camera(CameraConfig())
    red, blue = (255, 0, 0), (0, 0, 255)

    def reddish(img):
        i = img.astype(int)
        return (i[..., 0] - i[..., 2] > 80) & (i[..., 0] - i[..., 1] > 80)

    def bluish(img):
        i = img.astype(int)
        return (i[..., 2] - i[..., 0] > 80) & (i[..., 2] - i[..., 1] > 60)

    left = reddish(cam.render(scenery, 200.0, 0.0, 0.0, [VehicleBox(215.0, 3.0, 0.0, color=red)]))
    assert left[:, :100].sum() > 50 and left[:, 100:].sum() == 0
    right = reddish(cam.render(scenery, 200.0, 0.0, 0.0, [VehicleBox(215.0, -3.0, 0.0, color=red)]))
    assert right[:, 100:].sum() > 50 and right[:, :100].sum() == 0
    behind = cam.render(scenery, 200.0, 0.0, 0.0, [VehicleBox(185.0, 0.0, 0.0, color=red)])
    np.testing.assert_array_equal(behind, cam.render(scenery, 200.0, 0.0, 0.0))
    # a near red car hides the far blue one straight behind it, whatever order they are given in
    alone = bluish(cam.render(scenery, 200.0, 0.0, 0.0, [VehicleBox(240.0, 0.0, 0.0, color=blue)]))
    assert alone.sum() > 20
    both = cam.render(
        scenery, 200.0, 0.0, 0.0, [VehicleBox(212.0, 0.0, 0.0, color=red), VehicleBox(240.0, 0.0, 0.0, color=blue)]
    )
    assert bluish(both).sum() == 0
    u, v, _ = cam.project(np.array([9.5]), np.array([0.0]), np.array([0.4]))  # rear face, below the window
    assert reddish(both)[int(round(v[0])), int(round(u[0]))]


def test_topdown_is_heading_up_and_draws_the_path(straight):
    track, scenery = straight
    td = TopDownCamera(width=160, height=160, m_per_px=0.25, car_row_fraction=0.75)
    ego = VehicleBox(200.0, 0.0, 0.0, color=(10, 20, 250))
    path = np.stack([np.linspace(200, 230, 30), np.full(30, 1.0)], 1)  # 1 m left of the car, ahead
    img = td.render(scenery, 200.0, 0.0, 0.0, ego=ego, path_xy=path)
    assert img.shape == (160, 160, 3)
    c0, r0 = (160 - 1) / 2, (160 - 1) * 0.75
    assert tuple(img[int(r0), int(c0)]) == (10, 20, 250)
    ys, xs = np.nonzero(np.all(img == (255, 200, 0), axis=2))
    assert len(xs) > 20
    assert np.all(ys < r0) and abs(np.median(xs) - (c0 - 4)) <= 1.5  # ahead = up, left = left
    # rotating the car by 90° rotates the map the other way: the same path now lies to the right
    img2 = td.render(scenery, 200.0, 0.0, math.pi / 2, ego=ego, path_xy=path)
    ys2, xs2 = np.nonzero(np.all(img2 == (255, 200, 0), axis=2))
    assert np.median(xs2) > c0 + 10
