"""Continuous solvers of the LTC ODE (torchdiffeq): consistency with the fused step,
gradients, the adjoint, timespans and the Theorem 2 bound."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from drive.core.ltc import LTC
from drive.core.ode import SOLVERS, check_solver, solve_ode
from drive.core.wirings import ncp19


def _model(make_small_ncp, randomise, seed=0, **kw):
    return randomise(LTC(make_small_ncp(input_dim=3), seed=seed, **kw), seed=seed + 10).double()


def test_fused_step_converges_to_the_continuous_solution(make_small_ncp, randomise):
    # two independent implementations of the same ODE: the fused step with many unfolds and dopri5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    ts = 0.5 + torch.rand(2, 4, generator=g, dtype=torch.float64)
    exact = _model(make_small_ncp, randomise, solver="dopri5", rtol=1e-10, atol=1e-12)
    errors = []
    for unfolds in (6, 60, 600):
        fused = _model(make_small_ncp, randomise, ode_unfolds=unfolds)
        fused.load_state_dict(exact.state_dict())
        with torch.no_grad():
            errors.append((fused(x, None, ts)[1] - exact(x, None, ts)[1]).abs().max().item())
    assert errors[2] < 1e-3
    assert errors[0] > errors[1] > errors[2]  # first order: ~10x smaller per 10x unfolds
    assert errors[1] / errors[2] > 5


@pytest.mark.parametrize("solver", ["euler", "rk4", "dopri5"])
def test_solvers_agree_with_each_other(solver, make_small_ncp, randomise):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    ref = _model(make_small_ncp, randomise, solver="dopri5", rtol=1e-10, atol=1e-12)
    m = _model(make_small_ncp, randomise, solver=solver, ode_unfolds=400)
    m.load_state_dict(ref.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            m(x)[0], ref(x)[0], atol={"euler": 5e-3, "rk4": 1e-8, "dopri5": 1e-6}[solver], rtol=0
        )


def test_one_long_frame_equals_two_half_frames_with_the_same_input(make_small_ncp, randomise):
    m = _model(make_small_ncp, randomise, solver="dopri5", rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(2)
    u = torch.randn(3, 1, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(3, m.units, generator=g, dtype=torch.float64)
    with torch.no_grad():
        _, h_long = m(u, h0, torch.full((3, 1), 2.0, dtype=torch.float64))
        _, h_two = m(u.expand(3, 2, 3), h0)
    torch.testing.assert_close(h_long, h_two, atol=1e-8, rtol=0)


def test_gradcheck_rk4_float64(make_small_ncp, randomise):
    model = _model(make_small_ncp, randomise, solver="rk4", ode_unfolds=3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, model.units, generator=g, dtype=torch.float64, requires_grad=True)
    ts = 0.5 + torch.rand(2, 2, generator=g, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def f(x, h0, *ps):
        return functional_call(model, dict(zip(names, ps)), (x, h0, ts))

    assert torch.autograd.gradcheck(f, (x, h0) + params, eps=1e-6, atol=1e-6, rtol=1e-4)


def _grads(model, x, h0, ts, target):
    y, h = model(x, h0, ts)
    loss = ((y - target) ** 2).sum() + h.square().sum()
    return torch.autograd.grad(loss, [x, h0, *model.parameters()])


@pytest.mark.parametrize("solver", ["dopri5", "rk4"])
def test_adjoint_gradients_equal_backprop_gradients(solver, make_small_ncp, randomise):
    kw = dict(solver=solver, rtol=1e-9, atol=1e-11) if solver == "dopri5" else dict(solver=solver, ode_unfolds=40)
    direct = randomise(LTC(make_small_ncp(input_dim=4), seed=0, **kw), seed=1).double()
    adjoint = randomise(LTC(make_small_ncp(input_dim=4), seed=0, adjoint=True, **kw), seed=1).double()
    adjoint.load_state_dict(direct.state_dict())
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, direct.units, generator=g, dtype=torch.float64, requires_grad=True)
    ts = 0.5 + torch.rand(3, 4, generator=g, dtype=torch.float64)
    target = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    names = ["x", "h0"] + [n for n, _ in direct.named_parameters()]
    for name, a, b in zip(names, _grads(adjoint, x, h0, ts, target), _grads(direct, x, h0, ts, target)):
        scale = b.abs().max().clamp_min(1e-12)
        assert ((a - b).abs().max() / scale).item() < 1e-4, name


def test_dopri5_stays_within_theorem2_bound(randomise):
    model = randomise(LTC(ncp19(seed=1), seed=1, solver="dopri5", rtol=1e-6, atol=1e-8), seed=2, spread=3.0)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.erev.copy_(2 * torch.randn(model.erev.shape, generator=g))
        model.vleak.copy_(2 * torch.randn(model.vleak.shape, generator=g))
        x = 5 * torch.randn(4, 10, 32, generator=g)
        h0 = 3 * torch.randn(4, 19, generator=g)
        ts = torch.exp(torch.randn(4, 10, generator=g))
        low, high = model.bounds(h0)
        states = model.solve(x, h0, ts)
    assert (states >= low[:, None] - 1e-4).all() and (states <= high[:, None] + 1e-4).all()


def test_batch_with_different_timespans_equals_each_sample_alone_rk4(randomise):
    model = randomise(LTC(ncp19(seed=0), seed=0, solver="rk4"), seed=3)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 32, generator=g)
    ts = 0.1 + 2 * torch.rand(3, 5, generator=g)
    y, _ = model(x, None, ts)
    for b in range(3):
        torch.testing.assert_close(y[b : b + 1], model(x[b : b + 1], None, ts[b : b + 1])[0], atol=1e-6, rtol=0)


def test_unknown_solver_names_it():
    with pytest.raises(ValueError, match="solver='magic'"):
        check_solver("magic", False)
    with pytest.raises(ValueError, match="solver='magic'"):
        solve_ode(LTC(ncp19()), torch.zeros(1, 1, 32), torch.zeros(1, 19), None, "magic")
    assert {"fused", "euler", "rk4", "dopri5"} <= set(SOLVERS)
