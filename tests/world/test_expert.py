"""The expert keeps its lane on every test-split track; DART noise has the asked-for statistics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drive.world.env import DriveEnv
from drive.world.expert import (
    WHEELBASE_M,
    EgoState,
    Expert,
    SteeringNoise,
    curvature_to_steer,
    steer_to_curvature,
)
from drive.world.scenario import load_scenario


def test_steering_curvature_relation_matches_highway_env_bicycle():
    from highway_env.vehicle.kinematics import Vehicle

    assert WHEELBASE_M == Vehicle.LENGTH
    for delta in (-0.3, -0.05, 0.0, 0.1, 0.35):
        assert curvature_to_steer(steer_to_curvature(delta)) == pytest.approx(delta, abs=1e-12)
        # drive highway-env's Vehicle on a constant steering: its yaw rate / speed is the curvature
        v = Vehicle(None, [0.0, 0.0], 0.0, 10.0)
        v.act({"steering": delta, "acceleration": 0.0})
        v.on_state_update = lambda: None
        v.step(0.01)
        assert v.heading / (10.0 * 0.01) == pytest.approx(steer_to_curvature(delta), rel=1e-9, abs=1e-12)


def test_expert_drives_every_default_test_track_for_2km_without_leaving_the_road():
    base = load_scenario("default")
    seeds = base.track.seed_list()
    assert seeds and len(seeds) >= 5
    sc = dataclasses.replace(base, duration_s=2100.0 / base.speed_mps * 1.1)
    env = DriveEnv(sc, off_road="recover", render_camera=False)
    for seed in seeds:
        obs, info = env.reset(seed=seed, options={"track_seed": seed})
        worst = 0.0
        while info["distance_m"] < 2000.0:
            obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
            worst = max(worst, abs(info["lateral_offset_m"]))
            assert not trunc, f"track {seed}: too slow"
        assert info["off_road_events"] == 0, seed
        assert worst < 0.05, (seed, worst)  # near-zero lateral error (a few mm once settled from the start)


def test_expert_recovers_from_an_offset_and_is_a_function_of_the_state():
    env = DriveEnv(None, render_camera=False)
    obs, info = env.reset(seed=1, options={"lateral_offset_m": 1.0, "heading_offset_rad": 0.1})
    e = env.expert
    state = env.state
    assert e.steering(state) == info["expert_steering"]
    assert e.steering(dataclasses.replace(state, index_hint=None)) == pytest.approx(info["expert_steering"], abs=1e-9)
    assert info["expert_steering"] < 0  # left of the lane and pointing left: steer right
    lat = []
    for _ in range(120):  # 6 s
        obs, r, term, trunc, info = env.step(np.array([info["expert_steering"]], np.float32))
        lat.append(info["lateral_offset_m"])
    assert not term and abs(lat[-1]) < 0.02 and min(lat) > -0.2  # settles, no big overshoot
    with pytest.raises(ValueError, match="max_steer_rad"):
        Expert(env.track, 0.0)
    assert isinstance(state, EgoState)


def test_steering_noise_is_an_ou_process_with_the_given_std():
    n = SteeringNoise(0.2, dt_s=0.05, correlation_s=0.5, rng=np.random.default_rng(0))
    x = np.array([n.sample() for _ in range(40000)])
    assert x.std() == pytest.approx(0.2, rel=0.1) and abs(x.mean()) < 0.03
    lag1 = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert lag1 == pytest.approx(math.exp(-0.05 / 0.5), abs=0.02)
    assert SteeringNoise(0.0, 0.05).sample() == 0.0
    with pytest.raises(ValueError, match="std"):
        SteeringNoise(-0.1, 0.05)
