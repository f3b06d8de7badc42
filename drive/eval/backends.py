"""Where the stress sweep's cells run: ``local`` worker processes or a ``ray`` cluster.

Both backends take the cells still to compute and a *job*, a picklable callable that computes one cell
(``job(cell) -> result``; the stress sweep's is :class:`drive.eval.stress.CellJob`), and hand each result
back to the driver process, which alone writes the resume files (``DIR/cells/<cell>.json``): workers need
no shared disk. A cell has a ``model`` (:class:`drive.eval.sweep.Model`); nothing here knows more of it.

- ``local``: a pool of spawned worker processes on this machine (one torch thread each). Workers
  end with their parent, by any signal: on Linux through ``prctl(PR_SET_PDEATHSIG)``, elsewhere
  through a watchdog thread that polls the parent's pid. A pool broken by a dead worker is
  restarted for the unfinished cells (at most ``max_retries`` times).
- ``ray``: one Ray task per cell on a cluster (``address="auto"`` joins a running one; ``None``
  starts a local one with ``workers`` CPUs, or uses the Ray instance this process already has).
  Checkpoints reach the workers through Ray's object store (the bytes of ``config.json`` and
  ``model.safetensors``), results come back as task results. A task whose worker dies is retried
  by Ray (``max_retries``).

In both, a cell that raises is reported as a :class:`CellFailure` and the sweep goes on; Ctrl-C
cancels what is outstanding at once (cells already finished are kept, so a rerun resumes; the local
workers never see the Ctrl-C themselves, see :class:`drive.eval.sweep.WorkerPool`).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from drive.errors import UserError
from drive.eval import sweep
from drive.eval.sweep import worker_pool

Cell = Any
"""A unit of a sweep with a ``model`` (:class:`drive.eval.sweep.Model`) and a ``file_name``."""
Job = Callable[[Any], dict]
"""Computes one cell in the process it runs in and returns its result; picklable (it travels to workers)."""

BACKENDS = ("local", "ray")
RAY_EXTRA = "pip install 'drive-ncp[ray]'"
CHECKPOINT_FILES = ("config.json", "model.safetensors")


@dataclasses.dataclass(frozen=True)
class CellFailure:
    """A cell that did not give a result."""

    cell: Cell
    """The cell."""
    error: str
    """What went wrong, one line (``ExceptionType: message``)."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def compute_cell(cell: Cell, job: Job) -> dict[str, Any]:
    """Compute one cell in this process and return its result (the driver writes it)."""
    return job(cell)


def check_backend(backend: str, address: str | None) -> None:
    """``--backend`` and ``--address``, each a one-line :class:`UserError`: a known backend, an address only
    with ``ray``, and Ray installed when asked for (before any work)."""
    if backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise UserError(f"--address: only used with --backend ray, got --backend {backend}")
    if backend == "ray":
        import_ray()


def run_cells(
    cells: Sequence[Cell],
    job: Job,
    on_result: Callable[[Cell, dict[str, Any]], None],
    backend: str = "local",
    workers: int = 2,
    address: str | None = None,
    max_retries: int = 3,
    progress: bool = True,
) -> list[CellFailure]:
    """Compute ``cells`` on ``backend`` (``backend`` and ``address`` as :func:`check_backend` passes them);
    ``on_result(cell, result)`` is called in this process as each one finishes (in completion order).
    Returns the cells that failed. A tqdm bar counts cells done."""
    from tqdm.auto import tqdm

    if not isinstance(max_retries, int) or max_retries < 0:
        raise UserError(f"max_retries: must be a whole number >= 0, got {max_retries!r}")
    started = False
    if backend == "ray" and cells:
        ray = import_ray()
        started = connect_ray(ray, address, max(1, workers) if address is None else None)
    bar = tqdm(total=len(cells), desc="stress cells", unit="cell", disable=not progress or not cells)

    def done(cell: Cell, result: dict[str, Any]) -> None:
        on_result(cell, result)
        bar.update()

    try:
        if not cells:
            return []
        if backend == "ray":
            return _run_ray(ray, cells, job, done, max_retries)
        if workers <= 1 or len(cells) <= 1:
            return _run_here(cells, job, done)
        return _run_local(cells, job, done, workers, max_retries)
    finally:
        bar.close()
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------- in process


def _run_here(cells: Sequence[Cell], job: Job, done: Callable) -> list[CellFailure]:
    import torch

    failures = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cell in cells:
            try:
                result = compute_cell(cell, job)
            except Exception as exc:  # a failed cell is reported; the sweep goes on
                failures.append(CellFailure(cell, one_line(exc)))
                continue
            done(cell, result)
    finally:
        torch.set_num_threads(threads)
    return failures


