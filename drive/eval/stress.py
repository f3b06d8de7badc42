"""`drive stress`: sweep models × perturbation kinds × levels × seeds in parallel, resumably.

Each *cell* is one model driving ``--episodes`` episodes under one perturbation at one level with
one seed (seed s uses reset seeds ``s*episodes … s*episodes+episodes-1``, so seeds never share an
episode). A clean cell (no perturbation, level 0) per model and seed is always run, and stands as
level 0 of every kind. Cells run in worker processes (spawned, one torch thread each) or as Ray tasks
on a cluster (:mod:`drive.eval.backends`); the driver writes each finished cell atomically to
``DIR/cells/<cell>.json``; a rerun reads those back and
computes only the missing ones (a cell whose inputs changed — checkpoint weights, scenario,
episodes — is recomputed). Each episode of a cell is one call of the rollout
(:func:`drive.eval.rollout.run_episode`), as in ``drive simulate``. The command line is
:mod:`drive.commands.stress`.

Outputs in ``DIR``:

- ``results.csv`` / ``results.json``: one row per model × kind × level, every figure of
  :mod:`drive.eval.metrics` (the cell's aggregate over its episodes) summarised over seeds:
  ``<figure>`` (mean), ``<figure>_std``, ``<figure>_min``, ``<figure>_max``, and ``n_seeds``;
- ``report.md``: a markdown table of the main figures;
- ``robustness_<kind>.png``: off-road events per km and mean |lateral offset| against level, one
  line per model (mean over seeds, bars = std).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from drive.errors import UserError
from drive.eval import metrics as M
from drive.eval.backends import BACKENDS, CellJob, run_cells
from drive.eval.perturb import KINDS, make, parse_spec
from drive.io import atomic_path, atomic_write_json, atomic_write_text

CLEAN = "clean"
CELL_FORMAT = 1
MAIN_FIGURES = ("off_road_per_km", "mean_abs_lateral_m", "max_abs_lateral_m", "mean_abs_heading_error_rad",
                "steering_jerk", "completed_fraction", "nonfinite_actions")


@dataclasses.dataclass(frozen=True)
class Model:
    """A driver in the sweep."""

    name: str
    """Label in tables and plots (the checkpoint folder's name, made unique)."""
    checkpoint: str
    """Checkpoint folder, or ``expert``."""
    fingerprint: str
    """SHA-256 of the checkpoint's config.json and weights (``expert`` for the expert)."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work: a model, a perturbation at a level, a seed."""

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
        level = f"{self.level:g}".replace("-", "m")
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.model.name}__{self.kind}_{level}__seed{self.seed}") + ".json"


