"""The generalization suite: every case of ``scenarios/suite/`` on every test track, per driver.

Each case is a scenario on the held-out test tracks (``drive.world.tracks.TEST_SEEDS``) that
changes one thing of the plain test road: the lanes, the ego's lane, the lane width, the
markings, the light, fog, the camera mount, the speed, traffic. ``run_suite`` drives every case
with every checkpoint and the expert, one episode per track (reset seed ``i`` drives track
``1000 + i``), in parallel worker processes, with ``drive.eval.simulate.drive_episodes``, and
writes:

- ``results.csv``: one row per case and driver (off-road events per km, mean and max |lateral|, …);
- ``report.md``: the same as a table, each model's figures with the expert's beside them;
- ``suite.png``: off-road per km, mean and max |lateral| per case, one bar per driver.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drive import resources
from drive.errors import UserError
from drive.eval import metrics as M
from drive.eval.sweep import EXPERT
from drive.io import holds_output_lock

COLUMNS = ("case", "driver", "episodes", "distance_km", "off_road_events", *M.MAIN_FIGURES)


def suite_cases(names: Sequence[str] | None = None) -> list[str]:
    """The suite's case names (file stems under ``scenarios/suite/``), sorted; ``names`` picks some."""
    cases = sorted(p.stem for p in resources.suite_dir().glob("*.yaml"))
    if names:
        unknown = [n for n in names if n not in cases]
        if unknown:
            raise UserError(f"--case: unknown suite case {unknown[0]!r} (cases: {', '.join(cases)})")
        return [c for c in cases if c in names]
    return cases


def driver_labels(drivers: Sequence[str]) -> list[str]:
    """A label per driver: the checkpoint folder's name, made unique (``ncp19``, ``ncp19-2``), or ``expert``."""
    from drive.eval.sweep import driver_label, unique_name

    used: set[str] = set()
    return [unique_name(driver_label(driver), used) for driver in drivers]


def _drive_case(case: str, driver: str, label: str, seeds: list[int], duration_s: float | None) -> dict[str, Any]:
    """Worker: one driver on one case over the given reset seeds; returns the aggregate row."""
    import torch

    from drive.eval.simulate import drive_episodes, resolve_scenario
    from drive.policy.load import check_compatible, load_driver

    torch.set_num_threads(1)
    scenario = resolve_scenario(resources.suite_dir() / f"{case}.yaml", duration_s)
    policy = load_driver(driver)
    check_compatible(policy, scenario, warn=False)  # warned once, up front, by run_suite
    episodes, _ = drive_episodes(policy, scenario, seeds, progress=False)
    agg = M.aggregate(episodes)
    row = {
        "case": case,
        "driver": label,
        "episodes": agg["episodes"],
        "distance_km": agg["distance_m"] / 1000.0,
    }
    row.update({k: agg[k] for k in COLUMNS if k in agg})
    return row


