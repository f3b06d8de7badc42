"""Every value the scenario schema allows works: the edges of each numeric range generate and drive.

A procedural loop is at most ``tracks.MAX_LENGTH_M`` long, so its bends cannot be gentler than a circle
of that length; a scenario whose speed, ``curvature_fraction``, steering and lanes ask for gentler bends
is refused when it is read, naming the file and fields, instead of failing at the first reset.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from drive.errors import UserError
from drive.world import tracks
from drive.world.env import DriveEnv
from drive.world.expert import steer_to_curvature
from drive.world.scenario import Scenario, load_scenario


def _scenario(speed, lanes=1, width=3.5, fraction=1.0, **kw) -> Scenario:
    track = {"lanes": lanes, "lane_width_m": width, "curvature_fraction": fraction, "seeds": [3], "split": None}
    return Scenario.from_dict({"track": track, "speed_mps": speed, **kw}, source="edge.yaml")


def _fastest_accepted(lanes: int, width: float, fraction: float = 1.0) -> float:
    """The largest speed (to 1e-4 m/s) the schema accepts with these track fields, found by bisection."""
    lo, hi = 1e-9, 40.0
    for _ in range(40):
        mid = (lo + hi) / 2
        try:
            _scenario(mid, lanes, width, fraction)
            lo = mid
        except UserError:
            hi = mid
    return lo


def test_speed_40_on_a_procedural_track_is_refused_when_read_naming_file_and_fields(tmp_path):
    p = tmp_path / "fast.yaml"
    p.write_text("speed_mps: 40\n")
    with pytest.raises(UserError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg and "speed_mps" in msg and "40" in msg, msg
    assert "track.curvature_fraction" in msg, msg
    # the racetrack is one fixed layout: any schema speed drives on it (off the road, if too fast)
    p.write_text("track:\n  kind: racetrack\nspeed_mps: 40\n")
    assert load_scenario(p).speed_mps == 40.0


@pytest.mark.parametrize("lanes, width", [(1, 2.5), (1, 6.0), (3, 2.5), (3, 6.0)])
def test_the_fastest_accepted_speed_generates_every_seed_within_the_bounds(lanes, width):
    v = _fastest_accepted(lanes, width)
    assert 25.0 < v < 40.0, v  # a 2 km circle allows ~30.9 m/s at 3 m/s^2
    with pytest.raises(UserError, match="speed_mps"):
        _scenario(v * 1.001, lanes, width)
    kmax = tracks.curvature_limit(v, steer_to_curvature(Scenario().max_steer_rad))
    for seed in (0, 1000, 2**40):
        t = tracks.procedural_track(seed, lanes, width, kmax)
        assert t.max_abs_lane_curvature() <= kmax * 1.002
        assert tracks.MIN_LENGTH_M - 1 <= t.length_m <= tracks.MAX_LENGTH_M + 1
        assert tracks._well_separated(t)


# loop lengths (m) measured before procedural_track learned to fall back to a circle: they pin the shapes
BEFORE = {
    (0, 2, 3.5, 10.0): 608.563294,
    (3, 1, 2.5, 14.0): 1505.432725,
    (1000, 3, 6.0, 7.0): 1771.22955,
    (1009, 2, 4.5, 28.0): 1990.069515,
    (1003, 3, 6.0, 30.0): 1989.851536,  # 30 m/s, 3 x 6 m lanes: found on the last tries
}


@pytest.mark.parametrize("key", list(BEFORE))
def test_generation_is_unchanged_where_it_worked_before(key):
    seed, lanes, width, v = key
    t = tracks.procedural_track(seed, lanes, width, tracks.curvature_limit(v, steer_to_curvature(0.35)))
    assert t.length_m == pytest.approx(BEFORE[key], abs=1e-5)


def test_a_curvature_bound_no_loop_can_meet_is_refused_at_once():
    with pytest.raises(ValueError, match="seed 3"):
        tracks.procedural_track(3, 2, 3.5, 0.0005)


@pytest.mark.parametrize(
    "speed, lanes, width, fraction",
    list(itertools.product([1e-9, 40.0], [1, 3], [2.5, 6.0], [0.05, 1.0])),
)
def test_schema_edges_either_drive_or_are_refused_in_one_line(speed, lanes, width, fraction):
    try:
        sc = _scenario(speed, lanes, width, fraction, duration_s=0.2)
    except UserError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith("edge.yaml: ") and "track.curvature_fraction" in msg, msg
        return
    env = DriveEnv(sc, render_camera=False)
    _, info = env.reset(seed=0)
    assert info["track_length_m"] <= tracks.MAX_LENGTH_M + 1
    obs, _, _, _, info = env.step(np.zeros(1, np.float32))
    assert np.isfinite(info["lateral_offset_m"])
    env.close()


def test_a_generation_failure_in_an_unvalidated_scenario_is_a_one_line_user_error():
    sc = dataclasses.replace(Scenario(), speed_mps=40.0)  # built in code: no validation ran
    env = DriveEnv(sc, render_camera=False)
    with pytest.raises(UserError) as exc:
        env.reset(seed=0)
    msg = str(exc.value)
    assert "\n" not in msg and "speed_mps" in msg and "40" in msg, msg


def test_recording_a_too_fast_scenario_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    from drive.cli import main

    p = tmp_path / "fast.yaml"
    p.write_text("track:\n  split: train\nspeed_mps: 40\n")
    out = tmp_path / "data"
    assert main(["record", "--scenario", str(p), "--out", str(out), "--episodes", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"drive record: error: {p}: speed_mps:"), err
    assert not out.exists()


def test_a_reset_that_fails_after_the_dataset_is_opened_leaves_no_folder(tmp_path, monkeypatch, capsys):
    from drive.cli import main

    def refuse(self, *, seed=None, options=None):
        raise UserError("scenario 'x': no track")

    monkeypatch.setattr(DriveEnv, "reset", refuse)
    out = tmp_path / "data"
    assert main(["record", "--out", str(out), "--episodes", "1", "--no-progress", "--duration-s", "0.2"]) == 2
    assert "no track" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.rglob("*"))
