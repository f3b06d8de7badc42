"""`drive evaluate`: recorded video as a test bench (the NCP paper's *passive* test), under camera noise.

This module is the entry point: it plans the work and writes the results; it composes
:mod:`drive.eval.open_loop` (each model run open loop over whole episodes, or the held-out segments, of a
dataset, state carried and the recorded frame times, under the perturbations of ``drive stress``; physical
kinds, ``push`` and ``actuator``, act on a car, which a recording does not have: they are refused),
:func:`drive.eval.metrics.steering_metrics` (the prediction at each frame against the recorded label),
:func:`drive.eval.stats.bootstrap_mean_ci` (the intervals), :mod:`drive.eval.sweep` (model identity,
resume, the worker pool) and :func:`drive.eval.video.write_overlay_video` (the videos).

Default episodes: those the checkpoint held out for validation (``config.json`` ``data.val_segments``,
written by ``drive train``), when ``--data`` is the dataset it was trained on; otherwise (another
dataset, no provenance) every complete episode, with a printed note naming them.

Figures per model x kind x level x episode (:func:`~drive.eval.metrics.steering_metrics`): MSE and MAE of the normalised
steering and in radians, the same on curves (|label| > ``curve_threshold``) and on straights, the bias
(mean signed error), the lag that best aligns prediction with label, and the weighted MSE of the
training loss (mean of exp(alpha |label|) (prediction - label)^2). Across episodes: the mean and a
bootstrap 95 % confidence interval (``scipy.stats.bootstrap``, BCa, resampling episodes).

Work is split into *units* (model, kind, level, episode) run in worker processes; each finished unit is
written to ``OUT/units/<unit>.json`` and reused on a rerun when its inputs are unchanged (checkpoint
weights, dataset files, seed, options).

Outputs in ``OUT``: ``metrics.json`` (everything), ``results.csv`` (model x kind x level: mean and CI of
each figure), ``episodes.csv`` (one row per unit), ``report.md``, ``error_<kind>.png`` (MSE and MAE
against level, one line per model, CI bands) and ``videos/<model>/episode_NNN.mp4`` (clean input: the
frame as the model saw it, recorded and predicted steering as a moving trace, neuron activity).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from drive.errors import UserError
from drive.eval.metrics import (
    DEFAULT_ALPHA,
    DEFAULT_CURVE_THRESHOLD,
    STEERING_DEFINITIONS,
    STEERING_FIGURES,
    STEERING_REPORT_FIGURES,
    steering_metrics,
)
from drive.eval.open_loop import OPEN_LOOP_STAGES, check_fits, load_segment, run_open_loop
from drive.eval.perturb import CLEAN, KINDS, check_sweeps
from drive.eval.sweep import EXPERT, Model, cached_driver, load_finished, make_model, result_file, resume_key
from drive.io import atomic_path, atomic_write_json, atomic_write_text

UNIT_FORMAT = 1
DEFAULT_MAX_LAG_S = 1.0


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of work: a model on one episode segment under one perturbation level."""

    model: Model
    kind: str
    """Perturbation kind, or ``clean``."""
    level: float
    episode: int
    start: int
    """First frame of the segment."""
    stop: int
    """One past its last frame."""

    @property
    def file_name(self) -> str:
        seg = f"ep{self.episode:03d}" + ("" if self.start == 0 else f"_{self.start}")
        return result_file(self.model, self.kind, self.level, seg)


def make_models(sources: Sequence[Any]) -> list[Model]:
    """Models for checkpoint folders, ``expert`` and driver objects (:func:`drive.eval.sweep.make_model`);
    names made unique."""
    models: list[Model] = []
    used: set[str] = set()
    for src in sources:
        try:
            models.append(make_model(src, used))
        except (FileNotFoundError, UserError) as exc:
            raise UserError(f"--checkpoint: {exc}") from None
    return models


def checkpoint_config(model: Model) -> dict[str, Any] | None:
    if not isinstance(model.checkpoint, str) or model.checkpoint == EXPERT:
        return None
    from drive.policy.checkpoint import read_config

    return read_config(model.checkpoint)