# ------------------------------------------------------------------------------- local processes


def _run_local(cells: Sequence[Cell], job: Job, done: Callable, workers: int, max_retries: int) -> list[CellFailure]:
    failures: list[CellFailure] = []
    todo = list(cells)
    restarts = 0
    while todo:
        broken: list[Cell] = []
        pool = worker_pool(min(workers, len(todo)))
        futures: dict[cf.Future, Cell] = {}
        handled: set[cf.Future] = set()
        try:
            for cell in todo:
                futures[pool.submit(compute_cell, cell, job)] = cell
            for fut in cf.as_completed(futures):
                handled.add(fut)
                exc = fut.exception()
                if exc is None:
                    done(futures[fut], fut.result())
                elif isinstance(exc, cf.process.BrokenProcessPool):  # a worker died: retry in a new pool
                    broken.append(futures[fut])
                else:  # the cell raised: report it, go on
                    failures.append(CellFailure(futures[fut], one_line(exc)))
        except BaseException:  # Ctrl-C: keep the cells already finished, stop the rest at once
            for fut, cell in futures.items():
                if fut not in handled and fut.done() and not fut.cancelled() and fut.exception() is None:
                    done(cell, fut.result())
            pool.stop()
            raise
        pool.shutdown(wait=True)
        if broken and restarts >= max_retries:
            failures += [CellFailure(c, f"worker process died ({max_retries} restart(s) tried)") for c in broken]
            broken = []
        restarts += bool(broken)
        todo = broken
    return failures


# ------------------------------------------------------------------------------------------- ray


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UserError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--backend ray: Ray is not installed; install the extra: {RAY_EXTRA}") from None
    return ray


def connect_ray(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address`` (``auto``: the running one), or start a local one. Returns whether
    this call started the connection (and so should shut it down). An existing connection is reused."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "warning",
    }
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise UserError(
            f"--address: cannot join a Ray cluster at {address!r} ({one_line(exc)}); start one with `ray start --head`"
        ) from None
    return True


def checkpoint_bytes(checkpoint: str | Path) -> dict[str, bytes]:
    """The files of a checkpoint folder that define the policy, as bytes (for the object store)."""
    return {name: (Path(checkpoint) / name).read_bytes() for name in CHECKPOINT_FILES}


_INSTALLED: dict[str, str] = {}  # in a Ray worker: checkpoint path -> fingerprint of the policy loaded for it


def install_checkpoint(model: Any, files: dict[str, bytes]) -> None:
    """In a worker: build the policy of ``model`` from its checkpoint's bytes and make it the one the
    cells of ``model`` use (no checkpoint folder needed on this machine)."""
    from drive.policy.load import load_driver

    if _INSTALLED.get(model.checkpoint) == model.fingerprint and sweep.has_driver(model.checkpoint):
        return
    with tempfile.TemporaryDirectory(prefix="drive-ckpt-") as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        policy = load_driver(tmp)
    sweep.install_driver(model.checkpoint, policy)
    _INSTALLED[model.checkpoint] = model.fingerprint


def ray_cell(cell: Cell, job: Job, files: dict[str, bytes] | None) -> dict[str, Any]:
    """The body of a cell's Ray task (``files``: the checkpoint's bytes, resolved from the object store)."""
    import torch

    torch.set_num_threads(1)
    if files is not None:
        install_checkpoint(cell.model, files)
    return compute_cell(cell, job)


def _run_ray(ray: Any, cells: Sequence[Cell], job: Job, done: Callable, max_retries: int) -> list[CellFailure]:
    failures: list[CellFailure] = []
    task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(ray_cell)
    refs: dict[str, Any] = {}
    for model in dict.fromkeys(c.model for c in cells):
        if model.checkpoint != "expert":
            refs[model.checkpoint] = ray.put(checkpoint_bytes(model.checkpoint))
    job_ref = ray.put(job)
    pending = {task.remote(cell, job_ref, refs.get(cell.model.checkpoint)): cell for cell in cells}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)  # and all others ready
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the cell raised: report it, go on
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    failures.append(CellFailure(cell, one_line(cause)))
                    continue
                except ray.exceptions.RayError as exc:  # worker or node lost after every retry
                    failures.append(CellFailure(cell, f"{one_line(exc)} (after {max_retries} retries)"))
                    continue
                done(cell, result)
    except BaseException:  # Ctrl-C: cancel what is outstanding; finished cells are already written
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return failures
