"""DriveEnv: Gymnasium compliance, determinism, info, termination, recovery, hooks and traffic."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drive.world  # noqa: F401  (registers drive/Drive-v0)
from drive.world.env import DriveEnv
from drive.world.scenario import load_scenario
from drive.world.tracks import TEST_SEEDS

INFO_KEYS = {
    "lateral_offset_m",
    "heading_error_rad",
    "on_road",
    "crashed",
    "distance_m",
    "speed_mps",
    "curvature_ahead_inv_m",
    "expert_steering",
    "dt_s",
    "steering_applied",
    "x_m",
    "y_m",
    "yaw_rad",
    "off_road_events",
    "track_length_m",
    "lap_fraction",
}


@pytest.mark.parametrize("scenario", [None, "traffic", "racetrack"])
def test_check_env_passes(scenario):
    env = DriveEnv(scenario)
    check_env(env)
    env.close()


def test_make_by_id_and_check_env():
    env = gym.make("drive/Drive-v0", scenario="default", render_mode="rgb_array")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=5)
    assert env.observation_space.contains(obs) and obs.shape == (78, 200, 3)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert isinstance(r, float) and set(info) == INFO_KEYS
    env.close()


def _rollout(seed, n=15, **kw):
    env = DriveEnv(kw.pop("scenario", None), **kw)
    obs, info = env.reset(seed=seed)
    frames, infos = [obs], [info]
    actions = np.sin(np.arange(n) / 3.0) * 0.3
    for a in actions:
        obs, r, term, trunc, info = env.step(np.array([a], np.float32))
        frames.append(obs)
        infos.append(info)
    return frames, infos


def test_same_seed_same_observations_and_infos_different_seeds_differ():
    f1, i1 = _rollout(3, scenario="traffic")
    f2, i2 = _rollout(3, scenario="traffic")
    for a, b in zip(f1, f2):
        np.testing.assert_array_equal(a, b)
    assert i1 == i2
    f3, i3 = _rollout(4, scenario="traffic")
    assert any(np.abs(a.astype(int) - b).mean() > 5 for a, b in zip(f1, f3))
    assert i1[0]["x_m"] != i3[0]["x_m"]


def test_info_keys_and_values_describe_the_state():
    env = DriveEnv(None)
    obs, info = env.reset(seed=0, options={"track_seed": 1002, "lateral_offset_m": 0.4, "heading_offset_rad": -0.05})
    assert set(info) == INFO_KEYS | {"world"}  # the reset info also holds the drawn world
    assert env.track.seed == 1002 and env.track_seed == 1002
    assert info["lateral_offset_m"] == pytest.approx(0.4, abs=0.01)
    assert info["heading_error_rad"] == pytest.approx(-0.05, abs=1e-3)
    assert info["on_road"] and not info["crashed"] and info["off_road_events"] == 0
    assert info["speed_mps"] == 10.0 and info["dt_s"] == pytest.approx(0.05)
    assert info["track_length_m"] == pytest.approx(env.track.length_m) and 0 <= info["lap_fraction"] < 1
    assert -1 <= info["expert_steering"] <= 1
    obs, r, term, trunc, info2 = env.step(np.array([2.5], np.float32))  # clipped
    assert info2["steering_applied"] == 1.0
    assert r == pytest.approx(info2["distance_m"]) and 0.45 < info2["distance_m"] < 0.56  # 10 m/s for 0.05 s
    assert math.hypot(info2["x_m"] - info["x_m"], info2["y_m"] - info["y_m"]) == pytest.approx(0.5, abs=1e-3)
    # steering +1 turns left: the heading increases (counter-clockwise)
    assert (info2["yaw_rad"] - info["yaw_rad"] + math.pi) % (2 * math.pi) - math.pi > 0.01


def test_curvature_ahead_reads_the_track_ahead():
    env = DriveEnv(None)
    obs, info = env.reset(seed=1, options={"track_seed": 1004, "start_s_m": 100.0})
    o = env.track.lane_offsets_m[env.lane]
    assert info["curvature_ahead_inv_m"] == pytest.approx(env.track.curvature_at(100.0 + 5.0, o), abs=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises(bad):
    env = DriveEnv(None, render_camera=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([bad], np.float32))
    with pytest.raises(ValueError, match="one steering value"):
        env.step(np.zeros(2, np.float32))


def test_bad_constructor_and_reset_arguments():
    with pytest.raises(ValueError, match="off_road"):
        DriveEnv(None, off_road="bounce")
    with pytest.raises(ValueError, match="render_mode"):
        DriveEnv(None, render_mode="human")
    env = DriveEnv(None, render_camera=False)
    with pytest.raises(ValueError, match="unknown option 'lane'"):
        env.reset(seed=0, options={"lane": 1})
    with pytest.raises(ValueError, match="track_seed"):
        env.reset(seed=0, options={"track_seed": -3})
    with pytest.raises(ValueError, match="lateral_offset_m"):
        env.reset(seed=0, options={"lateral_offset_m": float("nan")})
    with pytest.raises(ValueError, match="racetrack"):
        DriveEnv("racetrack", render_camera=False).reset(seed=0, options={"track_seed": 3})


def test_leaving_the_road_terminates():
    env = DriveEnv(None, render_camera=False)
    obs, info = env.reset(seed=0)
    for _ in range(400):
        obs, r, term, trunc, info = env.step(np.array([1.0], np.float32))
        if term:
            break
    assert term and not trunc and not info["on_road"] and not info["crashed"]
    # the car centre is beyond the road edge, by less than one step of travel
    half = env.track.half_width_m
    d = info["lateral_offset_m"] + env.track.lane_offsets_m[env.lane]
    assert half < abs(d) < half + 0.6


def test_recover_mode_counts_events_and_puts_the_car_back():
    env = DriveEnv(None, render_camera=False, off_road="recover")
    obs, info = env.reset(seed=0)
    events = []
    for _ in range(600):
        obs, r, term, trunc, info = env.step(np.array([1.0], np.float32))
        assert not term
        if not info["on_road"]:
            events.append(info)
    assert len(events) >= 2 and info["off_road_events"] == len(events)
    for e in events:  # back on the lane centre, facing along the lane
        assert abs(e["lateral_offset_m"]) < 1e-3 and abs(e["heading_error_rad"]) < 1e-3


def test_truncates_at_duration(make_scenario):
    env = DriveEnv(make_scenario(duration_s=1.0, control_hz=10.0, sim_hz=50.0), render_camera=False)
    obs, info = env.reset(seed=0)
    for k in range(10):
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        assert trunc == (k == 9) and not term
    assert info["dt_s"] == pytest.approx(0.1)


def test_push_and_recenter_hooks():
    env = DriveEnv(None)
    obs, info = env.reset(seed=2)
    env.unwrapped.push(1.2)
    obs2, r, term, trunc, info2 = env.step(np.array([0.0], np.float32))
    assert info2["lateral_offset_m"] == pytest.approx(1.2 + info["lateral_offset_m"], abs=0.1)
    assert info2["expert_steering"] < -0.1  # the expert steers back right
    env.unwrapped.recenter()
    obs3, r, term, trunc, info3 = env.step(np.array([info2["expert_steering"]], np.float32))
    assert abs(info3["lateral_offset_m"]) < 0.1
    with pytest.raises(ValueError, match="finite"):
        env.push(float("nan"))
    top = env.render_topdown(path_xy=np.array([[info["x_m"], info["y_m"]], [info3["x_m"], info3["y_m"]]]))
    assert top.dtype == np.uint8 and top.shape[2] == 3


def test_traffic_drives_beside_the_ego_and_crashes_are_detected(make_scenario):
    sc = make_scenario(track={"lanes": 2, "ego_lane": 0}, traffic={"vehicles": 10, "speed_mps": 3.0}, duration_s=120.0)
    env = DriveEnv(sc, render_camera=False)
    obs, info = env.reset(seed=0)
    # cruising in its own lane, the ego never meets the traffic
    for _ in range(400):
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        assert not term and not info["crashed"]
    # make the expert change into the traffic lane: the ego (10 m/s) runs into a car at ~3 m/s
    env.lane = 1
    for _ in range(2000):
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        if term:
            break
    assert term and info["crashed"] and info["on_road"]
    # in recover mode a crash is a takeover, not the end
    env = DriveEnv(sc, render_camera=False, off_road="recover")
    obs, info = env.reset(seed=0)
    env.lane = 1
    crashes = 0
    for _ in range(2000):
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        crashes += info["crashed"]
        assert not term
        if crashes:
            break
    assert crashes == 1 and info["off_road_events"] == 1


def test_traffic_is_visible_in_the_camera(make_scenario):
    sc = make_scenario(track={"lanes": 3, "ego_lane": 1}, traffic={"vehicles": 30, "speed_mps": 9.0})
    env = DriveEnv(sc)
    env.reset(seed=0)
    boxes = env._boxes()
    assert len(boxes) == 30
    lanes = {env.track.lane_of(env.track.project(b.x_m, b.y_m)[1]) for b in boxes}
    assert lanes == {0, 2}  # never in the ego's lane
    plain = DriveEnv(make_scenario(track={"lanes": 3, "ego_lane": 1}))
    obs_t, obs_p = env.reset(seed=0)[0], plain.reset(seed=0)[0]
    assert np.any(obs_t != obs_p)


def test_racetrack_scenario_drives():
    sc = load_scenario("racetrack")
    env = DriveEnv(sc, render_camera=False)
    obs, info = env.reset(seed=0)
    assert env.track.name == "racetrack" and info["track_length_m"] == pytest.approx(env.track.length_m)
    for _ in range(int(40 * sc.control_hz)):
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        assert not term
    assert info["distance_m"] > 300  # nearly a lap (361 m)


def test_reset_seeds_take_the_tracks_in_turn_and_the_option_overrides():
    env = DriveEnv("default", render_camera=False)
    seeds = list(TEST_SEEDS)
    taken = []
    for s in range(len(seeds) + 2):
        env.reset(seed=s)
        taken.append(env.track_seed)
    assert taken[: len(seeds)] == seeds  # seeds 0..n-1 drive every test track once
    assert taken[len(seeds) :] == seeds[:2]  # and then wrap around
    env.reset(seed=3, options={"track_seed": 1007})
    assert env.track_seed == 1007


# --- Gymnasium conventions: seeding, registration, fresh infos, vector envs ---------------------------


def test_unseeded_reset_draws_from_entropy_and_the_scenario_seed_only_when_asked():
    a, b = DriveEnv(None, render_camera=False), DriveEnv(None, render_camera=False)
    starts = {(a.reset()[1]["x_m"], a.track_seed), (b.reset()[1]["x_m"], b.track_seed)}
    assert len(starts) == 2  # two fresh envs do not repeat each other
    asked = load_scenario("default")
    asked.seed = 5
    c, d = DriveEnv(asked, render_camera=False), DriveEnv(None, render_camera=False)
    assert c.reset()[1]["x_m"] == d.reset(seed=5)[1]["x_m"]
    # after a seeded reset the unseeded ones continue the env's generator (reproducibly)
    e, f = DriveEnv(None, render_camera=False), DriveEnv(None, render_camera=False)
    e.reset(seed=3)
    f.reset(seed=3)
    assert e.reset()[1]["world"] == f.reset()[1]["world"]


def test_registered_with_max_episode_steps_and_check_env_gives_no_warnings():
    import warnings

    env = gym.make("drive/Drive-v0", scenario="default", render_mode="rgb_array")
    assert env.spec.max_episode_steps == 1200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [str(w.message) for w in caught]
    obs, info = env.reset(seed=0)
    _, _, _, _, i1 = env.step(np.zeros(1, np.float32))
    _, _, _, _, i2 = env.step(np.zeros(1, np.float32))
    assert i1 is not i2 and i1 is not info
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_distinct_after_unseeded_reset_reproducible_after_seeded(mode):
    def rollout(seed):
        envs = gym.make_vec("drive/Drive-v0", num_envs=2, vectorization_mode=mode, scenario="default")
        try:
            obs, info = envs.reset(seed=seed)
            obs, _, _, _, info2 = envs.step(np.zeros((2, 1), np.float32))
            return obs, info["x_m"], info2["x_m"]
        finally:
            envs.close()

    obs, x0, _ = rollout(None)
    assert obs.shape == (2, 78, 200, 3) and x0[0] != x0[1]
    assert np.abs(obs[0].astype(int) - obs[1]).mean() > 1  # distinct sub-envs
    a, b = rollout(11), rollout(11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[1][0] != a[1][1]  # seeds 11 and 12: different sub-envs
