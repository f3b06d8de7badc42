"""What can drive the car: the :class:`Driver` protocol.

Every driver (a trained :class:`drive.policy.model.DrivingPolicy`, the scripted expert, a constant
policy, an exported ONNX policy) implements it, and the one rollout loop calls nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Driver(Protocol):
    """A stateful steering policy over camera frames.

    ``step`` takes a batch of B frames (uint8, B×H×W×3, RGB), the recurrent state returned by the
    previous call (or by :meth:`initial_state`), the elapsed time since each sample's previous frame
    ``dt_s`` (seconds, shape (B,) or a scalar) and the env's info dict of each frame (drivers that do
    not need it ignore it). It returns the normalised steering, shape (B,), in [-1, 1] units of
    :attr:`max_steer_rad` (``None``: already in the env's normalisation), and the new state.
    """

    model_name: str
    """Name shown in reports."""
    neuron_labels: list[str]
    """One label per entry of :meth:`neuron_activity`; empty for drivers without neurons."""
    max_steer_rad: float | None
    """Front-wheel angle that steering 1.0 stands for, rad; None when it is the env's own."""

    def initial_state(self, batch: int) -> Any:
        """The state before the first frame, for ``batch`` samples."""
        ...

    def step(
        self, frames: np.ndarray, state: Any, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, Any]:
        """One frame per sample: (steering (B,), new state)."""
        ...

    def neuron_activity(self, state: Any) -> np.ndarray:
        """Neuron potentials of ``state``, (B, N); N = len(neuron_labels)."""
        ...
