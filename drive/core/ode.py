"""Where the LTC ODE is solved by continuous solvers (torchdiffeq), with or without the adjoint.

The fused semi-implicit step lives in :mod:`drive.core.ltc`; this module integrates the same
vector field (conductance form, see :mod:`drive.core.ltc`)::

    dx/dt = [gleak (vleak - x) + sum w s (erev - x) + sum sensory_w s_in (sensory_erev - x)] / cm

with a torchdiffeq method (``euler``, ``midpoint``, ``rk4``, ``dopri5``, ...). The input is held
constant within each frame interval: every frame is one ``odeint`` call. Time is rescaled per
sample so frames of different length share one batched call: with ``t = t0 + r * timespan``,
``dx/dr = timespan * f(x)`` for ``r`` in [0, 1]. Fixed-grid methods take ``ode_unfolds`` steps per
frame (step 1/ode_unfolds in ``r``).

Gradients: by backpropagation through the solver (``adjoint=False``), or by
``torchdiffeq.odeint_adjoint`` (``adjoint=True``): then nothing inside a frame's solve is kept
for the backward pass, only the potentials at the frame boundaries, and the vector field
recomputes the sensory terms from the frame's input, so memory grows by ``2 * B * N`` numbers
per frame instead of every solver stage. The derived parameter tensors and the frame input are
passed as ``adjoint_params``, so their gradients flow back to the raw parameters and to the
features (and so to a perception network upstream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchdiffeq import odeint, odeint_adjoint

if TYPE_CHECKING:
    from drive.core.ltc import LTCBase

#: Fixed-grid torchdiffeq methods (``ode_unfolds`` steps per frame).
FIXED_GRID = ("euler", "midpoint", "rk4")
#: Adaptive torchdiffeq methods (``rtol``/``atol``).
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun", "dopri8")
#: Every solver name the LTC accepts; "fused" is the fused step of :mod:`drive.core.ltc`.
SOLVERS = ("fused",) + FIXED_GRID + ADAPTIVE


def check_solver(solver: str, adjoint: bool) -> None:
    """ValueError for an unknown solver name, or the adjoint asked of the fused step."""
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is unknown; choose one of {', '.join(SOLVERS)}")
    if adjoint and solver == "fused":
        raise ValueError("adjoint=True needs a continuous solver (euler, rk4, dopri5, ...), not solver='fused'")


#: Order of the derived tensors passed to the vector field (and as adjoint parameters).
_KEYS = ("sps", "sb", "sm", "ps", "nsm", "m", "a0", "gleak", "cm")


class LTCVectorField(torch.nn.Module):
    """``dx/dr = scale * f(x; u)`` for one frame: ``u`` (B, K) the frame's features, ``scale``
    (B, 1) the frame's timespan. The tensors are set by :meth:`set_frame` before each solve."""

    def __init__(self, units: int) -> None:
        super().__init__()
        self.units = units
        self.tensors: tuple[Tensor, ...] = ()
        self.u: Tensor | None = None
        self.scale: Tensor | None = None
        self.nfe = 0

    def set_frame(self, tensors: tuple[Tensor, ...], u: Tensor, scale: Tensor) -> None:
        self.tensors, self.u, self.scale = tensors, u, scale

    def forward(self, r: Tensor, x: Tensor) -> Tensor:
        self.nfe += 1
        sps, sb, sm, ps, nsm, m, a0, gleak, cm = self.tensors
        n = self.units
        sens = torch.sigmoid(torch.addmm(sb, self.u, sps)).mm(sm)
        syn = torch.sigmoid(torch.addmm(nsm, x, ps)).mm(m)
        num = sens[:, :n] + syn[:, :n] + a0
        den = sens[:, n:] + syn[:, n:] + gleak
        return self.scale * (num - x * den) / cm


def solve_ode(
    core: "LTCBase",
    x: Tensor,
    state: Tensor,
    timespans: Tensor | None,
    solver: str,
    adjoint: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> Tensor:
    """Potentials after each frame, (B, T, N), for features ``x`` (B, T, K) from ``state`` (B, N).

    ``timespans`` (B, T) in model time units or None (all 1.0); ``solver`` one of
    :data:`SOLVERS` except "fused"; ``adjoint`` selects ``odeint_adjoint``.
    """
    check_solver(solver, adjoint)
    if solver == "fused":
        raise ValueError("solve_ode integrates continuous solvers; the fused step is LTCBase.solve")
    d = core.derived()
    tensors = tuple(d[k] for k in _KEYS)
    B, T, _ = x.shape
    r = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
    if solver in FIXED_GRID:
        kwargs = dict(method=solver, options=dict(step_size=1.0 / core.ode_unfolds))
    else:
        kwargs = dict(method=solver, rtol=rtol, atol=atol)
    # u is a parameter of the adjoint only if a gradient w.r.t. the input or parameters is wanted.
    grad = torch.is_grad_enabled()
    ones = torch.ones(B, 1, dtype=x.dtype, device=x.device)
    out = []
    h = state
    for t in range(T):
        u = x[:, t]
        scale = ones if timespans is None else timespans[:, t : t + 1].to(x.dtype)
        # one vector field per frame: the adjoint's backward pass calls it again later
        field = LTCVectorField(core.units)
        field.set_frame(tensors, u, scale)
        if adjoint and grad:
            params = tuple(p for p in tensors + (u,) if p.requires_grad)
            h = odeint_adjoint(field, h, r, adjoint_params=params, **kwargs)[-1]
        else:
            h = odeint(field, h, r, **kwargs)[-1]
        out.append(h)
    return torch.stack(out, 1)
