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

Two implementations of the fused step, and only two: :func:`reference_step`, the equation in
plain torch with dense masked matrices (CUDA, other dtypes, ONNX export, and the reference every
test compares with), and the compiled CPU kernel of :mod:`drive.core.kernels` (numba; forward and
analytic backward of a whole sequence over edge lists), which serves every float32/float64 CPU
call, training and inference, through :class:`LTCKernel`. Inference caches its parameters.
The continuous solvers (euler/rk4/dopri5, adjoint) live in :mod:`drive.core.ode`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drive.core.limits import MAX_ODE_UNFOLDS, MAX_UNITS, MIN_TOLERANCE, check_float, check_int
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


def check_sequence(
    x: Tensor, state: Tensor | None, timespans: Tensor | None, in_features: int, state_size: int, initial_state
) -> tuple[Tensor, Tensor | None]:
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


def reference_step(core: LTCBase, x: Tensor, num_in: Tensor, den_in: Tensor, cm_dt: Tensor) -> Tensor:
    """One fused unfold, written as the paper writes it (LTC paper, Eq. 3), with dense masked
    matrices: the readable reference every fast path is tested against.

    ``x`` (B, N) potentials; ``num_in``/``den_in`` (B, N) the sensory synapses' numerator
    ``sum sensory_w s erev`` and denominator ``sum sensory_w s`` of this frame (see
    :func:`reference_sensory`); ``cm_dt`` (B, N) = ``cm / dt``."""
    w = F.softplus(core.w) * core.sparsity_mask  # (pre, post)
    s = torch.sigmoid(core.sigma * (x.unsqueeze(-1) - core.mu))  # (B, pre, post)
    gleak = F.softplus(core.gleak)
    num = cm_dt * x + gleak * core.vleak + num_in + (w * s * core.erev).sum(-2)
    den = cm_dt + gleak + den_in + (w * s).sum(-2)
    return num / (den + core.epsilon)


def reference_sensory(core: LTCBase, features: Tensor) -> tuple[Tensor, Tensor]:
    """Sensory numerator and denominator (..., N) of features (..., K), through the affine input map."""
    u = features * core.input_w + core.input_b
    w = F.softplus(core.sensory_w) * core.sensory_sparsity_mask  # (K, N)
    s = torch.sigmoid(core.sensory_sigma * (u.unsqueeze(-1) - core.sensory_mu))  # (..., K, N)
    return (w * s * core.sensory_erev).sum(-2), (w * s).sum(-2)


def reference_sequence(core: LTCBase, x: Tensor, state: Tensor, timespans: Tensor | None) -> Tensor:
    """Potentials after each frame (B, T, N) by :func:`reference_step`, in plain torch ops
    (autograd, any device and dtype, exportable to ONNX with the loops unrolled)."""
    num_in, den_in = reference_sensory(core, x)
    cm = F.softplus(core.cm)
    out = []
    for t in range(x.shape[1]):
        span = 1.0 if timespans is None else timespans[:, t : t + 1].to(x.dtype)
        cm_dt = cm * core.ode_unfolds / span  # dt = timespan / ode_unfolds
        cm_dt = cm_dt.expand_as(state)
        for _ in range(core.ode_unfolds):
            state = reference_step(core, state, num_in[:, t], den_in[:, t], cm_dt)
        out.append(state)
    return torch.stack(out, 1)


#: The raw parameters the kernel's edge parameters are made of, in :class:`LTCKernel`'s order.
KERNEL_PARAMS = (
    "sigma",
    "mu",
    "w",
    "erev",
    "sensory_sigma",
    "sensory_mu",
    "sensory_w",
    "sensory_erev",
    "input_w",
    "input_b",
    "gleak",
    "vleak",
    "cm",
)


def _softplus_np(x: np.ndarray) -> np.ndarray:
    """``torch.nn.functional.softplus`` (beta 1, threshold 20) in NumPy."""
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for very negative x gives the right 0
        return 1 / (1 + np.exp(-x))


