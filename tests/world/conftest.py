"""Fixture factories for the world tests: tracks with known geometry and small scenarios."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drive.world.camera import Scenery
from drive.world.scenario import Scenario, TrackSpec, TrafficSpec
from drive.world.tracks import Track


def stadium_track(
    lanes: int = 1, lane_width_m: float = 3.5, straight_m: float = 1200.0, radius_m: float = 150.0
) -> Track:
    """A closed loop with two long straights along ±x joined by half circles (counter-clockwise).

    The first straight runs from (0, 0) to (straight_m, 0) heading +x; its middle is at
    s = straight_m / 2.
    """
    ds = 0.25
    a = np.arange(0, straight_m, ds)
    th = np.arange(0, np.pi, ds / radius_m)
    x = np.concatenate([a, straight_m + radius_m * np.sin(th), straight_m - a, -radius_m * np.sin(th)])
    y = np.concatenate(
        [
            np.zeros_like(a),
            radius_m - radius_m * np.cos(th),
            np.full_like(a, 2 * radius_m),
            radius_m + radius_m * np.cos(th),
        ]
    )
    return Track("stadium", "procedural", None, x, y, lanes, lane_width_m)


@pytest.fixture
def make_stadium():
    """make_stadium(lanes=1, lane_width_m=3.5) -> Track (see :func:`stadium_track`)."""
    return stadium_track


@pytest.fixture
def flat_scenery():
    """flat_scenery(track) -> Scenery whose sky is pure blue and ground (and haze) pure green."""

    def factory(track: Track) -> Scenery:
        sc = Scenery(track, 0)
        sc.panorama[:] = (0, 0, 255)
        for lev in sc.levels:
            lev[:] = (0, 255, 0)
        sc.haze = np.array([0.0, 255.0, 0.0])
        sc.border = (0.0, 255.0, 0.0)
        return sc

    return factory


@pytest.fixture
def make_scenario():
    """make_scenario(**overrides) -> a validated Scenario; ``track``/``traffic`` take dicts of fields."""

    def factory(**kw) -> Scenario:
        base = Scenario()
        if "track" in kw:
            track = dict(kw["track"])
            if track.get("seeds") is not None:
                track.setdefault("split", None)
            kw["track"] = dataclasses.replace(TrackSpec(), **track)
        if "traffic" in kw:
            kw["traffic"] = dataclasses.replace(TrafficSpec(), **kw["traffic"])
        return Scenario.from_dict(dataclasses.asdict(dataclasses.replace(base, **kw)), source="<test>")

    return factory
