"""Benchmark: our LTC (``drive.core``) against ``ncps.torch.LTC`` on the ncp19 wiring, 32 inputs.

Measures, in one run on one machine (both models with the same torch thread count, printed):

- ``train_ms_*``: one training step (zero_grad, forward, MSE loss, backward, Adam step) at batch
  32 x 32 frames, for ``ncps.torch.LTC`` and for our ``build_controller("ncp19", in_features=32,
  out_features=1)`` (the fused solver, 6 unfolds per frame). Median over alternating rounds
  (one step of each model per round) after a warm-up, so a busy machine slows both alike.
- ``infer_us_*``: one inference step at batch 1 under ``torch.no_grad()``: ``controller.step(x
  (1, 32), state)`` for ours, ncps' LTC on a (1, 1, 32) input with ``hx``; the state is fed back
  as in closed-loop driving. Median of single-call times over alternating blocks after a warm-up.
- ``*_mem_MB_T16`` / ``*_mem_MB_T256``: peak memory of a training step (forward + backward, no
  optimiser) at batch ``--mem-batch`` (8) for 16 and 256 frames:

  * ``bptt``: our default fused solver, gradients by backpropagation through the unfolds;
  * ``bptt_<solver>``: the torchdiffeq solver of the adjoint run (rk4) with direct backprop
    (not with ``--quick``);
  * ``adjoint``: ``build_controller("ncp19", solver="rk4", adjoint=True)`` (torchdiffeq
    ``odeint_adjoint``, see ``drive/core/ode.py``).

  Each memory figure is taken in a fresh subprocess (``--mem-worker``): build the model and the
  input, run one warm-up step at T=1 (kernels, autograd engine, lazily built caches), then:

  1. **tensor memory** (the figure in the ``*_mem_MB_*`` keys and the ratios): one step runs
     under a ``TorchDispatchMode`` that sees every aten op, forward and backward, including those
     inside custom autograd Functions and torchdiffeq's adjoint. Each storage an op allocates is
     added to a live-bytes counter and subtracted when a weak reference to it fires (the storage
     is freed); the figure is the highest live count during the step, i.e. the peak of tensor
     memory allocated by the step above what existed before it (activations saved for backward,
     temporaries, gradients). Views, in-place and ``out=`` ops allocate nothing and are not
     counted. This is exact for tensors and ignores Python objects and allocator slack; it is
     slow (Python code per op), so the step is also run without it, for the RSS figure.
  2. **RSS growth** (cross-check, ``*_rss_MB_*`` keys): the Linux peak resident set size
     (``VmHWM``) is reset to the current RSS through ``/proc/self/clear_refs`` just before a plain
     (untracked) step, and read after it: growth = VmHWM - RSS before. It includes Python
     objects (per-frame graph nodes, torchdiffeq's per-frame function objects) and malloc
     behaviour, so it is noisier; it falls back to ``ru_maxrss`` growth where clear_refs
     cannot be written.

  The ratios ``*_mem_ratio_T256_T16`` divide the tensor peaks. BPTT grows with T (every unfold is
  kept for backward); the adjoint keeps only the frame-boundary potentials (2 x B x 19 floats
  per frame, plus the (B, T, 19) stacked states every sequence output needs), so its ratio
  stays near 1. Target: adjoint ratio <= 1.3.

ncps is built on an identical wiring: our ncp19 adjacency matrices are copied into an
``ncps.wirings.Wiring`` and our parameters into its cell (the same construction as the core
tests' ncps twin), with ncps' defaults otherwise (``ode_unfolds=6``, ``mixed_memory=False``,
``batch_first=True``, affine input/output maps, implicit softplus constraints, epsilon 1e-8);
the script checks that both give the same outputs before timing. ncps is a test dependency only.

Threads: every measurement uses ``--threads`` (default: torch's default for the machine). On a
machine where another process keeps the CPUs busy, a multi-threaded op waits for its worker
thread to be scheduled (milliseconds), which swamps our small per-step ops; the script warns when
the load average is high, and ``--threads 1`` then gives the meaningful comparison.

Run from the repository root (about a minute and a half; ``--quick`` for fewer repeats)::

    .venv/bin/python tools/bench_ltc.py [--quick] [--threads N] [--mem-batch 8] [--skip-memory]

Human-readable lines first; the last printed line is one JSON object. Targets:
``train_speedup_vs_ncps`` >= 20, ``infer_speedup_vs_ncps`` >= 20, ``adjoint_mem_ratio_T256_T16``
<= 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from drive.core import build_controller  # noqa: E402

IN_FEATURES = 32
TRAIN_BATCH, TRAIN_T = 32, 32
MEM_T = (16, 256)
TARGET_SPEEDUP = 20.0
TARGET_ADJOINT_RATIO = 1.3


# ---------------------------------------------------------------------------------------- models
def build_ours(**overrides):
    """Our ncp19 controller (seeded, so every run and subprocess gets the same wiring and weights)."""
    return build_controller("ncp19", in_features=IN_FEATURES, out_features=1, seed=0, **overrides)


def ncps_twin(core):
    """An ``ncps.torch.LTC`` with the same wiring (adjacency matrices copied) and parameters as our
    ``core`` (a :class:`drive.core.ltc.LTC`); as ``tests/core/conftest.py``'s ``ncps_twin``."""
    import ncps.torch
    import ncps.wirings

    w = core.wiring
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
        return_sequences=True,
        batch_first=True,
        mixed_memory=False,
        input_mapping="affine",
        output_mapping="affine",
        ode_unfolds=core.ode_unfolds,
        epsilon=core.epsilon,
        implicit_param_constraints=True,
    )
    with torch.no_grad():
        for name, p in ref.rnn_cell.named_parameters():
            if name in ("sparsity_mask", "sensory_sparsity_mask"):
                continue
            p.copy_(getattr(core, name))
    return ref


