"""Reference drivers that need no training: the scripted expert and a constant steering.

Both implement :class:`drive.policy.protocol.Driver`, as :class:`drive.policy.model.DrivingPolicy`
does, so the rollout (:func:`drive.eval.rollout.run_episode`) drives them the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class _Stateless:
    """What the reference drivers share: no state (a NumPy (B, 0) array, so they need no torch) and no
    neurons; steering already in the env's normalisation."""

    max_steer_rad: float | None = None

    @property
    def neuron_labels(self) -> list[str]:
        return []

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, 0), np.float32)

    def neuron_activity(self, state: np.ndarray) -> np.ndarray:
        return np.zeros((state.shape[0], 0), np.float32)


class ExpertPolicy(_Stateless):
    """The scripted expert as a driver: returns ``info["expert_steering"]`` of the frame it is shown.

    The rollout hands every driver the env's ``info`` that came with each delivered frame, so latency
    and dropped frames delay the expert too. Its steering is already in the env's normalisation
    (``max_steer_rad`` is None).
    """

    model_name = "expert"

    def step(
        self, frames: np.ndarray, state: Any, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, Any]:
        if infos is None:
            raise ValueError("ExpertPolicy.step: needs the env's info of each frame (infos=...)")
        return np.array([float(i["expert_steering"]) for i in infos], dtype=np.float64), state


class ConstantPolicy(_Stateless):
    """Always commands the same normalised steering (NaN and ±inf allowed: for tests of the clamp)."""

    def __init__(self, steering: float = 0.0):
        self.steering = float(steering)
        self.model_name = f"constant({self.steering:g})"

    def step(
        self, frames: np.ndarray, state: Any, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, Any]:
        return np.full(len(frames), self.steering, dtype=np.float64), state