def edge_arrays(raw: dict[str, np.ndarray], index: tuple[np.ndarray, ...], epsilon: float) -> tuple[np.ndarray, ...]:
    """:meth:`LTCBase.edge_params` in NumPy from the raw parameters (``raw`` by name): (pint, psen,
    pneu). Used by the kernel's autograd Function and the inference cache alike, so that both
    paths give the same numbers."""
    pre, post, spre, spost = index
    sig = raw["sigma"][pre, post]
    w = _softplus_np(raw["w"][pre, post])
    pint = np.stack([sig, -sig * raw["mu"][pre, post], w * raw["erev"][pre, post], w])
    ssig = raw["sensory_sigma"][spre, spost]
    sw = _softplus_np(raw["sensory_w"][spre, spost])
    psen = np.stack(
        [
            ssig * raw["input_w"][spre],
            ssig * (raw["input_b"][spre] - raw["sensory_mu"][spre, spost]),
            sw * raw["sensory_erev"][spre, spost],
            sw,
        ]
    )
    gleak = _softplus_np(raw["gleak"])
    pneu = np.stack([gleak * raw["vleak"], gleak + epsilon, _softplus_np(raw["cm"])])
    return pint, psen, pneu


def edge_grads(
    gpint: np.ndarray, gpsen: np.ndarray, gpneu: np.ndarray, raw: dict[str, np.ndarray], index: tuple[np.ndarray, ...]
) -> dict[str, np.ndarray]:
    """The gradients of the raw parameters given those of :func:`edge_arrays`' outputs (the chain
    rule through its gathers, products and softplus; zero for absent synapses)."""
    pre, post, spre, spost = index
    g = {name: np.zeros_like(raw[name]) for name in KERNEL_PARAMS}
    sig, mu, wr = raw["sigma"][pre, post], raw["mu"][pre, post], raw["w"][pre, post]
    g["sigma"][pre, post] = gpint[0] - gpint[1] * mu
    g["mu"][pre, post] = -gpint[1] * sig
    g["w"][pre, post] = (gpint[2] * raw["erev"][pre, post] + gpint[3]) * _sigmoid_np(wr)
    g["erev"][pre, post] = gpint[2] * _softplus_np(wr)
    ssig, smu, swr = raw["sensory_sigma"][spre, spost], raw["sensory_mu"][spre, spost], raw["sensory_w"][spre, spost]
    iw, ib = raw["input_w"][spre], raw["input_b"][spre]
    g["sensory_sigma"][spre, spost] = gpsen[0] * iw + gpsen[1] * (ib - smu)
    g["sensory_mu"][spre, spost] = -gpsen[1] * ssig
    g["sensory_w"][spre, spost] = (gpsen[2] * raw["sensory_erev"][spre, spost] + gpsen[3]) * _sigmoid_np(swr)
    g["sensory_erev"][spre, spost] = gpsen[2] * _softplus_np(swr)
    np.add.at(g["input_w"], spre, gpsen[0] * ssig)
    np.add.at(g["input_b"], spre, gpsen[1] * ssig)
    g["gleak"] = (gpneu[0] * raw["vleak"] + gpneu[1]) * _sigmoid_np(raw["gleak"])
    g["vleak"] = gpneu[0] * _softplus_np(raw["gleak"])
    g["cm"] = gpneu[2] * _sigmoid_np(raw["cm"])
    return g


