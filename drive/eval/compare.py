"""The exported ONNX policy against its torch original, closed loop, through the one rollout.

:func:`closed_loop_compare` drives :func:`drive.eval.rollout.run_episode` with a :class:`Shadowed`
driver: the torch policy steers the car, and every frame it is given (with the same elapsed time
``dt_s``) goes to the exported :class:`~drive.policy.export.OnnxPolicy` too, each runtime with its own
recurrent state. So the comparison sees the rollout's own frame delivery, steering scale and clamp.
The figures are the largest |steering difference| and |state difference| over the run (issue 10:
``max_abs_steering_diff <= 1e-4``; ``tools/check_onnx.py`` prints them).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from drive.eval.rollout import Step, make_env, run_episode
from drive.eval.simulate import resolve_scenario
from drive.policy.protocol import Driver

__all__ = ["Shadowed", "closed_loop_compare"]


class Shadowed:
    """A driver that drives with ``leader`` and feeds each call to ``follower`` too; implements
    :class:`~drive.policy.protocol.Driver`.

    The state is the pair (leader's, follower's). The largest differences between the two so far are
    kept in ``max_abs_steering_diff`` and ``max_abs_state_diff``."""

    def __init__(self, leader: Driver, follower: Driver) -> None:
        self.leader, self.follower = leader, follower
        self.model_name = leader.model_name
        self.max_steer_rad = leader.max_steer_rad
        self.neuron_labels = list(getattr(leader, "neuron_labels", []))
        self.max_abs_steering_diff = 0.0
        self.max_abs_state_diff = 0.0

    def initial_state(self, batch: int) -> tuple[Any, Any]:
        return self.leader.initial_state(batch), self.follower.initial_state(batch)

    def step(self, frames, state, dt_s: Any = None, infos: Any = None) -> tuple[np.ndarray, tuple[Any, Any]]:
        s_lead, s_follow = (None, None) if state is None else state
        a_lead, s_lead = self.leader.step(frames, s_lead, dt_s, infos=infos)
        a_follow, s_follow = self.follower.step(frames, s_follow, dt_s, infos=infos)
        d_steer = np.abs(np.asarray(a_lead, dtype=np.float64) - np.asarray(a_follow, dtype=np.float64))
        self.max_abs_steering_diff = max(self.max_abs_steering_diff, float(d_steer.max()))
        lead, follow = np.asarray(s_lead, dtype=np.float64), np.asarray(s_follow, dtype=np.float64)
        if follow.size:
            self.max_abs_state_diff = max(self.max_abs_state_diff, float(np.abs(lead - follow).max()))
        return a_lead, (s_lead, s_follow)

    def neuron_activity(self, state) -> np.ndarray:
        return self.leader.neuron_activity(state[0])


def closed_loop_compare(
    checkpoint: str | os.PathLike,
    onnx_folder: str | os.PathLike,
    steps: int = 1000,
    scenario: Any = "default",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Drive ``steps`` closed-loop control steps with the torch policy of ``checkpoint`` (steering the
    car) and feed every frame and elapsed time also to the exported policy in ``onnx_folder``, each with
    its own state. Episodes (reset seeds ``seed, seed+1, …``) follow one another until ``steps`` steps
    have been driven. Returns the largest |steering difference| and |state difference| over the run."""
    from drive.policy.export import OnnxPolicy
    from drive.policy.load import load_driver

    driver = Shadowed(load_driver(checkpoint, "torch"), OnnxPolicy(onnx_folder))
    sc = resolve_scenario(scenario)
    observers: list[Callable[[Step], None]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="closed loop torch vs onnx")
        observers.append(lambda step: bar.update(1))
    done, episode = 0, 0
    try:
        while done < steps:
            # the episode ends after the steps still to drive, or earlier (a crash in terminate mode)
            remaining = dataclasses.replace(sc, duration_s=min(sc.duration_s, (steps - done) / sc.control_hz))
            env = make_env(remaining)
            try:
                log = run_episode(driver, env, seed + episode, observers=observers, episode=episode)
            finally:
                env.close()
            done += max(1, len(log.steering))
            episode += 1
    finally:
        if bar is not None:
            bar.close()
    return {
        "steps": steps,
        "max_abs_steering_diff": driver.max_abs_steering_diff,
        "max_abs_state_diff": driver.max_abs_state_diff,
    }
