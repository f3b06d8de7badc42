"""The controller interface every recurrent core implements, and the registry that builds them.

A controller maps a sequence of feature vectors (B, T, F) to outputs (B, T, out) and carries
its whole memory in one tensor (B, state_size), so callers can run a sequence whole, in pieces,
or one frame at a time (:meth:`Controller.step`) and get the same result.

``timespans`` (B, T) are elapsed times in model units (1.0 = one nominal frame period; None =
all ones). Continuous-time models (the LTC variants, CT-RNN, CfC) integrate over them;
discrete-time models (LSTM, GRU, feedforward) ignore them.

Registry names: ``ncp19`` (the 19-neuron LTC NCP), ``ltc-fc`` and ``ltc-random`` (the NCP
paper's ablations: LTC with fully connected or randomly placed synapses), ``lstm``, ``gru``,
``ctrnn``, ``cfc`` and ``feedforward``. ``controller.config`` is JSON-able and rebuilds the
same architecture with :func:`controller_from_config`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from drive.core.ltc import LTC, check_sequence, check_timespans
from drive.core.wirings import NCP, NCP19_FANOUTS, FullyConnected, Random, Wiring

CONTROLLER_NAMES = ("ncp19", "lstm", "gru", "ctrnn", "cfc", "feedforward")
ABLATION_NAMES = ("ltc-fc", "ltc-random")
ALL_CONTROLLER_NAMES = CONTROLLER_NAMES + ABLATION_NAMES
LTC_NAMES = ("ncp19",) + ABLATION_NAMES


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


class LTCController(Controller):
    """An LTC network (:class:`drive.core.ltc.LTC`) on a wiring. The state is the neuron
    potentials (B, units); outputs are the affine-mapped motor neurons. Uses timespans."""

    uses_timespans = True

    def __init__(
        self,
        name: str,
        wiring: Wiring,
        in_features: int,
        out_features: int,
        ode_unfolds: int = 6,
        solver: str = "fused",
        adjoint: bool = False,
        epsilon: float = 1e-8,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if wiring.output_dim != out_features:
            raise ValueError(f"out_features={out_features} does not match the wiring's {wiring.output_dim} motor neurons")
        self.core = LTC(wiring, in_features, ode_unfolds=ode_unfolds, epsilon=epsilon, seed=seed,
                        solver=solver, adjoint=adjoint, rtol=rtol, atol=atol)
        self.name = name
        self.in_features, self.out_features = in_features, out_features
        self.state_size = wiring.units
        self.neuron_labels = wiring.neuron_labels
        self.config = {
            "name": name,
            "in_features": in_features,
            "out_features": out_features,
            "ode_unfolds": ode_unfolds,
            "solver": solver,
            "adjoint": bool(adjoint),
            "epsilon": epsilon,
            "rtol": rtol,
            "atol": atol,
            "seed": seed,
            "wiring": wiring.to_dict(),
        }

    @property
    def wiring(self) -> Wiring:
        return self.core.wiring

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        states = self.core.solve(x, state, timespans)
        return self.core.map_outputs(states), states[:, -1]

    def neuron_activity(self, state: Tensor) -> Tensor:
        """The neuron potentials themselves (B, units)."""
        return state


def _ltc_wiring(name: str, in_features: int, out_features: int, seed: int) -> Wiring:
    if name == "ncp19":
        if out_features == 1:
            from drive.core.wirings import ncp19

            return ncp19(seed=seed, input_dim=in_features)
        fan = dict(NCP19_FANOUTS)
        return NCP(12, 6, out_features, seed=seed, input_dim=in_features, **fan)
    if name == "ltc-fc":
        return FullyConnected(units=18 + out_features, output_dim=out_features, input_dim=in_features, seed=seed)
    if name == "ltc-random":
        return Random(like=_ltc_wiring("ncp19", in_features, out_features, seed), seed=seed)
    raise ValueError(f"unknown LTC controller name={name!r}")


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


def build_controller(name: str, in_features: int = 32, out_features: int = 1, **overrides: Any) -> Controller:
    """Build a registered controller with fresh parameters.

    ``overrides`` are the keyword arguments of the controller class: for the LTC variants
    ``seed`` (wiring and initialisation), ``ode_unfolds``, ``solver``, ``adjoint``, ``epsilon``,
    ``rtol``, ``atol``; for the baselines ``hidden``, ``seed`` (and ``ode_unfolds`` for ctrnn,
    ``backbone_units`` for cfc).
    """
    in_features = _check_positive_int("in_features", in_features)
    out_features = _check_positive_int("out_features", out_features)
    if name in LTC_NAMES:
        seed = overrides.pop("seed", 0)
        wiring = _ltc_wiring(name, in_features, out_features, seed)
        return _construct(LTCController, name, dict(name=name, wiring=wiring, in_features=in_features,
                                                    out_features=out_features, seed=seed), overrides)
    from drive.core import baselines

    classes = {
        "lstm": baselines.LSTMController,
        "gru": baselines.GRUController,
        "ctrnn": baselines.CTRNNController,
        "cfc": baselines.CfCController,
        "feedforward": baselines.FeedforwardController,
    }
    if name not in classes:
        raise ValueError(f"unknown controller name={name!r}; choose one of {', '.join(ALL_CONTROLLER_NAMES)}")
    return _construct(classes[name], name, dict(in_features=in_features, out_features=out_features), overrides)


def _construct(cls: type, name: str, kwargs: dict[str, Any], overrides: dict[str, Any]) -> Controller:
    try:
        return cls(**kwargs, **overrides)
    except TypeError as exc:  # an override the class does not take
        raise ValueError(f"controller {name!r}: bad override in {sorted(overrides)}: {exc}") from None


def controller_from_config(config: dict[str, Any]) -> Controller:
    """Rebuild a controller from ``controller.config`` (same architecture and wiring; load the
    state_dict for the same weights)."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"controller config must be a dict with a 'name', got {config!r:.80}")
    config = dict(config)
    name = config.pop("name")
    if name in LTC_NAMES:
        if "wiring" not in config:
            raise ValueError(f"controller config for {name!r} has no 'wiring'")
        wiring = Wiring.from_dict(config.pop("wiring"))
        return _construct(LTCController, name, dict(name=name, wiring=wiring), config)
    in_features = config.pop("in_features", None)
    out_features = config.pop("out_features", None)
    if in_features is None or out_features is None:
        raise ValueError(f"controller config for {name!r} needs in_features and out_features")
    return build_controller(name, in_features, out_features, **config)