# ----------------------------------------------------------------------------------- episodes


def _same_dataset(provenance: dict[str, Any], root: Path, reader: Any) -> bool:
    path = provenance.get("path")
    if path and Path(path).resolve() == root.resolve():
        return True
    info = provenance.get("info")
    return (
        info is not None
        and info == reader.info.to_dict()
        and provenance.get("episodes") == reader.episodes
        and provenance.get("frames") == sum(reader.episode_length(e) for e in reader.episodes)
    )


def parse_episodes(text: Any) -> str | list[int]:
    """``validation``, ``all`` or a list ``0,3,5`` (a string or a sequence of ints)."""
    if isinstance(text, str):
        t = text.strip()
        if t in ("validation", "all"):
            return t
        try:
            values = [int(p) for p in t.split(",") if p.strip()]
        except ValueError:
            raise UserError(f"--episodes: expected validation, all or a list like 0,3,5, got {text!r}") from None
    else:
        values = [int(v) for v in text]
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise UserError(f"--episodes: expected distinct episode indices >= 0, got {text!r}")
    return values


def select_segments(
    models: Sequence[Model], root: Path, reader: Any, episodes: str | list[int]
) -> tuple[list[tuple[int, int, int]], str]:
    """The (episode, start, stop) segments to evaluate and a note saying which and why."""
    whole = {e: (e, 0, reader.episode_length(e)) for e in reader.episodes}
    if not whole:
        raise UserError(f"--data {root}: the dataset has no complete episode")
    if isinstance(episodes, list):
        missing = [e for e in episodes if e not in whole]
        if missing:
            raise UserError(
                f"--episodes: episode {missing[0]} is not a complete episode of {root} "
                f"(it has {reader.episodes[0]}..{reader.episodes[-1]}, {len(whole)} in all)"
            )
        segs = [whole[e] for e in sorted(episodes)]
        note = f"episodes {_names(segs)} (as asked)"
        leaked = _training_overlap(models, root, reader, segs)
        return segs, note + (f"; note: {leaked}" if leaked else "")
    if episodes == "all":
        segs = list(whole.values())
        leaked = _training_overlap(models, root, reader, segs)
        return segs, f"all {len(segs)} episodes" + (f"; note: {leaked}" if leaked else "")
    held: list[set] = []
    for m in models:
        cfg = checkpoint_config(m)
        prov = (cfg or {}).get("data") or {}
        if cfg is None:
            continue
        if not prov or "val_segments" not in prov:
            held = []
            reason = f"checkpoint {m.name} records no training split"
            break
        if not _same_dataset(prov, root, reader):
            held = []
            reason = f"{root} is not the dataset checkpoint {m.name} was trained on ({prov.get('path')})"
            break
        held.append({tuple(int(v) for v in s) for s in prov["val_segments"]})
    else:
        reason = "no checkpoint with a recorded training split" if not held else ""
    if held:
        common = sorted(set.intersection(*held))
        if not common:
            raise UserError(
                "--episodes validation: the checkpoints held out no common validation episode; "
                "give --episodes LIST or all"
            )
        return [tuple(s) for s in common], f"validation episodes held out by the checkpoint(s): {_names(common)}"
    segs = list(whole.values())
    return segs, f"{reason}: evaluating all {len(segs)} episodes ({_names(segs)})"


def _names(segs: Sequence[tuple[int, int, int]]) -> str:
    return ", ".join(str(e) if s == 0 else f"{e}[{s}:{t}]" for e, s, t in segs)


def _training_overlap(models: Sequence[Model], root: Path, reader: Any, segs) -> str:
    out = []
    for m in models:
        prov = (checkpoint_config(m) or {}).get("data") or {}
        if prov and _same_dataset(prov, root, reader):
            trained = {int(s[0]) for s in prov.get("train_segments", [])}
            hit = sorted(e for e, _, _ in segs if e in trained)
            if hit:
                out.append(f"{m.name} was trained on episode(s) {', '.join(map(str, hit))}")
    return "; ".join(out)


