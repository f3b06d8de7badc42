"""`drive replay`: the stress sweep on recorded drives: models × perturbations × levels × seeds, closed loop in
``drive/Replay-v0`` (:mod:`drive.replay`) instead of the simulator, resumably.

A *cell* is the stress sweep's (:class:`drive.eval.sweep.Cell`: a model, a perturbation at a level, a seed);
here it drives every chosen recorded episode once, each through the one rollout
(:func:`drive.eval.rollout.run_episode`: env → perturbation → driver → action). Seed s replays episode i
with reset seed ``s*n + i`` (n = the episodes replayed): the env replays the same recorded episode for every
seed (:class:`~drive.replay.env.ReplayEnv` picks ``episodes[seed % n]``), and the perturbations' draws
differ by seed. Planning, model identity, resume, the worker pool, ``cells.csv`` and ``stats.csv`` are the
stress sweep's, and so is the driver (:func:`drive.eval.sweep.run_sweep`; :mod:`drive.eval.stress`,
:mod:`drive.eval.backends`, local processes only); a cell's result is stored in ``DIR/cells/<cell>.json`` with its key (the dataset's content
hash among its inputs, :func:`data_fingerprint`), and a rerun computes only what is missing or changed.
The ``expert`` model is the recorded driver (the env's ``info["expert_steering"]`` is the recorded steering).

Figures (per episode, and per cell pooled over its episodes; see :data:`DEFINITIONS`): every closed-loop
figure of :mod:`drive.eval.metrics` (``off_road_events`` are the interventions), and

- ``interventions_per_km``: interventions / km driven;
- ``autonomy_pct``: PilotNet's autonomy, (1 − interventions × 6 s / elapsed time) × 100, elapsed time the
  recorded time driven (:func:`autonomy_pct`; below 0 when interventions come more often than every 6 s);
- ``mean_abs_lateral_m``: mean |offset from the recorded path|, m; ``steering_jerk``: as in the simulator;
- ``mean_fill_fraction``: mean share of the observations' pixels that had no source in the recorded frame.

Outputs in ``DIR``: ``results.csv`` / ``results.json`` (one row per model × kind × level: each figure's
mean, std, min and max over seeds, and for :data:`INTERVAL_FIGURES` the mean over episodes × seeds with its
95 % bootstrap interval, ``<figure>_ep_mean``, ``<figure>_ci_low``, ``<figure>_ci_high``), ``cells.csv``,
``stats.csv`` (checkpoints with a family and training seed; off-road events there are interventions),
``report.md``, ``replay_<kind>.png`` (interventions per km, autonomy % and mean |offset| against level, one
line per model, bars = the 95 % intervals) and, with ``video=True``, ``videos/<cell>_ep<episode>.mp4``
(the synthesized view as the driver saw it beside the recorded frame, steering, and the offset over time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from drive.errors import UserError
from drive.eval import metrics as M
from drive.eval.backends import run_cells
from drive.eval.perturb import CLEAN, KINDS, check_sweeps, make
from drive.eval.rollout import Step, run_episode
from drive.eval.stress import (
    cell_table,
    figures_table,
    make_models,
    parse_seeds,
    plan_cells,
    result_rows,
    stats_markdown,
    stats_table,
)
from drive.eval.sweep import Cell, SweepOutputs, cached_driver, run_sweep, sweep_report
from drive.io import atomic_path, hash_file, holds_output_lock

CELL_FORMAT = 1
INTERVENTION_PENALTY_S = 6.0
"""Seconds of driving each intervention costs in PilotNet's autonomy figure."""
REPLAY_FIGURES = ("interventions", "interventions_per_km", "autonomy_pct", "mean_fill_fraction")
DEFINITIONS = {
    **M.DEFINITIONS,
    "off_road_events": "interventions (the replay world's name for them is interventions)",
    "interventions": "times the learner passed the offset or heading limit and was put back on the recorded path",
    "interventions_per_km": "interventions / (distance_m / 1000); None when nothing was driven",
    "autonomy_pct": f"(1 - interventions x {INTERVENTION_PENALTY_S:g} s / duration_s) x 100 (PilotNet's autonomy; "
    "duration_s = the recorded time driven; below 0 when interventions come more often than every "
    f"{INTERVENTION_PENALTY_S:g} s)",
    "mean_abs_lateral_m": "mean |offset from the recorded path| over the control steps, m",
    "mean_fill_fraction": "mean share of the observation's pixels with no source in the recorded frame (filled)",
}
FIELDS = (*M.EPISODE_FIELDS, *REPLAY_FIGURES)
"""Every figure of an episode and of a cell."""
INTERVAL_FIGURES = ("interventions_per_km", "autonomy_pct", "mean_abs_lateral_m")
"""The figures plotted, with a 95 % bootstrap interval over episodes × seeds."""
TABLE_FIGURES = ("interventions_per_km", "autonomy_pct", "mean_abs_lateral_m", "steering_jerk", "mean_fill_fraction")
FIGURE_LABELS = {
    "interventions_per_km": "interventions per km",
    "autonomy_pct": "autonomy (%)",
    "mean_abs_lateral_m": "mean abs offset (m)",
    "steering_jerk": "steering jerk (1/s²)",
    "mean_fill_fraction": "filled share",
}


