"""The learner's deviation kinematics: on the path with the recorded steering; a bias drifts as the bicycle does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from highway_env.vehicle.kinematics import Vehicle

from drive.replay.env import ReplayEnv
from drive.replay.path import WHEELBASE_M, advance, slip_angle
from drive.world.expert import steer_to_curvature

MAX_STEER_RAD = 0.35
"""The recordings' max_steer_rad (tests/replay/conftest.py), rad."""


def test_the_wheelbase_is_the_simulators():
    assert WHEELBASE_M == Vehicle.LENGTH == 5.0


@pytest.mark.parametrize("u", [-0.8, -0.2, 0.0, 0.35, 1.0])
def test_the_recorded_steering_keeps_the_learner_on_the_path(u):
    delta = u * MAX_STEER_RAD
    k, b = steer_to_curvature(delta), slip_angle(delta)
    e, psi = 0.0, 0.0
    for _ in range(200):
        e, psi = advance(e, psi, 0.5, k, b, k, b)
    assert (e, psi) == (0.0, 0.0)


def test_a_learner_replaying_the_recorded_steering_in_the_env_stays_on_the_path(recording):
    steering = np.sin(np.arange(30) / 3.0) * 0.6
    env = ReplayEnv(recording(steering))
    obs, info = env.reset(seed=0)
    frames = env.recording.frames(0)
    for k in range(len(steering) - 1):
        obs, reward, terminated, truncated, info = env.step(np.array([steering[k]], np.float32))
        assert info["lateral_offset_m"] == 0.0 and info["heading_error_rad"] == 0.0
        assert np.array_equal(obs, frames[k + 1]) and info["fill_fraction"] == 0.0
        assert reward == pytest.approx(10.0 / env.recording.fps, rel=1e-5)
    assert truncated and not terminated and info["interventions"] == 0
    assert info["distance_m"] == pytest.approx(10.0 * (len(steering) - 1) / env.recording.fps, rel=1e-5)
    assert env.max_steer_rad == MAX_STEER_RAD


def _circle(u: float, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offset and heading error of a bicycle at constant steering u from a straight path, after s m of it:
    the reference point runs on a circle of curvature κ leaving at the slip angle β, so the direction of
    travel χ obeys sin χ = sin β + κ·s and e = (cos β - cos χ)/κ, ψ = χ - β."""
    delta = u * MAX_STEER_RAD
    k, b = steer_to_curvature(delta), slip_angle(delta)
    chi = np.arcsin(np.sin(b) + k * s)
    return (math.cos(b) - np.cos(chi)) / k, chi - b


@pytest.mark.parametrize("u", [0.05, -0.1, 0.3])
def test_a_constant_bias_drifts_at_the_bicycles_rate(u):
    s = np.arange(1, 21) * 0.5
    e_true, psi_true = _circle(u, s)
    delta = u * MAX_STEER_RAD
    e, psi, got = 0.0, 0.0, []
    for _ in s:
        e, psi = advance(e, psi, 0.5, 0.0, 0.0, steer_to_curvature(delta), slip_angle(delta))
        got.append((e, psi))
    got = np.array(got)
    np.testing.assert_allclose(got[:, 0], e_true, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], psi_true, rtol=1e-6, atol=1e-9)


def test_a_constant_bias_in_the_env_matches_the_bicycle_and_the_simulators_vehicle(recording):
    u, n = 0.1, 20
    env = ReplayEnv(recording(np.zeros(n + 1)), max_offset_m=10.0, max_heading_rad=1.0)
    env.reset(seed=0)
    for _ in range(n):
        _, _, _, _, info = env.step(np.array([u], np.float32))
    s = info["distance_m"]
    e_true, psi_true = _circle(u, np.array([s]))
    assert info["lateral_offset_m"] == pytest.approx(e_true[0], rel=1e-6)
    assert info["heading_error_rad"] == pytest.approx(psi_true[0], rel=1e-6)
    # highway-env's own vehicle (explicit Euler at 40 Hz, as Drive-v0 steps it) lands within 3 cm
    car = Vehicle(None, [0.0, 0.0], 0.0, 10.0)
    car.action = {"steering": u * MAX_STEER_RAD, "acceleration": 0.0}
    while car.position[0] < s:
        car.step(1 / 40)
    x, y = car.position
    e_car, _ = _circle(u, np.array([x]))
    assert abs(y - e_car[0]) < 0.03
    assert info["lateral_offset_m"] > 0.5  # a left bias drifts left, visibly


def test_an_intervention_puts_the_learner_back_on_the_path(recording):
    env = ReplayEnv(recording(np.zeros(40)), max_offset_m=1.0)
    obs, info = env.reset(seed=0)
    frames = env.recording.frames(0)
    events, peak = [], 0.0
    for k in range(39):
        obs, _, _, truncated, info = env.step(np.array([-1.0], np.float32))
        peak = max(peak, abs(info["lateral_offset_m"]))
        if info["intervened"]:
            events.append(k)
            assert info["lateral_offset_m"] == info["heading_error_rad"] == 0.0
            assert np.array_equal(obs, frames[k + 1])
        elif k + 1 < 39:
            assert info["fill_fraction"] > 0.0
    assert len(events) >= 2 and info["interventions"] == info["off_road_events"] == len(events)
    assert peak <= 1.0


def test_the_heading_limit_intervenes_too(recording):
    env = ReplayEnv(recording(np.zeros(40)), max_offset_m=100.0, max_heading_rad=math.radians(10))
    env.reset(seed=0)
    for _ in range(39):
        _, _, _, _, info = env.step(np.array([1.0], np.float32))
        assert abs(info["heading_error_rad"]) <= math.radians(10)
    assert info["interventions"] >= 1
