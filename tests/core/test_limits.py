"""Sizes that set the work of a controller are bounded (drive.core.limits): a huge value is a one-line
ValueError naming it, never a hang or an exhausted memory."""

from __future__ import annotations

import pytest

from drive.core import build_controller, controller_from_config
from drive.core.limits import MAX_HIDDEN, MAX_ODE_UNFOLDS


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("ncp19", {"ode_unfolds": 10**9}, "ode_unfolds=1000000000 must be an integer in [1, 1000]"),
        ("ncp19", {"ode_unfolds": 0}, "ode_unfolds=0 must be an integer in [1, 1000]"),
        ("ncp19", {"solver": "dopri5", "rtol": 1e-30}, "rtol=1e-30 must be a number in [1e-12, 1]"),
        ("ctrnn", {"ode_unfolds": 10**6}, "ode_unfolds=1000000 must be an integer in [1, 1000]"),
        ("gru", {"hidden": 10**6}, "hidden=1000000 must be an integer in [1, 4096]"),
        ("cfc", {"backbone_units": 10**6}, "backbone_units=1000000 must be an integer in [1, 4096]"),
    ],
)
def test_work_sizes_out_of_bounds_are_refused(name, overrides, message):
    with pytest.raises(ValueError) as info:
        build_controller(name, **overrides)
    assert message in str(info.value)


def test_in_features_and_units_are_bounded():
    with pytest.raises(ValueError, match=r"in_features=100000 must be an integer in \[1, 4096\]"):
        build_controller("lstm", in_features=100_000)
    config = build_controller("ltc-fc").config
    config["wiring"]["adjacency"] = [[0] * 1100] * 1100
    with pytest.raises(ValueError, match="1100 units, at most 1024"):
        controller_from_config(config)


def test_the_largest_allowed_sizes_build():
    assert build_controller("ncp19", ode_unfolds=MAX_ODE_UNFOLDS).core.ode_unfolds == MAX_ODE_UNFOLDS
    assert build_controller("feedforward", hidden=MAX_HIDDEN).hidden == MAX_HIDDEN
