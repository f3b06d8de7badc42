"""Baseline controllers the NCP is compared against: feedforward, LSTM, GRU, CT-RNN and CfC.

All implement :class:`drive.core.controller_base.Controller` (state packed in one tensor). Each is a
recurrent (or feedforward) core on the features plus a linear read-out to ``out_features``.

* :class:`FeedforwardController` - no memory: one hidden layer per frame; ignores timespans.
* :class:`LSTMController` - ``torch.nn.LSTM``; state ``cat[h, c]``; ignores timespans.
* :class:`GRUController` - ``torch.nn.GRU``; state ``h``; ignores timespans.
* :class:`CTRNNController` - continuous-time RNN (Funahashi & Nakamura 1993),
  ``dx/dt = -x/tau + tanh(W_in u + W_rec x + b)``, ``ode_unfolds`` semi-implicit Euler steps per
  frame over the frame's timespan.
* :class:`CfCController` - closed-form continuous-time network (Hasani et al., Nature MI 2022,
  Eq. 10): ``h' = tanh(g) * (1 - sigmoid(f_a*t + f_b)) + sigmoid(f_a*t + f_b) * tanh(k)`` with
  ``g, k, f_a, f_b`` heads on a shared backbone of ``[u, h]``; ``t`` the frame's timespan.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drive.core.controller_base import Controller
from drive.core.limits import MAX_HIDDEN, MAX_ODE_UNFOLDS, check_int


def _check_hidden(name: str, value: Any) -> int:
    """A width or step count, bounded (:mod:`drive.core.limits`) so a damaged config cannot hang torch."""
    high = MAX_ODE_UNFOLDS if name == "ode_unfolds" else MAX_HIDDEN
    return check_int(name, value, 1, high)


class _Baseline(Controller):
    """Common set-up: seeded initialisation and the config dict."""

    def __init__(
        self, name: str, in_features: int, out_features: int, hidden: int, seed: int | None, **extra: Any
    ) -> None:
        super().__init__()
        self.name = name
        self.in_features, self.out_features = in_features, out_features
        self.hidden = _check_hidden("hidden", hidden)
        self.config = {
            "name": name,
            "in_features": in_features,
            "out_features": out_features,
            "hidden": hidden,
            "seed": seed,
            **extra,
        }
        self.neuron_labels = [f"h{i}" for i in range(hidden)]
        self._seed = seed

    def _init_modules(self) -> None:
        """Build the submodules under the controller's seed."""
        with torch.random.fork_rng(devices=[]):
            if self._seed is not None:
                torch.manual_seed(self._seed)
            self.build()

    def build(self) -> None:
        raise NotImplementedError

    def neuron_activity(self, state: Tensor) -> Tensor:
        return state[:, : self.hidden]


class FeedforwardController(_Baseline):
    """No memory: ``y_t = readout(tanh(W x_t + b))`` frame by frame. The state is the hidden
    layer of the last frame (for plots); it is never read back. Ignores timespans."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, seed: int | None = 0) -> None:
        super().__init__("feedforward", in_features, out_features, hidden, seed)
        self.state_size = self.hidden
        self._init_modules()

    def build(self) -> None:
        self.layer = nn.Linear(self.in_features, self.hidden)
        self.readout = nn.Linear(self.hidden, self.out_features)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.layer(x))
        return self.readout(h), h[:, -1]


class LSTMController(_Baseline):
    """``torch.nn.LSTM`` with a linear read-out; state ``cat[h, c]`` (B, 2*hidden). Ignores timespans."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, seed: int | None = 0) -> None:
        super().__init__("lstm", in_features, out_features, hidden, seed)
        self.state_size = 2 * self.hidden
        self._init_modules()

    def build(self) -> None:
        self.rnn = nn.LSTM(self.in_features, self.hidden, batch_first=True)
        self.readout = nn.Linear(self.hidden, self.out_features)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        h0 = state[:, : self.hidden].unsqueeze(0).contiguous()
        c0 = state[:, self.hidden :].unsqueeze(0).contiguous()
        out, (h, c) = self.rnn(x, (h0, c0))
        return self.readout(out), torch.cat([h[0], c[0]], 1)


