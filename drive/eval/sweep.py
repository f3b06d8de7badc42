"""What the sweeping verbs share (``drive stress``, ``drive replay``, ``drive suite``, ``drive evaluate``).

- model identity: :class:`Model` (a driver under evaluation: name, checkpoint, :func:`fingerprint`),
  :func:`make_model` (from a checkpoint folder, ``expert`` or a driver object, names made unique by
  :func:`unique_name`) and :func:`model_identity` (family and training seed from ``config.json``);
- resume: :func:`resume_key` (everything a stored result depends on) and :func:`load_finished` (a stored
  result, reused only when its key is equal);
- the per-process driver cache: :func:`cached_driver` loads each checkpoint once per worker process;
  :func:`install_driver` puts a driver built elsewhere (a Ray worker, from the checkpoint's bytes) in it;
- the worker pool: :func:`worker_pool`, spawned processes that die with their parent, run torch on one
  thread and leave Ctrl-C to the parent (:class:`WorkerPool`);
- the cell sweep (``drive stress``, ``drive replay``): :class:`Cell` (a model, a perturbation at a level, a
  seed) and :func:`run_sweep`, the one driver: resume check, the cells run, ``results.csv``, ``cells.csv``,
  ``stats.csv``, ``results.json`` and ``report.md`` written (what is finished also on Ctrl-C), the verb's
  own tables, statistics, plots and report given as :class:`SweepOutputs`; :func:`sweep_report` is the
  report's frame (its table, the interrupted note, the statistics, the failed cells, the plots).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.context
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from drive.io import atomic_path, atomic_write_json, atomic_write_text, hash_file

EXPERT = "expert"

# ---------------------------------------------------------------------------------- model identity


@dataclasses.dataclass(frozen=True)
class Model:
    """A driver in a sweep."""

    name: str
    """Label in tables and plots (the checkpoint folder's name, made unique)."""
    checkpoint: Any
    """Checkpoint folder (str), ``expert``, or (``drive evaluate`` in process) a driver object."""
    fingerprint: str
    """SHA-256 of the checkpoint's config.json and weights; ``expert``; or ``object:<model_name>``."""


def fingerprint(checkpoint: str | Path) -> str:
    """Content hash of a checkpoint folder (config.json and model.safetensors); ``expert`` for the expert."""
    if str(checkpoint) == EXPERT:
        return EXPERT
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        hash_file(h, Path(checkpoint) / name)
    return h.hexdigest()


def unique_name(base: str, used: set[str], reserved: Sequence[str] = ()) -> str:
    """``base``, or ``base-2``, ``base-3``, … : the first not in ``used`` nor ``reserved``; added to ``used``."""
    name, n = base, 2
    while name in used or name in reserved:
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "model"


def result_file(model: Model, kind: str, level: float, tail: str) -> str:
    """The name of a stored result: ``<model>__<kind>_<level>__<tail>.json``, safe on any file system."""
    level_text = f"{level:g}".replace("-", "m")
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{model.name}__{kind}_{level_text}__{tail}") + ".json"


def driver_label(source: Any) -> str:
    """The one name of a driver in every table, plot and video title: a checkpoint's folder name (a shipped
    name resolved, ``.`` the folder's own name), ``expert``, or a driver object's ``model_name``."""
    if isinstance(source, (str, os.PathLike)) and str(source) == EXPERT:
        return EXPERT
    if isinstance(source, (str, os.PathLike)):
        from drive.resources import resolve_checkpoint_arg

        return _safe(resolve_checkpoint_arg(source).resolve().name)
    return _safe(str(getattr(source, "model_name", type(source).__name__)))


def make_model(source: Any, used: set[str], reserved: Sequence[str] = ()) -> Model:
    """The model of a checkpoint folder (resolved), ``expert`` or a driver object, named by
    :func:`driver_label` made unique against ``used`` and ``reserved`` (:func:`unique_name`)."""
    name = unique_name(driver_label(source), used, reserved)
    if isinstance(source, (str, os.PathLike)) and str(source) == EXPERT:
        return Model(name, EXPERT, EXPERT)
    if isinstance(source, (str, os.PathLike)):
        from drive.policy.load import resolve_checkpoint

        path = resolve_checkpoint(source)
        return Model(name, str(path), fingerprint(path))
    return Model(name, source, f"object:{getattr(source, 'model_name', type(source).__name__)}")


def model_identity(model: Model) -> tuple[str, int] | None:
    """(family, training seed) from a checkpoint's config.json (``model``; ``training.seed``), or None.

    A checkpoint trained with noise augmentation is its own family, ``<model>+noise``, so that the
    separately labelled variant of a study never mixes with the plain models."""
    if not isinstance(model.checkpoint, str) or model.checkpoint == EXPERT:
        return None
    try:
        config = json.loads((Path(model.checkpoint) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    training = config.get("training") if isinstance(config, dict) else None
    family = config.get("model") if isinstance(config, dict) else None
    seed = training.get("seed") if isinstance(training, dict) else None
    if not isinstance(family, str) or not isinstance(seed, int) or isinstance(seed, bool):
        return None
    if training.get("augment_noise"):
        family += "+noise"
    return family, seed


# ------------------------------------------------------------------------------------------ resume


def resume_key(fmt: int, model: Model, kind: str, level: float, **inputs: Any) -> dict[str, Any]:
    """Everything a stored result depends on: the file format, the model and its fingerprint, the perturbation
    and its level, and the verb's own ``inputs``; a stored result is reused only if its key is equal."""
    return {
        "format": fmt,
        "model": model.name,
        "fingerprint": model.fingerprint,
        "kind": kind,
        "level": level,
        **inputs,
    }


def load_finished(path: Path, key: dict[str, Any], files: Sequence[str] = ()) -> dict[str, Any] | None:
    """The stored result at ``path`` if it exists, reads, was computed with ``key`` (compared as JSON) and
    the files it names under each field of ``files`` (a path, e.g. ``video``, or a list of them, e.g. ``videos``;
    unset is fine) still exist; else None."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != json.loads(json.dumps(key)):
        return None
    for field in files:
        named = stored.get(field) or []
        if not all(Path(f).is_file() for f in ([named] if isinstance(named, str) else named)):
            return None
    return stored


# ---------------------------------------------------------------------------------- driver cache

_DRIVERS: dict[str, Any] = {}
"""Per process: checkpoint (folder or ``expert``) -> its driver, loaded once."""


def cached_driver(model: Model) -> Any:
    """The driver of ``model``, loaded once per process (a driver object is returned as is)."""
    if not isinstance(model.checkpoint, str):
        return model.checkpoint
    if model.checkpoint not in _DRIVERS:
        from drive.policy.load import load_driver

        _DRIVERS[model.checkpoint] = load_driver(model.checkpoint)
    return _DRIVERS[model.checkpoint]


def has_driver(checkpoint: str) -> bool:
    """Whether this process has a driver for ``checkpoint`` in its cache."""
    return checkpoint in _DRIVERS


def install_driver(checkpoint: str, driver: Any) -> None:
    """Make ``driver`` the one :func:`cached_driver` gives for ``checkpoint`` in this process."""
    _DRIVERS[checkpoint] = driver


# ----------------------------------------------------------------------------------- worker pool

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does, whatever signal killed it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, name="drive-parent-watchdog", daemon=True).start()


def init_local_worker(parent_pid: int) -> None:
    """Initializer of a local pool worker: dies with its parent, one torch thread, Ctrl-C left to the parent."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already so from the start (_QuietSpawnProcess)
    import torch

    torch.set_num_threads(1)


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that ignores SIGINT from its first instruction: the disposition ``SIG_IGN`` is
    inherited across exec, so this process ignores SIGINT while it starts one (a few milliseconds)."""

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():  # signal.signal: main thread only
            return super().start()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return super().start()
        finally:
            signal.signal(signal.SIGINT, previous)


class _QuietSpawnContext(multiprocessing.context.SpawnContext):
    Process = _QuietSpawnProcess


class WorkerPool(cf.ProcessPoolExecutor):
    """A process pool whose workers never see the terminal's Ctrl-C, and which a Ctrl-C stops at once.

    A Ctrl-C goes to the whole foreground process group, workers included. A worker starts with SIGINT
    ignored (:class:`_QuietSpawnProcess`), so it never prints a KeyboardInterrupt traceback from its
    start-up imports; the parent alone handles the Ctrl-C. Leaving a ``with`` block by an exception
    (Ctrl-C, or an error) stops the pool (:meth:`stop`) instead of waiting for the running tasks."""

    def stop(self) -> None:
        """Cancel the queued tasks and end the workers now; tasks running are lost (a rerun computes them)."""
        terminate = getattr(super(), "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
            return
        for future in list(getattr(self, "_pending_work_items", {}).values()):
            future.future.cancel()
        for process in list((getattr(self, "_processes", None) or {}).values()):
            if process.is_alive():
                process.terminate()
        self.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.stop()
            return False
        return super().__exit__(exc_type, exc, tb)


def worker_pool(workers: int) -> WorkerPool:
    """A spawn-context process pool whose workers die with this process (by any signal), run torch on one
    thread and leave Ctrl-C to this process (:class:`WorkerPool`): the pool every parallel verb uses
    (stress's local backend, ``drive suite``, ``drive evaluate``)."""
    return WorkerPool(
        max_workers=workers,
        mp_context=_QuietSpawnContext(),
        initializer=init_local_worker,
        initargs=(os.getpid(),),
    )


# ------------------------------------------------------------------------------------ cell sweep


@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work of a cell sweep (``drive stress``, ``drive replay``): a model, a perturbation at a
    level, a seed."""

    model: Model
    """Who drives."""
    kind: str
    """Perturbation kind, or ``clean``."""
    level: float
    """Perturbation level (0 for clean)."""
    seed: int
    """Seed; reset seeds ``seed*episodes + i``."""

    @property
    def file_name(self) -> str:
        return result_file(self.model, self.kind, self.level, f"seed{self.seed}")

    def key(self, fmt: int, **inputs: Any) -> dict[str, Any]:
        """The cell's :func:`resume_key` (its model, kind, level and seed) with the verb's ``inputs``."""
        return resume_key(fmt, self.model, self.kind, self.level, seed=self.seed, **inputs)


Runner = Callable[[Sequence[Cell], Any, Callable[[Cell, dict[str, Any]], None]], Sequence[Any]]
"""Runs the cells still to compute: ``run(cells, job, on_result) -> failures`` (each with ``cell`` and
``error``), e.g. :func:`drive.eval.backends.run_cells` with its backend bound."""


@dataclasses.dataclass(frozen=True)
class SweepOutputs:
    """What a verb gives :func:`run_sweep`: its tables, statistics, plots and report."""

    summarise: Callable[[list[dict[str, Any]], dict[str, Any]], tuple[list[dict[str, Any]], Any, dict[str, Any]]]
    """(the finished cells' results, the run's counts: ``cells``, ``finished``, ``computed``, ``reused``,
    ``failed``, ``interrupted``) -> (the rows of ``results.csv``, the table of ``cells.csv``, the config of
    ``results.json``, with ``stats_note: None`` where the verb wants it)."""
    statistics: Callable[[Any], tuple[Any, str | None]]
    """The table of ``cells.csv`` -> (the table of ``stats.csv`` or None, a note for the report or None)."""
    plot: Callable[[list[dict[str, Any]], Any, Any], list[str]]
    """(rows, the table of ``cells.csv``, the statistics or None) -> the paths of the plots it wrote."""
    render: Callable[[list[dict[str, Any]], dict[str, Any], Any], tuple[dict[str, Any], str]]
    """(rows, config, the statistics or None) -> (the content of ``results.json``, the text of ``report.md``)."""


def failed_cell(failure: Any) -> dict[str, Any]:
    """A failed cell as the config and the report list it: model, kind, level, seed, error."""
    cell = failure.cell
    return {"model": cell.model.name, "kind": cell.kind, "level": cell.level, "seed": cell.seed, "error": failure.error}


def run_sweep(
    verb: str,
    cells: Sequence[Cell],
    job: Any,
    out_dir: Path,
    run: Runner,
    outputs: SweepOutputs,
    progress: bool = True,
    files: Sequence[str] = (),
) -> dict[str, Any]:
    """Run (or resume) a cell sweep in ``out_dir`` and write its results; the one driver of ``drive stress``
    and ``drive replay``.

    ``job``: computes one cell (``job(cell) -> result``, in a worker) and gives the key of its inputs
    (``job.key(cell)``, :func:`resume_key`). A cell stored in ``out_dir/cells`` with an equal key (and the files
    its ``files`` fields name still there, :func:`load_finished`) is reused; ``run`` computes the others and
    hands each result back, which this process alone writes to ``cells/``. Then ``results.csv``,
    ``cells.csv``, ``results.json`` and ``report.md`` are written first (on Ctrl-C too, with what is finished,
    before the KeyboardInterrupt goes on), an earlier ``stats.csv`` removed; then the statistics
    (``stats.csv``, the config's ``stats_note``), the plots (the config's ``plots``) and ``results.json`` and
    ``report.md`` again. Returns ``{"rows", "computed", "reused", "cells", "failed", "stats"}``."""
    import pandas as pd

    cell_dir = out_dir / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, Any]] = []
    todo: list[Cell] = []
    for cell in cells:
        stored = load_finished(cell_dir / cell.file_name, job.key(cell), files)
        (done.append(stored) if stored is not None else todo.append(cell))
    reused = len(done)
    if reused and progress:
        print(f"{verb}: {reused} of {len(cells)} cell(s) already done in {cell_dir}", file=sys.stderr)

    def keep(cell: Cell, result: dict[str, Any]) -> None:  # the driver alone writes the resume files
        atomic_write_json(cell_dir / cell.file_name, result)
        done.append(result)

    def write_tables(failures: Sequence[Any], interrupted: bool = False) -> tuple[list, Any, dict[str, Any]]:
        counts = {
            "cells": len(cells),
            "finished": len(done),
            "computed": len(done) - reused,
            "reused": reused,
            "failed": [failed_cell(f) for f in failures],
            "interrupted": interrupted,
        }
        rows, table, config = outputs.summarise(done, counts)
        with atomic_path(out_dir / "results.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        with atomic_path(out_dir / "cells.csv") as tmp:
            table.to_csv(tmp, index=False)
        (out_dir / "stats.csv").unlink(missing_ok=True)  # an earlier sweep's no longer describes this one
        write_report(out_dir, rows, config, None, outputs.render)
        return rows, table, config

    try:
        failures = run(todo, job, keep)
    except KeyboardInterrupt:  # write what is finished, then let the command line say so (exit 130)
        write_tables([], interrupted=True)
        raise
    rows, table, config = write_tables(failures)  # the results first: statistics and plots cannot cost them
    stats, note = outputs.statistics(table)
    if stats is not None:
        with atomic_path(out_dir / "stats.csv") as tmp:
            stats.to_csv(tmp, index=False)
    config = {**config, "stats_note": note}
    config["plots"] = outputs.plot(rows, table, stats)
    write_report(out_dir, rows, config, stats, outputs.render)
    return {
        "rows": rows,
        "computed": len(todo) - len(config["failed"]),
        "reused": reused,
        "cells": len(cells),
        "failed": config["failed"],
        "stats": stats,
    }


def write_report(out_dir: Path, rows: list[dict[str, Any]], config: dict[str, Any], stats: Any, render: Any) -> None:
    """``results.json`` and ``report.md`` as ``render`` (:attr:`SweepOutputs.render`) makes them."""
    results, report = render(rows, config, stats)
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "report.md", report)


def sweep_report(
    intro: Sequence[str],
    table: str,
    config: dict[str, Any],
    statistics: Sequence[str] = (),
    plots_heading: Sequence[str] = ("## Plots", ""),
    interrupted: str = "a rerun computes the rest.",
) -> str:
    """A sweep's ``report.md``: ``intro``, the ``table``, the interrupted note (``interrupted`` says what
    follows from it), the ``statistics`` lines, the config's ``stats_note``, the failed cells and the plots
    under ``plots_heading``."""
    lines = [*intro, "", table, ""]
    if config.get("interrupted"):
        lines += [f"**Interrupted**: {config['finished']} of {config['cells']} cell(s) finished; {interrupted}", ""]
    lines += statistics
    if config.get("stats_note"):
        lines += [config["stats_note"], ""]
    failed = config.get("failed", [])
    if failed:
        lines += ["## Failed cells", "", f"{len(failed)} cell(s) gave no result (a rerun computes them again):", ""]
        lines += [f"- `{f['model']}` {f['kind']} {f['level']:g} seed {f['seed']}: {f['error']}" for f in failed]
        lines += [""]
    plots = config.get("plots", [])
    if plots:
        lines += [*plots_heading, *(f"![{Path(p).stem}]({Path(p).name})" for p in plots), ""]
    return "\n".join(lines)
