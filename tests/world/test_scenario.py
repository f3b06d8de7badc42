"""Scenario files: shipped ones load, round-trip, and bad ones fail naming file, key and value."""

from __future__ import annotations

import pytest
import yaml

from drive.errors import UserError
from drive.world.scenario import Scenario, load_scenario, shipped_scenarios
from drive.world.tracks import TEST_SEEDS, TRAIN_SEEDS


def test_shipped_scenarios_load_and_round_trip():
    assert {"default", "train", "racetrack", "traffic"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        sc = load_scenario(name)
        assert sc.name == name
        assert Scenario.from_dict(sc.to_dict()) == sc
        assert Scenario.from_dict(yaml.safe_load(yaml.safe_dump(sc.to_dict()))) == sc


def test_default_file_matches_dataclass_defaults_and_uses_test_tracks():
    assert load_scenario("default") == Scenario()
    assert Scenario().track.seed_list() == list(TEST_SEEDS)
    assert load_scenario("train").track.seed_list() == list(TRAIN_SEEDS)
    assert not set(TRAIN_SEEDS) & set(TEST_SEEDS)
    assert load_scenario("racetrack").track.seed_list() is None
    traffic = load_scenario("traffic")
    assert traffic.traffic.vehicles > 0 and traffic.track.n_lanes == 3


def test_explicit_seeds_replace_split(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("track:\n  seeds: [3, 5]\n")
    sc = load_scenario(p)
    assert sc.track.seed_list() == [3, 5] and sc.track.split is None


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("speed_mps: 10\nspeeed: 3\n", "speeed", "3"),  # unknown key
        ("camera:\n  fov_deg: 80\n  zoom: 2\n", "camera.zoom", "2"),  # unknown nested key
        ("camera:\n  fov_deg: wide\n", "camera.fov_deg", "'wide'"),  # wrong type
        ("camera:\n  width: 200.5\n", "camera.width", "200.5"),  # float for an int
        ("traffic:\n  vehicles: true\n", "traffic.vehicles", "True"),  # bool for an int
        ("speed_mps: -3\n", "speed_mps", "-3.0"),  # impossible value
        ("control_hz: 20\nsim_hz: 30\n", "sim_hz", "30.0"),  # not a multiple
        ("track:\n  lanes: 0\n", "track.lanes", "0"),
        ("track:\n  kind: spiral\n", "track.kind", "'spiral'"),
        ("track:\n  ego_lane: 2\n  lanes: 2\n", "track.ego_lane", "2"),
        ("track:\n  kind: racetrack\n  lanes: 3\n", "track.lanes", "3"),
        ("track:\n  lanes: 1\ntraffic:\n  vehicles: 4\n", "traffic.vehicles", "4"),
        ("track:\n  seeds: [1, -2]\n", "track.seeds[1]", "-2"),
        ("camera:\n  fov_deg: .nan\n", "camera.fov_deg", "nan"),
        ("track: 3\n", "track", "3"),
    ],
)
def test_bad_scenario_file_names_file_key_and_value(tmp_path, text, key, value):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ValueError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert str(p) in msg and f"{key}:" in msg and value in msg, msg


def _one_line_error(path) -> str:
    with pytest.raises(UserError) as exc:
        load_scenario(path)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_and_malformed_files(tmp_path):
    assert "nope.yaml" in _one_line_error(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    assert "list.yaml" in _one_line_error(p)
    p.write_text("name: [unclosed\n")
    msg = _one_line_error(p)
    assert "list.yaml" in msg and "invalid YAML" in msg and "line" in msg


def test_a_folder_given_as_the_scenario_is_a_one_line_error(tmp_path):
    msg = _one_line_error(tmp_path)
    assert str(tmp_path) in msg and "folder" in msg


def test_a_non_utf8_scenario_names_the_file(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    msg = _one_line_error(p)
    assert "latin1.yaml" in msg and "UTF-8" in msg


def test_duplicate_keys_are_an_error_not_last_wins(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("speed_mps: 10\ncamera:\n  fov_deg: 80\n  fov_deg: 90\n")
    msg = _one_line_error(p)
    assert "dup.yaml" in msg and "duplicate key 'fov_deg'" in msg and "line 4" in msg


def _alias_bomb(levels: int, fan: int) -> str:
    """The "billion laughs": each level an anchored list of ``fan`` aliases of the one below."""
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels, fan", [(4, 4), (10, 10)])
def test_yaml_aliases_are_refused_before_any_expansion(tmp_path, levels, fan):
    p = tmp_path / "bomb.yaml"
    p.write_text(_alias_bomb(levels, fan))
    msg = _one_line_error(p)
    assert "bomb.yaml" in msg and "alias" in msg and "line 2" in msg, msg
    assert len(msg) < 300, msg


def test_a_plain_alias_is_refused_too(tmp_path):
    p = tmp_path / "alias.yaml"
    p.write_text("traffic:\n  speed_mps: &v 9.0\nspeed_mps: *v\n")
    msg = _one_line_error(p)
    assert "alias.yaml" in msg and "alias" in msg and "line 3" in msg, msg


def test_an_oversized_scenario_file_is_refused_unread(tmp_path):
    from drive.world.scenario import MAX_SCENARIO_BYTES

    p = tmp_path / "big.yaml"
    p.write_text("name: big\n" + "# padding\n" * (MAX_SCENARIO_BYTES // 10 + 1))
    msg = _one_line_error(p)
    assert "big.yaml" in msg and "too large" in msg and str(MAX_SCENARIO_BYTES) in msg, msg


def test_deeply_nested_yaml_is_a_one_line_error(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    msg = _one_line_error(p)
    assert "deep.yaml" in msg and "nested" in msg, msg


def test_a_huge_unknown_value_is_shown_shortened(tmp_path):
    p = tmp_path / "long.yaml"
    p.write_text("zoom: [" + ", ".join(["1"] * 5000) + "]\n")
    msg = _one_line_error(p)
    assert "long.yaml" in msg and "zoom" in msg and "..." in msg and len(msg) < 400, msg


@pytest.mark.parametrize(
    "text, key", [("track:\n  seeds: [3, 4294967296]\n", "track.seeds[1]"), ("seed: 4294967296\n", "seed")]
)
def test_seeds_beyond_32_bits_are_refused_naming_the_key(tmp_path, text, key):
    # such seeds reached the recorder, which failed writing its int64 columns after driving the episode
    p = tmp_path / "seeds.yaml"
    p.write_text(text)
    msg = _one_line_error(p)
    assert "seeds.yaml" in msg and f"{key}:" in msg and "4294967296" in msg, msg
    p.write_text(text.replace("4294967296", "4294967295"))
    load_scenario(p)


def test_a_fifo_or_device_given_as_the_scenario_is_refused_unread(tmp_path):
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block until a writer comes
    assert "pipe.yaml" in _one_line_error(fifo) and "regular file" in _one_line_error(fifo)
    assert "regular file" in _one_line_error("/dev/zero")
