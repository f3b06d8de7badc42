"""The compiled LTC kernel's own pieces: its arithmetic sigmoid and its batch chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drive.core import kernels
from drive.core.ltc import LTC
from drive.core.wirings import ncp19


def test_arithmetic_sigmoid_equals_libm_sigmoid():
    # the vectorisable sigmoid (no libm exp) against 1 / (1 + exp(-z)): relative error ~1e-14
    # where it is not clamped, absolute error below 1e-17 beyond |z| = 40
    kernels.kernels(False)  # compiles the sigmoid the kernels call
    sigmoid = kernels._sigmoid
    for z in np.concatenate([np.linspace(-40.0, 40.0, 20001), [0.0, 1e-300, -1e-300]]):
        ref = 1.0 / (1.0 + math.exp(-z))
        assert abs(sigmoid(z) - ref) <= 1e-13 * ref, z
    for z in (-1e300, -700.0, -41.0, 41.0, 700.0, 1e300, math.inf, -math.inf):
        ref = 1.0 / (1.0 + math.exp(min(-z, 700.0)))
        assert abs(sigmoid(z) - ref) <= 1e-17, z


@pytest.mark.parametrize("chunks", [(2, 5), (3, 4), (4, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_and_padded_batches_equal_one_chunk(chunks, dtype, monkeypatch, randomise):
    # a batch of 9 split into chunks (the last padded with dummy samples) gives the numbers of
    # one chunk, forward and backward; the padding adds nothing to the parameter gradients
    model = randomise(LTC(ncp19(seed=1), in_features=32, seed=1), seed=2).to(torch.float64)
    p = tuple(t.detach().numpy().astype(dtype) for t in model.edge_params())
    rng = np.random.default_rng(3)
    x0 = (0.3 * rng.standard_normal((9, 19))).astype(dtype)
    u = rng.standard_normal((9, 4, 32)).astype(dtype)
    ts = (0.2 + 2 * rng.random((9, 4))).astype(dtype)
    g = rng.standard_normal((9, 4, 19)).astype(dtype)
    gfinal = rng.standard_normal((9, 19)).astype(dtype)

    def run():
        out, saved = kernels.forward(x0, u, ts, *p, *model._index, 3, save=True)
        return (out,) + kernels.backward(g, gfinal, u, ts, *p, *model._index, 3, saved)

    monkeypatch.setattr(kernels, "_chunking", lambda batch: (1, batch, False))
    one = run()
    monkeypatch.setattr(kernels, "_chunking", lambda batch: chunks + (True,))
    split = run()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(one, split):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_edge_parameters_equal_the_torch_ones(dtype, randomise):
    # the kernel's Function builds its edge parameters in NumPy; LTCBase.edge_params is the torch twin
    from drive.core.ltc import KERNEL_PARAMS, edge_arrays

    model = randomise(LTC(ncp19(seed=1), in_features=32, seed=1), seed=2, spread=10.0).to(dtype)
    raw = {name: getattr(model, name).detach().numpy() for name in KERNEL_PARAMS}
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    for ours, ref in zip(edge_arrays(raw, model._index, model.epsilon), model.edge_params()):
        assert ours.dtype == ref.detach().numpy().dtype
        np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=tol, atol=tol)


def test_a_parameter_changed_in_place_before_backward_is_an_error(randomise):
    model = randomise(LTC(ncp19(seed=1), in_features=32, seed=1), seed=2)
    y, _ = model(torch.randn(2, 3, 32))
    with torch.no_grad():
        model.w.add_(0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
