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

Samples are independent and share the parameters, so the kernel keeps the batch as the innermost
(contiguous) axis: every inner loop runs over the samples of a batch chunk with the same synapse,
so LLVM vectorises it (no gathers, no scatter conflicts), and the sigmoid is written in plain
arithmetic (:func:`_sigmoid_impl`) because numba's ``math.exp`` stays a scalar libm call without
Intel's SVML (which the PyPI llvmlite is built without). The wrappers :func:`forward` and
:func:`backward` take and return batch-first arrays and transpose at the boundary. The chunks are
``numba.prange`` iterations: ``parallel=True`` variants for batches of :data:`PARALLEL_MIN_BATCH`
or more (one chunk per thread), and a serial variant below (training batches, closed-loop
inference at batch 1), where thread start-up and wake-ups would cost more than they save.

Compiled on first use and cached on disk (``cache=True``, in ``__pycache__`` beside this file, or
numba's user-wide cache folder when that is read-only, or ``NUMBA_CACHE_DIR``); when no cache
location is writable the functions are compiled in memory on each run instead of failing.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Batch size from which the parallel (prange) variants are used. Measured on a busy 2-core
#: machine, the serial variant was as fast up to batch 256 (a parallel launch waits for a
#: descheduled worker thread; at batch 32 the default OpenMP layer took 8 ms against 1.3 ms),
#: so only large offline batches go parallel.
PARALLEL_MIN_BATCH = 256
#: Fewest samples per parallel chunk.
MIN_CHUNK = 4


def _jit(parallel: bool, fastmath=False):
    """``numba.njit`` with the on-disk cache when a cache location is writable, else without.
    ``error_model="numpy"``: a division by zero gives inf/nan instead of a Python exception, so
    the divisions carry no branch and their loops vectorise (the kernels' divisors are positive)."""
    import numba

    def wrap(fn):
        try:
            return numba.njit(cache=True, parallel=parallel, fastmath=fastmath, nogil=True, error_model="numpy")(fn)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            warnings.warn(
                f"numba cache unavailable ({exc}); the LTC kernel is compiled in memory each run", stacklevel=2
            )
            return numba.njit(cache=False, parallel=parallel, fastmath=fastmath, nogil=True, error_model="numpy")(fn)

    return wrap


def _sigmoid_impl(z):
    """``1 / (1 + exp(-z))`` in plain arithmetic, so that LLVM vectorises the loops calling it
    (numba leaves ``math.exp`` a scalar libm call without Intel's SVML, which the PyPI llvmlite
    lacks). ``exp(y)``, ``y = -z`` clamped to [-40, 40] (where the sigmoid is 0 or 1 to within
    4e-18), as ``exp(y / 128) ** 128``: a degree-12 Taylor polynomial on |y / 128| <= 0.3125
    (truncation error < 5e-17 relative), then 7 squarings; about 1e-14 relative error in all."""
    y = min(max(-z, -40.0), 40.0) * 0.0078125
    p = 1.0 + y * (
        1.0
        + y
        * (
            0.5
            + y
            * (
                1.6666666666666666e-01
                + y
                * (
                    4.1666666666666664e-02
                    + y
                    * (
                        8.3333333333333332e-03
                        + y
                        * (
                            1.3888888888888889e-03
                            + y
                            * (
                                1.9841269841269841e-04
                                + y
                                * (
                                    2.4801587301587302e-05
                                    + y
                                    * (
                                        2.7557319223985893e-06
                                        + y
                                        * (
                                            2.7557319223985888e-07
                                            + y * (2.5052108385441720e-08 + y * 2.0876756987868100e-09)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    )
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    return 1.0 / (1.0 + p)


def _forward_impl(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, out, xs, ss, sins):
    """Forward over the sequence. The batch comes as C chunks of ``nb`` samples (one prange
    iteration each), innermost: ``x0`` (C, N, nb); ``u`` (C, T, K, nb) features; ``ts`` (C, T, nb)
    elapsed times; ``pint`` (4, E) = [sig, nsm, wn, wd]; ``psen`` (4, Es) = [sa, sb, swn, swd];
    ``pneu`` (3, N) = [a0, gle, cm]; edge index arrays. Writes ``out`` (C, T, N, nb) and, when
    ``xs`` has ``T*unfolds + 1`` rows, the potentials before and after every unfold into ``xs``
    (C, T*unfolds + 1, N, nb), the internal synapse activations of every unfold into ``ss``
    (C, T*unfolds, E, nb) and the sensory ones of every frame into ``sins`` (C, T, Es, nb), for the
    backward (with one row each, they are scratch: every write goes to row 0, so the loops stay
    branch-free)."""
    nc, T, _, nb = u.shape
    N = x0.shape[1]
    E = pre.shape[0]
    Es = spre.shape[0]
    sv = 1 if xs.shape[1] > 1 else 0
    for c in _range(nc):
        x = np.empty((N, nb), dtype=x0.dtype)
        for n in range(N):
            for j in range(nb):
                x[n, j] = x0[c, n, j]
                xs[c, 0, n, j] = x[n, j]
        xn = np.empty_like(x)
        a = np.empty_like(x)
        q0 = np.empty_like(x)
        q = np.empty_like(x)
        cmt = np.empty_like(x)
        scale = np.empty(nb, dtype=np.float64)
        k = 0
        for t in range(T):
            for j in range(nb):
                scale[j] = unfolds / ts[c, t, j]
            for n in range(N):
                a0, gle, cm = pneu[0, n], pneu[1, n], pneu[2, n]
                for j in range(nb):
                    a[n, j] = a0
                    cmt[n, j] = cm * scale[j]
                    q0[n, j] = gle + cmt[n, j]
            for e in range(Es):
                i, p = spre[e], spost[e]
                sa, sb, swn, swd = psen[0, e], psen[1, e], psen[2, e], psen[3, e]
                for j in range(nb):
                    s = _sigmoid(sa * u[c, t, i, j] + sb)
                    sins[c, t * sv, e, j] = s
                    a[p, j] += swn * s
                    q0[p, j] += swd * s
            for _ in range(unfolds):
                for n in range(N):
                    for j in range(nb):
                        xn[n, j] = a[n, j] + cmt[n, j] * x[n, j]
                        q[n, j] = q0[n, j]
                for e in range(E):
                    i, p = pre[e], post[e]
                    sig, nsm, wn, wd = pint[0, e], pint[1, e], pint[2, e], pint[3, e]
                    for j in range(nb):
                        s = _sigmoid(sig * x[i, j] + nsm)
                        ss[c, k * sv, e, j] = s
                        xn[p, j] += wn * s
                        q[p, j] += wd * s
                k += 1
                for n in range(N):
                    for j in range(nb):
                        x[n, j] = xn[n, j] / q[n, j]
                        xs[c, k * sv, n, j] = x[n, j]
            for n in range(N):
                for j in range(nb):
                    out[c, t, n, j] = x[n, j]


def _backward_impl(
    g, gfinal, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, xs, ss, sins, gx0, gu, gts, gpint, gpsen, gpneu
):
    """Backward of :func:`_forward_impl` given the upstream gradient ``g`` (C, T, N, nb) of
    ``out`` (plus ``gfinal`` (C, N, nb) of the final potentials). Writes ``gx0`` (C, N, nb),
    ``gu`` (C, T, K, nb), ``gts`` (C, T, nb) and the per-sample parameter gradients ``gpint``
    (C, 4, E, nb), ``gpsen`` (C, 4, Es, nb), ``gpneu`` (C, 3, N, nb), all zero-initialised by the
    caller."""
    nc, T, _, nb = u.shape
    N = gx0.shape[1]
    E = pre.shape[0]
    Es = spre.shape[0]
    for c in _range(nc):
        gx = np.empty((N, nb), dtype=gx0.dtype)
        for n in range(N):
            for j in range(nb):
                gx[n, j] = gfinal[c, n, j]
        gxn = np.empty_like(gx)
        dpa = np.empty_like(gx)  # dP of the current unfold (x' = P / Q)
        dqa = np.empty_like(gx)  # dQ of the current unfold
        q0 = np.empty_like(gx)
        q = np.empty_like(gx)
        cmt = np.empty_like(gx)
        ga = np.empty_like(gx)
        gq0 = np.empty_like(gx)
        gcmt = np.empty_like(gx)
        scale = np.empty(nb, dtype=np.float64)
        for t in range(T - 1, -1, -1):
            for j in range(nb):
                scale[j] = unfolds / ts[c, t, j]
            for n in range(N):
                gle, cm = pneu[1, n], pneu[2, n]
                for j in range(nb):
                    cmt[n, j] = cm * scale[j]
                    q0[n, j] = gle + cmt[n, j]
                    gx[n, j] += g[c, t, n, j]
                    ga[n, j] = 0.0
                    gq0[n, j] = 0.0
                    gcmt[n, j] = 0.0
            for e in range(Es):
                p, swd = spost[e], psen[3, e]
                for j in range(nb):
                    q0[p, j] += swd * sins[c, t, e, j]
            for jj in range(unfolds - 1, -1, -1):
                k = t * unfolds + jj
                for n in range(N):
                    for j in range(nb):
                        q[n, j] = q0[n, j]
                for e in range(E):
                    p, wd = post[e], pint[3, e]
                    for j in range(nb):
                        q[p, j] += wd * ss[c, k, e, j]
                for n in range(N):
                    for j in range(nb):
                        dp = gx[n, j] / q[n, j]
                        dq = -dp * xs[c, k + 1, n, j]
                        ga[n, j] += dp
                        gq0[n, j] += dq
                        gcmt[n, j] += dp * xs[c, k, n, j]
                        gxn[n, j] = cmt[n, j] * dp
                        dpa[n, j] = dp
                        dqa[n, j] = dq
                for e in range(E):
                    i, p = pre[e], post[e]
                    sig, wn, wd = pint[0, e], pint[2, e], pint[3, e]
                    for j in range(nb):
                        s = ss[c, k, e, j]
                        dp = dpa[p, j]
                        dq = dqa[p, j]
                        gpint[c, 2, e, j] += dp * s
                        gpint[c, 3, e, j] += dq * s
                        dz = (dp * wn + dq * wd) * s * (1.0 - s)
                        gpint[c, 0, e, j] += dz * xs[c, k, i, j]
                        gpint[c, 1, e, j] += dz
                        gxn[i, j] += dz * sig
                for n in range(N):
                    for j in range(nb):
                        gx[n, j] = gxn[n, j]
            # frame-level terms: A = a0 + ..., Q0 = gle + cmt + ..., cmt = cm * unfolds / ts
            for j in range(nb):
                gts[c, t, j] = 0.0
            for n in range(N):
                for j in range(nb):
                    gc = gcmt[n, j] + gq0[n, j]
                    gpneu[c, 0, n, j] += ga[n, j]
                    gpneu[c, 1, n, j] += gq0[n, j]
                    gpneu[c, 2, n, j] += gc * scale[j]
                    gts[c, t, j] -= gc * cmt[n, j] / ts[c, t, j]
            for e in range(Es):
                i, p = spre[e], spost[e]
                sa, swn, swd = psen[0, e], psen[2, e], psen[3, e]
                for j in range(nb):
                    s = sins[c, t, e, j]
                    gpsen[c, 2, e, j] += ga[p, j] * s
                    gpsen[c, 3, e, j] += gq0[p, j] * s
                    dz = (ga[p, j] * swn + gq0[p, j] * swd) * s * (1.0 - s)
                    gpsen[c, 0, e, j] += dz * u[c, t, i, j]
                    gpsen[c, 1, e, j] += dz
                    gu[c, t, i, j] += dz * sa
        for n in range(N):
            for j in range(nb):
                gx0[c, n, j] = gx[n, j]


def _sample_impl(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds, out, ow, ob, y):
    """:func:`_forward_impl` for one sample without saving (closed-loop inference at batch 1),
    vectorised over the synapses instead: the pre-activations are gathered and the sigmoids taken
    in tight loops over contiguous arrays, and only the scatter onto the postsynaptic neurons is
    a scalar loop (in the same synapse order, so the numbers equal the batch kernel's). ``x0``
    (N,), ``u`` (T, K), ``ts`` (T,); writes ``out`` (T, N) and the output map of the last
    frame's first M potentials, ``y`` (M,) = ``ow * x[:M] + ob`` (``ow``, ``ob``, ``y`` of size
    M, which may be 0)."""
    T = u.shape[0]
    N = x0.shape[0]
    E = pre.shape[0]
    Es = spre.shape[0]
    x = x0.copy()
    xn = np.empty_like(x)
    a = np.empty_like(x)
    q0 = np.empty_like(x)
    q = np.empty_like(x)
    cmt = np.empty_like(x)
    s_in = np.empty(Es, dtype=np.float64)  # the sigmoids unrounded, as in the batch kernel
    s_int = np.empty(E, dtype=np.float64)
    for t in range(T):
        scale = unfolds / ts[t]
        for n in range(N):
            a[n] = pneu[0, n]
            cmt[n] = pneu[2, n] * scale
            q0[n] = pneu[1, n] + cmt[n]
        for e in range(Es):
            s_in[e] = psen[0, e] * u[t, spre[e]] + psen[1, e]
        for e in range(Es):
            s_in[e] = _sigmoid(s_in[e])
        for e in range(Es):
            p = spost[e]
            a[p] += psen[2, e] * s_in[e]
            q0[p] += psen[3, e] * s_in[e]
        for _ in range(unfolds):
            for n in range(N):
                xn[n] = a[n] + cmt[n] * x[n]
                q[n] = q0[n]
            for e in range(E):
                s_int[e] = pint[0, e] * x[pre[e]] + pint[1, e]
            for e in range(E):
                s_int[e] = _sigmoid(s_int[e])
            for e in range(E):
                p = post[e]
                xn[p] += pint[2, e] * s_int[e]
                q[p] += pint[3, e] * s_int[e]
            for n in range(N):
                x[n] = xn[n] / q[n]
        for n in range(N):
            out[t, n] = x[n]
    for m in range(y.shape[0]):
        y[m] = ow[m] * x[m] + ob[m]


_KERNELS: dict[bool, tuple] = {}
_SAMPLE: list = []
_range = range  # rebound to numba.prange while compiling the parallel variants
_sigmoid = _sigmoid_impl  # rebound to its compiled version before the kernels are compiled


def kernels(parallel: bool) -> tuple:
    """(forward, backward) compiled functions; ``parallel`` selects the prange variants."""
    got = _KERNELS.get(parallel)
    if got is None:
        import numba

        global _range, _sigmoid
        if isinstance(_sigmoid, type(_sigmoid_impl)):  # not compiled yet
            # FMA contraction (only) for its polynomial: the same instructions wherever it is
            # inlined, so every kernel still gets the same numbers
            _sigmoid = _jit(False, fastmath={"contract"})(_sigmoid_impl)
        _range = numba.prange if parallel else range
        jit = _jit(parallel)
        # distinct function objects per variant, so each has its own cache entry
        fwd = jit(_copy(_forward_impl, "_forward_par" if parallel else "_forward_ser"))
        # the backward may fuse multiply-adds (its gradients are compared within tolerances; the
        # forward is not, so that every forward path gives the same numbers)
        bwd = _jit(parallel, fastmath={"contract"})(
            _copy(_backward_impl, "_backward_par" if parallel else "_backward_ser")
        )
        got = _KERNELS[parallel] = (fwd, bwd)
    return got


def sample_kernel():
    """The compiled :func:`_sample_impl` (one sample, no saving)."""
    if not _SAMPLE:
        kernels(False)  # compiles the sigmoid
        _SAMPLE.append(_jit(False)(_copy(_sample_impl, "_sample")))
    return _SAMPLE[0]


def _copy(fn, name: str):
    """A copy of function ``fn`` named ``name`` whose globals ``_range`` and ``_sigmoid`` are fixed now."""
    import types

    glb = dict(fn.__globals__)
    glb["_range"] = _range
    glb["_sigmoid"] = _sigmoid
    new = types.FunctionType(fn.__code__, glb, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    new.__module__ = fn.__module__
    return new


def _chunking(batch: int) -> tuple[int, int, bool]:
    """(chunks, samples per chunk, parallel): one chunk below :data:`PARALLEL_MIN_BATCH`, else
    one per numba thread (at least :data:`MIN_CHUNK` samples each, so the inner loops stay long
    enough to vectorise); the last chunk is padded with dummy samples."""
    if batch < PARALLEL_MIN_BATCH:
        return 1, batch, False
    import numba

    nc = max(1, min(numba.get_num_threads(), batch // MIN_CHUNK))
    return nc, -(-batch // nc), True


def _split(a: np.ndarray, nc: int, nb: int, fill: float = 0.0) -> np.ndarray:
    """Batch-first ``a`` (B, ...) as (C, ..., nb) chunks, batch innermost, padded with ``fill``."""
    B = a.shape[0]
    if nc * nb != B:
        a = np.concatenate([a, np.full((nc * nb - B,) + a.shape[1:], fill, dtype=a.dtype)])
    a = a.reshape((nc, nb) + a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _join(a: np.ndarray, batch: int) -> np.ndarray:
    """Inverse of :func:`_split`: (C, ..., nb) chunks as (B, ...)."""
    a = np.moveaxis(a, -1, 1)
    return np.ascontiguousarray(a.reshape((-1,) + a.shape[2:])[:batch])


def forward(x0, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds: int, save: bool) -> tuple[np.ndarray, tuple]:
    """Run the forward kernel on NumPy arrays (one float dtype): ``x0`` (B, N), ``u`` (B, T, K),
    ``ts`` (B, T). Returns (out (B, T, N), saved), ``saved`` the kernel's chunked inputs and saved
    activations for :func:`backward` (scratch when ``save`` is False)."""
    B, T, _ = u.shape
    N, E, Es = x0.shape[1], pre.shape[0], spre.shape[0]
    dt = x0.dtype
    if B == 1 and not save:
        out = np.empty((T, N), dtype=dt)
        none = np.empty(0, dtype=dt)
        sample_kernel()(
            np.ascontiguousarray(x0[0]),
            np.ascontiguousarray(u[0]),
            np.ascontiguousarray(ts[0]),
            pint,
            psen,
            pneu,
            pre,
            post,
            spre,
            spost,
            unfolds,
            out,
            none,
            none,
            none,
        )
        return out[None], ()
    K = T * unfolds if save else 0
    nc, nb, parallel = _chunking(B)
    x0c, uc, tsc = _split(x0, nc, nb), _split(u, nc, nb), _split(ts, nc, nb, fill=1.0)
    out = np.empty((nc, T, N, nb), dtype=dt)
    xs = np.empty((nc, K + 1, N, nb), dtype=dt)
    ss = np.empty((nc, max(K, 1), E, nb), dtype=dt)
    sins = np.empty((nc, T if save else 1, Es, nb), dtype=dt)
    fwd = kernels(parallel)[0]
    fwd(x0c, uc, tsc, pint, psen, pneu, pre, post, spre, spost, unfolds, out, xs, ss, sins)
    return _join(out, B), (uc, tsc, xs, ss, sins)


def backward(g, gfinal, u, ts, pint, psen, pneu, pre, post, spre, spost, unfolds: int, saved) -> tuple[np.ndarray, ...]:
    """Run the backward kernel (``u``, ``ts`` as given to :func:`forward`, ``saved`` its result).
    Returns (gx0 (B, N), gu (B, T, K), gts (B, T), gpint (4, E), gpsen (4, Es), gpneu (3, N)),
    the parameter gradients summed over the batch."""
    B, T, K = u.shape
    N = gfinal.shape[1]
    dt = g.dtype
    uc, tsc, xs, ss, sins = saved
    nc, nb = uc.shape[0], uc.shape[-1]
    gx0 = np.zeros((nc, N, nb), dtype=dt)
    gu = np.zeros((nc, T, K, nb), dtype=dt)
    gts = np.zeros((nc, T, nb), dtype=dt)
    gpint = np.zeros((nc,) + pint.shape + (nb,), dtype=dt)
    gpsen = np.zeros((nc,) + psen.shape + (nb,), dtype=dt)
    gpneu = np.zeros((nc,) + pneu.shape + (nb,), dtype=dt)
    bwd = kernels(nc > 1 or B >= PARALLEL_MIN_BATCH)[1]
    bwd(
        _split(g, nc, nb),
        _split(gfinal, nc, nb),
        uc,
        tsc,
        pint,
        psen,
        pneu,
        pre,
        post,
        spre,
        spost,
        unfolds,
        xs,
        ss,
        sins,
        gx0,
        gu,
        gts,
        gpint,
        gpsen,
        gpneu,
    )
    # padded samples have zero upstream gradient, so they add nothing to the sums
    return (_join(gx0, B), _join(gu, B), _join(gts, B), gpint.sum((0, -1)), gpsen.sum((0, -1)), gpneu.sum((0, -1)))