def data_fingerprint(root: Path, reader: Any, episode: int) -> dict[str, Any]:
    from drive.data import layout

    stamp = {}
    for name, p in (("table", layout.data_path(root, episode)), ("video", layout.video_path(root, episode))):
        st = p.stat()
        stamp[name] = [st.st_size, st.st_mtime_ns]
    return {"info": reader.info.to_dict(), "episode": episode, **stamp}


# ------------------------------------------------------------------------------------ one unit


def unit_key(unit: Unit, options: dict[str, Any], data_stamp: dict[str, Any]) -> dict[str, Any]:
    """Everything a unit's result depends on (:func:`drive.eval.sweep.resume_key`)."""
    return resume_key(
        UNIT_FORMAT,
        unit.model,
        unit.kind,
        unit.level,
        segment=[unit.episode, unit.start, unit.stop],
        options=options,
        data=data_stamp,
    )


def run_unit(
    unit: Unit,
    root: str,
    options: dict[str, Any],
    key: dict[str, Any],
    path: str,
    video_path: str | None,
    on_frames: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Compute one unit, write its video (if asked) and its JSON atomically; returns what was written.
    ``on_frames(n)``: called as frames are driven (in-process progress)."""
    start_time = time.perf_counter()
    policy = cached_driver(unit.model)
    frames, label, t_s, info = load_segment(Path(root), unit.episode, unit.start, unit.stop)
    from drive.data import layout

    run = run_open_loop(
        policy,
        frames,
        label,
        t_s,
        info.fps,
        info.max_steer_rad,
        unit.kind,
        unit.level,
        options["seed"],
        unit.episode,
        where=str(layout.data_path(Path(root), unit.episode)),
        activity=bool(video_path),
        on_frames=on_frames,
    )
    period = float(np.median(np.diff(t_s))) if len(t_s) > 1 else 1.0 / info.fps
    figures = steering_metrics(
        run.prediction,
        run.label,
        info.max_steer_rad,
        options["alpha"],
        options["curve_threshold"],
        max(0, int(round(options["max_lag_s"] / period))),
        period,
    )
    figures.update(nonfinite=run.nonfinite, dropped_frames=int(run.dropped.sum()))
    if video_path:
        from drive.eval.video import write_overlay_video

        write_overlay_video(
            Path(video_path),
            run,
            info.fps,
            getattr(policy, "neuron_labels", []) or [],
            f"{unit.model.name}  episode {unit.episode}",
        )
    result = {
        "key": key,
        "model": unit.model.name,
        "kind": unit.kind,
        "level": unit.level,
        "episode": unit.episode,
        "start": unit.start,
        "stop": unit.stop,
        "metrics": figures,
        "video": video_path,
        "elapsed_s": time.perf_counter() - start_time,
    }
    atomic_write_json(path, result)
    return result


# ------------------------------------------------------------------------------------ results


def summary_rows(
    units: Sequence[dict[str, Any]],
    models: Sequence[Model],
    sweeps: Sequence[tuple[str, Sequence[float]]],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per model x kind x level (level 0 = the clean units): mean over episodes, CI, pooled MSE."""
    from drive.eval.stats import bootstrap_mean_ci

    by: dict[tuple, list] = {}
    for u in units:
        by.setdefault((u["model"], u["kind"], float(u["level"])), []).append(u)
    kinds = [(k, sorted({0.0, *map(float, lv)})) for k, lv in sweeps] or [(CLEAN, [0.0])]
    rows = []
    for m in models:
        for kind, levels in kinds:
            for level in levels:
                found = by.get((m.name, CLEAN, 0.0) if level == 0 else (m.name, kind, level), [])
                if not found:
                    continue
                found = sorted(found, key=lambda u: (u["episode"], u["start"]))
                frames = np.array([u["metrics"]["frames"] for u in found], float)
                row = {
                    "model": m.name,
                    "kind": kind,
                    "level": level,
                    "episodes": len(found),
                    "frames": int(frames.sum()),
                    "pooled_mse": float(
                        np.sum([u["metrics"]["mse"] * u["metrics"]["frames"] for u in found]) / frames.sum()
                    ),
                }
                for f in STEERING_FIGURES:
                    vals = [u["metrics"][f] for u in found if u["metrics"].get(f) is not None]
                    row[f] = float(np.mean(vals)) if vals else None
                    row[f"{f}_ci_low"], row[f"{f}_ci_high"] = bootstrap_mean_ci(vals, seed)
                row["nonfinite"] = int(sum(u["metrics"]["nonfinite"] for u in found))
                row["dropped_frames"] = int(sum(u["metrics"]["dropped_frames"] for u in found))
                rows.append(row)
    return rows


def plot_error(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """``error_<kind>.png`` per perturbation kind (:func:`error_figure`); returns their paths."""
    from drive.eval.plots import save_figure

    written = []
    for kind in sorted({r["kind"] for r in rows if r["kind"] != CLEAN}):
        path = out_dir / f"error_{kind}.png"
        save_figure(error_figure(rows, kind), path)
        written.append(str(path))
    return written


def error_figure(rows: Sequence[dict[str, Any]], kind: str) -> Any:
    """MSE (normalised) and MAE (rad) against the level of ``kind``, one line per model in its family's colour
    (:mod:`drive.eval.plots`), 95 % CI bands, room above the highest band; ``expert`` (the recorded labels
    replayed) is named ``recorded``."""
    from drive.eval import plots

    fig, axes = plots.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        sel = sorted((r for r in rows if r["kind"] == kind and r["model"] == model), key=lambda r: r["level"])
        name = plots.display_name(model, recorded=True)
        for ax, f in zip(axes, ("mse", "mae_rad")):
            x = np.array([r["level"] for r in sel])
            y = np.array([r[f] for r in sel], float)
            st = plots.style(name)
            ax.plot(x, y, marker="o", label=name, clip_on=False, **st)
            lo = np.array([np.nan if r[f"{f}_ci_low"] is None else r[f"{f}_ci_low"] for r in sel], float)
            hi = np.array([np.nan if r[f"{f}_ci_high"] is None else r[f"{f}_ci_high"] for r in sel], float)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=st["color"], alpha=0.2, linewidth=0)
    for ax, ylabel in zip(axes, ("steering MSE (normalised)", "steering MAE (rad)")):
        ax.set_xlabel(f"{kind}: {KINDS[kind].axis}")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        plots.headroom(ax)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Open-loop steering error against the recorded steering under {kind} (bands: 95 % bootstrap CI over episodes)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def report_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    from drive.eval.metrics import format_table

    table = []
    for r in rows:
        row = {"model": r["model"], "kind": r["kind"], "level": f"{r['level']:g}", "episodes": r["episodes"]}
        for f in STEERING_REPORT_FIGURES:
            v, lo, hi = r.get(f), r.get(f"{f}_ci_low"), r.get(f"{f}_ci_high")
            row[f] = "–" if v is None else (f"{v:.3g}" + ("" if lo is None else f" [{lo:.3g}, {hi:.3g}]"))
        table.append(row)
    lines = (
        [
            "# Open-loop evaluation on recorded data",
            "",
            f"Dataset `{config['data']}` ({config['fps']:g} fps, max steering {config['max_steer_rad']:g} rad); "
            f"{config['episode_note']}.",
            f"Perturbation seed {config['seed']}; weighted MSE with alpha = {config['alpha']:g}; curves: "
            f"|label| > {config['curve_threshold']:g}. Figures: mean over episodes [95 % bootstrap CI]. Level 0 is "
            "clean input.",
            "",
            format_table(table, ("model", "kind", "level", "episodes", *STEERING_REPORT_FIGURES)),
            "",
        ]
        + (
            [
                f"**Interrupted**: {config['finished']} of {config['units']} unit(s) finished; the table shows "
                "those (a rerun computes the rest).",
                "",
            ]
            if config.get("interrupted")
            else []
        )
        + [
            "Definitions:",
            "",
        ]
        + [f"- `{k}`: {v}" for k, v in STEERING_DEFINITIONS.items()]
        + [""]
    )
    if config.get("plots"):
        lines += ["## Error against level", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in config["plots"]] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- evaluate


def check_options(
    workers: int = 1,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
) -> None:
    """The numeric options of :func:`evaluate`, each a one-line :class:`UserError` naming the flag and value.

    ``alpha`` is bounded as the training loss's (``drive.eval.metrics.MAX_ALPHA``): the weight
    exp(alpha |label|) of full lock then stays finite, and far from overflowing, in float32 and float64."""
    from drive.eval.metrics import MAX_ALPHA

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise UserError(f"--workers: must be a whole number >= 0, got {workers!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise UserError(f"--seed: must be a whole number 0 <= seed < 2**32, got {seed!r}")
    for name, value in (("--alpha", alpha), ("--curve-threshold", curve_threshold), ("--max-lag-s", max_lag_s)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise UserError(f"{name}: must be a number >= 0, got {value!r}")
    if alpha > MAX_ALPHA:
        raise UserError(
            f"--alpha: must be between 0 and {MAX_ALPHA:g} (the training loss's bound: the weight exp(alpha |label|) "
            f"overflows past it), got {alpha!r}"
        )


def evaluate(
    models: Sequence[Any],
    data: str | Path,
    out: str | Path,
    perturb: Sequence[str | tuple[str, Sequence[float]]] = (),
    episodes: str | Sequence[int] = "validation",
    workers: int = 1,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    video: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate (or resume) and write the results; see the module docstring.

    ``models``: checkpoint folders, ``expert`` (the recorded labels replayed through the same pipeline) or
    driver objects (in-process only, ``workers <= 1`` unless picklable). Returns ``{"rows", "units",
    "episodes", "note", "computed", "reused"}``.
    """
    from drive.data.reader import DatasetReader
    from drive.eval.progress import progress_bar
    from drive.io import output_lock

    if not models:
        raise UserError("--checkpoint: give at least one checkpoint")
    check_options(workers, seed, alpha, curve_threshold, max_lag_s)
    sweeps = check_sweeps(perturb)
    for kind, _ in sweeps:
        if KINDS[kind].cls.stage not in OPEN_LOOP_STAGES:
            raise UserError(
                f"--perturb {kind}: acts on the car ({KINDS[kind].cls.stage}), which a recording does not "
                f"have; open loop takes {', '.join(k for k, v in KINDS.items() if v.cls.stage in OPEN_LOOP_STAGES)}"
            )
    root = Path(data)
    try:
        reader = DatasetReader(root)
    except (FileNotFoundError, UserError) as exc:
        raise UserError(f"--data: {exc}") from None
    episode_spec = parse_episodes(episodes)
    eval_models = make_models(models)
    for m in eval_models:  # check before any work: the dataset must fit every checkpoint
        check_fits(
            cached_driver(m),
            reader.info,
            root,
            f"--checkpoint {m.checkpoint if isinstance(m.checkpoint, str) else m.name}",
        )
    segments, note = select_segments(eval_models, root, reader, episode_spec)
    options = {
        "seed": int(seed),
        "alpha": float(alpha),
        "curve_threshold": float(curve_threshold),
        "max_lag_s": float(max_lag_s),
        "video": bool(video),
    }
    out_dir = Path(out)
    unit_dir = out_dir / "units"
    with output_lock(out_dir):
        unit_dir.mkdir(parents=True, exist_ok=True)
        stamps = {e: data_fingerprint(root, reader, e) for e, _, _ in segments}
        levels = [(CLEAN, 0.0)] + list(dict.fromkeys((k, float(lv)) for k, lvs in sweeps for lv in lvs if lv != 0))
        plan = [Unit(m, k, lv, e, s, t) for m in eval_models for e, s, t in segments for k, lv in levels]
        done, todo = [], []
        for u in plan:
            key = unit_key(u, options, stamps[u.episode])
            stored = load_finished(unit_dir / u.file_name, key, files=("video",))
            (done.append(stored) if stored is not None else todo.append((u, key)))
        reused = len(done)

        def args(u: Unit, key: dict) -> tuple:
            vpath = (
                str(out_dir / "videos" / u.model.name / f"episode_{u.episode:03d}.mp4")
                if video and u.kind == CLEAN
                else None
            )
            return (u, str(root), options, key, str(unit_dir / u.file_name), vpath)

        def write(interrupted: bool = False) -> list[dict[str, Any]]:
            """results.csv, episodes.csv, metrics.json and report.md first, then the plots (not on Ctrl-C)."""
            import pandas as pd

            order = {u.file_name: i for i, u in enumerate(plan)}
            done.sort(key=lambda r: order.get(_file_of(r, eval_models), 0))
            rows = summary_rows(done, eval_models, sweeps, seed)
            config = {
                "data": str(root),
                "fps": reader.info.fps,
                "max_steer_rad": reader.info.max_steer_rad,
                "models": [
                    {
                        "name": m.name,
                        "checkpoint": m.checkpoint if isinstance(m.checkpoint, str) else None,
                        "fingerprint": m.fingerprint,
                    }
                    for m in eval_models
                ],
                "perturbations": [[k, list(v)] for k, v in sweeps],
                "episodes": [list(s) for s in segments],
                "episode_note": note,
                **options,
                "units": len(plan),
                "finished": len(done),
                "computed": len(done) - reused,
                "reused": reused,
                "interrupted": interrupted,
                "plots": [],
            }
            episode_rows = [
                {
                    "model": u["model"],
                    "kind": u["kind"],
                    "level": u["level"],
                    "episode": u["episode"],
                    "start": u["start"],
                    "stop": u["stop"],
                    **u["metrics"],
                }
                for u in done
            ]
            metrics = {
                "config": config,
                "definitions": STEERING_DEFINITIONS,
                "rows": rows,
                "episodes": episode_rows,
                "videos": [u["video"] for u in done if u.get("video")],
            }
            with atomic_path(out_dir / "results.csv") as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
            with atomic_path(out_dir / "episodes.csv") as tmp:
                pd.DataFrame(episode_rows).to_csv(tmp, index=False)
            atomic_write_json(out_dir / "metrics.json", metrics)
            atomic_write_text(out_dir / "report.md", report_markdown(rows, config))
            if not interrupted:  # the plots last: they cannot cost the tables
                config["plots"] = plot_error(rows, out_dir)
                atomic_write_json(out_dir / "metrics.json", metrics)
                atomic_write_text(out_dir / "report.md", report_markdown(rows, config))
            return rows

        # a bar in frames (per frame in-process; per finished unit from worker processes), units in the postfix
        bar = progress_bar(sum(u.stop - u.start for u in plan), "evaluate", "frame", progress)
        bar.update(sum(u["stop"] - u["start"] for u in done))

        def finished(record: dict[str, Any], frames: int) -> None:
            done.append(record)
            bar.update(frames)
            bar.set_postfix_str(f"units {len(done)}/{len(plan)}")

        try:
            if workers <= 1 or len(todo) <= 1:
                for u, key in todo:
                    start = bar.n
                    record = run_unit(*args(u, key), on_frames=bar.update)
                    finished(record, (u.stop - u.start) - (bar.n - start))
            else:
                from drive.eval.sweep import worker_pool

                with worker_pool(workers) as pool:  # leaving it by Ctrl-C stops the workers at once
                    futures = {pool.submit(run_unit, *args(u, key)): u for u, key in todo}
                    for fut in cf.as_completed(futures):
                        finished(fut.result(), futures[fut].stop - futures[fut].start)
        except KeyboardInterrupt:  # the finished units are on disk for a rerun; summarise them, then stop
            bar.close()
            write(interrupted=True)
            raise
        finally:
            bar.close()
        rows = write()
    return {"rows": rows, "units": done, "episodes": segments, "note": note, "computed": len(todo), "reused": reused}


def _file_of(record: dict[str, Any], models: Sequence[Model]) -> str:
    m = next((m for m in models if m.name == record["model"]), None)
    if m is None:
        return ""
    return Unit(m, record["kind"], float(record["level"]), record["episode"], record["start"], record["stop"]).file_name
