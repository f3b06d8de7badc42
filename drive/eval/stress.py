"""`drive stress`: sweep models × perturbation kinds × levels × seeds in parallel, resumably.

Each *cell* is one model driving ``--episodes`` episodes under one perturbation at one level with
one seed (seed s uses reset seeds ``s*episodes … s*episodes+episodes-1``, so seeds never share an
episode). A clean cell (no perturbation, level 0) per model and seed is always run, and stands as
level 0 of every kind. Cells run in worker processes (spawned, one torch thread each) or as Ray tasks
on a cluster (:mod:`drive.eval.backends`); the driver (:func:`drive.eval.sweep.run_sweep`, shared with
``drive replay``) writes each finished cell atomically to ``DIR/cells/<cell>.json``; a rerun reads those back and
computes only the missing ones (a cell whose inputs changed — checkpoint weights, scenario,
episodes — is recomputed). Each episode of a cell is one call of the rollout
(:func:`drive.eval.rollout.run_episode`), as in ``drive simulate``. The command line is
:mod:`drive.commands.stress`.

Outputs in ``DIR``:

- ``results.csv`` / ``results.json``: one row per model × kind × level, every figure of
  :mod:`drive.eval.metrics` (the cell's aggregate over its episodes) summarised over seeds:
  ``<figure>`` (mean), ``<figure>_std``, ``<figure>_min``, ``<figure>_max``, and ``n_seeds``;
- ``cells.csv``: one row per finished cell and kind-level (the clean cells stand as level 0 of every
  kind): model, ``family`` and ``train_seed`` (the checkpoint's config.json ``model`` and
  ``training.seed``; empty for the expert and for checkpoints without them), kind, level, ``sigma``
  (the noise standard deviation √level for ``gaussian``, whose level is the variance σ²),
  ``condition`` (the stress seed) and every figure of the cell;
- ``stats.csv`` (when the checkpoints carry a family and a training seed): per kind, figure, family and
  level the mean and 95 % two-stage bootstrap interval (training seeds, then conditions) and the
  reference family's (``ncp19``) paired test against each other family, Holm-corrected per level
  (:func:`drive.eval.stats.compare_families`). The primary figure is ``PRIMARY_FIGURE`` (mean |lateral
  offset|, informative even when no run leaves the road); off-road events per km stand beside it;
- ``report.md``: a markdown table of the main figures, and the statistics when there are some;
- ``robustness_<kind>.png``: off-road events per km and mean |lateral offset| against level: with
  statistics one line per family (mean over training seeds) with its 95 % confidence band; otherwise
  one line per model (mean over seeds, bars = std). For ``gaussian`` the top axis reads the level as a
  standard deviation σ.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from drive.errors import UserError
from drive.eval import metrics as M
from drive.eval.backends import check_backend, run_cells
from drive.eval.perturb import CLEAN, KINDS, check_sweeps, make
from drive.eval.sweep import (
    EXPERT,
    Cell,
    Model,
    SweepOutputs,
    cached_driver,
    make_model,
    model_identity,
    run_sweep,
    sweep_report,
)
from drive.io import atomic_write_json, holds_output_lock

SEED_LIMIT = 2**32
"""Seeds are whole numbers in ``[0, 2**32)``, as every verb's ``--seed`` (``drive.commands.common.seed_type``)."""
CELL_FORMAT = 1
PRIMARY_FIGURE = "mean_abs_lateral_m"
"""The figure the study's claims rest on: mean |lateral offset| (m), informative even when off-road counts are 0."""
STATS_FIGURES = (PRIMARY_FIGURE, "off_road_per_km")
REFERENCE_FAMILY = "ncp19"
TABLE_LABELS = {"mean_abs_lateral_m": "mean abs lateral (m)", "off_road_per_km": "off-road/km"}
FIGURE_LABELS = {"mean_abs_lateral_m": "mean |lateral offset| (m)", "off_road_per_km": "off-road events per km"}


def make_models(checkpoints: Sequence[str], with_expert: bool) -> list[Model]:
    """Models for the checkpoints (names from their folders, made unique), plus the expert (also when a
    checkpoint is the word ``expert``)."""
    used: set[str] = set()
    with_expert = with_expert or any(str(c) == EXPERT for c in checkpoints)
    models = [make_model(c, used, reserved=(EXPERT,)) for c in checkpoints if str(c) != EXPERT]
    return models + ([make_model(EXPERT, used)] if with_expert else [])


