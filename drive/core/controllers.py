"""The controller registry: every controller name, and :func:`build_controller` /
:func:`controller_from_config` that build them.

Registry names: ``ncp19`` (the 19-neuron LTC NCP), ``ltc-fc`` and ``ltc-random`` (the NCP
paper's ablations: LTC with fully connected or randomly placed synapses), ``lstm``, ``gru``,
``ctrnn``, ``cfc`` and ``feedforward``. ``controller.config`` is JSON-able and rebuilds the
same architecture with :func:`controller_from_config`.

Layout (no import circles): :mod:`drive.core.controller_base` (the :class:`Controller` interface)
<- :mod:`drive.core.ltc_controller` and :mod:`drive.core.baselines` (the concrete controllers)
<- this module (the names and the builders). The driving models' names
(:data:`drive.policy.perception.MODEL_NAMES`) are these controller names plus ``cnn``.
"""

from __future__ import annotations

from typing import Any

from drive.core.baselines import (
    CfCController,
    CTRNNController,
    FeedforwardController,
    GRUController,
    LSTMController,
)
from drive.core.controller_base import Controller
from drive.core.limits import MAX_IN_FEATURES, MAX_OUT_FEATURES, check_int
from drive.core.ltc_controller import LTCController, ltc_wiring
from drive.core.wirings import Wiring

CONTROLLER_NAMES = ("ncp19", "lstm", "gru", "ctrnn", "cfc", "feedforward")
"""The controllers a driving model is built on (the NCP and the baselines it is compared with)."""
ABLATION_NAMES = ("ltc-fc", "ltc-random")
"""The NCP paper's ablations of the wiring."""
ALL_CONTROLLER_NAMES = CONTROLLER_NAMES + ABLATION_NAMES
LTC_NAMES = ("ncp19",) + ABLATION_NAMES
BASELINE_CLASSES: dict[str, type[Controller]] = {
    "lstm": LSTMController,
    "gru": GRUController,
    "ctrnn": CTRNNController,
    "cfc": CfCController,
    "feedforward": FeedforwardController,
}

__all__ = [
    "ABLATION_NAMES",
    "ALL_CONTROLLER_NAMES",
    "BASELINE_CLASSES",
    "CONTROLLER_NAMES",
    "Controller",
    "LTCController",
    "LTC_NAMES",
    "build_controller",
    "controller_from_config",
]


def _check_positive_int(name: str, value: Any) -> int:
    return check_int(name, value, 1, MAX_OUT_FEATURES if name == "out_features" else MAX_IN_FEATURES)


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
        wiring = ltc_wiring(name, in_features, out_features, seed)
        return _construct(
            LTCController,
            name,
            dict(name=name, wiring=wiring, in_features=in_features, out_features=out_features, seed=seed),
            overrides,
        )
    if name not in BASELINE_CLASSES:
        raise ValueError(f"unknown controller name={name!r}; choose one of {', '.join(ALL_CONTROLLER_NAMES)}")
    return _construct(BASELINE_CLASSES[name], name, dict(in_features=in_features, out_features=out_features), overrides)


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