def check_equivalent(ours, ref) -> float:
    """Max |difference| of the outputs of both models on one random sequence (must be ~1e-6)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 20, IN_FEATURES, generator=g)
    h0 = 0.3 * torch.randn(4, ours.state_size, generator=g)
    with torch.no_grad():
        y, h = ours(x, h0)
        y_ref, h_ref = ref(x, h0)
    diff = max((y - y_ref).abs().max().item(), (h - h_ref).abs().max().item())
    if diff > 1e-4:
        raise RuntimeError(f"ncps twin disagrees with our LTC by {diff:.3g}; the comparison would be unfair")
    return diff


# ---------------------------------------------------------------------------------------- timing
def train_step_fn(model, x: torch.Tensor, y: torch.Tensor):
    """A closure doing one training step of ``model`` (outputs first in its return value)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)[0]
        loss = torch.nn.functional.mse_loss(out, y)
        loss.backward()
        opt.step()

    return step


def bench_train(ours, ref, rounds: int, warmup: int = 3) -> dict[str, float]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(TRAIN_BATCH, TRAIN_T, IN_FEATURES, generator=g)
    y = torch.randn(TRAIN_BATCH, TRAIN_T, 1, generator=g)
    steps = {"ours": train_step_fn(ours, x, y), "ncps": train_step_fn(ref, x, y)}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def bench_infer(ours, ref, blocks: int, per_block: int, warmup: int = 200) -> dict[str, float]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, IN_FEATURES, generator=g)
    x_seq = x.unsqueeze(1)  # (1, 1, 32) for ncps
    with torch.no_grad():

        def run_ours(n: int, out: list[float] | None) -> None:
            h = ours.initial_state(1)
            for _ in range(n):
                t0 = time.perf_counter()
                _, h = ours.step(x, h)
                if out is not None:
                    out.append(time.perf_counter() - t0)

        def run_ncps(n: int, out: list[float] | None) -> None:
            h = torch.zeros(1, ours.state_size)
            for _ in range(n):
                t0 = time.perf_counter()
                _, h = ref(x_seq, h)
                if out is not None:
                    out.append(time.perf_counter() - t0)

        runners = {"ours": run_ours, "ncps": run_ncps}
        for run in runners.values():
            run(warmup, None)
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(blocks):
            for name, run in runners.items():
                run(per_block, times[name])
    return {k: 1e6 * statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------------------------------- memory
class TensorPeak:
    """Peak bytes of tensor storage allocated while active (a ``TorchDispatchMode``; see the module
    docstring). ``peak`` is the highest live count; ``live`` what is still allocated."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.live = self.peak = 0
        self._refs: dict[int, weakref.ref] = {}
        self._aliasing: dict[object, bool] = {}

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._record(func, out)
                return out

        self._mode = _Mode()

    def _record(self, func, out) -> None:
        aliasing = self._aliasing.get(func)
        if aliasing is None:  # views, in-place and out= ops return (part of) an input: no allocation
            aliasing = self._aliasing[func] = any(r.alias_info is not None for r in func._schema.returns)
        if aliasing:
            return
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = id(st)
            if key in self._refs:
                continue
            nbytes = st.nbytes()
            self._refs[key] = weakref.ref(st, lambda _, key=key, nbytes=nbytes: self._free(key, nbytes))
            self.live += nbytes
            if self.live > self.peak:
                self.peak = self.live

    def _free(self, key: int, nbytes: int) -> None:
        self._refs.pop(key, None)
        self.live -= nbytes

    def __enter__(self) -> "TensorPeak":
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_growth_mb(fn) -> tuple[float, str]:
    """Peak RSS growth of ``fn()`` in MB, and how it was measured (VmHWM reset, or ru_maxrss)."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
        before, how = _status_kb("VmRSS"), "VmHWM"
    except OSError:
        before, how = None, "ru_maxrss"
    if before is None:
        before, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    fn()
    after = _status_kb("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, after - before) / 1024, how


def mem_worker(kind: str, T: int, batch: int, threads: int, solver: str) -> dict:
    """One memory measurement (run in a fresh subprocess): ``kind`` bptt | bptt_ode | adjoint."""
    torch.set_num_threads(threads)
    overrides = {"bptt": {}, "bptt_ode": dict(solver=solver), "adjoint": dict(solver=solver, adjoint=True)}[kind]
    model = build_ours(**overrides)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(batch, T, IN_FEATURES, generator=g)
    y = torch.randn(batch, T, 1, generator=g)

    def step(x=x, y=y) -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x)[0], y).backward()

    step(x[:, :1], y[:, :1])  # warm-up
    t0 = time.perf_counter()
    rss_mb, how = rss_growth_mb(step)
    seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    with TensorPeak() as tp:
        step()
    return {
        "kind": kind,
        "T": T,
        "batch": batch,
        "tensor_MB": tp.peak / 2**20,
        "rss_MB": rss_mb,
        "rss_method": how,
        "step_s": seconds,
    }


