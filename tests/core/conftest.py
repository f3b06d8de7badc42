"""Small factories for the core tests: wirings, LTC models, and ncps twins of our LTC."""

from __future__ import annotations

import pytest
import torch

from drive.core.ltc import LTC
from drive.core.wirings import NCP, FullyConnected, Random, Wiring


def small_ncp(seed: int = 0, input_dim: int = 5) -> NCP:
    return NCP(
        inter=4,
        command=3,
        motor=2,
        sensory_fanout=2,
        inter_fanout=2,
        recurrent_command_synapses=3,
        motor_fanin=2,
        seed=seed,
        input_dim=input_dim,
    )


def wiring_zoo(input_dim: int = 6) -> dict[str, Wiring]:
    """Several different wirings (different layer sizes, dense and random)."""
    ncp = NCP(
        inter=5,
        command=4,
        motor=2,
        sensory_fanout=3,
        inter_fanout=2,
        recurrent_command_synapses=4,
        motor_fanin=3,
        seed=7,
        input_dim=input_dim,
    )
    return {
        "ncp-small": ncp,
        "fully-connected": FullyConnected(units=6, output_dim=1, input_dim=input_dim, seed=3),
        "random": Random(like=ncp, seed=11),
    }


def randomise_(model: LTC, seed: int, spread: float = 1.0) -> LTC:
    """Move every parameter away from its initial value (so the input/output maps and reversal
    potentials are exercised, not left at 1/0/+-1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(spread * 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def ncps_twin(model: LTC):
    """An ``ncps.torch.LTC`` with the same wiring and parameters as our ``model``.

    ncps is set explicitly to what we compute: softplus constraints (implicit_param_constraints),
    affine input and output maps, the same ode_unfolds and epsilon."""
    import ncps.torch
    import ncps.wirings

    w = model.wiring
    cfg = dict(
        units=w.units,
        adjacency_matrix=w.adjacency.tolist(),
        sensory_adjacency_matrix=w.sensory_adjacency.tolist(),
        input_dim=w.input_dim,
        output_dim=w.output_dim,
    )
    ref = ncps.torch.LTC(
        w.input_dim,
        ncps.wirings.Wiring.from_config(cfg),
        input_mapping="affine",
        output_mapping="affine",
        ode_unfolds=model.ode_unfolds,
        epsilon=model.epsilon,
        implicit_param_constraints=True,
    )
    ref = ref.to(model.cm.dtype)
    with torch.no_grad():
        for name, p in ref.rnn_cell.named_parameters():
            if name in ("sparsity_mask", "sensory_sparsity_mask"):
                continue
            p.copy_(getattr(model, name))
    return ref


@pytest.fixture
def make_small_ncp():
    """Factory: a 9-neuron NCP (4 inter, 3 command, 2 motor) built for ``input_dim`` features."""
    return small_ncp


@pytest.fixture
def make_wirings():
    """Factory: several different wirings by name."""
    return wiring_zoo


@pytest.fixture
def randomise():
    """Factory: perturb every parameter of an LTC (seeded)."""
    return randomise_


@pytest.fixture
def make_ncps_twin():
    """Factory: an ncps.torch.LTC with our model's wiring and parameters."""
    return ncps_twin
