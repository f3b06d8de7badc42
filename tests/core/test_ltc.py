"""The LTC network and its fused solver: agreement with ncps, gradients, Theorem 2 bound,
per-sample timespans, the inference path and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from drive.core.ltc import LTC, LTCCell
from drive.core.wirings import ncp19


def _wirings(make_wirings):
    return {"ncp19": ncp19(seed=2), **make_wirings(input_dim=6)}


@pytest.mark.parametrize("name", ["ncp19", "ncp-small", "fully-connected", "random"])
@pytest.mark.parametrize("grad", [True, False], ids=["train-path", "inference-path"])
def test_matches_ncps_ltc_on_random_sequences(name, grad, make_wirings, randomise, make_ncps_twin):
    wiring = _wirings(make_wirings)[name]
    torch.manual_seed(0)
    ours = randomise(LTC(wiring, seed=1), seed=2)
    ref = make_ncps_twin(ours)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 12, wiring.input_dim, generator=g)
    h0 = 0.5 * torch.randn(3, wiring.units, generator=g)
    with torch.set_grad_enabled(grad):
        y, h = ours(x, h0)
    y_ref, h_ref = ref(x, h0)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["ncp19", "random"])
def test_matches_ncps_with_irregular_timespans_sample_by_sample(name, make_wirings, randomise, make_ncps_twin):
    # ncps cannot take a batch of timespans (its issue #81), so the reference runs one sample at a time.
    wiring = _wirings(make_wirings)[name]
    ours = randomise(LTC(wiring, seed=4), seed=5)
    ref = make_ncps_twin(ours)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, 9, wiring.input_dim, generator=g)
    ts = 0.2 + 2.0 * torch.rand(4, 9, generator=g)
    y, h = ours(x, timespans=ts)
    for b in range(4):
        y_ref, h_ref = ref(x[b : b + 1], timespans=ts[b : b + 1])
        torch.testing.assert_close(y[b : b + 1], y_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(h[b : b + 1], h_ref, atol=1e-5, rtol=0)


def test_gradients_match_ncps(randomise, make_ncps_twin):
    ours = randomise(LTC(ncp19(seed=1), seed=0), seed=1)
    ref = make_ncps_twin(ours)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 10, 32, generator=g)
    target = torch.randn(5, 10, 1, generator=g)
    for model in (ours, ref):
        y, _ = model(x)
        ((y - target) ** 2).mean().backward()
    ref_params = dict(ref.rnn_cell.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=1e-6, rtol=1e-4, msg=name)


def _all_inputs(model, x, h0, ts):
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def f(x, h0, *ps):
        return functional_call(model, dict(zip(names, ps)), (x, h0, ts))

    return f, (x, h0) + params


def test_gradcheck_fused_float64(make_small_ncp, randomise):
    model = randomise(LTC(make_small_ncp(input_dim=3), seed=0), seed=3).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, model.units, generator=g, dtype=torch.float64, requires_grad=True)
    ts = 0.5 + torch.rand(2, 3, generator=g, dtype=torch.float64)
    f, inputs = _all_inputs(model, x, h0, ts)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_wrt_timespans_float64(make_small_ncp, randomise):
    model = randomise(LTC(make_small_ncp(input_dim=3), seed=0), seed=4).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    ts = (0.5 + torch.rand(2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: model(x, None, t)[0], (ts,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_potentials_stay_within_theorem2_bound(seed, randomise):
    model = randomise(LTC(ncp19(seed=seed), seed=seed), seed=seed, spread=3.0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # reversal potentials and leak potentials away from +-1 and 0
        model.erev.copy_(3 * torch.randn(model.erev.shape, generator=g))
        model.sensory_erev.copy_(3 * torch.randn(model.sensory_erev.shape, generator=g))
        model.vleak.copy_(2 * torch.randn(model.vleak.shape, generator=g))
    x = 10 * torch.randn(8, 40, 32, generator=g)
    h0 = 4 * torch.randn(8, 19, generator=g)
    ts = torch.exp(2 * torch.randn(8, 40, generator=g))  # from ~0.02 to ~50 frames
    with torch.no_grad():
        _, h = model(x[:, :1], h0, ts[:, :1])
        low, high = model.bounds(h0)
        states = model.solve(x, h0, ts)
    assert states.shape == (8, 40, 19)
    assert (states >= low[:, None] - 1e-5).all() and (states <= high[:, None] + 1e-5).all()
    # the bound is not vacuous: the potentials spread over much of it
    assert (states.amax((0, 1)) - states.amin((0, 1))).mean() > 0.3 * (high - low).mean()


@pytest.mark.parametrize("grad", [True, False])
def test_batch_with_different_timespans_equals_each_sample_alone(grad, randomise):
    model = randomise(LTC(ncp19(seed=0), seed=0), seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 32, generator=g)
    h0 = torch.randn(4, 19, generator=g)
    ts = 0.1 + 3 * torch.rand(4, 7, generator=g)
    with torch.set_grad_enabled(grad):
        y, h = model(x, h0, ts)
        for b in range(4):
            yb, hb = model(x[b : b + 1], h0[b : b + 1], ts[b : b + 1])
            torch.testing.assert_close(y[b : b + 1], yb, atol=1e-6, rtol=0)
            torch.testing.assert_close(h[b : b + 1], hb, atol=1e-6, rtol=0)
    # and the timespans matter
    y1, _ = model(x, h0)
    assert (y1 - y).abs().max() > 1e-3


def test_cell_and_sequence_share_defaults_and_agree():
    w = ncp19(seed=1)
    cell, seq = LTCCell(w, seed=3), LTC(w, seed=3)
    assert (
        (cell.ode_unfolds, cell.epsilon, cell.solver)
        == (seq.ode_unfolds, seq.epsilon, seq.solver)
        == (6, 1e-8, "fused")
    )
    seq.load_state_dict(cell.state_dict())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 32, generator=g)
    ts = 0.5 + torch.rand(3, 5, generator=g)
    y, h = seq(x, None, ts)
    state = None
    for t in range(5):
        yt, state = cell(x[:, t], state, ts[:, t])
        torch.testing.assert_close(yt, y[:, t], atol=1e-6, rtol=0)
    torch.testing.assert_close(state, h, atol=1e-6, rtol=0)


def test_inference_cache_follows_parameter_updates(randomise):
    model = randomise(LTC(ncp19(seed=0), seed=0), seed=1)
    x = torch.randn(2, 6, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        with torch.inference_mode():
            y_inf, _ = model(x)
        y_train, _ = model(x)
        torch.testing.assert_close(y_inf, y_train.detach(), atol=1e-6, rtol=0)
        y_train.square().sum().backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():  # load_state_dict also invalidates
        before, _ = model(x)
        other = randomise(LTC(ncp19(seed=0), seed=5), seed=6)
        model.load_state_dict(other.state_dict())
        after, _ = model(x)
        torch.testing.assert_close(after, other(x)[0], atol=1e-6, rtol=0)
        assert (after - before).abs().max() > 1e-3


def test_masked_synapses_get_no_gradient_and_erev_starts_at_polarity():
    w = ncp19(seed=0)
    model = LTC(w, seed=0)
    assert torch.equal(model.erev, torch.tensor(w.adjacency, dtype=torch.float32))
    assert torch.equal(model.sensory_erev, torch.tensor(w.sensory_adjacency, dtype=torch.float32))
    assert not any(n.endswith("mask") for n, _ in model.named_parameters())
    y, _ = model(torch.randn(2, 4, 32))
    y.sum().backward()
    off = model.sparsity_mask == 0
    for name in ("w", "sigma", "mu", "erev"):
        grad = getattr(model, name).grad
        assert (grad[off] == 0).all() and (grad[~off] != 0).any(), name
    soff = model.sensory_sparsity_mask == 0
    assert (model.sensory_w.grad[soff] == 0).all()


def test_positive_parameters_use_softplus():
    model = LTC(ncp19(seed=0), seed=0)
    with torch.no_grad():
        model.cm.fill_(-5.0)
    assert (model.positive("cm") > 0).all()
    torch.testing.assert_close(model.positive("cm"), torch.nn.functional.softplus(torch.full((19,), -5.0)))
    lo, hi = 0.4, 0.6
    fresh = LTC(ncp19(seed=0), seed=1).positive("cm")
    assert (fresh >= lo - 1e-6).all() and (fresh <= hi + 1e-6).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(torch.randn(2, 3, 31)), "31 features"),
        (lambda m: m(torch.randn(2, 32)), "shape"),
        (lambda m: m(torch.randn(2, 3, 32), torch.zeros(2, 18)), r"state has shape \(2, 18\)"),
        (lambda m: m(torch.randn(2, 3, 32), torch.zeros(3, 19)), r"state has shape \(3, 19\)"),
        (lambda m: m(torch.randn(2, 3, 32), None, torch.tensor([[1.0, float("nan"), 1.0]] * 2)), "nan"),
        (lambda m: m(torch.randn(2, 3, 32), None, torch.tensor([[1.0, 0.0, 1.0]] * 2)), r"> 0.*0\.0"),
        (lambda m: m(torch.randn(2, 3, 32), None, -torch.ones(2, 3)), r"-1\.0"),
        (lambda m: m(torch.randn(2, 3, 32), None, torch.ones(2, 4)), r"timespans has shape \(2, 4\)"),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call(LTC(ncp19(seed=0), seed=0))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="solver='leapfrog'"):
        LTC(ncp19(), solver="leapfrog")
    with pytest.raises(ValueError, match="ode_unfolds=0"):
        LTC(ncp19(), ode_unfolds=0)
    with pytest.raises(ValueError, match="adjoint"):
        LTC(ncp19(), solver="fused", adjoint=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("timespan", [1.0, 0.37])
def test_inference_path_equals_the_autograd_path(dtype, timespan, randomise):
    # no-grad CPU inference calls the kernel without saving anything for a backward (and with
    # cached parameters); it must give the numbers of the differentiable path, in both precisions
    # and for a non-default timespan
    model = randomise(LTC(ncp19(seed=3), in_features=32, seed=3), seed=4).to(dtype)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 7, 32, generator=g, dtype=dtype)
    h0 = 0.3 * torch.randn(4, 19, generator=g, dtype=dtype)
    ts = torch.full((4, 7), timespan, dtype=dtype)
    with torch.no_grad():
        y_np, h_np = model(x, h0, None if timespan == 1.0 else ts)
        cell = LTCCell(ncp19(seed=3), in_features=32, seed=3).to(dtype)
        cell.load_state_dict(model.state_dict())
        y1, h1 = cell(x[:1, 0], h0[:1], None if timespan == 1.0 else ts[:1, 0])
    y_ag, h_ag = model(x, h0, ts)  # grad enabled: the autograd Function
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y_np, y_ag.detach(), atol=tol, rtol=0)
    torch.testing.assert_close(h_np, h_ag.detach(), atol=tol, rtol=0)
    torch.testing.assert_close(y1, y_ag.detach()[:1, 0], atol=tol, rtol=0)
    assert y_np.dtype == dtype


def _grads(model, x, h0, ts, solve):
    x, h0 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    ts = ts.clone().requires_grad_()
    model.zero_grad(set_to_none=True)
    states = solve(x, h0, ts)
    weights = torch.linspace(-1.0, 1.0, states.numel(), dtype=states.dtype).view_as(states)
    (states * weights).sum().backward()
    # solve() gives potentials, so the output map (output_w, output_b) gets no gradient
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if not name.startswith("output_")}
    grads.update(x=x.grad, h0=h0.grad, ts=ts.grad)
    return states.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("name,unfolds", [("ncp19", 6), ("ncp-small", 1), ("fully-connected", 3), ("random", 2)])
def test_kernel_equals_the_reference_step_forward_and_gradients(name, unfolds, batch, dtype, make_wirings, randomise):
    # the compiled kernel (every float CPU call) against the paper's equation in plain torch,
    # with irregular per-sample, per-frame timespans (tests/core/test_kernels.py checks that the
    # parallel, chunked variant gives the numbers of the serial one)
    from drive.core.ltc import reference_sequence

    wiring = _wirings(make_wirings)[name]
    model = randomise(LTC(wiring, ode_unfolds=unfolds, seed=1), seed=2).to(dtype)
    g = torch.Generator().manual_seed(batch + unfolds)
    x = torch.randn(batch, 5, wiring.input_dim, generator=g, dtype=dtype)
    h0 = 0.5 * torch.randn(batch, wiring.units, generator=g, dtype=dtype)
    ts = 0.2 + 2.0 * torch.rand(batch, 5, generator=g, dtype=dtype)
    out_k, grads_k = _grads(model, x, h0, ts, model.solve)
    out_r, grads_r = _grads(model, x, h0, ts, lambda *a: reference_sequence(model, *a))
    tol = {"atol": 2e-5, "rtol": 2e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-8}
    torch.testing.assert_close(out_k, out_r, **tol)
    for key in grads_r:
        torch.testing.assert_close(grads_k[key], grads_r[key], **tol, msg=key)
    with torch.no_grad():  # the inference call (no saved potentials) gives the same numbers
        torch.testing.assert_close(model.solve(x, h0, ts), out_k, atol=0, rtol=0)


def test_numba_cache_falls_back_when_no_location_is_writable(monkeypatch):
    import numba

    from drive.core import kernels

    calls = []
    real = numba.njit

    def njit(**kw):
        calls.append(kw["cache"])
        if kw["cache"]:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x.py'")
        return real(**kw)

    monkeypatch.setattr(numba, "njit", njit)
    with pytest.warns(UserWarning, match="numba cache unavailable"):
        f = kernels._jit(False)(lambda a: a + 1)
    assert calls == [True, False] and f(1) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_take_the_torch_reference_path_and_agree_with_the_cpu_kernel(randomise):
    model = randomise(LTC(ncp19(seed=3), in_features=32, seed=3), seed=4).double()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 6, 32, generator=g, dtype=torch.float64)
    ts = 0.3 + torch.rand(3, 6, generator=g, dtype=torch.float64)
    y_cpu, h_cpu = model(x, None, ts)
    y_gpu, h_gpu = model.cuda()(x.cuda(), None, ts.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(h_gpu.cpu(), h_cpu, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch1_fast_step_equals_the_autograd_path_and_declines_what_it_does_not_cover(dtype, randomise):
    # the lean closed-loop step (LTCController.step -> LTCBase.fast_step) gives the numbers of
    # the differentiable path; every input it does not cover, bad ones included, goes to the
    # checked path (None), which raises the usual errors
    from drive.core import build_controller

    ctrl = build_controller("ncp19", in_features=32, seed=3).to(dtype)
    randomise(ctrl.core, seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 32, generator=g, dtype=dtype)
    h = 0.3 * torch.randn(1, 19, generator=g, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for h0, span in ((h, None), (h, torch.tensor([0.37], dtype=dtype)), (None, torch.tensor([2.0], dtype=dtype))):
        with torch.no_grad():
            fast = ctrl.core.fast_step(x, h0, span)
            y, s = ctrl.step(x, h0, span)
        assert fast is not None and y.shape == (1, 1) and s.shape == (1, 19) and y.dtype == dtype
        y_ag, s_ag = ctrl(x.unsqueeze(1), h0, None if span is None else span.unsqueeze(1))
        torch.testing.assert_close(fast[0], y_ag[:, 0].detach(), atol=tol, rtol=0)
        torch.testing.assert_close(fast[1], s_ag.detach(), atol=tol, rtol=0)
        torch.testing.assert_close(y, fast[0], atol=0, rtol=0)
    with torch.no_grad():
        declined = [
            (x[:, :31], h, None),
            (x, h[:, :18], None),
            (torch.cat([x, x]), h, None),
            (x.numpy(), h, None),
            (x, h, torch.tensor([0.0], dtype=dtype)),
            (x, h, torch.tensor([float("nan")], dtype=dtype)),
            (x, h, torch.ones(1, 1, dtype=dtype)),
            (x.to(torch.float16), h, None),
        ]
        for args in declined:
            assert ctrl.core.fast_step(*args) is None
        with pytest.raises(ValueError, match="timespans must be finite"):
            ctrl.step(x, h, torch.tensor([0.0], dtype=dtype))
        with pytest.raises(ValueError, match="features"):
            ctrl.step(x[:, :31], h)
    assert ctrl.core.fast_step(x, h, None) is None  # grad enabled: the autograd path