@holds_output_lock("out")
def run_suite(
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    tracks: int = 10,
    workers: int = 2,
    cases: Sequence[str] | None = None,
    duration_s: float | None = None,
    expert: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Drive every suite case with every checkpoint (and the expert) on ``tracks`` test tracks; write the results.

    ``out`` must exist (``drive.commands.common.prepare_out_dir``). Returns the rows of results.csv.
    """
    from tqdm.auto import tqdm

    from drive.policy.load import resolve_checkpoint
    from drive.world.tracks import TEST_SEEDS

    if not 1 <= tracks <= len(TEST_SEEDS):
        raise UserError(f"--tracks: must be between 1 and {len(TEST_SEEDS)} (the test tracks), got {tracks}")
    if workers < 1:
        raise UserError(f"--workers: must be >= 1, got {workers}")
    drivers = [str(resolve_checkpoint(c)) for c in checkpoints] + ([EXPERT] if expert else [])
    if not drivers:
        raise UserError("--checkpoint: give at least one checkpoint (or leave the expert on)")
    names = suite_cases(cases)
    seeds = list(range(tracks))
    labels = driver_labels(drivers)
    from drive.eval.simulate import resolve_scenario
    from drive.policy.load import check_checkpoint_compatible

    for case in names:  # frame size (an error), frame rate and camera (warnings): once, before any driving
        scenario = resolve_scenario(resources.suite_dir() / f"{case}.yaml", duration_s)
        for driver in drivers:
            check_checkpoint_compatible(driver, scenario, where=f"--checkpoint {driver} (case {case})")
    jobs = [(case, driver, label) for case in names for driver, label in zip(drivers, labels)]
    rows: list[dict[str, Any]] = []
    from drive.eval.sweep import worker_pool

    with worker_pool(min(workers, len(jobs))) as pool:
        futures = {
            pool.submit(_drive_case, case, driver, label, seeds, duration_s): (case, label)
            for case, driver, label in jobs
        }
        order = {c: i for i, c in enumerate(names)}
        try:
            for fut in tqdm(
                cf.as_completed(futures), total=len(futures), desc="suite", unit="case", disable=not progress
            ):
                rows.append(fut.result())
        except KeyboardInterrupt:  # the pool stops at once (WorkerPool); the finished cases are written
            rows.sort(key=lambda r: (order[r["case"]], labels.index(r["driver"])))
            write_results(rows, Path(out), labels, duration_s, plot=False)
            raise
    rows.sort(key=lambda r: (order[r["case"]], labels.index(r["driver"])))
    write_results(rows, Path(out), labels, duration_s)
    return rows


def write_results(
    rows: list[dict[str, Any]], out: Path, drivers: Sequence[str], duration_s: float | None = None, plot: bool = True
) -> None:
    """results.csv, report.md and (``plot``) suite.png from the suite's rows, in that order."""
    import pandas as pd

    from drive.io import atomic_path

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4g")
    with atomic_path(out / "report.md") as tmp:
        Path(tmp).write_text(report_markdown(df, drivers, duration_s))
    if plot:
        plot_results(df, drivers, out / "suite.png")


TARGET_MEAN_ABS_LATERAL_M = 0.35
"""The suite's target for a shipped driver: no off-road event and mean |lateral| at most this, in every case."""


def report_markdown(df, drivers: Sequence[str], duration_s: float | None = None) -> str:
    """Three tables, cases down and drivers across (expert last): off-road events per km (with the
    event count), mean |lateral| and max |lateral|; an "all cases" row, and per model the cases that
    meet the target (0 events, mean |lateral| <= ``TARGET_MEAN_ABS_LATERAL_M``). ``duration_s``: the episode
    length the run overrode the cases' with (None: each case's own)."""
    km = df.groupby("driver")["distance_km"].sum()
    lines = [
        "# Generalization suite",
        "",
        f"{int(df['episodes'].max()) if len(df) else 0} test tracks per case, one "
        + ("" if duration_s is None else f"{duration_s:g} s ")
        + "episode each; km driven: "
        + ", ".join(f"{d} {km.get(d, 0.0):.1f}" for d in drivers)
        + ".",
        "",
    ]
    tables = (
        ("Off-road events per km (events)", "off_road_per_km"),
        ("Mean |lateral| (m)", "mean_abs_lateral_m"),
        ("Max |lateral| (m)", "max_abs_lateral_m"),
    )
    for title, col in tables:
        lines += [f"**{title}**", "", "| case | " + " | ".join(drivers) + " |", "|" + "---|" * (len(drivers) + 1)]
        for case, group in list(df.groupby("case", sort=False)) + [("all cases", df)]:
            cells = [case if case != "all cases" else "**all cases**"]
            for d in drivers:
                r = group[group["driver"] == d]
                if r.empty:
                    cells.append("–")
                elif col == "off_road_per_km":
                    events, dist = int(r["off_road_events"].sum()), float(r["distance_km"].sum())
                    cells.append(f"{events / dist if dist > 0 else 0.0:.2f} ({events})")
                elif col == "mean_abs_lateral_m":  # distance-weighted over cases
                    w = r["distance_km"].to_numpy(float)
                    v = r[col].to_numpy(float)
                    cells.append(f"{(w * v).sum() / w.sum() if w.sum() > 0 else v.mean():.3f}")
                else:
                    cells.append(f"{r[col].max():.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for d in drivers:
        if d == EXPERT:
            continue
        sub = df[df["driver"] == d]
        ok = sub[(sub["off_road_events"] == 0) & (sub["mean_abs_lateral_m"] <= TARGET_MEAN_ABS_LATERAL_M)]
        passed = set(ok["case"])
        missed = [c for c in sub["case"] if c not in passed]
        lines.append(
            f"- {d}: {len(ok)} of {len(sub)} cases meet the target (0 off-road events, mean |lateral| "
            f"<= {TARGET_MEAN_ABS_LATERAL_M} m)" + (f"; missed: {', '.join(missed)}" if missed else "")
        )
    return "\n".join(lines) + "\n"


def suite_figure(df, drivers: Sequence[str]) -> Any:
    """Three panels (off-road per km, mean |lateral| with the pass line at
    :data:`TARGET_MEAN_ABS_LATERAL_M`, max |lateral|), one bar per driver per case, in its family's colour
    (:mod:`drive.eval.plots`); a bar too short to see (the expert's 0 events) gets a marker, the expert's its value."""
    import numpy as np

    from drive.eval import plots

    cases = list(dict.fromkeys(df["case"]))
    y = np.arange(len(cases))
    height = 0.8 / max(1, len(drivers))
    fig, axes = plots.subplots(1, 3, figsize=(14, 0.45 * len(cases) + 2.2), sharey=True)
    panels = [
        ("off_road_per_km", "off-road events per km"),
        ("mean_abs_lateral_m", "mean |lateral| (m)"),
        ("max_abs_lateral_m", "max |lateral| (m)"),
    ]
    drawn = []
    for ax, (col, title) in zip(axes, panels):
        for k, d in enumerate(drivers):
            sub = df[df["driver"] == d].set_index("case").reindex(cases)
            values = sub[col].to_numpy(float)
            bars = ax.barh(y + (k - (len(drivers) - 1) / 2) * height, values, height, label=d, color=plots.colour(d))
            drawn.append((ax, bars, values, d))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        if col == "mean_abs_lateral_m":
            plots.pass_line(ax, TARGET_MEAN_ABS_LATERAL_M, f"pass: mean |lateral| <= {TARGET_MEAN_ABS_LATERAL_M} m")
        if col == "off_road_per_km":
            plots.counts_axis(ax, "x")
        else:
            plots.headroom(ax, "x")
    for ax, bars, values, d in drawn:  # after the limits: "too short to see" is relative to the axis
        plots.mark_small_bars(ax, bars, values, plots.colour(d), label=d == EXPERT)
    axes[0].set_yticks(y, cases)
    axes[0].invert_yaxis()
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize="small", frameon=False)
    fig.suptitle("Generalization suite: test tracks, one change per case")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_results(df, drivers: Sequence[str], path: Path) -> None:
    """``suite.png``: :func:`suite_figure`."""
    from drive.eval.plots import save_figure

    save_figure(suite_figure(df, drivers), path)
