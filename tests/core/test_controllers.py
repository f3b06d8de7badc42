"""The controller interface and registry: shapes, state carry-over, one-frame steps,
config round trips, timespans, and bad input — for every registered controller."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from drive.core.controllers import (
    ALL_CONTROLLER_NAMES,
    CONTROLLER_NAMES,
    Controller,
    build_controller,
    controller_from_config,
)

NAMES = list(ALL_CONTROLLER_NAMES)


def _data(B=3, T=8, F=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, F, generator=g), 0.3 + 2 * torch.rand(B, T, generator=g)


def test_registry_names():
    assert set(CONTROLLER_NAMES) == {"ncp19", "lstm", "gru", "ctrnn", "cfc", "feedforward"}
    assert {"ltc-fc", "ltc-random"} <= set(ALL_CONTROLLER_NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_attributes(name):
    c = build_controller(name, in_features=32, out_features=2 if name != "ncp19" else 1)
    assert isinstance(c, Controller) and c.name == name
    x, _ = _data()
    y, s = c(x)
    assert y.shape == (3, 8, c.out_features)
    assert s.shape == (3, c.state_size)
    assert c.initial_state(3).shape == (3, c.state_size)
    act = c.neuron_activity(s)
    assert act.shape == (3, len(c.neuron_labels))
    assert torch.isfinite(y).all()
    json.dumps(c.config)


@pytest.mark.parametrize("name", NAMES)
def test_two_halves_with_state_passed_equal_the_whole(name):
    c = build_controller(name)
    x, ts = _data(seed=1)
    ts_arg = ts if c.uses_timespans else None
    y, s = c(x, None, ts_arg)
    y1, s1 = c(x[:, :3], None, None if ts_arg is None else ts[:, :3])
    y2, s2 = c(x[:, 3:], s1, None if ts_arg is None else ts[:, 3:])
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-6, rtol=0)
    torch.testing.assert_close(s2, s, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_step_by_step_equals_the_sequence(name):
    c = build_controller(name)
    x, ts = _data(seed=2)
    y, s = c(x, None, ts)
    state = c.initial_state(3)
    with torch.inference_mode():
        for t in range(x.shape[1]):
            yt, state = c.step(x[:, t], state, ts[:, t])
            torch.testing.assert_close(yt, y[:, t].detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(state, s.detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_rebuilds_the_same_function(name):
    c = build_controller(name, in_features=7, out_features=1, seed=3)
    config = json.loads(json.dumps(c.config))
    c2 = controller_from_config(config)
    assert type(c2) is type(c) and c2.config == c.config
    c2.load_state_dict(c.state_dict())
    x, ts = _data(F=7, seed=4)
    s0 = torch.randn(3, c.state_size)
    torch.testing.assert_close(c2(x, s0, ts)[0], c(x, s0, ts)[0], atol=0, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_timespans_matter_only_for_continuous_time_models(name):
    c = build_controller(name)
    x, ts = _data(seed=5)
    changed = (c(x, None, ts)[0] - c(x)[0]).abs().max().item()
    if name in ("lstm", "gru", "feedforward"):
        assert not c.uses_timespans and changed == 0.0
    else:
        assert c.uses_timespans and changed > 1e-4


def test_feedforward_has_no_memory():
    c = build_controller("feedforward")
    x, _ = _data(seed=6)
    y_a, _ = c(x)
    y_b, _ = c(x, torch.randn(3, c.state_size))
    torch.testing.assert_close(y_a, y_b, atol=0, rtol=0)
    y_short, _ = c(x[:, 5:])
    # A shorter sequence is a different matmul shape, so BLAS may round differently (1.5e-8 on AVX2
    # EPYC): compare within float32 rounding, not bit for bit.
    torch.testing.assert_close(y_short, y_a[:, 5:], atol=1e-6, rtol=1e-5)


def test_recurrent_models_do_have_memory():
    for name in ("ncp19", "lstm", "gru", "ctrnn", "cfc"):
        c = build_controller(name)
        x, _ = _data(seed=7)
        assert (c(x[:, 5:])[0] - c(x)[0][:, 5:]).abs().max() > 1e-5, name


def test_seeds_are_deterministic():
    for name in NAMES:
        a, b = build_controller(name, seed=4), build_controller(name, seed=4)
        for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), (name, n)


def test_ncp19_config_carries_the_wiring_and_solver():
    c = build_controller("ncp19", solver="rk4", ode_unfolds=4)
    cfg = c.config
    assert (
        cfg["wiring"]["kind"] == "ncp"
        and cfg["solver"] == "rk4"
        and cfg["ode_unfolds"] == 4
        and cfg["adjoint"] is False
    )
    assert c.neuron_labels[0] == "motor0" and "cmd0" in c.neuron_labels and "inter11" in c.neuron_labels
    y, _ = c(torch.randn(2, 3, 32))
    assert y.shape == (2, 3, 1)


def test_gradients_reach_every_trainable_parameter_and_the_input():
    for name in NAMES:
        c = build_controller(name)
        x = torch.randn(2, 5, 32, requires_grad=True)
        y, _ = c(x, None, torch.ones(2, 5))
        y.square().sum().backward()
        assert x.grad.abs().sum() > 0, name
        for n, p in c.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (name, n)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "args, match",
    [
        (lambda c: (torch.randn(2, 3, 30),), "30 features"),
        (lambda c: (torch.randn(2, 3, 32), torch.zeros(2, c.state_size + 1)), "state has shape"),
        (lambda c: (torch.randn(2, 3, 32), torch.zeros(1, c.state_size)), "state has shape"),
        (lambda c: (torch.randn(2, 3, 32), None, torch.full((2, 3), float("nan"))), "nan"),
        (lambda c: (torch.randn(2, 3, 32), None, torch.zeros(2, 3)), "0.0"),
        (lambda c: (torch.randn(2, 3, 32), None, -torch.ones(2, 3)), "-1.0"),
        (lambda c: (torch.randn(2, 3, 32), None, torch.ones(3)), "timespans has shape"),
        (lambda c: (torch.randn(3, 32),), "shape"),
    ],
)
def test_bad_input_raises_value_error(name, args, match):
    c = build_controller(name)
    with pytest.raises(ValueError, match=match):
        c(*args(c))


def test_bad_step_input_and_bad_registry_arguments():
    c = build_controller("ncp19")
    with pytest.raises(ValueError, match="shape"):
        c.step(torch.randn(2, 3, 32), None)
    with pytest.raises(ValueError, match=r"timespans has shape \(2, 1\)"):
        c.step(torch.randn(2, 32), None, torch.ones(2, 1))
    with pytest.raises(ValueError, match="name='transformer'"):
        build_controller("transformer")
    with pytest.raises(ValueError, match="solver='warp'"):
        build_controller("ncp19", solver="warp")
    with pytest.raises(ValueError, match="in_features=0"):
        build_controller("gru", in_features=0)
    with pytest.raises(ValueError, match="hidden=0"):
        build_controller("lstm", hidden=0)
    with pytest.raises(ValueError, match="bad override"):
        build_controller("gru", wings=3)
    with pytest.raises(ValueError, match="name"):
        controller_from_config({"in_features": 3})


# ------------------------------------------------------------------------ module layout and shipped checkpoints

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.parent.name for p in (REPO / "checkpoints").glob("*/config.json"))


def _core_imports() -> dict[str, set[str]]:
    """drive.core module -> the drive.core modules it imports when it is imported (module-level import
    statements; those inside functions run later and those under ``if TYPE_CHECKING`` never)."""
    graph = {}
    for path in (REPO / "drive" / "core").glob("*.py"):
        name = "drive.core" if path.stem == "__init__" else f"drive.core.{path.stem}"
        deps = set()
        body = [
            n
            for n in ast.parse(path.read_text()).body
            if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        ]
        for node in (n for top in body if not isinstance(top, (ast.FunctionDef, ast.ClassDef)) for n in ast.walk(top)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("drive.core"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("drive.core"))
        graph[name] = deps - {name}
    return graph


def test_controller_modules_have_no_import_circle():
    graph = _core_imports()
    assert "drive.core.controllers" not in graph["drive.core.baselines"]
    assert "drive.core.controllers" not in graph["drive.core.ltc_controller"]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == "drive.core":  # the package itself is never imported by its modules
                continue
            assert state.get(dep) != 1, f"import circle: {' -> '.join(path + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_model_names_come_from_the_registry():
    from drive.policy.perception import CONTROLLER_MODELS, MODEL_NAMES

    assert CONTROLLER_MODELS is CONTROLLER_NAMES
    assert MODEL_NAMES == CONTROLLER_NAMES + ("cnn",)


@pytest.mark.skipif(len(SHIPPED) < 6, reason="the shipped checkpoints are not all there")
def test_all_six_shipped_checkpoints_load_and_drive_a_few_steps():
    import numpy as np

    from drive.eval.rollout import make_env, policy_step
    from drive.policy.checkpoint import load_policy
    from drive.world.scenario import Scenario

    assert SHIPPED == ["cfc", "cnn", "ctrnn", "gru", "lstm", "ncp19"]
    env = make_env(Scenario(name="ckpt-test", duration_s=1.0))
    try:
        for name in SHIPPED:
            policy = load_policy(REPO / "checkpoints" / name)
            assert policy.model_name == name
            obs, info = env.reset(seed=0)
            state = policy.initial_state(1)
            for _ in range(4):
                steering, state = policy_step(policy, obs, info, state, 0.05)
                assert np.isfinite(steering) and abs(steering) < 5, (name, steering)
                obs, _, _, _, info = env.step(np.array([np.clip(steering, -1, 1)], np.float32))
            assert tuple(state.shape) == (1, policy.state_size)
    finally:
        env.close()
