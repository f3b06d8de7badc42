"""Closed-loop figures: the expert stays on the road, a straight-steering car leaves it and every exit counts once."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from drive.eval import metrics as M
from drive.eval.perturb import Chain, Drop
from drive.eval.rollout import clamp_steering, make_env, run_episode
from drive.eval.simulate import drive_episodes
from drive.policy.reference import ConstantPolicy, ExpertPolicy


def test_expert_as_policy_never_leaves_the_road(make_scenario):
    sc = make_scenario(duration_s=8.0)
    per_episode, _ = drive_episodes(ExpertPolicy(), sc, seeds=[0, 1], progress=False)
    for ep in per_episode:
        assert ep["off_road_events"] == 0
        assert ep["completed_fraction"] == 1.0
        assert ep["mean_abs_lateral_m"] < 0.3
        assert ep["distance_m"] == pytest.approx(sc.speed_mps * sc.duration_s, rel=0.05)


def test_straight_steering_leaves_the_curved_road_and_each_exit_is_counted_once(make_scenario):
    sc = make_scenario(duration_s=30.0)  # 300 m: every test track curves enough for several exits
    env = make_env(sc, "recover", render_camera=False)
    exits = []
    log = run_episode(ConstantPolicy(0.0), env, seed=0, observers=[lambda step: exits.append(not step.info["on_road"])])
    metrics = M.episode_metrics(log)
    assert metrics["off_road_events"] >= 2  # several exits on a curved track ...
    assert metrics["off_road_events"] == sum(exits)  # ... each one counted exactly once
    assert metrics["steps"] == log.planned_steps and metrics["completed_fraction"] == 1.0  # not ended early
    assert metrics["off_road_per_km"] == pytest.approx(metrics["off_road_events"] / (metrics["distance_m"] / 1000))


def test_ending_on_off_road_stops_the_episode_and_counts_one_event(make_scenario):
    sc = make_scenario(duration_s=30.0)
    env = make_env(sc, "terminate", render_camera=False)
    metrics = M.episode_metrics(run_episode(ConstantPolicy(0.0), env, seed=0))
    assert metrics["off_road_events"] == 1
    assert metrics["completed_fraction"] < 1.0


def test_nan_actions_are_clamped_counted_and_warned_once_per_episode(make_scenario):
    sc = make_scenario(duration_s=2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_episode, _ = drive_episodes(ConstantPolicy(float("nan")), sc, seeds=[0, 1], progress=False)
    nonfinite = [w for w in caught if "non-finite" in str(w.message)]
    assert len(nonfinite) == 2  # one per episode
    for ep in per_episode:
        assert ep["nonfinite_actions"] == ep["steps"] == 40
        assert ep["steering_jerk"] == 0.0  # NaN became a steady 0


def test_clamp_steering():
    assert clamp_steering(float("nan")) == (0.0, True)
    assert clamp_steering(float("inf")) == (1.0, True)
    assert clamp_steering(-float("inf")) == (-1.0, True)
    assert clamp_steering(1.7) == (1.0, False)
    assert clamp_steering(-0.25) == (-0.25, False)


def test_dropped_frames_give_the_policy_the_real_elapsed_time(make_scenario, recording_policy):
    sc = make_scenario(duration_s=3.0)
    period = 1.0 / sc.control_hz
    policy = recording_policy()
    env = make_env(sc, "recover", render_camera=False)
    log = run_episode(policy, env, seed=4, perturbations=Chain([Drop(0.5)]), episode=0)
    # the same drop pattern, replayed from the same seed
    replay = Chain([Drop(0.5)])
    replay.reset((4, 0), env.observation_space.shape)
    arrived = [replay.deliver(i) is not None for i in range(log.planned_steps)]
    expected, last = [], None
    for i, ok in enumerate(arrived):
        if ok:
            expected.append(period if last is None else (i - last) * period)
            last = i
    assert log.dropped_frames == arrived.count(False) > 10
    assert len(policy.dts) == arrived.count(True)
    assert policy.dts == pytest.approx(expected)
    assert max(policy.dts) >= 2 * period


def test_held_action_is_the_last_one_while_frames_are_dropped(make_scenario):
    class Counting(ConstantPolicy):
        def step(self, frames, state, dt_s=None, infos=None):
            self.steering = -self.steering if self.steering else 0.2
            return super().step(frames, state, dt_s, infos)

    sc = make_scenario(duration_s=2.0)
    env = make_env(sc, "recover", render_camera=False)
    steps = []
    run_episode(Counting(0.0), env, seed=1, perturbations=Chain([Drop(0.5)]), observers=[steps.append])
    for prev, cur in zip(steps, steps[1:]):
        if cur.dropped:
            assert cur.steering == prev.steering


def test_steering_jerk_definition():
    assert M.steering_jerk([0.3] * 10, 0.05) == 0.0
    assert M.steering_jerk(np.linspace(-1, 1, 20), 0.05) == pytest.approx(0.0, abs=1e-9)
    assert M.steering_jerk([1, -1] * 10, 0.1) == pytest.approx(400.0)


def test_aggregate_pools_distance_and_events():
    def ep(d, e, lat):
        log = M.EpisodeLog(
            planned_steps=4,
            control_period_s=0.1,
            steering=[0, 0, 0, 0],
            lateral_m=[lat] * 4,
            heading_error_rad=[0.0] * 4,
            dt_s=[0.1] * 4,
            distance_m=d,
            off_road_events=e,
        )
        return M.episode_metrics(log)

    agg = M.aggregate([ep(1000.0, 1, 0.1), ep(3000.0, 5, -0.3)])
    assert agg["distance_m"] == 4000.0 and agg["off_road_events"] == 6
    assert agg["off_road_per_km"] == pytest.approx(1.5)
    assert agg["mean_abs_lateral_m"] == pytest.approx(0.2)
    assert agg["max_abs_lateral_m"] == pytest.approx(0.3)
    assert M.episode_metrics(M.EpisodeLog(planned_steps=1, control_period_s=0.1))["off_road_per_km"] is None
    assert math.isclose(M.summarise_across_seeds([{"x": 1.0}, {"x": 3.0}], ["x"])["x_std"], math.sqrt(2))
