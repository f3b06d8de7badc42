"""Reference drivers that need no training: the scripted expert and a constant steering.

Both implement :class:`drive.policy.protocol.Driver`, as :class:`drive.policy.model.DrivingPolicy`
does, so the rollout (:func:`drive.eval.rollout.run_episode`) drives them the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class ExpertPolicy:
    """The scripted expert as a driver: returns ``info["expert_steering"]`` of the frame it is shown.

    The rollout hands every driver the env's ``info`` that came with each delivered frame, so latency
    and dropped frames delay the expert too. Its steering is already in the env's normalisation
    (``max_steer_rad`` is None).
    """

    model_name = "expert"
    max_steer_rad: float | None = None

    def __init__(self) -> None:
        self.neuron_labels: list[str] = []

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, 0), np.float32)  # stateless (NumPy, so the reference drivers need no torch)

    def step(
        self, frames: np.ndarray, state: Any, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, Any]:
        if infos is None:
            raise ValueError("ExpertPolicy.step: needs the env's info of each frame (infos=...)")
        return np.array([float(i["expert_steering"]) for i in infos], dtype=np.float64), state

    def neuron_activity(self, state: np.ndarray) -> np.ndarray:
        return np.zeros((state.shape[0], 0), np.float32)


class ConstantPolicy:
    """Always commands the same normalised steering (NaN and ±inf allowed: for tests of the clamp)."""

    max_steer_rad: float | None = None

    def __init__(self, steering: float = 0.0):
        self.steering = float(steering)
        self.model_name = f"constant({self.steering:g})"
        self.neuron_labels: list[str] = []

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, 0), np.float32)  # stateless (NumPy, so the reference drivers need no torch)

    def step(
        self, frames: np.ndarray, state: Any, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, Any]:
        return np.full(len(frames), self.steering, dtype=np.float64), state

    def neuron_activity(self, state: np.ndarray) -> np.ndarray:
        return np.zeros((state.shape[0], 0), np.float32)
