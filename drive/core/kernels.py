"""The compiled CPU kernel of the LTC's fused step (numba): forward and analytic backward.

One kernel serves every CPU path of :class:`drive.core.ltc.LTCBase` (training and inference, one
timespan or one per sample and frame, float32 and float64). It runs a whole sequence, per sample::

    per frame t:   s_in = sigmoid(sa * u[spre] + sb)                 (sensory synapses)
                   A    = a0 + scatter_post(swn * s_in)               (a0 = gleak * vleak)
                   Q0   = gle + scatter_post(swd * s_in) + cmt        (gle = gleak + epsilon,
                                                                       cmt = cm * unfolds / timespan)
    per unfold:    s    = sigmoid(sig * x[pre] + nsm)                 (internal synapses)
                   x    = (A + cmt * x + scatter_post(wn * s)) / (Q0 + scatter_post(wd * s))

which is the fused step of :mod:`drive.core.ltc` with the synapses as edge lists: ``sa = sigma *
input_w``, ``sb = sigma * (input_b - mu)``, ``swn = w * erev`` and ``swd = w`` for the sensory
synapses; ``sig = sigma``, ``nsm = -sigma * mu``, ``wn = w * erev``, ``wd = w`` for the internal
ones. The backward walks the unfolds in reverse from the potentials saved at every unfold
and synapse activations saved at every unfold (``B * T * unfolds * (N + E)`` numbers) and
returns the gradients of every input, per sample for the parameters (summed by the caller).

Samples are independent, so the loops over the batch are ``numba.prange`` loops: with
``parallel=True`` variants for batches of :data:`PARALLEL_MIN_BATCH` or more (training), and a
serial variant below (closed-loop inference at batch 1, where thread start-up would cost more
than it saves).

Compiled on first use and cached on disk (``cache=True``, in ``__pycache__`` beside this file, or
numba's user-wide cache folder when that is read-only, or ``NUMBA_CACHE_DIR``); when no cache
location is writable the functions are compiled in memory on each run instead of failing.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: Batch size from which the parallel (prange) variants are used.
PARALLEL_MIN_BATCH = 8


def _jit(parallel: bool):
    """``numba.njit`` with the on-disk cache when a cache location is writable, else without."""
    import numba

    def wrap(fn):
        try:
            return numba.njit(cache=True, parallel=parallel, fastmath=False, nogil=True)(fn)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            warnings.warn(f"numba cache unavailable ({exc}); the LTC kernel is compiled in memory each run", stacklevel=2)
            return numba.njit(cache=False, parallel=parallel, nogil=True)(fn)

    return wrap


def _forward_impl(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, out, xs, ss, sins):
    """Forward over the sequence. ``x0`` (B, N); ``u`` (B, T, K) features; ``ts`` (B, T) elapsed
    times; ``pint`` (4, E) = [sig, nsm, wn, wd]; ``psen`` (4, Es) = [sa, sb, swn, swd]; ``pneu``
    (3, N) = [a0, gle, cm]; edge index arrays. Writes ``out`` (B, T, N) and, when ``xs`` has
    ``T*unfolds + 1`` rows per sample, the potentials before and after every unfold into ``xs``,
    the internal synapse activations of every unfold into ``ss`` (B, T*unfolds, E) and the sensory
    ones of every frame into ``sins`` (B, T, Es), for the backward."""
    B, T, _ = u.shape
    N = x0.shape[1]
    E = pre.shape[0]
    Es = spre.shape[0]
    save = xs.shape[1] > 0
    for b in _range(B):
        x = x0[b].copy()
        xn = np.empty_like(x)
        a = np.empty_like(x)
        q0 = np.empty_like(x)
        q = np.empty_like(x)
        cmt = np.empty_like(x)
        if save:
            xs[b, 0] = x
        k = 0
        for t in range(T):
            scale = unfolds / ts[b, t]
            for n in range(N):
                a[n] = pneu[0, n]
                cmt[n] = pneu[2, n] * scale
                q0[n] = pneu[1, n] + cmt[n]
            for e in range(Es):
                z = psen[0, e] * u[b, t, spre[e]] + psen[1, e]
                s = 1.0 / (1.0 + math.exp(-z))
                if save:
                    sins[b, t, e] = s
                p = spost[e]
                a[p] += psen[2, e] * s
                q0[p] += psen[3, e] * s
            for _ in range(unfolds):
                for n in range(N):
                    xn[n] = a[n] + cmt[n] * x[n]
                    q[n] = q0[n]
                for e in range(E):
                    z = pint[0, e] * x[pre[e]] + pint[1, e]
                    s = 1.0 / (1.0 + math.exp(-z))
                    if save:
                        ss[b, k, e] = s
                    p = post[e]
                    xn[p] += pint[2, e] * s
                    q[p] += pint[3, e] * s
                for n in range(N):
                    x[n] = xn[n] / q[n]
                k += 1
                if save:
                    xs[b, k] = x
            out[b, t] = x


def _backward_impl(g, gfinal, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, xs, ss, sins,
                   gx0, gu, gts, gpint, gpsen, gpneu):
    """Backward of :func:`_forward_impl` given the upstream gradient ``g`` (B, T, N) of ``out``
    (plus ``gfinal`` (B, N) of the final potentials). Writes ``gx0`` (B, N), ``gu`` (B, T, K),
    ``gts`` (B, T) and the per-sample parameter gradients ``gpint`` (B, 4, E), ``gpsen``
    (B, 4, Es), ``gpneu`` (B, 3, N), all zero-initialised by the caller."""
    B, T, _ = u.shape
    N = gx0.shape[1]
    E = pre.shape[0]
    Es = spre.shape[0]
    for b in _range(B):
        gx = gfinal[b].copy()
        gxn = np.empty_like(gx)
        a_ = np.empty_like(gx)  # holds dQ of the current unfold (gx holds dP meanwhile)
        q0 = np.empty_like(gx)
        q = np.empty_like(gx)
        cmt = np.empty_like(gx)
        ga = np.empty_like(gx)
        gq0 = np.empty_like(gx)
        gcmt = np.empty_like(gx)
        s_in = np.empty(Es, dtype=gx.dtype)
        s_int = np.empty(E, dtype=gx.dtype)
        for t in range(T - 1, -1, -1):
            scale = unfolds / ts[b, t]
            for n in range(N):
                cmt[n] = pneu[2, n] * scale
                q0[n] = pneu[1, n] + cmt[n]
                gx[n] += g[b, t, n]
                ga[n] = 0.0
                gq0[n] = 0.0
                gcmt[n] = 0.0
            for e in range(Es):
                s_in[e] = sins[b, t, e]
                q0[spost[e]] += psen[3, e] * s_in[e]
            for j in range(unfolds - 1, -1, -1):
                k = t * unfolds + j
                for n in range(N):
                    q[n] = q0[n]
                for e in range(E):
                    s = ss[b, k, e]
                    s_int[e] = s
                    q[post[e]] += pint[3, e] * s
                # x' = P / Q: dP = gx / Q, dQ = -dP * x'
                for n in range(N):
                    dp = gx[n] / q[n]
                    dq = -dp * xs[b, k + 1, n]
                    ga[n] += dp
                    gq0[n] += dq
                    gcmt[n] += dp * xs[b, k, n]
                    gxn[n] = cmt[n] * dp
                    gx[n] = dp  # reuse gx as dP for the synapse loop
                    a_[n] = dq  # and a_ as dQ
                for e in range(E):
                    p = post[e]
                    s = s_int[e]
                    dp = gx[p]
                    dq = a_[p]
                    gpint[b, 2, e] += dp * s
                    gpint[b, 3, e] += dq * s
                    dz = (dp * pint[2, e] + dq * pint[3, e]) * s * (1.0 - s)
                    i = pre[e]
                    gpint[b, 0, e] += dz * xs[b, k, i]
                    gpint[b, 1, e] += dz
                    gxn[i] += dz * pint[0, e]
                for n in range(N):
                    gx[n] = gxn[n]
            # frame-level terms: A = a0 + ..., Q0 = gle + cmt + ..., cmt = cm * unfolds / ts
            gt = 0.0
            for n in range(N):
                gc = gcmt[n] + gq0[n]
                gpneu[b, 0, n] += ga[n]
                gpneu[b, 1, n] += gq0[n]
                gpneu[b, 2, n] += gc * scale
                gt -= gc * cmt[n] / ts[b, t]
            gts[b, t] = gt
            for e in range(Es):
                p = spost[e]
                s = s_in[e]
                gpsen[b, 2, e] += ga[p] * s
                gpsen[b, 3, e] += gq0[p] * s
                dz = (ga[p] * psen[2, e] + gq0[p] * psen[3, e]) * s * (1.0 - s)
                i = spre[e]
                gpsen[b, 0, e] += dz * u[b, t, i]
                gpsen[b, 1, e] += dz
                gu[b, t, i] += dz * psen[0, e]
        for n in range(N):
            gx0[b, n] = gx[n]


_KERNELS: dict[bool, tuple] = {}
_range = range  # rebound to numba.prange while compiling the parallel variants


def kernels(parallel: bool) -> tuple:
    """(forward, backward) compiled functions; ``parallel`` selects the prange variants."""
    got = _KERNELS.get(parallel)
    if got is None:
        import numba

        global _range
        _range = numba.prange if parallel else range
        jit = _jit(parallel)
        # distinct function objects per variant, so each has its own cache entry
        fwd = jit(_copy(_forward_impl, "_forward_par" if parallel else "_forward_ser"))
        bwd = jit(_copy(_backward_impl, "_backward_par" if parallel else "_backward_ser"))
        got = _KERNELS[parallel] = (fwd, bwd)
    return got


def _copy(fn, name: str):
    """A copy of function ``fn`` named ``name`` whose global ``_range`` is fixed now."""
    import types

    glb = dict(fn.__globals__)
    glb["_range"] = _range
    new = types.FunctionType(fn.__code__, glb, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    new.__module__ = fn.__module__
    return new


def forward(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds: int, save: bool) -> tuple[np.ndarray, tuple]:
    """Run the forward kernel on NumPy arrays (one float dtype). Returns (out (B, T, N), saved),
    ``saved`` = (xs, ss, sins) for :func:`backward` (empty arrays when ``save`` is False)."""
    B, T, _ = u.shape
    N, E, Es = x0.shape[1], pre.shape[0], spre.shape[0]
    K = T * unfolds if save else -1
    dt = x0.dtype
    out = np.empty((B, T, N), dtype=dt)
    xs = np.empty((B, K + 1, N), dtype=dt)
    ss = np.empty((B, max(K, 0), E), dtype=dt)
    sins = np.empty((B, T if save else 0, Es), dtype=dt)
    fwd = kernels(B >= PARALLEL_MIN_BATCH)[0]
    fwd(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, out, xs, ss, sins)
    return out, (xs, ss, sins)


def backward(g, gfinal, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds: int, saved) -> tuple[np.ndarray, ...]:
    """Run the backward kernel. Returns (gx0 (B, N), gu (B, T, K), gts (B, T), gpint (4, E),
    gpsen (4, Es), gpneu (3, N)), the parameter gradients summed over the batch."""
    B, T, K = u.shape
    N = gfinal.shape[1]
    dt = g.dtype
    gx0 = np.zeros((B, N), dtype=dt)
    gu = np.zeros((B, T, K), dtype=dt)
    gts = np.zeros((B, T), dtype=dt)
    gpint = np.zeros((B,) + pint.shape, dtype=dt)
    gpsen = np.zeros((B,) + psen.shape, dtype=dt)
    gpneu = np.zeros((B,) + pneu.shape, dtype=dt)
    bwd = kernels(B >= PARALLEL_MIN_BATCH)[1]
    bwd(g, gfinal, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, *saved, gx0, gu, gts, gpint, gpsen, gpneu)
    return gx0, gu, gts, gpint.sum(0), gpsen.sum(0), gpneu.sum(0)