class GRUController(_Baseline):
    """``torch.nn.GRU`` with a linear read-out; state ``h`` (B, hidden). Ignores timespans."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, seed: int | None = 0) -> None:
        super().__init__("gru", in_features, out_features, hidden, seed)
        self.state_size = self.hidden
        self._init_modules()

    def build(self) -> None:
        self.rnn = nn.GRU(self.in_features, self.hidden, batch_first=True)
        self.readout = nn.Linear(self.hidden, self.out_features)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        out, h = self.rnn(x, state.unsqueeze(0).contiguous())
        return self.readout(out), h[0]


class CTRNNController(_Baseline):
    """Continuous-time RNN ``dx/dt = -x/tau + tanh(W_in u + W_rec x + b)``, ``tau = softplus(.)``
    per neuron (model time units), integrated over each frame's timespan by ``ode_unfolds``
    semi-implicit Euler steps ``x <- (x + dt*tanh(...)) / (1 + dt/tau)``; linear read-out of x."""

    uses_timespans = True

    def __init__(
        self, in_features: int, out_features: int, hidden: int = 64, seed: int | None = 0, ode_unfolds: int = 6
    ) -> None:
        super().__init__("ctrnn", in_features, out_features, hidden, seed, ode_unfolds=ode_unfolds)
        self.ode_unfolds = _check_hidden("ode_unfolds", ode_unfolds)
        self.state_size = self.hidden
        self._init_modules()

    def build(self) -> None:
        self.input = nn.Linear(self.in_features, self.hidden)
        self.recurrent = nn.Linear(self.hidden, self.hidden, bias=False)
        #: raw time constants; tau = softplus(tau_raw), initialised to 1.0
        self.tau_raw = nn.Parameter(torch.full((self.hidden,), 0.5413248546129181))
        self.readout = nn.Linear(self.hidden, self.out_features)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        B, T, _ = x.shape
        drive_in = self.input(x)  # (B, T, H), all frames at once
        tau = F.softplus(self.tau_raw)
        w_rec = self.recurrent.weight.t()
        if timespans is None:
            dt = x.new_full((B, T, 1), 1.0 / self.ode_unfolds)
        else:
            dt = (timespans.to(x.dtype) / self.ode_unfolds).unsqueeze(-1)
        decay = 1.0 / (1.0 + dt / tau)  # (B, T, H)
        h = state
        out = []
        for t in range(T):
            d_t, k_t, dec = drive_in[:, t], dt[:, t], decay[:, t]
            for _ in range(self.ode_unfolds):
                h = torch.addcmul(h, k_t, torch.tanh(torch.addmm(d_t, h, w_rec))) * dec
            out.append(h)
        hs = torch.stack(out, 1)
        return self.readout(hs), h


def lecun_tanh(x: Tensor) -> Tensor:
    """LeCun's scaled tanh, 1.7159 * tanh(2/3 x) (used in the CfC backbone)."""
    return 1.7159 * torch.tanh(0.666 * x)


class CfCController(_Baseline):
    """Closed-form continuous-time cell (Hasani et al. 2022): per frame,
    ``z = lecun_tanh(W [u, h] + b)`` (backbone), ``gate = sigmoid(f_a(z) * t + f_b(z))``,
    ``h' = tanh(g(z)) * (1 - gate) + gate * tanh(k(z))``; linear read-out of ``h``. ``t`` is
    the frame's timespan."""

    uses_timespans = True

    def __init__(
        self, in_features: int, out_features: int, hidden: int = 64, seed: int | None = 0, backbone_units: int = 64
    ) -> None:
        super().__init__("cfc", in_features, out_features, hidden, seed, backbone_units=backbone_units)
        self.backbone_units = _check_hidden("backbone_units", backbone_units)
        self.state_size = self.hidden
        self._init_modules()

    def build(self) -> None:
        self.backbone_in = nn.Linear(self.in_features, self.backbone_units)
        self.backbone_rec = nn.Linear(self.hidden, self.backbone_units, bias=False)
        # heads g, k, f_a, f_b stacked in one layer
        self.heads = nn.Linear(self.backbone_units, 4 * self.hidden)
        self.readout = nn.Linear(self.hidden, self.out_features)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        B, T, _ = x.shape
        drive_in = self.backbone_in(x)  # (B, T, backbone), all frames at once
        ts = x.new_ones(B, T, 1) if timespans is None else timespans.to(x.dtype).unsqueeze(-1)
        w_rec = self.backbone_rec.weight.t()
        H = self.hidden
        h = state
        out = []
        for t in range(T):
            z = lecun_tanh(torch.addmm(drive_in[:, t], h, w_rec))
            g, k, fa, fb = self.heads(z).split(H, dim=1)
            gate = torch.sigmoid(torch.addcmul(fb, fa, ts[:, t]))
            h = torch.lerp(torch.tanh(g), torch.tanh(k), gate)
            out.append(h)
        hs = torch.stack(out, 1)
        return self.readout(hs), h
