"""Tracks: procedural loops within their bounds, fast projection, highway-env road networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from highway_env.road.lane import LineType, PolyLaneFixedWidth

from drive.world import tracks
from drive.world.expert import steer_to_curvature
from drive.world.tracks import TEST_SEEDS, TRAIN_SEEDS, curvature_limit, procedural_track, racetrack


def test_splits_are_disjoint():
    assert len(TRAIN_SEEDS) >= 100 and len(TEST_SEEDS) >= 5
    assert not set(TRAIN_SEEDS) & set(TEST_SEEDS)


@pytest.mark.parametrize("speed", [8.0, 10.0, 15.0])
def test_procedural_tracks_respect_length_and_curvature_bounds(speed):
    kmax = curvature_limit(speed, steer_to_curvature(0.35))
    assert kmax <= tracks.MAX_LATERAL_ACCEL_MPS2 / speed**2 + 1e-12
    for seed in list(TEST_SEEDS) + list(range(0, 40, 3)):
        for lanes in (1, 3):
            t = procedural_track(seed, lanes, 3.5, kmax)
            assert tracks.MIN_LENGTH_M - 1 <= t.length_m <= tracks.MAX_LENGTH_M + 1, (seed, t.length_m)
            assert t.max_abs_lane_curvature() <= kmax * 1.002, (seed, lanes, t.max_abs_lane_curvature(), kmax)
            assert speed**2 * t.max_abs_lane_curvature() <= tracks.MAX_LATERAL_ACCEL_MPS2 * 1.002
            assert t.lanes == lanes and t.road_width_m == pytest.approx(3.5 * lanes)


def test_procedural_tracks_are_deterministic_and_varied():
    a, b = procedural_track(7, 2, 3.5, 0.03), procedural_track(7, 2, 3.5, 0.03)
    tracks._procedural_cached.cache_clear()
    c = procedural_track(7, 2, 3.5, 0.03)
    np.testing.assert_array_equal(a.x, c.x)
    np.testing.assert_array_equal(a.curvature, c.curvature)
    assert a is b
    lengths = {round(procedural_track(s, 2, 3.5, 0.03).length_m) for s in range(10)}
    assert len(lengths) == 10
    # both turning directions occur: the signed total turning is +2π or -2π
    turns = {
        round(
            float(np.sum(procedural_track(s, 2, 3.5, 0.03).curvature) * procedural_track(s, 2, 3.5, 0.03).ds)
            / (2 * math.pi)
        )
        for s in range(12)
    }
    assert turns == {-1, 1}


def test_far_parts_of_a_loop_keep_grass_between_them():
    for seed in TEST_SEEDS:
        t = procedural_track(seed, 3, 3.5, 0.03)
        assert tracks._well_separated(t)


def test_projection_recovers_known_coordinates(make_stadium):
    t = procedural_track(1003, 2, 3.5, 0.03)
    rng = np.random.default_rng(0)
    hint = None
    for s in np.sort(rng.uniform(0, t.length_m, 200)):
        lat = float(rng.uniform(-4, 4))
        x, y, _ = t.pose_at(float(s), lat)
        s2, lat2, hint = t.project(x, y, hint)
        assert abs(((s2 - s + t.length_m / 2) % t.length_m) - t.length_m / 2) < 0.05
        assert lat2 == pytest.approx(lat, abs=0.02)
    # a point far from the hint falls back to a global search
    x, y, _ = t.pose_at(t.length_m / 2, 1.0)
    s3, lat3, _ = t.project(x, y, 0)
    assert s3 == pytest.approx(t.length_m / 2, abs=0.05) and lat3 == pytest.approx(1.0, abs=0.02)
    st = make_stadium()
    s, lat, _ = st.project(600.0, 1.25)
    assert s == pytest.approx(600.0, abs=0.01) and lat == pytest.approx(1.25, abs=1e-6)
    assert st.curvature_at(600.0) == pytest.approx(0.0, abs=1e-9)
    assert st.curvature_at(st.length_m - 100) == pytest.approx(1 / 150, rel=0.01)  # left turn: positive


def test_procedural_network_carries_polylanes_matching_the_arrays():
    t = procedural_track(1001, 3, 3.5, 0.03)
    net = t.network
    lanes = [(a, b, i, lane) for a, tos in net.graph.items() for b, ls in tos.items() for i, lane in enumerate(ls)]
    assert lanes and all(isinstance(lane, PolyLaneFixedWidth) for *_, lane in lanes)
    assert sum(lane.length for a, b, i, lane in lanes if i == 1) == pytest.approx(t.length_m, rel=0.01)
    for a, b, i, lane in lanes:
        assert lane.width == 3.5
        assert lane.line_types[0] == (LineType.CONTINUOUS_LINE if i == 0 else LineType.NONE)
        assert lane.line_types[1] == (LineType.CONTINUOUS_LINE if i == 2 else LineType.STRIPED)
        for s in np.linspace(5, lane.length - 5, 4):
            p = lane.position(s, 0.0)
            _, lat, _ = t.project(float(p[0]), float(p[1]))
            assert lat == pytest.approx(t.lane_offsets_m[i], abs=0.05)
    # consecutive pieces connect: next_lane follows the loop
    assert net.next_lane(("p0", "p1", 1), position=net.get_lane(("p0", "p1", 1)).position(10, 0)) == ("p1", "p2", 1)


def test_racetrack_reuses_highway_env_layout():
    t = racetrack()
    assert t.lanes == 2 and t.lane_width_m == 5.0
    net = t.network
    assert set(net.graph) == set("abcdefghi")
    errs = {0: [], 1: []}
    for a, tos in net.graph.items():
        for b, ls in tos.items():
            for i, lane in enumerate(ls):
                for s in np.linspace(1.0, lane.length - 1.0, 5):
                    p = lane.position(s, 0.0)
                    _, lat, _ = t.project(float(p[0]), float(p[1]))
                    errs[i].append(lat - t.lane_offsets_m[i])
    # our lanes sit on highway-env's lane centres (smoothing at its segment joints moves them a little)
    for i in (0, 1):
        assert np.median(np.abs(errs[i])) < 0.05 and np.max(np.abs(errs[i])) < 0.6, (i, np.max(np.abs(errs[i])))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="seed"):
        procedural_track(-1)
    with pytest.raises(ValueError, match="lanes"):
        procedural_track(1, lanes=4)
    with pytest.raises(ValueError, match="kind"):
        tracks.track_for("spiral", 1, 2, 3.5, 0.03)
    with pytest.raises(ValueError, match="seed 3"):
        procedural_track(3, 2, 3.5, 0.0005)  # no 2 km loop is that straight
