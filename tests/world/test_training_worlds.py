"""Training worlds that cover what the suite tests: the lane-position draw, its schema, and train.yaml's ranges.

Only the scenario's values are drawn (``draw_world``): no env is built.
"""

from __future__ import annotations

import collections

import pytest

from drive import resources
from drive.errors import UserError
from drive.world.appearance import (
    KEYS,
    LANE_POSITIONS,
    draw_world,
    get_spec,
    lane_position,
    light_bin,
    spec_kind,
    spec_values,
    width_bin,
)
from drive.world.scenario import Scenario, load_scenario

DRAWS = 3000


def _position_shares(scenario: Scenario, draws: int = DRAWS) -> dict[str, float]:
    counts = collections.Counter()
    for seed in range(draws):
        w = draw_world(scenario, seed)
        counts[lane_position(w.lanes, w.ego_lane)] += 1
    return {p: counts[p] / draws for p in LANE_POSITIONS} | {k: v / draws for k, v in counts.items() if k is None}


def test_train_yaml_draws_every_lane_position_equally_over_3000_draws():
    sc = load_scenario("train")
    shares = _position_shares(sc)
    assert set(shares) == set(LANE_POSITIONS)  # no draw outside the six positions
    for p, share in shares.items():
        # binomial sd of a 1/6 share over 3000 draws: 0.0068; 0.03 is over 4 sd
        assert share == pytest.approx(1 / 6, abs=0.03), (p, share)
    assert shares["middle_of_3"] > 0.13  # was 1/9 when the ego lane was drawn after the lane count


def test_lane_position_weights_are_followed_over_3000_draws():
    sc = Scenario.from_dict({"track": {"lane_position": {"only_of_1": 1, "middle_of_3": 3, "left_of_2": 0}}})
    assert sc.track.lanes == [1, 3] and sc.track.ego_lane is None and (sc.track.min_lanes, sc.track.n_lanes) == (1, 3)
    shares = _position_shares(sc)
    assert shares["only_of_1"] == pytest.approx(0.25, abs=0.03)
    assert shares["middle_of_3"] == pytest.approx(0.75, abs=0.03)
    assert all(shares[p] == 0 for p in LANE_POSITIONS if p not in ("only_of_1", "middle_of_3"))
    # a list of words: each equally likely; one word: fixed
    listed = _position_shares(Scenario.from_dict({"track": {"lane_position": ["right_of_2", "left_of_3"]}}), 1000)
    assert listed["right_of_2"] == pytest.approx(0.5, abs=0.06) and listed["left_of_3"] == pytest.approx(0.5, abs=0.06)
    fixed = Scenario.from_dict({"track": {"lane_position": "middle_of_3"}})
    assert fixed.track.lanes == 3
    assert {(draw_world(fixed, s).lanes, draw_world(fixed, s).ego_lane) for s in range(20)} == {(3, 1)}


def test_the_lane_position_draw_depends_only_on_the_world_seed():
    sc = load_scenario("train")
    a = [(draw_world(sc, s).lanes, draw_world(sc, s).ego_lane) for s in range(50)]
    assert a == [(draw_world(sc, s).lanes, draw_world(sc, s).ego_lane) for s in range(50)]
    assert len(set(a)) == 6


def test_a_scenario_with_lane_position_reads_back_from_its_dict():
    sc = load_scenario("train")
    assert Scenario.from_dict(sc.to_dict()) == sc
    assert sc.track.ego_lane is None and sc.track.lanes == [1, 2, 3]


@pytest.mark.parametrize(
    "track, key, shown",
    [
        ({"lane_position": "middle_of_4"}, "track.lane_position", "middle_of_4"),
        ({"lane_position": ["only_of_1", "centre"]}, "track.lane_position", "centre"),
        ({"lane_position": []}, "track.lane_position", "[]"),
        ({"lane_position": {}}, "track.lane_position", "{}"),
        ({"lane_position": {"only_of_1": -1, "right_of_2": 2}}, "track.lane_position.only_of_1", "-1"),
        ({"lane_position": {"only_of_1": 0, "right_of_2": 0}}, "track.lane_position", "0"),
        ({"lane_position": {"only_of_1": "many"}}, "track.lane_position", "many"),
        ({"lane_position": "only_of_1", "ego_lane": 0}, "track.ego_lane", "0"),
        ({"lane_position": "only_of_1", "lanes": 2}, "track.lanes", "2"),
        ({"kind": "racetrack", "split": None, "lane_position": "middle_of_3"}, "track.lane_position", "middle_of_3"),
    ],
)
def test_bad_lane_positions_are_refused_in_one_line_naming_the_key(track, key, shown):
    with pytest.raises(UserError) as exc:
        Scenario.from_dict({"track": track}, source="worlds.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("worlds.yaml: ") and key in msg and shown in msg, msg


def test_lane_position_with_traffic_needs_two_lanes_everywhere():
    with pytest.raises(UserError, match="traffic.vehicles"):
        Scenario.from_dict({"track": {"lane_position": ["only_of_1", "right_of_2"]}, "traffic": {"vehicles": 2}})
    sc = Scenario.from_dict({"track": {"lane_position": ["left_of_2", "middle_of_3"]}, "traffic": {"vehicles": 2}})
    assert sc.track.lanes == [2, 3]


def test_bins_name_the_suite_cases():
    assert [lane_position(n, e) for n, e in LANE_POSITIONS.values()] == list(LANE_POSITIONS)
    assert lane_position(3, -1) is None and lane_position(float("nan"), 0) is None and lane_position(2, 2) is None
    assert lane_position(3.0, 1.0) == "middle_of_3"  # as read back from a parquet column
    assert [width_bin(w) for w in (3.0, 3.5, 4.5)] == ["narrow", "standard", "wide"]
    assert [light_bin(e) for e in (0.03, 0.25, 0.8)] == ["dusk", "low_sun", "day"]
    assert width_bin(None) is None and light_bin(float("nan")) is None


def _suite_cases() -> list[str]:
    return sorted(p.stem for p in resources.suite_dir().glob("*.yaml"))


@pytest.mark.parametrize("case", _suite_cases())
def test_train_yaml_holds_every_suite_case_inside_its_ranges_with_margin(case):
    """Every drawn value of a suite case lies inside train.yaml's range, at least 5 % of the range from an
    edge (unless the edge is the schema's own bound, e.g. sun elevation 0), or among its choices."""
    train = load_scenario("train")
    suite = load_scenario(resources.suite_dir() / f"{case}.yaml")
    assert spec_kind(suite.track.lanes) == "fixed" and spec_kind(suite.track.ego_lane) == "fixed"
    position = lane_position(suite.track.lanes, suite.track.ego_lane)
    assert train.track.lane_position.get(position, 0) > 0, position
    for path, key, kind, lo, hi in KEYS:
        if key in ("lanes", "ego_lane"):
            continue
        spec, value = get_spec(train, path), get_spec(suite, path)
        if spec_kind(spec) == "range":
            a, b = spec
            margin = 0.05 * (b - a)
            assert a <= value <= b, (path, value, spec)
            assert value - a >= margin or a == lo, (path, value, spec)
            assert b - value >= margin or b == hi, (path, value, spec)
        else:
            assert value in spec_values(spec), (path, value, spec)