MAX_SEED_COUNT = 10_000
"""The most seeds a count asks for (a sweep's plan is built in memory; 10,000 seeds x 6 levels x 6 models is
already 360,000 cells)."""


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` (a list) or ``3`` (a count: 0, 1, 2)."""
    try:
        parts = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected a count (3) or a list (0,1,2), got {text!r}") from None
    if not parts:
        raise UserError(f"--seeds: expected a count (3) or a list (0,1,2), got {text!r}")
    if "," not in str(text):
        if not 1 <= parts[0] <= MAX_SEED_COUNT:
            raise UserError(f"--seeds: a count must be between 1 and {MAX_SEED_COUNT:,}, got {text!r}")
        return list(range(parts[0]))
    if any(not 0 <= p < SEED_LIMIT for p in parts) or len(set(parts)) != len(parts):
        raise UserError(f"--seeds: seeds must be distinct whole numbers 0 <= seed < 2**32, got {text!r}")
    return parts


def plan_cells(
    models: Sequence[Model], sweeps: Sequence[tuple[str, Sequence[float]]], seeds: Sequence[int]
) -> list[Cell]:
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
    """Everything a cell's result depends on (:meth:`drive.eval.sweep.Cell.key`)."""
    return cell.key(CELL_FORMAT, episodes=episodes, off_road=off_road, scenario=scenario)


# -------------------------------------------------------------------------------------- workers


@dataclasses.dataclass(frozen=True)
class CellJob:
    """What every cell of one sweep shares; called with a cell, computes it (the job of
    :func:`drive.eval.backends.run_cells`)."""

    scenario: dict[str, Any]
    """The scenario as a dict (:meth:`drive.world.scenario.Scenario.to_dict`)."""
    episodes: int
    """Episodes per cell."""
    off_road: str
    """``recover`` or ``terminate``."""

    def key(self, cell: Cell) -> dict[str, Any]:
        """Everything ``cell``'s result depends on (:func:`cell_key`)."""
        return cell_key(cell, self.scenario, self.episodes, self.off_road)

    def __call__(self, cell: Cell) -> dict[str, Any]:
        """Compute ``cell`` in this process and return its result (the driver process writes it)."""
        with tempfile.TemporaryDirectory(prefix="drive-cell-") as tmp:
            return run_cell(cell, self.scenario, self.episodes, self.off_road, os.path.join(tmp, cell.file_name))


def run_cell(cell: Cell, scenario_dict: dict[str, Any], episodes: int, off_road: str, path: str) -> dict[str, Any]:
    """Compute one cell and write it atomically to ``path``; returns what was written."""
    from drive.eval.simulate import drive_episodes
    from drive.policy.load import check_compatible
    from drive.world.scenario import Scenario

    start = time.perf_counter()
    scenario = Scenario.from_dict(scenario_dict)
    policy = cached_driver(cell.model)
    check_compatible(policy, scenario, where=f"--checkpoint {cell.model.checkpoint}", warn=False)
    perturbations = [] if cell.kind == CLEAN else [make(cell.kind, cell.level)]
    seeds = [cell.seed * episodes + i for i in range(episodes)]
    per_episode, _ = drive_episodes(policy, scenario, seeds, perturbations, off_road, progress=False)
    result = {
        "key": cell_key(cell, scenario_dict, episodes, off_road),
        "model": cell.model.name,
        "checkpoint": cell.model.checkpoint,
        "kind": cell.kind,
        "level": cell.level,
        "seed": cell.seed,
        "reset_seeds": seeds,
        "metrics": M.aggregate(per_episode),
        "episodes": per_episode,
        "elapsed_s": time.perf_counter() - start,
    }
    atomic_write_json(path, result)
    return result


# ------------------------------------------------------------------------------------- results


def result_rows(
    cells: Sequence[dict[str, Any]],
    sweeps: Sequence[tuple[str, Sequence[float]]],
    models: Sequence[Model],
    fields: Sequence[str] = M.EPISODE_FIELDS,
) -> list[dict[str, Any]]:
    """One row per model × kind × level (level 0 = the clean cells), the ``fields`` of each cell's
    ``metrics`` summarised over seeds."""
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
                summary = M.summarise_across_seeds([c["metrics"] for c in found], fields)
                rows.append(
                    {
                        "model": model.name,
                        "kind": kind,
                        "level": level,
                        "seeds": ",".join(str(c["seed"]) for c in found),
                        **summary,
                    }
                )
    return rows


def figures_table(
    rows: Sequence[dict[str, Any]],
    figures: Sequence[str],
    labels: dict[str, str] | None = None,
    seeds_column: str = "n_seeds",
) -> str:
    """The report's table of a sweep's rows: model, kind, level (:func:`level_label`), the number of seeds (in
    ``seeds_column``) and each of ``figures`` as mean ± std over seeds, headed by its ``labels`` entry (default
    its name)."""
    labels = labels or {}
    table_rows = []
    for r in rows:
        row = {
            "model": r["model"],
            "kind": r["kind"],
            "level": level_label(r["kind"], r["level"]),
            seeds_column: r["n_seeds"],
        }
        for f in figures:
            mean, std = r.get(f), r.get(f"{f}_std")
            row[labels.get(f, f)] = "–" if mean is None else f"{mean:.3g} ± {std:.2g}"
        table_rows.append(row)
    return M.format_table(table_rows, ("model", "kind", "level", seeds_column, *(labels.get(f, f) for f in figures)))


def report_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any], stats: Any = None) -> str:
    """``report.md``: what was run, a table of the main figures (mean ± std over seeds), the statistics."""
    intro = [
        "# Stress test",
        "",
        f"Scenario `{config['scenario_name']}`, {config['episodes']} episode(s) of {config['duration_s']:g} s per cell, "
        f"seeds {config['seeds']}, off-road handling `{config['off_road']}`. Level 0 is the clean run.",
        "Figures are the mean ± std over seeds of each cell's aggregate (see `drive.eval.metrics`).",
    ]
    return sweep_report(
        intro,
        figures_table(rows, M.MAIN_FIGURES),
        config,
        stats_markdown(stats, config.get("reference", REFERENCE_FAMILY)) if stats is not None else (),
        plots_heading=("## Robustness curves", ""),
        interrupted="the table shows those (statistics and plots come with a complete run; a rerun computes the rest).",
    )


def plot_curves(
    rows: Sequence[dict[str, Any]], out_dir: Path, stats: Any = None, stats_models: Sequence[str] = ()
) -> list[str]:
    """One PNG per kind, ``robustness_<kind>.png`` (:func:`curves_figure`); returns their paths."""
    from drive.eval.plots import save_figure

    written = []
    for kind in sorted({r["kind"] for r in rows if r["kind"] != CLEAN}):
        path = out_dir / f"robustness_{kind}.png"
        save_figure(curves_figure(rows, kind, stats, stats_models), path)
        written.append(str(path))
    return written


def curves_figure(
    rows: Sequence[dict[str, Any]], kind: str, stats: Any = None, stats_models: Sequence[str] = ()
) -> Any:
    """Off-road per km and mean |lateral| against the level of ``kind``: one line per family with its 95 %
    confidence band when there are statistics (models outside them, e.g. the expert, as plain lines), else one
    line per model with std bars; each in its family's colour (:mod:`drive.eval.plots`), the expert dashed and
    drawn over the axis (its 0 off-road events stay visible). The off-road axis starts at 0 (0..1 when all are 0)."""
    import numpy as np

    from drive.eval import plots

    fig, axes = plots.subplots(1, 2, figsize=(10, 4))
    at_kind = stats[stats["kind"] == kind] if stats is not None else None
    in_stats = set()
    if at_kind is not None and len(at_kind):
        for family in dict.fromkeys(at_kind["family"]):
            for ax, figure in zip(axes, ("off_road_per_km", "mean_abs_lateral_m")):
                sel = at_kind[(at_kind["family"] == family) & (at_kind["figure"] == figure)].sort_values("level")
                sel = sel[sel["mean"].notna()]
                if len(sel):
                    st = plots.style(family)
                    ax.plot(sel["level"], sel["mean"], marker="o", label=family, **st)
                    ax.fill_between(sel["level"], sel["ci_low"], sel["ci_high"], color=st["color"], alpha=0.2)
        in_stats = set(stats_models)
    for model in dict.fromkeys(r["model"] for r in rows):
        if model in in_stats:
            continue
        sel = sorted((r for r in rows if r["kind"] == kind and r["model"] == model), key=lambda r: r["level"])
        for ax, figure in zip(axes, ("off_road_per_km", "mean_abs_lateral_m")):
            pts = [(r["level"], r[figure], r[f"{figure}_std"]) for r in sel if r[figure] is not None]
            if pts:
                x, y, e = zip(*pts)
                bars = ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=model, **plots.style(model))
                if model == EXPERT:  # on top, not clipped: a line at 0 stays visible on the axis
                    for artist in bars.lines[0:1]:
                        artist.set_clip_on(False)
                        artist.set_zorder(5)
    band = ""
    if in_stats:  # what the band resamples: with one training seed per family it is the conditions alone
        seeds = sorted({int(n) for n in at_kind["n_seeds"]})
        if seeds == [1]:
            band = " (bands: 95 % CI over conditions, one training seed)"
        else:
            counted = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
            band = f" (bands: 95 % CI over {counted} training seeds and conditions)"
    for ax, ylabel in zip(axes, ("off-road events per km", "mean |lateral offset| (m)")):
        ax.set_xlabel(
            f"{kind}: {KINDS[kind].axis}" + band,
            fontsize=8 if in_stats else None,
        )
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.get_lines():
            ax.text(0.5, 0.5, "no results at this kind", ha="center", va="center", transform=ax.transAxes)
        if kind == "gaussian":
            top = ax.secondary_xaxis("top", functions=(lambda v: np.sqrt(np.clip(v, 0, None)), np.square))
            top_level = max((r["level"] for r in rows if r["kind"] == kind), default=0.0)
            top.set_xticks(np.arange(0.1, math.sqrt(top_level) + 1e-9, 0.1))  # σ 0.1, 0.2, … (σ² 0.01, 0.04, …)
            top.set_xlabel("noise standard deviation σ")
    plots.counts_axis(axes[0])
    plots.headroom(axes[1])
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Robustness to {kind}")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- statistics


def noise_sigma(kind: str, level: float) -> float | None:
    """The standard deviation σ = √level of a ``gaussian`` level (a variance σ²); None for other kinds."""
    return math.sqrt(level) if kind == "gaussian" and level >= 0 else None


def level_label(kind: str, level: float) -> str:
    """A level as tables show it: ``gaussian`` levels in both readings, ``σ²=0.04 (σ=0.2)``; 0 is ``0 (clean)``."""
    sigma = noise_sigma(kind, level)
    if level == 0:
        return "0 (clean)"
    return f"{level:g}" if sigma is None else f"σ²={level:g} (σ={sigma:.2g})"


def cell_table(
    cells: Sequence[dict[str, Any]], sweeps: Sequence[tuple[str, Sequence[float]]], models: Sequence[Model]
) -> Any:
    """``cells.csv``: one row per finished cell and kind-level, with what the statistics need (see the module)."""
    import pandas as pd

    from drive.eval.stats import CONDITION, FAMILY, LEVEL, SEED

    identity = {m.name: model_identity(m) for m in models}
    kinds = [kind for kind, _ in sweeps] or [CLEAN]
    records = []
    for c in sorted(cells, key=lambda c: (c["model"], c["kind"], float(c["level"]), c["seed"])):
        ident = identity.get(c["model"])
        for kind in kinds if c["kind"] == CLEAN else [c["kind"]]:
            level = float(c["level"])
            records.append(
                {
                    "model": c["model"],
                    FAMILY: ident[0] if ident else None,
                    SEED: ident[1] if ident else None,
                    "kind": kind,
                    LEVEL: level,
                    "sigma": noise_sigma(kind, level),
                    CONDITION: c["seed"],
                    **{f: c["metrics"].get(f) for f in M.EPISODE_FIELDS},
                }
            )
    columns = ["model", FAMILY, SEED, "kind", LEVEL, "sigma", CONDITION, *M.EPISODE_FIELDS]
    df = pd.DataFrame(records, columns=columns)
    df[SEED] = df[SEED].astype("Int64")
    return df


def stats_table(cells: Any, reference: str = REFERENCE_FAMILY) -> tuple[Any, str | None]:
    """``stats.csv`` from ``cells.csv``'s table, or (None, why not) when no checkpoint carries a family and seed."""
    import pandas as pd

    from drive.eval.stats import FAMILY, LEVEL, SEED, compare_families

    known = cells[cells[FAMILY].notna()]
    if known.empty:
        return None, None
    clash = known.groupby([FAMILY, SEED])["model"].nunique()
    clash = clash[clash > 1]
    if len(clash):
        (family, seed), _ = next(iter(clash.items()))
        names = sorted(known[(known[FAMILY] == family) & (known[SEED] == seed)]["model"].unique())
        return None, f"no statistics: checkpoints {', '.join(names)} are all family {family} training seed {seed}"
    parts, notes = [], []
    if reference not in set(known[FAMILY]):
        notes.append(f"no family {reference} among the checkpoints: no paired tests against it")
    for kind, sel in known.groupby("kind", sort=False):
        table = sel.assign(**{SEED: sel[SEED].astype(int)})
        for figure in STATS_FIGURES:
            res = compare_families(table.astype({figure: float}), figure, reference=reference)
            res.insert(0, "figure", figure)
            res.insert(0, "kind", kind)
            res.insert(res.columns.get_loc(LEVEL) + 1, "sigma", [noise_sigma(kind, lv) for lv in res[LEVEL]])
            res["primary"] = figure == PRIMARY_FIGURE
            parts.append(res)
    stats = pd.concat(parts, ignore_index=True)
    return stats, omitted_note(stats, reference, notes)


def omitted_note(stats: Any, reference: str, notes: Sequence[str] = ()) -> str | None:
    """A report line saying which statistics are omitted (NaN) because the sweep has too few samples."""
    from drive.eval.stats import FAMILY, MIN_OBSERVATIONS

    notes = list(notes)
    others = stats[stats[FAMILY] != reference]
    if reference in set(stats[FAMILY]) and len(others) and others["p"].isna().any():
        fewest = int(others.loc[others["p"].isna(), "n_conditions"].min())
        notes.append(
            f"paired tests against {reference} omitted where the families share fewer than {MIN_OBSERVATIONS} "
            f"conditions (this sweep has {fewest} at some level; run --seeds {MIN_OBSERVATIONS} or more)"
        )
    no_ci = stats["mean"].notna() & stats["ci_low"].isna()
    if no_ci.any():
        notes.append(
            f"95 % intervals omitted where a family has fewer than {MIN_OBSERVATIONS} observations "
            "(one training seed, one condition)"
        )
    return ("Statistics omitted: " + "; ".join(notes) + ".") if notes else None


def stats_markdown(stats: Any, reference: str = REFERENCE_FAMILY) -> list[str]:
    """The statistics section of ``report.md``: one table per kind, primary figure first."""
    from drive.eval.stats import FAMILY, LEVEL

    def ci(r) -> str:
        if r["mean"] is None or not math.isfinite(r["mean"]):
            return "–"
        if not (math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])):
            return f"{r['mean']:.3g} [–]"
        return f"{r['mean']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"

    def test(r) -> str:
        if not math.isfinite(r["p"]):
            return "–"
        return f"{r['diff']:+.3g} (p={r['p']:.2g}, Holm {r['p_holm']:.2g})"

    lines = [
        "## Statistics (the unit of inference is the training seed)",
        "",
        f"Primary figure: **{FIGURE_LABELS[PRIMARY_FIGURE]}**; off-road events per km beside it. A condition is "
        "one stress seed (its test track and its noise). Mean over training seeds of the per-seed means over "
        "conditions, with a 95 % two-stage bootstrap interval (training seeds, then conditions). "
        f"'vs {reference}': other − {reference} (positive: {reference} better), paired over conditions on the "
        f"per-condition means over training seeds, permutation test, Holm-corrected per level over the families. "
        "With 3 seeds a family, a claim should cite both the test and intervals that do not overlap.",
        "",
    ]
    for kind, sel in stats.groupby("kind", sort=False):
        prim = sel[sel["figure"] == PRIMARY_FIGURE]
        prim = prim.assign(_other=prim[FAMILY] != reference).sort_values([LEVEL, "_other"], kind="stable")
        off = sel[sel["figure"] == "off_road_per_km"].set_index([FAMILY, LEVEL])
        lines += [
            f"### {kind}",
            "",
            f"| family | level | seeds | conditions | {TABLE_LABELS[PRIMARY_FIGURE]} [95 % CI] | vs {reference} "
            f"| off-road/km [95 % CI] | vs {reference} |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, r in prim.iterrows():
            o = off.loc[(r[FAMILY], r[LEVEL])] if (r[FAMILY], r[LEVEL]) in off.index else None
            lines.append(
                f"| {r[FAMILY]} | {level_label(kind, r[LEVEL])} | {r['n_seeds']} | {r['n_conditions']} | "
                f"{ci(r)} | {test(r)} | {ci(o) if o is not None else '–'} | "
                f"{test(o) if o is not None else '–'} |"
            )
        lines.append("")
    return lines


# ---------------------------------------------------------------------------------------- sweep


@holds_output_lock("out")
def stress(
    checkpoints: Sequence[str],
    perturb: Sequence[str | tuple[str, Sequence[float]]],
    out: str | Path,
    scenario: Any = "default",
    episodes: int = 1,
    seeds: Sequence[int] | str = (0,),
    workers: int = 1,
    duration_s: float | None = None,
    off_road: str = "recover",
    with_expert: bool = True,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
    max_retries: int = 3,
    reference: str = REFERENCE_FAMILY,
) -> dict[str, Any]:
    """Run (or resume) a sweep and write its results. Returns ``{"rows", "computed", "reused", "cells",
    "failed", "stats"}`` (``stats``: the table of ``stats.csv``, or None); ``reference``: the family the
    others are tested against; ``failed`` lists the cells that raised (model, kind, level, seed, error), which are also
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
    check_backend(backend, address)  # before any work: Ray missing is one line
    if off_road not in ("recover", "terminate"):
        raise UserError(f"off_road: expected 'recover' or 'terminate', got {off_road!r}")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    sweeps = check_sweeps(perturb)
    sc = resolve_scenario(scenario, duration_s)
    scenario_dict = sc.to_dict()
    models = make_models(checkpoints, with_expert)
    from drive.policy.load import check_checkpoint_compatible

    for m in models:  # frame size (an error), frame rate and camera (warnings): once, before any cell
        check_checkpoint_compatible(m.checkpoint, sc)
    out_dir = Path(out)

    def summarise(done: list[dict[str, Any]], counts: dict[str, Any]) -> tuple[list, Any, dict[str, Any]]:
        config = {
            "models": [dataclasses.asdict(m) for m in models],
            "perturbations": [[k, list(v)] for k, v in sweeps],
            "seeds": seeds,
            "episodes": episodes,
            "off_road": off_road,
            "scenario_name": sc.name,
            "duration_s": sc.duration_s,
            "scenario": scenario_dict,
            **counts,
            "primary_figure": PRIMARY_FIGURE,
            "reference": reference,
            "stats_note": None,
        }
        return result_rows(done, sweeps, models), cell_table(done, sweeps, models), config

    def plot(rows: list[dict[str, Any]], cells: Any, stats: Any) -> list[str]:
        stats_models = sorted(cells.loc[cells["family"].notna(), "model"].unique()) if stats is not None else []
        return plot_curves(rows, out_dir, stats, stats_models)

    outputs = SweepOutputs(
        summarise=summarise,
        statistics=lambda cells: stats_table(cells, reference),
        plot=plot,
        render=lambda rows, config, stats: ({"config": config, "rows": rows}, report_markdown(rows, config, stats)),
    )
    return run_sweep(
        "stress",
        plan_cells(models, sweeps, seeds),
        CellJob(scenario_dict, episodes, off_road),
        out_dir,
        lambda todo, job, keep: run_cells(
            todo,
            job,
            keep,
            backend=backend,
            workers=workers,
            address=address,
            max_retries=max_retries,
            progress=progress,
        ),
        outputs,
        progress=progress,
    )