def fingerprint(checkpoint: str | Path) -> str:
    """Content hash of a checkpoint folder (config.json and model.safetensors)."""
    if str(checkpoint) == "expert":
        return "expert"
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(checkpoint) / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def make_models(checkpoints: Sequence[str], with_expert: bool) -> list[Model]:
    """Models for the checkpoints (names from their folders, made unique), plus the expert."""
    from drive.eval.simulate import resolve_checkpoint

    models, used = [], set()
    for ckpt in checkpoints:
        path = resolve_checkpoint(ckpt)
        base = re.sub(r"[^A-Za-z0-9._-]", "_", path.resolve().name) or "model"
        name, n = base, 2
        while name in used or name == "expert":
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        models.append(Model(name, str(path), fingerprint(path)))
    if with_expert:
        models.append(Model("expert", "expert", "expert"))
    return models


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` (a list) or ``3`` (a count: 0, 1, 2)."""
    try:
        parts = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected a count (3) or a list (0,1,2), got {text!r}") from None
    if not parts:
        raise UserError(f"--seeds: expected a count (3) or a list (0,1,2), got {text!r}")
    if "," not in str(text):
        if parts[0] < 1:
            raise UserError(f"--seeds: a count must be >= 1, got {text!r}")
        return list(range(parts[0]))
    if any(p < 0 for p in parts) or len(set(parts)) != len(parts):
        raise UserError(f"--seeds: seeds must be distinct and >= 0, got {text!r}")
    return parts


def plan_cells(models: Sequence[Model], sweeps: Sequence[tuple[str, Sequence[float]]], seeds: Sequence[int]) -> list[Cell]:
    """All cells: a clean one per model and seed, and one per model × kind × non-zero level × seed."""
    cells: list[Cell] = []
    seen = set()
    for model in models:
        for seed in seeds:
            todo = [(CLEAN, 0.0)] + [(kind, float(lv)) for kind, levels in sweeps for lv in levels if lv != 0]
            for kind, level in todo:
                if (model.name, kind, level, seed) not in seen:
                    seen.add((model.name, kind, level, seed))
                    cells.append(Cell(model, kind, level, seed))
    return cells


def cell_key(cell: Cell, scenario: dict[str, Any], episodes: int, off_road: str) -> dict[str, Any]:
    """Everything a cell's result depends on; a stored cell is reused only if its key is equal."""
    return {"format": CELL_FORMAT, "model": cell.model.name, "fingerprint": cell.model.fingerprint,
            "kind": cell.kind, "level": cell.level, "seed": cell.seed, "episodes": episodes,
            "off_road": off_road, "scenario": scenario}


def load_finished(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result of a cell if it exists and was computed with the same key."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return stored if stored.get("key") == key else None


# -------------------------------------------------------------------------------------- workers

_POLICIES: dict[str, Any] = {}


def _driver(model: Model) -> Any:
    if model.checkpoint not in _POLICIES:
        from drive.eval.simulate import load_driver

        _POLICIES[model.checkpoint] = load_driver(model.checkpoint)
    return _POLICIES[model.checkpoint]


def run_cell(cell: Cell, scenario_dict: dict[str, Any], episodes: int, off_road: str, path: str) -> dict[str, Any]:
    """Compute one cell and write it atomically to ``path``; returns what was written."""
    from drive.eval.simulate import check_compatible, drive_episodes
    from drive.world.scenario import Scenario

    start = time.perf_counter()
    scenario = Scenario.from_dict(scenario_dict)
    policy = _driver(cell.model)
    check_compatible(policy, scenario, where=f"--checkpoint {cell.model.checkpoint}")
    perturbations = [] if cell.kind == CLEAN else [make(cell.kind, cell.level)]
    seeds = [cell.seed * episodes + i for i in range(episodes)]
    per_episode, _ = drive_episodes(policy, scenario, seeds, perturbations, off_road, progress=False)
    result = {
        "key": cell_key(cell, scenario_dict, episodes, off_road),
        "model": cell.model.name, "checkpoint": cell.model.checkpoint, "kind": cell.kind, "level": cell.level,
        "seed": cell.seed, "reset_seeds": seeds,
        "metrics": M.aggregate(per_episode), "episodes": per_episode,
        "elapsed_s": time.perf_counter() - start,
    }
    atomic_write_json(path, result)
    return result


# ------------------------------------------------------------------------------------- results


def result_rows(cells: Sequence[dict[str, Any]], sweeps: Sequence[tuple[str, Sequence[float]]],
                models: Sequence[Model]) -> list[dict[str, Any]]:
    """One row per model × kind × level (level 0 = the clean cells), figures summarised over seeds."""
    by = {}
    for c in cells:
        by.setdefault((c["model"], c["kind"], float(c["level"])), []).append(c)
    rows = []
    kinds = [(kind, sorted({0.0, *map(float, levels)})) for kind, levels in sweeps] or [(CLEAN, [0.0])]
    for model in models:
        for kind, levels in kinds:
            for level in levels:
                found = by.get((model.name, CLEAN if level == 0 else kind, 0.0 if level == 0 else level), [])
                if not found:
                    continue
                found = sorted(found, key=lambda c: c["seed"])
                summary = M.summarise_across_seeds([c["metrics"] for c in found])
                rows.append({"model": model.name, "kind": kind, "level": level,
                             "seeds": ",".join(str(c["seed"]) for c in found), **summary})
    return rows


def report_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    """``report.md``: what was run and a table of the main figures (mean ± std over seeds)."""
    table_rows = []
    for r in rows:
        row = {"model": r["model"], "kind": r["kind"], "level": f"{r['level']:g}", "n_seeds": r["n_seeds"]}
        for f in MAIN_FIGURES:
            mean, std = r.get(f), r.get(f"{f}_std")
            row[f] = "–" if mean is None else f"{mean:.3g} ± {std:.2g}"
        table_rows.append(row)
    columns = ("model", "kind", "level", "n_seeds", *MAIN_FIGURES)
    lines = [
        "# Stress test",
        "",
        f"Scenario `{config['scenario_name']}`, {config['episodes']} episode(s) of {config['duration_s']:g} s per cell, "
        f"seeds {config['seeds']}, off-road handling `{config['off_road']}`. Level 0 is the clean run.",
        "Figures are the mean ± std over seeds of each cell's aggregate (see `drive.eval.metrics`).",
        "",
        M.format_table(table_rows, columns),
        "",
    ]
    failed = config.get("failed", [])
    if failed:
        lines += ["## Failed cells", "",
                  f"{len(failed)} cell(s) gave no result (a rerun computes them again):", ""]
        lines += [f"- `{f['model']}` {f['kind']} {f['level']:g} seed {f['seed']}: {f['error']}" for f in failed]
        lines += [""]
    plots = config.get("plots", [])
    if plots:
        lines += ["## Robustness curves", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def plot_curves(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """One PNG per kind: off-road per km and mean |lateral| against level, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    kinds = sorted({r["kind"] for r in rows if r["kind"] != CLEAN})
    for kind in kinds:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for model in dict.fromkeys(r["model"] for r in rows):
            sel = sorted((r for r in rows if r["kind"] == kind and r["model"] == model), key=lambda r: r["level"])
            for ax, figure in zip(axes, ("off_road_per_km", "mean_abs_lateral_m")):
                pts = [(r["level"], r[figure], r[f"{figure}_std"]) for r in sel if r[figure] is not None]
                if pts:
                    x, y, e = zip(*pts)
                    ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=model)
        for ax, ylabel in zip(axes, ("off-road events per km", "mean |lateral offset| (m)")):
            ax.set_xlabel(f"{kind}: {KINDS[kind].axis}")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Robustness to {kind}")
        fig.tight_layout()
        path = out_dir / f"robustness_{kind}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


def write_results(out_dir: Path, rows: list[dict[str, Any]], config: dict[str, Any]) -> None:
    """``results.csv``, ``results.json``, the plots and ``report.md``."""
    import pandas as pd

    with atomic_path(out_dir / "results.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    config = {**config, "plots": plot_curves(rows, out_dir)}
    atomic_write_json(out_dir / "results.json", {"config": config, "rows": rows})
    atomic_write_text(out_dir / "report.md", report_markdown(rows, config))


# ---------------------------------------------------------------------------------------- sweep


def stress(checkpoints: Sequence[str], perturb: Sequence[str | tuple[str, Sequence[float]]], out: str | Path,
           scenario: Any = "default", episodes: int = 1, seeds: Sequence[int] | str = (0,), workers: int = 1,
           duration_s: float | None = None, off_road: str = "recover", with_expert: bool = True,
           progress: bool = True, backend: str = "local", address: str | None = None,
           max_retries: int = 3) -> dict[str, Any]:
    """Run (or resume) a sweep and write its results. Returns ``{"rows", "computed", "reused", "cells",
    "failed"}``; ``failed`` lists the cells that raised (model, kind, level, seed, error), which are also
    reported in ``report.md`` and recomputed by a rerun.

    ``backend``: ``local`` (``workers`` processes on this machine) or ``ray`` (Ray tasks on the cluster at
    ``address``, ``auto`` for the running one; none starts a local Ray with ``workers`` CPUs); see
    :mod:`drive.eval.backends`. ``max_retries``: times a cell whose worker died is tried again."""
    from drive.eval.simulate import resolve_scenario

    if not checkpoints and not with_expert:
        raise UserError("--checkpoint: give at least one checkpoint (or keep the expert)")
    if not isinstance(episodes, int) or episodes < 1:
        raise UserError(f"--episodes: must be a whole number >= 1, got {episodes!r}")
    if not isinstance(workers, int) or workers < 0:
        raise UserError(f"--workers: must be a whole number >= 0, got {workers!r}")
    if backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise UserError(f"--address: only used with --backend ray, got --backend {backend}")
    if backend == "ray":
        from drive.eval.backends import import_ray

        import_ray()  # fail before any work if the extra is missing
    if off_road not in ("recover", "terminate"):
        raise UserError(f"off_road: expected 'recover' or 'terminate', got {off_road!r}")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    sweeps = [parse_spec(p) if isinstance(p, str) else (p[0], [KINDS[p[0]].check(v) for v in p[1]]) for p in perturb]
    sc = resolve_scenario(scenario, duration_s)
    scenario_dict = sc.to_dict()
    models = make_models(checkpoints, with_expert)
    out_dir = Path(out)
    cell_dir = out_dir / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)

    cells = plan_cells(models, sweeps, seeds)
    done: list[dict[str, Any]] = []
    todo: list[Cell] = []
    for cell in cells:
        stored = load_finished(cell_dir / cell.file_name, cell_key(cell, scenario_dict, episodes, off_road))
        (done.append(stored) if stored is not None else todo.append(cell))
    reused = len(done)

    def keep(cell: Cell, result: dict[str, Any]) -> None:  # the driver alone writes the resume files
        atomic_write_json(cell_dir / cell.file_name, result)
        done.append(result)

    if reused and progress:
        print(f"stress: {reused} of {len(cells)} cell(s) already done in {cell_dir}", file=sys.stderr)
    failures = run_cells(todo, CellJob(scenario_dict, episodes, off_road), keep, backend=backend, workers=workers,
                         address=address, max_retries=max_retries, progress=progress)
    failed = [{"model": f.cell.model.name, "kind": f.cell.kind, "level": f.cell.level, "seed": f.cell.seed,
               "error": f.error} for f in failures]

    rows = result_rows(done, sweeps, models)
    config = {
        "models": [dataclasses.asdict(m) for m in models], "perturbations": [[k, list(v)] for k, v in sweeps],
        "seeds": seeds, "episodes": episodes, "off_road": off_road, "scenario_name": sc.name,
        "duration_s": sc.duration_s, "scenario": scenario_dict,
        "cells": len(cells), "computed": len(todo) - len(failed), "reused": reused,
        "failed": failed,
    }
    write_results(out_dir, rows, config)
    return {"rows": rows, "computed": len(todo) - len(failed), "reused": reused, "cells": len(cells),
            "failed": failed}
