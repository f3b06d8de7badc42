"""The liquid time-constant (LTC) network in conductance form, solved by the fused step.

Model (Lechner et al. 2020, Nature MI, Methods; Hasani et al. 2021, AAAI, Eq. 1), for neuron
``j`` with potential ``x_j``::

    cm_j dx_j/dt = gleak_j (vleak_j - x_j)
                 + sum_i      w_ij  sigmoid(sigma_ij (x_i - mu_ij)) (erev_ij - x_j)    internal
                 + sum_k  sensory_w_kj  sigmoid(sensory_sigma_kj (u_k - sensory_mu_kj))
                                                               (sensory_erev_kj - x_j)  sensory

over the synapses that exist in the wiring (``i`` pre, ``j`` post). ``cm``, ``gleak``, ``w``
and ``sensory_w`` are kept positive by a softplus: the parameter tensors hold the raw values,
the model uses ``softplus(raw)`` (:meth:`LTCBase.positive`). ``u = input_w * features +
input_b`` (affine input map); the outputs are ``output_w * x_motor + output_b`` (motor neurons
are ``0 .. output_dim-1``). Adjacency masks are buffers; ``erev``/``sensory_erev`` start at the
synapse polarity (+1/-1).

**The fused step** (LTC paper, Eq. 3, "fused" explicit/implicit Euler) is repeated
``ode_unfolds`` times per frame with ``dt = timespan / ode_unfolds``::

    x <- (cm/dt * x + gleak*vleak + sum w*s*erev) / (cm/dt + gleak + sum w*s)

Each update is a convex combination of ``x``, ``vleak`` and the reversal potentials, so
potentials stay within their range (Theorem 2) for any ``dt``. Time is in model units: 1.0 is
one nominal frame period; ``timespans`` of shape (B, T) give each sample its own elapsed time.

Speed: the synapses are handled as edge lists folded into small dense matrices so one unfold is
five BLAS/elementwise calls, the sensory terms of all frames are computed in one batched call
before the time loop, the sequence runs in one ``torch.autograd.Function`` with an analytic
backward (:class:`FusedLTCSequence`), and inference caches the derived parameter tensors.
The continuous solvers (euler/rk4/dopri5, adjoint) live in :mod:`drive.core.ode`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit as _expit
from torch import Tensor, nn

from drive.core.wirings import Wiring

#: Initial ranges of the *effective* (post-softplus) parameters, uniform; as in the NCP paper's
#: reference implementation.
INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}
#: Parameters stored raw and used through softplus.
POSITIVE = ("cm", "gleak", "w", "sensory_w")


def softplus_inverse(y: Tensor) -> Tensor:
    """x such that softplus(x) = y, for y > 0."""
    return y + torch.log(-torch.expm1(-y))


def check_features(x: Tensor, expected: int, name: str = "x") -> None:
    if x.shape[-1] != expected:
        raise ValueError(f"{name} has {x.shape[-1]} features (shape {tuple(x.shape)}), expected {expected}")


def check_state(state: Tensor, batch: int, size: int, name: str = "state") -> None:
    if state.dim() != 2 or state.shape[0] != batch or state.shape[1] != size:
        raise ValueError(f"{name} has shape {tuple(state.shape)}, expected ({batch}, {size})")


def check_timespans(timespans: Tensor, shape: tuple[int, ...], name: str = "timespans") -> Tensor:
    """Validate elapsed times: the given shape, finite and > 0. Returns them unchanged."""
    if not isinstance(timespans, Tensor):
        timespans = torch.as_tensor(timespans)
    if tuple(timespans.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(timespans.shape)}, expected {tuple(shape)}")
    ok = torch.isfinite(timespans).logical_and_(timespans > 0)
    if not bool(ok.all()):
        bad = timespans[~ok].flatten()[0].item()
        raise ValueError(f"{name} must be finite and > 0 (model time units), got {bad}")
    return timespans


def check_sequence(x: Tensor, state: Tensor | None, timespans: Tensor | None, in_features: int, state_size: int,
                   initial_state) -> tuple[Tensor, Tensor | None]:
    """Validate the inputs of a sequence call: ``x`` (B, T, in_features), ``state`` (B, state_size)
    or None (then ``initial_state(B, device, dtype)``), ``timespans`` (B, T) or None.
    Returns the state and the timespans."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (batch, time, {in_features}), got {shape}")
    check_features(x, in_features)
    B, T, _ = x.shape
    if state is None:
        state = initial_state(B, x.device, x.dtype)
    else:
        check_state(state, B, state_size)
    if timespans is not None:
        timespans = check_timespans(timespans, (B, T))
    return state, timespans