def run_mem_worker(kind: str, T: int, batch: int, threads: int, solver: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mem-worker", f"{kind},{T},{batch},{threads},{solver}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {kind} T={T} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (noisier medians)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for every measurement (default: torch's default for this machine)",
    )
    parser.add_argument("--mem-batch", type=int, default=8, help="batch of the memory measurements")
    parser.add_argument(
        "--adjoint-solver", default="rk4", help="torchdiffeq fixed-grid solver for the adjoint (rk4, euler)"
    )
    parser.add_argument("--skip-memory", action="store_true", help="timings only")
    parser.add_argument("--mem-worker", help=argparse.SUPPRESS)  # internal: kind,T,batch,threads,solver
    args = parser.parse_args()

    if args.mem_worker:
        kind, T, batch, threads, solver = args.mem_worker.split(",")
        print(json.dumps(mem_worker(kind, int(T), int(batch), int(threads), solver)))
        return

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    from importlib.metadata import version

    ncps_version = version("ncps")  # (ncps.__version__ is stale)
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, ncps {ncps_version}, python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}, torch threads {threads}" + (" (quick)" if args.quick else "")
    )
    if threads > 1 and load > 0.5:
        print(
            f"warning: the CPUs are busy (load {load:.2f}); a multi-threaded torch op (MKL gemm/gemv above a "
            "size threshold, large reductions) then waits for a descheduled worker thread (~ms each); "
            "compare with --threads 1"
        )

    ours = build_ours()
    ref = ncps_twin(ours.core)
    diff = check_equivalent(ours, ref)
    print(
        f"ncp19: {ours.core.units} neurons, {ours.wiring.synapse_count} + {ours.wiring.sensory_synapse_count} "
        f"sensory synapses; ncps twin max |diff| = {diff:.2g}"
    )

    rounds = 6 if args.quick else 20
    train = bench_train(ours, ref, rounds=rounds)
    train_speedup = train["ncps"] / train["ours"]
    print(
        f"train step (B={TRAIN_BATCH}, T={TRAIN_T}, fwd+bwd+Adam), median of {rounds}: "
        f"ncps {train['ncps']:.1f} ms, ours {train['ours']:.2f} ms -> {train_speedup:.1f}x"
    )

    blocks, per_block = (4, 100) if args.quick else (10, 200)
    infer = bench_infer(ours, ref, blocks=blocks, per_block=per_block)
    infer_speedup = infer["ncps"] / infer["ours"]
    print(
        f"inference step (B=1, T=1, no_grad), median of {blocks * per_block}: "
        f"ncps {infer['ncps']:.1f} us, ours {infer['ours']:.1f} us -> {infer_speedup:.1f}x"
    )

    result: dict[str, object] = {
        "train_ms_ncps": round(train["ncps"], 2),
        "train_ms_ours": round(train["ours"], 3),
        "infer_us_ncps": round(infer["ncps"], 1),
        "infer_us_ours": round(infer["ours"], 1),
        "train_speedup_vs_ncps": round(train_speedup, 2),
        "infer_speedup_vs_ncps": round(infer_speedup, 2),
    }

    if not args.skip_memory:
        mem: dict[tuple[str, int], dict] = {}
        kinds = ("bptt", "adjoint") if args.quick else ("bptt", "bptt_ode", "adjoint")
        for kind in kinds:
            for T in MEM_T:
                mem[kind, T] = r = run_mem_worker(kind, T, args.mem_batch, threads, args.adjoint_solver)
                label = {
                    "bptt": "BPTT fused",
                    "bptt_ode": f"BPTT {args.adjoint_solver}",
                    "adjoint": f"adjoint {args.adjoint_solver}",
                }[kind]
                print(
                    f"memory {label:>14}, B={args.mem_batch}, T={T:>3}: tensor peak {r['tensor_MB']:7.3f} MB, "
                    f"RSS growth {r['rss_MB']:6.2f} MB ({r['rss_method']}), step {r['step_s']:.2f} s"
                )
        t_lo, t_hi = MEM_T
        names = {"bptt": "bptt", "bptt_ode": f"bptt_{args.adjoint_solver}", "adjoint": "adjoint"}
        for kind, name in names.items():
            if kind not in kinds:
                continue
            lo, hi = mem[kind, t_lo], mem[kind, t_hi]
            result[f"{name}_mem_MB_T{t_lo}"] = round(lo["tensor_MB"], 4)
            result[f"{name}_mem_MB_T{t_hi}"] = round(hi["tensor_MB"], 4)
            result[f"{name}_mem_ratio_T{t_hi}_T{t_lo}"] = round(hi["tensor_MB"] / lo["tensor_MB"], 3)
            result[f"{name}_rss_MB_T{t_lo}"] = round(lo["rss_MB"], 2)
            result[f"{name}_rss_MB_T{t_hi}"] = round(hi["rss_MB"], 2)
        print(
            f"memory ratio T{t_hi}/T{t_lo} (tensor peak): BPTT fused {result['bptt_mem_ratio_T256_T16']:.2f}, "
            f"adjoint {result['adjoint_mem_ratio_T256_T16']:.2f} (target <= {TARGET_ADJOINT_RATIO})"
        )
        result.update(
            mem_batch=args.mem_batch,
            adjoint_solver=args.adjoint_solver,
            mem_method="tensor_peak_dispatch_mode",
            rss_method=mem[("bptt", t_lo)]["rss_method"],
        )

    targets = {"train_speedup": train_speedup >= TARGET_SPEEDUP, "infer_speedup": infer_speedup >= TARGET_SPEEDUP}
    if "adjoint_mem_ratio_T256_T16" in result:
        targets["adjoint_mem_ratio"] = result["adjoint_mem_ratio_T256_T16"] <= TARGET_ADJOINT_RATIO
    print("targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in targets.items()))
    result.update(
        targets_met=targets,
        torch_threads=threads,
        torch_version=torch.__version__,
        ncps_version=ncps_version,
        cpu_count=os.cpu_count(),
        load_avg_1min=round(load, 2),
        quick=bool(args.quick),
        ncps_max_abs_diff=float(f"{diff:.3g}"),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
