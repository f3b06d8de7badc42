"""The controller interface every recurrent core implements (:class:`Controller`).

A controller maps a sequence of feature vectors (B, T, F) to outputs (B, T, out) and carries
its whole memory in one tensor (B, state_size), so callers can run a sequence whole, in pieces,
or one frame at a time (:meth:`Controller.step`) and get the same result.

``timespans`` (B, T) are elapsed times in model units (1.0 = one nominal frame period; None =
all ones). Continuous-time models (the LTC variants, CT-RNN, CfC) integrate over them;
discrete-time models (LSTM, GRU, feedforward) ignore them.

The concrete controllers live in :mod:`drive.core.ltc_controller` and :mod:`drive.core.baselines`;
the registry that builds them by name is :mod:`drive.core.controllers`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from drive.core.ltc import check_sequence, check_timespans


class Controller(nn.Module):
    """Base class: input checks, the one-frame :meth:`step`, and the shared attributes.

    Subclasses set ``name``, ``in_features``, ``out_features``, ``state_size``, ``config``,
    ``neuron_labels`` and implement :meth:`_forward` (inputs already checked) and
    :meth:`neuron_activity`.
    """

    name: str
    in_features: int
    out_features: int
    state_size: int
    config: dict[str, Any]
    neuron_labels: list[str]
    #: Whether ``timespans`` change the result.
    uses_timespans: bool = False

    def initial_state(self, batch: int, device=None, dtype=None) -> Tensor:
        """The state before any frame: zeros of shape (batch, state_size)."""
        ref = next(self.parameters())
        return torch.zeros(batch, self.state_size, device=device or ref.device, dtype=dtype or ref.dtype)

    def forward(self, x: Tensor, state: Tensor | None = None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run a sequence: ``x`` (B, T, F), ``state`` (B, S) or None (zeros), ``timespans``
        (B, T) or None (ones). Returns outputs (B, T, out) and the final state (B, S)."""
        state, timespans = check_sequence(x, state, timespans, self.in_features, self.state_size, self.initial_state)
        return self._forward(x, state, timespans)

    def step(self, x: Tensor, state: Tensor | None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One frame: ``x`` (B, F), ``state`` (B, S), ``timespans`` (B,) or None.
        Returns output (B, out) and the new state (B, S)."""
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a tensor of shape (batch, {self.in_features}), got {_shape(x)}")
        if timespans is not None:
            timespans = check_timespans(timespans, (x.shape[0],)).unsqueeze(1)
        y, state = self.forward(x.unsqueeze(1), state, timespans)
        return y[:, 0], state

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def neuron_activity(self, state: Tensor) -> Tensor:
        """Per-neuron activity to plot, (B, len(neuron_labels))."""
        raise NotImplementedError


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