# ------------------------------------------------------------------------------------------ figures


def autonomy_pct(interventions: float, elapsed_s: float, penalty_s: float = INTERVENTION_PENALTY_S) -> float | None:
    """PilotNet's autonomy, %: (1 − interventions × ``penalty_s`` / ``elapsed_s``) × 100; None for no time."""
    return (1.0 - interventions * penalty_s / elapsed_s) * 100.0 if elapsed_s > 0 else None


def replay_figures(figures: dict[str, Any], fill_fractions: Sequence[float] | None = None) -> dict[str, Any]:
    """The replay figures of an episode's (or a cell's pooled) closed-loop ``figures``; ``fill_fractions``:
    the steps' filled shares (None: keep ``figures["mean_fill_fraction"]``)."""
    n = figures["off_road_events"]
    fill = figures.get("mean_fill_fraction") if fill_fractions is None else float(np.mean(fill_fractions or [0.0]))
    return {
        "interventions": n,
        "interventions_per_km": M.per_km(n, figures["distance_m"]),
        "autonomy_pct": autonomy_pct(n, figures["duration_s"]),
        "mean_fill_fraction": fill,
    }


def pooled(episodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A cell's figures: :func:`drive.eval.metrics.aggregate` and the replay figures of the totals."""
    out = M.aggregate(episodes)
    out["mean_fill_fraction"] = float(np.mean([e["mean_fill_fraction"] for e in episodes]))
    return {**out, **replay_figures(out)}


def data_fingerprint(root: str | Path, episodes: Sequence[int]) -> str:
    """Content hash of what a replay reads: ``meta/info.json`` and, per episode, its table, its meta row and
    its video."""
    from drive.data import layout

    root = Path(root)
    h = hashlib.sha256()
    hash_file(h, layout.info_path(root))
    for e in episodes:
        for path in (layout.data_path(root, e), layout.episode_meta_path(root, e), layout.video_path(root, e)):
            hash_file(h, path)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ videos


def offset_panel(offsets: Sequence[float], limit_m: float, interventions: Sequence[int], height: int, width: int):
    """The offset from the recorded path over the episode so far (newest on the right, the last ``width``
    steps), with the intervention limit (±``limit_m``) and a red tick at each intervention."""
    import cv2

    from drive.eval.video import BACKGROUND, GREY, POLICY_RGB

    panel = np.full((height, width, 3), BACKGROUND, np.uint8)
    mid, half = height // 2, (height - 24) / 2
    scale = half / (1.25 * limit_m)
    for y_val in (-limit_m, 0.0, limit_m):
        y = int(round(mid - y_val * scale))
        cv2.line(panel, (0, y), (width - 1, y), (60, 60, 60) if y_val == 0 else (110, 50, 50), 1)
    lo = max(0, len(offsets) - width)
    xs = width - len(offsets) + np.arange(lo, len(offsets))
    for k in interventions:
        if k >= lo:
            cv2.line(panel, (int(xs[k - lo]), 12), (int(xs[k - lo]), height - 12), (220, 40, 40), 1)
    if len(offsets) > lo:
        ys = mid - np.clip(np.asarray(offsets[lo:]), -1.25 * limit_m, 1.25 * limit_m) * scale
        pts = np.stack([xs, ys], axis=1).round().astype(np.int32)[None]
        cv2.polylines(panel, pts, False, POLICY_RGB, 1, cv2.LINE_AA)
    last = offsets[-1] if offsets else 0.0
    text = f"offset from the recorded path {last:+.2f} m (limit +-{limit_m:g} m; red: interventions)"
    cv2.putText(panel, text, (6, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, GREY, 1, cv2.LINE_AA)
    return panel


class ReplayVideo:
    """An observer that writes one picture per step: the view the driver saw (synthesized, perturbed) beside
    the recorded frame, the steering (the driver's and the recorded), and the offset over time."""

    def __init__(self, env: Any, path: Path, fps: float, title: str, limit_m: float):
        from drive.eval.video import VideoWriter

        self.env, self.title, self.limit_m = env.unwrapped, title, limit_m
        h, w = self.env.observation_space.shape[:2]
        self.cam_h, self.cam_w = 2 * h, 2 * w
        self.size = (self.cam_h + 50 + 120, 2 * self.cam_w)
        self.offsets: list[float] = []
        self.interventions: list[int] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.writer = VideoWriter(path, fps, self.size)

    def __call__(self, step: Step) -> None:
        import cv2

        from drive.eval.video import fit, steering_panel

        info = step.info
        self.offsets.append(float(info["lateral_offset_m"]))
        if info.get("intervened"):
            self.interventions.append(len(self.offsets) - 1)
        picture = np.zeros((*self.size, 3), np.uint8)
        recorded = self.env.recorded_frame(int(step.clean_info["frame_index"]))
        picture[: self.cam_h, : self.cam_w] = fit(step.seen_frame, self.cam_h, self.cam_w)
        picture[: self.cam_h, self.cam_w :] = fit(recorded, self.cam_h, self.cam_w)
        picture[self.cam_h : self.cam_h + 50] = steering_panel(step.steering, step.expert_steering, 50, self.size[1])
        picture[self.cam_h + 50 :] = offset_panel(self.offsets, self.limit_m, self.interventions, 120, self.size[1])
        for text, x in ((f"{self.title}: synthesized view", 6), ("recorded frame", self.cam_w + 6)):
            cv2.putText(picture, text, (x, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        self.writer.write(picture)

    def close(self, keep: bool = True) -> None:
        """Finish the file (``keep``) or discard it."""
        self.writer.close(keep=keep)


# ------------------------------------------------------------------------------------------- cells


class FillShares:
    """An observer that keeps each step's filled share of the observation (``info["fill_fraction"]``)."""

    def __init__(self) -> None:
        self.shares: list[float] = []

    def __call__(self, step: Step) -> None:
        self.shares.append(float(step.info["fill_fraction"]))


@dataclasses.dataclass(frozen=True)
class ReplayJob:
    """What every cell of one replay sweep shares; called with a cell, computes it (the job of
    :func:`drive.eval.backends.run_cells`)."""

    data: str
    """The dataset folder."""
    episodes: tuple[int, ...]
    """The dataset episodes replayed, in order."""
    fingerprint: str
    """:func:`data_fingerprint` of the dataset (part of every cell's key)."""
    max_offset_m: float
    max_heading_rad: float
    fill: str
    video_dir: str | None = None
    """Where a cell writes one video per episode (None: no videos)."""

    def key(self, cell: Cell) -> dict[str, Any]:
        """Everything a cell's result depends on (:meth:`drive.eval.sweep.Cell.key`)."""
        return cell.key(
            CELL_FORMAT,
            data=self.data,
            data_fingerprint=self.fingerprint,
            episodes=list(self.episodes),
            max_offset_m=self.max_offset_m,
            max_heading_rad=self.max_heading_rad,
            fill=self.fill,
            video=self.video_dir is not None,
        )

    def __call__(self, cell: Cell) -> dict[str, Any]:
        """Compute ``cell`` in this process and return its result (the driver process stores it)."""
        return run_replay_cell(cell, self)


_ENVS: dict[tuple, Any] = {}
"""Per process: the replay env of a job (the dataset opened once)."""


def replay_env(job: ReplayJob) -> Any:
    """The :class:`~drive.replay.env.ReplayEnv` of ``job``, made once per process."""
    from drive.replay.env import ReplayEnv

    key = (job.data, job.episodes, job.max_offset_m, job.max_heading_rad, job.fill)
    if key not in _ENVS:
        _ENVS[key] = ReplayEnv(job.data, job.episodes, job.max_offset_m, job.max_heading_rad, job.fill)
    return _ENVS[key]


def run_replay_cell(cell: Cell, job: ReplayJob) -> dict[str, Any]:
    """Drive every episode of ``job`` once with ``cell``'s model and perturbation; returns the cell's result."""
    from drive.eval.perturb import Chain

    start = time.perf_counter()
    env = replay_env(job)
    policy = cached_driver(cell.model)
    chain = Chain([] if cell.kind == CLEAN else [make(cell.kind, cell.level)])
    n = len(job.episodes)
    per_episode, videos = [], []
    for i, episode in enumerate(job.episodes):
        fills = FillShares()
        observers: list[Any] = [fills]
        video = None
        if job.video_dir is not None:
            path = Path(job.video_dir) / f"{Path(cell.file_name).stem}_ep{episode:03d}.mp4"
            video = ReplayVideo(env, path, env.control_hz, cell.model.name, job.max_offset_m)
            observers.append(video)
        try:
            log = run_episode(policy, env, cell.seed * n + i, chain, observers, episode=i)
        except BaseException:
            if video is not None:
                video.close(keep=False)
            raise
        if video is not None:
            video.close()
            videos.append(str(video.path))
        figures = M.episode_metrics(log)
        per_episode.append(
            {"episode": int(episode), "seed": cell.seed * n + i, **figures, **replay_figures(figures, fills.shares)}
        )
    return {
        "key": job.key(cell),
        "model": cell.model.name,
        "checkpoint": cell.model.checkpoint,
        "kind": cell.kind,
        "level": cell.level,
        "seed": cell.seed,
        "reset_seeds": [cell.seed * n + i for i in range(n)],
        "metrics": pooled(per_episode),
        "episodes": per_episode,
        "videos": videos,
        "elapsed_s": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------------------ results


def with_intervals(rows: list[dict[str, Any]], cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (:func:`drive.eval.stress.result_rows`) with, for each of :data:`INTERVAL_FIGURES`, the mean over
    the episodes of all the row's cells and its 95 % bootstrap interval (``_ep_mean``, ``_ci_low``, ``_ci_high``)."""
    from drive.eval.stats import bootstrap_mean_ci

    for row in rows:
        kind, level = (CLEAN, 0.0) if row["level"] == 0 else (row["kind"], float(row["level"]))
        found = [c for c in cells if (c["model"], c["kind"], float(c["level"])) == (row["model"], kind, level)]
        for f in INTERVAL_FIGURES:
            values = [e[f] for c in found for e in c["episodes"] if e.get(f) is not None and math.isfinite(e[f])]
            low, high = bootstrap_mean_ci(values)
            row[f"{f}_ep_mean"] = float(np.mean(values)) if values else None
            row[f"{f}_ci_low"], row[f"{f}_ci_high"] = low, high
    return rows


def report_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any], stats: Any = None) -> str:
    """``report.md``: what was replayed, the figures (mean ± std over seeds), the statistics, the plots."""
    intro = [
        "# Replay: closed loop on recorded drives",
        "",
        f"Dataset `{config['data']}`, episode(s) {config['episodes']} ({config['distance_m']:.0f} m, "
        f"{config['duration_s']:.0f} s recorded), seeds {config['seeds']}. Intervention past "
        f"{config['max_offset_m']:g} m of offset or {math.degrees(config['max_heading_rad']):g}° of heading "
        f"error, then back onto the recorded path; pixels with no source filled by `{config['fill']}`. "
        "Level 0 is the clean run; `expert` is the recorded driver.",
        f"Autonomy = (1 − interventions × {INTERVENTION_PENALTY_S:g} s / elapsed time) × 100 (PilotNet). "
        "Figures are the mean ± std over seeds of each cell's figures pooled over its episodes.",
    ]
    statistics = ["Statistics below: off-road events are the interventions.", ""]
    return sweep_report(
        intro,
        figures_table(rows, TABLE_FIGURES, FIGURE_LABELS, seeds_column="seeds"),
        config,
        statistics + stats_markdown(stats) if stats is not None else (),
        plots_heading=("## Plots", "", "Bars: 95 % bootstrap intervals of the mean over episodes × seeds.", ""),
    )


def plot_figures(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """One PNG per kind (``replay_<kind>.png``; ``replay_clean.png`` when there is no perturbation): each of
    :data:`INTERVAL_FIGURES` against level, one line per model, the mean over episodes × seeds with its 95 %
    bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind in sorted({r["kind"] for r in rows if r["kind"] != CLEAN}) or [CLEAN]:
        fig, axes = plt.subplots(1, len(INTERVAL_FIGURES), figsize=(4.2 * len(INTERVAL_FIGURES), 4))
        for model in dict.fromkeys(r["model"] for r in rows):
            sel = sorted((r for r in rows if r["kind"] == kind and r["model"] == model), key=lambda r: r["level"])
            for ax, f in zip(axes, INTERVAL_FIGURES):
                pts = [r for r in sel if r.get(f"{f}_ep_mean") is not None]
                if not pts:
                    continue
                x = [r["level"] for r in pts]
                y = np.array([r[f"{f}_ep_mean"] for r in pts])
                lo = np.array([r[f"{f}_ci_low"] if r[f"{f}_ci_low"] is not None else m for r, m in zip(pts, y)])
                hi = np.array([r[f"{f}_ci_high"] if r[f"{f}_ci_high"] is not None else m for r, m in zip(pts, y)])
                ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=model)
        for ax, f in zip(axes, INTERVAL_FIGURES):
            ax.set_xlabel(f"{kind}: {KINDS[kind].axis}" if kind in KINDS else "level (clean)")
            ax.set_ylabel(FIGURE_LABELS[f])
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Replay on recorded drives: {kind} (bars: 95 % bootstrap intervals over episodes x seeds)")
        fig.tight_layout()
        path = out_dir / f"replay_{kind}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


# ------------------------------------------------------------------------------------------- sweep


def check_checkpoints(models: Sequence[Any], recording: Any) -> None:
    """Every checkpoint must take the dataset's frame size (one line, else); a frame rate or camera other than
    its training data's is a warning (:func:`drive.policy.load.check_checkpoint_compatible`)."""
    from types import SimpleNamespace

    from drive.policy.load import check_checkpoint_compatible

    camera = recording.cameras[recording.episodes[0]]
    dataset = SimpleNamespace(name=str(recording.root), camera=camera, control_hz=recording.fps)
    for m in models:
        if isinstance(m.checkpoint, str):
            check_checkpoint_compatible(m.checkpoint, dataset)


@holds_output_lock("out")
def replay(
    checkpoints: Sequence[str],
    data: str | Path,
    out: str | Path,
    perturb: Sequence[str | tuple[str, Sequence[float]]] = (),
    seeds: Sequence[int] | str = (0,),
    episodes: Sequence[int] | None = None,
    workers: int = 1,
    with_expert: bool = True,
    max_offset_m: float | None = None,
    max_heading_rad: float | None = None,
    fill: str = "replicate",
    video: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a replay sweep of ``checkpoints`` on the dataset ``data`` and write its results (see the
    module). Returns ``{"rows", "computed", "reused", "cells", "failed", "stats"}``. ``episodes``: the dataset
    episodes replayed (default all); ``max_offset_m`` / ``max_heading_rad``: the intervention limits (default
    :data:`drive.replay.env.MAX_OFFSET_M`, 1 m, and :data:`~drive.replay.env.MAX_HEADING_RAD`, 10°)."""
    from drive.replay.env import MAX_HEADING_RAD, MAX_OFFSET_M
    from drive.replay.homography import FILLS
    from drive.replay.recording import open_recording

    if not checkpoints and not with_expert:
        raise UserError("--checkpoint: give at least one checkpoint (or keep the expert)")
    if not isinstance(workers, int) or workers < 0:
        raise UserError(f"--workers: must be a whole number >= 0, got {workers!r}")
    max_offset_m = MAX_OFFSET_M if max_offset_m is None else max_offset_m
    max_heading_rad = MAX_HEADING_RAD if max_heading_rad is None else max_heading_rad
    for flag, value in (("--max-offset-m", max_offset_m), ("--max-heading-deg", max_heading_rad)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserError(f"{flag}: must be a positive number, got {value!r}")
    if fill not in FILLS:
        raise UserError(f"--fill: must be one of {', '.join(FILLS)}, got {fill!r}")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    sweeps = check_sweeps(perturb)
    recording = open_recording(data, episodes)  # every chosen episode checked: camera, speed, frame times
    models = make_models(checkpoints, with_expert)
    check_checkpoints(models, recording)
    out_dir = Path(out)
    cell_dir = out_dir / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    chosen = tuple(recording.episodes)
    job = ReplayJob(
        data=str(recording.root),
        episodes=chosen,
        fingerprint=data_fingerprint(recording.root, chosen),
        max_offset_m=float(max_offset_m),
        max_heading_rad=float(max_heading_rad),
        fill=fill,
        video_dir=str(out_dir / "videos") if video else None,
    )

    paths = [recording.paths[e] for e in chosen]

    def summarise(done: list[dict[str, Any]], counts: dict[str, Any]) -> tuple[list, Any, dict[str, Any]]:
        config = {
            "models": [dataclasses.asdict(m) for m in models],
            "data": job.data,
            "data_fingerprint": job.fingerprint,
            "episodes": list(chosen),
            "distance_m": float(sum(p.ds_m.sum() for p in paths)),
            "duration_s": float(sum(p.t_s[-1] - p.t_s[0] for p in paths)),
            "perturbations": [[k, list(v)] for k, v in sweeps],
            "seeds": seeds,
            "max_offset_m": job.max_offset_m,
            "max_heading_rad": job.max_heading_rad,
            "fill": fill,
            "video": video,
            **counts,
            "stats_note": None,
        }
        rows = with_intervals(result_rows(done, sweeps, models, FIELDS), done)
        return rows, cell_table(done, sweeps, models), config

    outputs = SweepOutputs(
        summarise=summarise,
        statistics=stats_table,
        plot=lambda rows, cells, stats: plot_figures(rows, out_dir),
        render=lambda rows, config, stats: (
            {"config": config, "rows": rows, "definitions": DEFINITIONS},
            report_markdown(rows, config, stats),
        ),
    )
    return run_sweep(
        "replay",
        plan_cells(models, sweeps, seeds),
        job,
        out_dir,
        lambda todo, job, keep: run_cells(todo, job, keep, backend="local", workers=workers, progress=progress),
        outputs,
        progress=progress,
        files=("videos",),
    )
