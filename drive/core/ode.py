"""Where the LTC ODE is solved by continuous solvers (torchdiffeq), with or without the adjoint.

The fused semi-implicit step lives in :mod:`drive.core.ltc`; this module integrates the same
vector field (conductance form, see :mod:`drive.core.ltc`)::

    dx/dt = [gleak (vleak - x) + sum w s (erev - x) + sum sensory_w s_in (sensory_erev - x)] / cm

with a torchdiffeq method (``euler``, ``midpoint``, ``rk4``, ``dopri5``, ...). The input is held
constant within each frame interval. The whole sequence is one ``odeint`` call on a *frame clock*
``r`` in [0, T]: frame ``k`` is ``r`` in [k, k+1), and time is rescaled per sample so frames of
different length share one batched call: with ``t = t_k + (r - k) * timespan[b, k]``,
``dx/dr = timespan[b, k] * f(x; u_k)``. Fixed-grid methods take ``ode_unfolds`` steps per frame on
a grid through every frame boundary; adaptive methods get the boundaries as ``jump_t``; both
evaluate a boundary just inside the interval being integrated (torchdiffeq's ``perturb``).

Gradients: by backpropagation through the solver (``adjoint=False``), or by
``torchdiffeq.odeint_adjoint`` (``adjoint=True``): then nothing inside the solve is kept for the
backward pass, only the potentials at the frame boundaries (the output itself, ``B * N`` numbers
per frame), and the vector field recomputes the sensory terms from the frame's input. The derived
parameter tensors, the features and the timespans (when they need gradients) are passed as
``adjoint_params``, so their gradients flow back to the raw parameters and to the features (and
so to a perception network upstream).
"""

from __future__ import annotations

import math
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
    """``dx/dr = timespan[b, k] * f(x; u[b, k])`` on the frame clock ``r``: frame ``k`` covers
    ``r`` in [k, k+1), its features ``u`` (B, T, K) and elapsed times ``timespans`` (B, T) are
    held constant over it. The solver is told the frame boundaries (fixed grid: a grid through
    every integer; adaptive: ``jump_t``) and evaluates them just inside the interval it is
    integrating (torchdiffeq's ``perturb``), so ``floor(r)`` always names the right frame."""

    def __init__(self, tensors: tuple[Tensor, ...], u: Tensor, timespans: Tensor | None, units: int) -> None:
        super().__init__()
        self.tensors, self.u, self.timespans, self.units = tensors, u, timespans, units
        self.nfe = 0

    def forward(self, r: Tensor, x: Tensor) -> Tensor:
        self.nfe += 1
        sps, sb, sm, ps, nsm, m, a0, gleak, cm = self.tensors
        n = self.units
        k = min(max(int(math.floor(r.detach().item())), 0), self.u.shape[1] - 1)
        sens = torch.sigmoid(torch.addmm(sb, self.u[:, k], sps)).mm(sm)
        syn = torch.sigmoid(torch.addmm(nsm, x, ps)).mm(m)
        num = sens[:, :n] + syn[:, :n] + a0
        den = sens[:, n:] + syn[:, n:] + gleak
        dx = (num - x * den) / cm
        return dx if self.timespans is None else self.timespans[:, k : k + 1] * dx


def _frame_grid(unfolds: int):
    """Grid constructor for fixed-grid methods: ``unfolds`` equal steps per frame, with every frame
    boundary an exact grid point (also on the adjoint's reversed time axis)."""

    def grid(func, y0, t: Tensor) -> Tensor:
        start, end = float(t[0]), float(t[-1])
        steps = round(abs(end - start) * unfolds)
        g = t[0] + torch.arange(steps + 1, dtype=t.dtype, device=t.device) / unfolds * (1.0 if end >= start else -1.0)
        g[-1] = t[-1]
        return g

    return grid


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
    :data:`SOLVERS` except "fused"; ``adjoint`` selects ``odeint_adjoint``. The whole sequence is
    one solve on the frame clock ``r`` in [0, T] (see :class:`LTCVectorField`).
    """
    check_solver(solver, adjoint)
    if solver == "fused":
        raise ValueError("solve_ode integrates continuous solvers; the fused step is LTCBase.solve")
    d = core.derived()
    tensors = tuple(d[k] for k in _KEYS)
    B, T, _ = x.shape
    r = torch.arange(T + 1, dtype=x.dtype, device=x.device)
    if solver in FIXED_GRID:
        options = dict(grid_constructor=_frame_grid(core.ode_unfolds), perturb=True)
        kwargs = dict(method=solver, options=options)
    else:
        kwargs = dict(method=solver, rtol=rtol, atol=atol, options=dict(jump_t=r[1:-1]))
    scale = None if timespans is None else timespans.to(x.dtype)
    field = LTCVectorField(tensors, x, scale, core.units)
    if adjoint and torch.is_grad_enabled():
        params = tuple(p for p in tensors + (x,) + (() if scale is None else (scale,)) if p.requires_grad)
        sol = odeint_adjoint(field, state, r, adjoint_params=params, **kwargs)
    else:
        sol = odeint(field, state, r, **kwargs)
    return sol[1:].transpose(0, 1)