class LTCKernel(torch.autograd.Function):
    """The compiled kernel (:mod:`drive.core.kernels`) of a whole sequence as an autograd Function.

    Inputs: ``x0`` (B, N), features ``u`` (B, T, K), timespans ``ts`` (B, T), the edge index arrays,
    the number of unfolds, ``epsilon``, and the raw parameters named in :data:`KERNEL_PARAMS`
    (their edge parameters, :func:`edge_arrays`, and the gradients back, :func:`edge_grads`, are
    computed in NumPy inside this one node rather than by ~25 small autograd nodes). Returns the
    potentials after each frame (B, T, N)."""

    @staticmethod
    def forward(ctx, x0, u, ts, index, unfolds, epsilon, *params):
        from drive.core import kernels

        x0, u, ts = _np(x0), _np(u), _np(ts)
        raw = dict(zip(KERNEL_PARAMS, (_np(p) for p in params)))
        edges = edge_arrays(raw, index, epsilon)
        out, saved = kernels.forward(x0, u, ts, *edges, *index, unfolds, save=True)
        ctx.save_for_backward(*params)  # (so that an in-place change before backward is an error)
        ctx.arrays, ctx.edges, ctx.saved, ctx.index, ctx.unfolds = (u, ts), edges, saved, index, unfolds
        return torch.from_numpy(out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        from drive.core import kernels

        u, ts = ctx.arrays
        g = _np(g)
        gfinal = np.zeros((g.shape[0], g.shape[2]), dtype=g.dtype)
        gx0, gu, gts, gpint, gpsen, gpneu = kernels.backward(
            g, gfinal, u, ts, *ctx.edges, *ctx.index, ctx.unfolds, ctx.saved
        )
        need = ctx.needs_input_grad
        graw = {}
        if any(need[6:]):
            raw = dict(zip(KERNEL_PARAMS, (_np(p) for p in ctx.saved_tensors)))
            graw = edge_grads(gpint, gpsen, gpneu, raw, ctx.index)
        out = [gx0, gu, gts, None, None, None] + [graw.get(name) for name in KERNEL_PARAMS]
        return tuple(torch.from_numpy(a) if a is not None and need[i] else None for i, a in enumerate(out))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


_VERSION = operator.attrgetter("_version")
#: A timespan of one nominal frame, per dtype (read-only).
_ONES = {torch.float32: np.ones(1, dtype=np.float32), torch.float64: np.ones(1, dtype=np.float64)}
for _a in _ONES.values():
    _a.flags.writeable = False


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
        rtol = check_float("rtol", rtol, MIN_TOLERANCE, 1.0)
        atol = check_float("atol", atol, MIN_TOLERANCE, 1.0)
        self.solver, self.adjoint, self.rtol, self.atol = solver, bool(adjoint), rtol, atol
        if in_features is not None:
            wiring.build(in_features)
        if not wiring.is_built:
            raise ValueError("LTC needs in_features or a built wiring (wiring.build(input_dim))")
        ode_unfolds = check_int("ode_unfolds", ode_unfolds, 1, MAX_ODE_UNFOLDS)  # work per frame: bounded
        if wiring.units > MAX_UNITS:
            raise ValueError(f"wiring has {wiring.units} units, at most {MAX_UNITS} are allowed")
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
        self.register_buffer(
            "sensory_sparsity_mask", torch.tensor(np.abs(wiring.sensory_adjacency), dtype=torch.float32)
        )
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
        self._edge_cache: tuple[Any, tuple[np.ndarray, ...]] | None = None
        self._index = (pre.astype(np.int64), post.astype(np.int64), spre.astype(np.int64), spost.astype(np.int64))

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
        """Tensors the continuous solvers (:mod:`drive.core.ode`) use, built from the parameters
        (differentiable).

        ``ps`` (N, E) gathers the presynaptic potential of each synapse scaled by its ``sigma``,
        ``nsm`` (E,) = ``-sigma*mu``, ``m`` (E, 2N) scatters ``[w*erev | w]`` onto the
        postsynaptic neurons (so ``sigmoid(x @ ps + nsm) @ m`` is the synaptic numerator and
        denominator); ``sps`` (K, Es), ``sb`` (Es,), ``sm`` (Es, 2N): the same
        for the sensory synapses with the affine input map folded in (``sigmoid(x @ sps + sb)``
        are the sensory synapse activations, ``@ sm`` gives the sensory numerator and
        denominator); ``a0 = gleak*vleak``, ``gleak``, ``cm``, ``vleak``.
        In no-grad mode the result is cached until a parameter changes.
        """
        if torch.is_grad_enabled():
            return self._derive()
        key = self._param_key()
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._derive())
        return self._cache[1]

    def _param_key(self) -> tuple:
        """Changes whenever a parameter is replaced, updated in place, or moved."""
        params = tuple(self._parameters.values())
        return tuple(map(id, params)), tuple(map(_VERSION, params)), params[0].dtype, params[0].device

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
        se_in = torch.where(
            self.sensory_sparsity_mask.bool(), self.sensory_erev, torch.full_like(self.sensory_erev, big)
        )
        low = torch.minimum(torch.minimum(e_in.min(0).values, se_in.min(0).values), self.vleak)
        e_in = torch.where(self.sparsity_mask.bool(), self.erev, torch.full_like(self.erev, -big))
        se_in = torch.where(
            self.sensory_sparsity_mask.bool(), self.sensory_erev, torch.full_like(self.sensory_erev, -big)
        )
        high = torch.maximum(torch.maximum(e_in.max(0).values, se_in.max(0).values), self.vleak)
        return torch.minimum(low, x0), torch.maximum(high, x0)

    # ------------------------------------------------------------------ solving
    def _prepare(self, x: Tensor, state: Tensor | None, timespans: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return check_sequence(x, state, timespans, self.in_features, self.units, self.initial_state)

    def solve(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> Tensor:
        """Potentials after each frame, (B, T, N), by the configured solver (no input checks).

        The fused step runs in the compiled kernel (:mod:`drive.core.kernels`) for float32/float64
        CPU tensors, and in :func:`reference_sequence` (plain torch, autograd) elsewhere (CUDA,
        other dtypes)."""
        if self.solver != "fused":
            from drive.core.ode import solve_ode

            return solve_ode(self, x, state, timespans, self.solver, self.adjoint, self.rtol, self.atol)
        dtype = self.cm.dtype
        if not (
            x.device.type == "cpu"
            and dtype in (torch.float32, torch.float64)
            and x.dtype == dtype
            and state.dtype == dtype
            and state.device.type == "cpu"
        ):
            return reference_sequence(self, x, state, timespans)
        B, T, _ = x.shape
        if torch.is_grad_enabled() and (
            x.requires_grad
            or state.requires_grad
            or (timespans is not None and timespans.requires_grad)
            or any(p.requires_grad for p in self._parameters.values())
        ):
            ts = x.new_ones(B, T) if timespans is None else timespans.to(dtype)
            params = self._parameters
            return LTCKernel.apply(
                state, x, ts, self._index, self.ode_unfolds, self.epsilon, *(params[name] for name in KERNEL_PARAMS)
            )
        from drive.core import kernels

        p = self._numpy_edge_params()
        ts = np.ones((B, T), dtype=p[0].dtype) if timespans is None else _np(timespans.to(dtype))
        out, _ = kernels.forward(_np(state), _np(x), ts, *p, *self._index, self.ode_unfolds, save=False)
        return torch.from_numpy(out)

    def edge_params(self) -> tuple[Tensor, Tensor, Tensor]:
        """The kernel's parameters (differentiable), see :mod:`drive.core.kernels`: ``pint`` (4, E)
        = [sigma, -sigma*mu, w*erev, w] of the internal synapses, ``psen`` (4, Es) = [sigma*input_w,
        sigma*(input_b - mu), w*erev, w] of the sensory synapses, ``pneu`` (3, N) = [gleak*vleak,
        gleak + epsilon, cm] (w, gleak, cm through softplus)."""
        pre, post, spre, spost = self._pre, self._post, self._spre, self._spost
        sig = self.sigma[pre, post]
        w = F.softplus(self.w[pre, post])
        pint = torch.stack([sig, -sig * self.mu[pre, post], w * self.erev[pre, post], w])
        ssig = self.sensory_sigma[spre, spost]
        sw = F.softplus(self.sensory_w[spre, spost])
        psen = torch.stack(
            [
                ssig * self.input_w[spre],
                ssig * (self.input_b[spre] - self.sensory_mu[spre, spost]),
                sw * self.sensory_erev[spre, spost],
                sw,
            ]
        )
        gleak = F.softplus(self.gleak)
        pneu = torch.stack([gleak * self.vleak, gleak + self.epsilon, F.softplus(self.cm)])
        return pint, psen, pneu

    def _numpy_edge_params(self) -> tuple[np.ndarray, ...]:
        """:meth:`edge_params` as NumPy arrays, cached until a parameter changes (inference)."""
        return self._inference_arrays()[0]

    def _inference_arrays(self) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
        """(:meth:`edge_params`, output_w, output_b) as NumPy arrays, cached until a parameter
        changes (replaced, updated in place, moved or cast)."""
        key = self._param_key()
        if self._edge_cache is None or self._edge_cache[0] != key:
            params = self._parameters
            raw = {name: _np(params[name]) for name in KERNEL_PARAMS}
            self._edge_cache = (
                key,
                (
                    edge_arrays(raw, self._index, self.epsilon),
                    _np(params["output_w"]).copy(),
                    _np(params["output_b"]).copy(),
                ),
            )
        return self._edge_cache[1]

    def fast_step(self, x: Tensor, state: Tensor | None, timespans: Tensor | None) -> tuple[Tensor, Tensor] | None:
        """One frame at batch 1 for closed-loop inference, or None where it does not apply.

        Applies in no-grad mode with the fused solver to a CPU ``x`` (1, in_features) of the
        parameters' dtype (float32/float64), contiguous and not requiring grad, ``state`` None or
        (1, units) likewise, ``timespans``
        None or a CPU tensor of shape (1,) holding a finite value > 0. Then it runs the one-sample
        kernel on NumPy views of the tensors with the cached parameters and returns (outputs
        (1, motor), new state (1, units)), the numbers of :meth:`run_sequence`. Anything else
        (including every bad input) returns None, for the checked general path."""
        if torch.is_grad_enabled() or self.solver != "fused":
            return None
        dtype = self._parameters["cm"].dtype
        if (
            type(x) is not Tensor
            or x.shape != (1, self.in_features)
            or x.dtype != dtype
            or x.requires_grad
            or not x.is_cpu
            or not x.is_contiguous()
            or dtype not in (torch.float32, torch.float64)
        ):
            return None
        if state is not None and (
            type(state) is not Tensor
            or state.shape != (1, self.units)
            or state.dtype != dtype
            or state.requires_grad
            or not state.is_cpu
            or not state.is_contiguous()
        ):
            return None
        if timespans is None:
            ts = _ONES[dtype]
        else:
            if type(timespans) is not Tensor or timespans.shape != (1,) or not timespans.is_cpu:
                return None
            span = float(timespans[0])
            if not (0.0 < span < math.inf):
                return None
            ts = np.full(1, span, dtype=_ONES[dtype].dtype)
        from drive.core import kernels

        p, ow, ob = self._inference_arrays()
        x0 = np.zeros(self.units, dtype=ts.dtype) if state is None else state.numpy()[0]
        out = np.empty((1, self.units), dtype=ts.dtype)
        y = np.empty((1, self.motor_size), dtype=ts.dtype)
        kernels.sample_kernel()(x0, x.numpy(), ts, *p, *self._index, self.ode_unfolds, out, ow, ob, y[0])
        return torch.from_numpy(y), torch.from_numpy(out)

    def run_sequence(
        self, x: Tensor, state: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        state, timespans = self._prepare(x, state, timespans)
        states = self.solve(x, state, timespans)
        return self.map_outputs(states), states[:, -1]

    def extra_repr(self) -> str:
        return (
            f"units={self.units}, in_features={self.in_features}, motor={self.motor_size}, "
            f"synapses={self.wiring.synapse_count}+{self.wiring.sensory_synapse_count} sensory, "
            f"ode_unfolds={self.ode_unfolds}, solver={self.solver}, adjoint={self.adjoint}"
        )


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