class FusedLTCSequence(torch.autograd.Function):
    """The fused semi-implicit Euler unfolds of a whole sequence, with an analytic backward.

    Inputs (``N`` neurons, ``E`` internal synapses, ``U`` unfolds per frame):

    * ``x0`` (B, N): initial potentials;
    * ``aq`` (B, T, 2N): per frame ``[A | Q0]`` with ``A = gleak*vleak + sensory numerator``
      and ``Q0 = cm/dt + gleak + sensory denominator``;
    * ``cmt`` (B, T, N): ``cm/dt``;
    * ``ps`` (N, E): gathers the presynaptic potential of each synapse, scaled by its ``sigma``;
    * ``nsm`` (E,): ``-sigma*mu`` per synapse;
    * ``m`` (E, 2N): scatters ``[w*erev | w]`` of each synapse onto its postsynaptic neuron.

    One unfold: ``s = sigmoid(x @ ps + nsm)``; ``[P | Q] = aq_t + s @ m``;
    ``x = (P + cmt_t*x) / Q``. Returns the potentials after each frame, (B, T, N).
    The backward walks the unfolds in reverse with the saved ``x``, ``s`` and ``Q``; parameter
    gradients are accumulated in single matrix products at the end.
    """

    @staticmethod
    def forward(ctx, x0: Tensor, aq: Tensor, cmt: Tensor, ps: Tensor, nsm: Tensor, m: Tensor, unfolds: int) -> Tensor:
        B, T, N = cmt.shape
        E = ps.shape[1]
        K = T * unfolds
        xs = x0.new_empty(K + 1, B, N)
        ss = x0.new_empty(K, B, E)
        pqs = x0.new_empty(K, B, 2 * N)
        xs[0].copy_(x0)
        xl, sl, pql = xs.unbind(0), ss.unbind(0), pqs.unbind(0)
        pl, ql = pqs[:, :, :N].unbind(0), pqs[:, :, N:].unbind(0)
        aqt, cmtt = aq.unbind(1), cmt.unbind(1)
        nsm_b = nsm.expand(B, E).contiguous()
        k = 0
        x = xl[0]
        for t in range(T):
            a, c = aqt[t], cmtt[t]
            for _ in range(unfolds):
                s = torch.addmm(nsm_b, x, ps, out=sl[k])
                s.sigmoid_()
                torch.addmm(a, s, m, out=pql[k])
                x = torch.div(pl[k].addcmul_(c, x), ql[k], out=xl[k + 1])
                k += 1
        ctx.save_for_backward(xs, ss, pqs, cmt, ps, m)
        ctx.unfolds = unfolds
        return xs[unfolds::unfolds].transpose(0, 1).contiguous()

    @staticmethod
    def backward(ctx, g: Tensor):
        xs, ss, pqs, cmt, ps, m = ctx.saved_tensors
        U = ctx.unfolds
        B, T, N = cmt.shape
        K = T * U
        # dpq[k] = [dP | -dQ] of unfold k: dP = g/Q and dQ = -g*x'/Q = -dP*x'.
        dpq = torch.empty_like(pqs)
        dz = torch.empty_like(ss)
        xl, sl, ql, dzl = xs.unbind(0), ss.unbind(0), pqs[:, :, N:].unbind(0), dz.unbind(0)
        dpql, dpl, dqnl = dpq.unbind(0), dpq[:, :, :N].unbind(0), dpq[:, :, N:].unbind(0)
        gt = g.unbind(1)
        cmtt = cmt.unbind(1)
        # ds = dP @ Mn^T + dQ @ Md^T = [dP | -dQ] @ [Mn | -Md]^T
        m2t = torch.cat([m[:, :N], -m[:, N:]], 1).t().contiguous()
        pst = ps.t().contiguous()
        gx = torch.zeros_like(xl[0])
        k = K
        for t in range(T - 1, -1, -1):
            gx = gx + gt[t]
            c = cmtt[t]
            for _ in range(U):
                k -= 1
                dp = torch.div(gx, ql[k], out=dpl[k])
                torch.mul(dp, xl[k + 1], out=dqnl[k])
                ds = torch.mm(dpql[k], m2t)
                dzk = torch.ops.aten.sigmoid_backward.grad_input(ds, sl[k], grad_input=dzl[k])
                gx = torch.addmm(c * dp, dzk, pst)
        grads: list[Tensor | None] = [gx, None, None, None, None, None, None]
        need = ctx.needs_input_grad
        sign = torch.cat([dpq.new_ones(N), -dpq.new_ones(N)])
        if need[1]:
            grads[1] = dpq.view(T, U, B, 2 * N).sum(1).transpose(0, 1) * sign
        if need[2]:
            grads[2] = (dpq[:, :, :N] * xs[:-1]).view(T, U, B, N).sum(1).transpose(0, 1)
        if need[3]:
            grads[3] = xs[:-1].reshape(K * B, N).t().mm(dz.view(K * B, -1))
        if need[4]:
            grads[4] = dz.sum((0, 1))
        if need[5]:
            grads[5] = ss.view(K * B, -1).t().mm(dpq.view(K * B, 2 * N)) * sign
        return tuple(grads)


class LTCBase(nn.Module):
    """Parameters, masks and the derived tensors of an LTC network on a given wiring.

    Subclasses :class:`LTCCell` (one frame) and :class:`LTC` (a sequence) share everything,
    including the defaults.
    """

    def __init__(
        self,
        wiring: Wiring,
        in_features: int | None = None,
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        seed: int | None = None,
        solver: str = "fused",
        adjoint: bool = False,
        rtol: float = 1e-6,
        atol: float = 1e-8,
    ) -> None:
        """``wiring`` fixes the synapses; ``in_features`` builds it if needed; ``ode_unfolds``
        solver steps per frame (fused and fixed-grid solvers); ``epsilon`` added to the fused
        step's denominator (as in ncps); ``seed`` for the parameter initialisation (None: torch's
        global generator); ``solver`` "fused" or a torchdiffeq method (:data:`drive.core.ode.SOLVERS`);
        ``adjoint`` uses ``odeint_adjoint`` for gradients; ``rtol``/``atol`` for adaptive solvers."""
        super().__init__()
        from drive.core.ode import check_solver

        check_solver(solver, adjoint)
        self.solver, self.adjoint, self.rtol, self.atol = solver, bool(adjoint), float(rtol), float(atol)
        if in_features is not None:
            wiring.build(in_features)
        if not wiring.is_built:
            raise ValueError("LTC needs in_features or a built wiring (wiring.build(input_dim))")
        if isinstance(ode_unfolds, bool) or not isinstance(ode_unfolds, int) or ode_unfolds < 1:
            raise ValueError(f"ode_unfolds={ode_unfolds!r} must be an integer >= 1")
        if not (isinstance(epsilon, (int, float)) and epsilon >= 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon={epsilon!r} must be a finite number >= 0")
        self.wiring = wiring
        self.ode_unfolds = int(ode_unfolds)
        self.epsilon = float(epsilon)
        N, K, M = wiring.units, wiring.input_dim, wiring.output_dim
        self.units, self.in_features, self.motor_size = N, K, M

        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def init(name: str, shape: tuple[int, ...]) -> nn.Parameter:
            lo, hi = INIT_RANGES[name]
            value = torch.rand(shape, generator=gen) * (hi - lo) + lo
            if name in POSITIVE:
                value = softplus_inverse(value)
            return nn.Parameter(value)

        self.gleak = init("gleak", (N,))
        self.vleak = init("vleak", (N,))
        self.cm = init("cm", (N,))
        self.sigma = init("sigma", (N, N))
        self.mu = init("mu", (N, N))
        self.w = init("w", (N, N))
        self.erev = nn.Parameter(torch.tensor(wiring.adjacency, dtype=torch.float32))
        self.sensory_sigma = init("sensory_sigma", (K, N))
        self.sensory_mu = init("sensory_mu", (K, N))
        self.sensory_w = init("sensory_w", (K, N))
        self.sensory_erev = nn.Parameter(torch.tensor(wiring.sensory_adjacency, dtype=torch.float32))
        self.input_w = nn.Parameter(torch.ones(K))
        self.input_b = nn.Parameter(torch.zeros(K))
        self.output_w = nn.Parameter(torch.ones(M))
        self.output_b = nn.Parameter(torch.zeros(M))

        self.register_buffer("sparsity_mask", torch.tensor(np.abs(wiring.adjacency), dtype=torch.float32))
        self.register_buffer("sensory_sparsity_mask", torch.tensor(np.abs(wiring.sensory_adjacency), dtype=torch.float32))
        # Edge lists (fixed by the wiring): internal synapse e goes pre[e] -> post[e].
        pre, post = np.nonzero(wiring.adjacency)
        spre, spost = np.nonzero(wiring.sensory_adjacency)
        self.register_buffer("_pre", torch.tensor(pre, dtype=torch.long), persistent=False)
        self.register_buffer("_post", torch.tensor(post, dtype=torch.long), persistent=False)
        self.register_buffer("_spre", torch.tensor(spre, dtype=torch.long), persistent=False)
        self.register_buffer("_spost", torch.tensor(spost, dtype=torch.long), persistent=False)
        self.register_buffer("_pre_onehot", F.one_hot(self._pre, N).t().float(), persistent=False)  # (N, E)
        self.register_buffer("_post_onehot", F.one_hot(self._post, N).float(), persistent=False)  # (E, N)
        self.register_buffer("_spre_onehot", F.one_hot(self._spre, K).t().float(), persistent=False)  # (K, Es)
        self.register_buffer("_spost_onehot", F.one_hot(self._spost, N).float(), persistent=False)  # (Es, N)
        self._cache: tuple[Any, dict[str, Tensor]] | None = None
        self._folds: dict[Any, Any] = {}  # per timespan: torch fold; per ("numpy", timespan): NumPy fold

    # ------------------------------------------------------------------ parameters
    @property
    def state_size(self) -> int:
        return self.units

    def parameter_masks(self) -> dict[str, Tensor]:
        """Which entries of each masked parameter can affect the output (bool tensors): the
        per-synapse parameters of existing synapses, and the input map of features that have
        at least one sensory synapse. Used to count trainable parameters."""
        mask = self.sparsity_mask.bool()
        smask = self.sensory_sparsity_mask.bool()
        used_inputs = smask.any(1)
        out = {name: mask for name in ("w", "sigma", "mu", "erev")}
        out.update({name: smask for name in ("sensory_w", "sensory_sigma", "sensory_mu", "sensory_erev")})
        out.update(input_w=used_inputs, input_b=used_inputs)
        return out

    def positive(self, name: str) -> Tensor:
        """The effective (softplus'ed) value of a positive parameter: cm, gleak, w, sensory_w."""
        return F.softplus(getattr(self, name))

    def derived(self) -> dict[str, Tensor]:
        """Tensors the solvers use, built from the parameters (differentiable).

        ``ps`` (N, E), ``nsm`` (E,), ``m`` (E, 2N): the internal synapses (see
        :class:`FusedLTCSequence`); ``sps`` (K, Es), ``sb`` (Es,), ``sm`` (Es, 2N): the same
        for the sensory synapses with the affine input map folded in (``sigmoid(x @ sps + sb)``
        are the sensory synapse activations, ``@ sm`` gives the sensory numerator and
        denominator); ``a0 = gleak*vleak``, ``gleak``, ``cm``, ``vleak``.
        In no-grad mode the result is cached until a parameter changes.
        """
        if torch.is_grad_enabled():
            return self._derive()
        params = tuple(self._parameters.values())
        key = (tuple(map(id, params)), tuple(p._version for p in params), self.cm.dtype, self.cm.device)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._derive())
            self._folds = {}
        return self._cache[1]

    def _derive(self) -> dict[str, Tensor]:
        pre, post, spre, spost = self._pre, self._post, self._spre, self._spost
        dtype = self.cm.dtype
        sig = self.sigma[pre, post]
        w = F.softplus(self.w[pre, post])
        erev = self.erev[pre, post]
        ssig = self.sensory_sigma[spre, spost]
        sw = F.softplus(self.sensory_w[spre, spost])
        serev = self.sensory_erev[spre, spost]
        post_oh, spost_oh = self._post_onehot.to(dtype), self._spost_onehot.to(dtype)
        gleak = F.softplus(self.gleak)
        return {
            "ps": self._pre_onehot.to(dtype) * sig,
            "nsm": -(sig * self.mu[pre, post]),
            "m": torch.cat([post_oh * (w * erev)[:, None], post_oh * w[:, None]], 1),
            "sps": self._spre_onehot.to(dtype) * (ssig * self.input_w[spre]),
            "sb": ssig * (self.input_b[spre] - self.sensory_mu[spre, spost]),
            "sm": torch.cat([spost_oh * (sw * serev)[:, None], spost_oh * sw[:, None]], 1),
            "gleak": gleak,
            # a separate softplus: no derived tensor may be computed from another one, since
            # the adjoint asks for gradients w.r.t. all of them at once (it would count twice)
            "a0": F.softplus(self.gleak) * self.vleak,
            "cm": F.softplus(self.cm),
            "vleak": self.vleak,
        }

    # ------------------------------------------------------------------ pieces
    def sensory_terms(self, x: Tensor, d: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``A = gleak*vleak + sum sensory w*s*erev`` and ``Bd = gleak + sum sensory w*s`` for
        features ``x`` of shape (..., K); both (..., N)."""
        lead = x.shape[:-1]
        s = torch.sigmoid(torch.addmm(d["sb"], x.reshape(-1, self.in_features), d["sps"]))
        ab = s.mm(d["sm"]).view(*lead, 2 * self.units)
        return ab[..., : self.units] + d["a0"], ab[..., self.units :] + d["gleak"]

    def map_outputs(self, states: Tensor) -> Tensor:
        """Affine map of the motor potentials (the first ``motor_size`` neurons)."""
        return torch.addcmul(self.output_b, states[..., : self.motor_size], self.output_w)

    def initial_state(self, batch: int, device=None, dtype=None) -> Tensor:
        return torch.zeros(batch, self.units, device=device or self.cm.device, dtype=dtype or self.cm.dtype)

    def bounds(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Theorem 2 bound for the conductance form: each potential stays within the range of its
        own initial value, its ``vleak`` and the reversal potentials of its incoming synapses.
        Returns (low, high) of shape (B, N)."""
        big = torch.finfo(self.erev.dtype).max
        e_in = torch.where(self.sparsity_mask.bool(), self.erev, torch.full_like(self.erev, big))
        se_in = torch.where(self.sensory_sparsity_mask.bool(), self.sensory_erev, torch.full_like(self.sensory_erev, big))
        low = torch.minimum(torch.minimum(e_in.min(0).values, se_in.min(0).values), self.vleak)
        e_in = torch.where(self.sparsity_mask.bool(), self.erev, torch.full_like(self.erev, -big))
        se_in = torch.where(self.sensory_sparsity_mask.bool(), self.sensory_erev, torch.full_like(self.sensory_erev, -big))
        high = torch.maximum(torch.maximum(e_in.max(0).values, se_in.max(0).values), self.vleak)
        return torch.minimum(low, x0), torch.maximum(high, x0)

    # ------------------------------------------------------------------ solving
    def _prepare(self, x: Tensor, state: Tensor | None, timespans: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return check_sequence(x, state, timespans, self.in_features, self.units, self.initial_state)

    def solve(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> Tensor:
        """Potentials after each frame, (B, T, N), by the configured solver (no input checks)."""
        if self.solver != "fused":
            from drive.core.ode import solve_ode

            return solve_ode(self, x, state, timespans, self.solver, self.adjoint, self.rtol, self.atol)
        B, T, _ = x.shape
        if not torch.is_grad_enabled():
            if timespans is None:
                return self._infer_folded(x, state, 1.0)
            if B == 1 and T == 1:
                return self._infer_folded(x, state, float(timespans))
        d = self.derived()
        a, bd = self.sensory_terms(x, d)
        if timespans is None:
            cmt = (d["cm"] * self.ode_unfolds).expand(B, T, self.units)
        else:
            cmt = d["cm"] * (self.ode_unfolds / timespans.to(x.dtype)).unsqueeze(-1)
        q0 = cmt + bd
        if self.epsilon:
            q0 = q0 + self.epsilon
        aq = torch.cat([a, q0], -1)
        if torch.is_grad_enabled():
            return FusedLTCSequence.apply(state, aq, cmt, d["ps"], d["nsm"], d["m"], self.ode_unfolds)
        return _fused_inference(state, aq, cmt, d["ps"], d["nsm"], d["m"], self.ode_unfolds)

    def _fold(self, d: dict[str, Tensor], timespan: float) -> tuple[Tensor, Tensor]:
        """For one timespan shared by the whole batch: ``maug`` ((E+N), 2N) = ``[m ; [diag(cm/dt) | 0]]``
        so that ``[s | x] @ maug = [sum w s erev + cm/dt x | sum w s]``, and ``aq0`` (2N,) =
        ``[gleak*vleak | cm/dt + gleak + epsilon]``. Cached per timespan until a parameter changes."""
        fold = self._folds.get(timespan)
        if fold is None:
            cmt = d["cm"] * (self.ode_unfolds / timespan)
            n = self.units
            lower = torch.cat([torch.diag(cmt), cmt.new_zeros(n, n)], 1)
            maug = torch.cat([d["m"], lower], 0)
            aq0 = torch.cat([d["a0"], cmt + d["gleak"] + self.epsilon])
            fold = self._folds[timespan] = (maug, aq0)
        return fold

    def _infer_folded(self, x: Tensor, state: Tensor, timespan: float) -> Tensor:
        """Inference (no autograd) when every sample and frame has the same ``timespan``.

        Same arithmetic as the fused step, with ``cm/dt * x`` folded into the matrix product:
        ``[s | x]`` share one buffer, so an unfold is four calls
        (``s = x@ps + nsm``; ``sigmoid``; ``[P|Q] = aq + [s|x] @ maug``; ``x = P/Q``).
        On the CPU these tiny products cost less in NumPy than in torch (about 1 µs a call
        against 3–4 µs), so CPU tensors take :meth:`_infer_folded_numpy`."""
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and self.cm.dtype == x.dtype:
            return self._infer_folded_numpy(x, state, timespan)
        d = self.derived()
        maug, aq0 = self._fold(d, timespan)
        B, T, K = x.shape
        N, E = self.units, d["nsm"].shape[0]
        s_in = torch.addmm(d["sb"], x.reshape(B * T, K), d["sps"]).sigmoid_()
        aq = torch.addmm(aq0, s_in, d["sm"]).view(B, T, 2 * N)
        buf = x.new_empty(B, E + N)
        s, h = buf[:, :E], buf[:, E:]
        h.copy_(state)
        pq = x.new_empty(B, 2 * N)
        p, q = pq[:, :N], pq[:, N:]
        ps, nsm = d["ps"], d["nsm"]
        out = x.new_empty(B, T, N)
        for t, a in enumerate(aq.unbind(1)):
            for _ in range(self.ode_unfolds):
                torch.addmm(nsm, h, ps, out=s).sigmoid_()
                torch.addmm(a, buf, maug, out=pq)
                torch.div(p, q, out=h)
            out[:, t] = h
        return out

    def _numpy_fold(self, timespan: float) -> dict[str, np.ndarray]:
        """The tensors of :meth:`_fold` as NumPy arrays, with ``nsm`` appended to ``ps`` as a last
        row (it multiplies a constant 1 kept beside the potentials). Cached like :meth:`_fold`."""
        d = self.derived()
        key = ("numpy", timespan)
        fold = self._folds.get(key)
        if fold is None:
            maug, aq0 = self._fold(d, timespan)
            fold = self._folds[key] = {
                "ps1": torch.cat([d["ps"], d["nsm"][None]], 0).numpy(),
                "maug": maug.numpy(),
                "aq0": aq0.numpy(),
                "sps": d["sps"].numpy(),
                "sb": d["sb"].numpy(),
                "sm": d["sm"].numpy(),
            }
        return fold

    def _infer_folded_numpy(self, x: Tensor, state: Tensor, timespan: float) -> Tensor:
        """:meth:`_infer_folded` in NumPy: one buffer ``[s | x | 1]`` per batch, five calls an unfold."""
        f = self._numpy_fold(timespan)
        B, T, K = x.shape
        N, E = self.units, f["ps1"].shape[1]
        xn = x.detach().numpy().reshape(B * T, K)
        s_in = xn @ f["sps"]
        s_in += f["sb"]
        _expit(s_in, out=s_in)
        aq = s_in @ f["sm"]
        aq += f["aq0"]
        aq = aq.reshape(B, T, 2 * N)
        buf = np.empty((B, E + N + 1), dtype=xn.dtype)
        s, h, sx, h1 = buf[:, :E], buf[:, E : E + N], buf[:, : E + N], buf[:, E:]
        h[:] = state.detach().numpy()
        buf[:, -1] = 1.0
        pq = np.empty((B, 2 * N), dtype=xn.dtype)
        p, q = pq[:, :N], pq[:, N:]
        ps1, maug = f["ps1"], f["maug"]
        out = np.empty((B, T, N), dtype=xn.dtype)
        for t in range(T):
            a = aq[:, t]
            for _ in range(self.ode_unfolds):
                np.matmul(h1, ps1, out=s)
                _expit(s, out=s)
                np.matmul(sx, maug, out=pq)
                pq += a
                np.divide(p, q, out=h)
            out[:, t] = h
        return torch.from_numpy(out)

    def run_sequence(self, x: Tensor, state: Tensor | None = None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        state, timespans = self._prepare(x, state, timespans)
        states = self.solve(x, state, timespans)
        return self.map_outputs(states), states[:, -1]

    def extra_repr(self) -> str:
        return (
            f"units={self.units}, in_features={self.in_features}, motor={self.motor_size}, "
            f"synapses={self.wiring.synapse_count}+{self.wiring.sensory_synapse_count} sensory, "
            f"ode_unfolds={self.ode_unfolds}, solver={self.solver}, adjoint={self.adjoint}"
        )


def _fused_inference(x: Tensor, aq: Tensor, cmt: Tensor, ps: Tensor, nsm: Tensor, m: Tensor, unfolds: int) -> Tensor:
    """The forward of :class:`FusedLTCSequence` without saving anything for a backward."""
    B, T, N = cmt.shape
    out = x.new_empty(T, B, N)
    outl = out.unbind(0)
    aqt, cmtt = aq.unbind(1), cmt.unbind(1)
    s = x.new_empty(B, ps.shape[1])
    pq = x.new_empty(B, 2 * N)
    p, q = pq[:, :N], pq[:, N:]
    for t in range(T):
        a, c = aqt[t], cmtt[t]
        for u in range(unfolds):
            torch.addmm(nsm, x, ps, out=s)
            s.sigmoid_()
            torch.addmm(a, s, m, out=pq)
            p.addcmul_(c, x)
            x = torch.div(p, q, out=outl[t]) if u == unfolds - 1 else torch.div(p, q)
    return out.transpose(0, 1)


class LTC(LTCBase):
    """LTC network over sequences: ``forward(x (B,T,F), state (B,N) | None, timespans (B,T) |
    None) -> (outputs (B,T,motor), final state (B,N))``. Defaults as :class:`LTCCell`."""

    def forward(self, x: Tensor, state: Tensor | None = None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.run_sequence(x, state, timespans)


class LTCCell(LTCBase):
    """LTC network for one frame: ``forward(x (B,F), state (B,N) | None, timespans (B,) | None)
    -> (outputs (B,motor), new state (B,N))``. Same defaults as :class:`LTC`."""

    def forward(self, x: Tensor, state: Tensor | None = None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 2:
            raise ValueError(f"x must have shape (batch, {self.in_features}), got {tuple(x.shape)}")
        if timespans is not None:
            timespans = check_timespans(timespans, (x.shape[0],)).unsqueeze(1)
        y, state = self.run_sequence(x.unsqueeze(1), state, timespans)
        return y[:, 0], state
