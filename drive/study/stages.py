"""The study's stages as functions, and :func:`run_study`, which runs the ones asked for in order.

1. :func:`stage_record`: the randomized training recordings into ``cfg.data``; only the missing episodes are
   recorded (a recording appends, and repeats byte for byte for one seed).
2. :func:`stage_train`: every zoo entry (:mod:`drive.study.zoo`). A finished checkpoint is skipped, an
   interrupted one resumes; a *stale* one (other data or options) stops the study unless
   ``retrain_stale``, which deletes and retrains it. Writes ``<ckpt_root>/summary.json`` for the seed-0
   checkpoints.
3. :func:`stage_stress`: ``drive stress`` of every checkpoint and the expert under Gaussian noise at
   ``levels`` on ``tracks`` test tracks × ``noise_seeds``; cells resume.
4. :func:`stage_suite`: the generalization suite on clean input, one folder per checkpoint, skipped when
   finished with the same inputs.
5. :func:`stage_explain`: ``drive explain`` of every checkpoint on ``explain_episodes`` clean episodes: the
   saliency SSIM (clean vs noisy) at ``levels`` over ``explain_frames`` frames per episode, and the PC1 share
   and participation ratio of the neuron activity; one folder per checkpoint, skipped when finished with the
   same inputs.
6. :func:`stage_report`: ``study.md`` (:mod:`drive.study.report`), ``suite.csv``, ``failures.csv`` (the
   failure rule, :mod:`drive.study.failures`) and copies of the stress statistics and plots.

Each stage returns a small dict of what it computed and reused; :func:`run_study` collects them.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from drive.errors import UserError
from drive.io import atomic_path, atomic_write_json, atomic_write_text, holds_output_lock
from drive.study.config import VARIANT, StudyConfig, stress_seeds
from drive.study.zoo import (
    ZooEntry,
    build_zoo,
    is_finished,
    stale_reason,
    suite_label,
    summarise,
    train_entry,
    train_on_ray,
)


class StudyFailed(RuntimeError):
    """A stage could not finish (trainings or cells failed); what is finished is kept and a rerun resumes."""


def stage_record(cfg: StudyConfig) -> dict[str, Any]:
    from drive.data.layout import complete_episodes
    from drive.data.recorder import record

    data = Path(cfg.data)
    have = len(complete_episodes(data)) if (data / "meta" / "info.json").exists() else 0
    todo = max(0, cfg.recording.episodes - have)
    if todo:
        data.mkdir(parents=True, exist_ok=True)
        record(
            cfg.recording.scenario,
            todo,
            data,
            seed=cfg.recording.seed,
            noise_injection=cfg.recording.noise_injection,
            duration_s=cfg.recording.duration_s,
            progress=cfg.progress,
        )
    return {"recorded": todo, "reused": have}


def stage_train(cfg: StudyConfig, entries: list[ZooEntry]) -> dict[str, Any]:
    from drive.data.reader import snapshot

    if not (Path(cfg.data) / "meta" / "info.json").is_file():
        raise UserError(f"study: data {cfg.data!r}: no dataset there (run the record stage first)")
    data_sha = snapshot(cfg.data)[1]["sha256"]  # the fingerprint training records (complete episodes, under the lock)
    stale = [(e, why) for e in entries if (why := stale_reason(e, data_sha))]
    if stale and not cfg.retrain_stale:
        for e, why in stale:
            print(f"stale checkpoint {e.path}: {why}", file=sys.stderr)
        raise UserError(
            f"study: {len(stale)} checkpoint(s) do not match the study (listed above); "
            "pass --retrain-stale to delete and retrain them"
        )
    for e, _ in stale:
        shutil.rmtree(e.path)
    todo = [e for e in entries if not is_finished(e)]
    print(
        f"train: {len(entries) - len(todo)} of {len(entries)} training(s) finished; {len(todo)} to run", file=sys.stderr
    )
    failed: list[str] = []
    if cfg.backend == "ray" and todo:
        from drive.data.sequences import FrameCache

        FrameCache(cfg.data)  # decode the frame cache once on this node before the tasks open it
        timings, failed = train_on_ray(todo, cfg)
    else:
        timings = {e.name: train_entry(e) for e in todo}
    shipped = [e for e in entries if e.seed == 0 and not e.variant and (e.path / "config.json").is_file()]
    if shipped:
        write_summary(Path(cfg.ckpt_root), Path(cfg.data), shipped)
    if failed:
        raise StudyFailed(f"study: {len(failed)} training(s) failed: " + "; ".join(failed))
    return {
        "trained": len(todo),
        "reused": len(entries) - len(todo),
        "retrained_stale": len(stale),
        "elapsed_s": {k: round(v, 1) for k, v in timings.items()},
    }


def write_summary(root: Path, data: Path, entries: list[ZooEntry]) -> None:
    """``<root>/summary.json``: size and training figures of the shipped (seed-0) checkpoints."""
    path = root / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        summary = {}
    models = summary.get("models", {}) if isinstance(summary, dict) else {}
    models.update({e.name: summarise(e.path) for e in entries})
    atomic_write_json(path, {"data": data.resolve().name, "models": models})  # the folder's name: no machine path


def stage_stress(cfg: StudyConfig, entries: list[ZooEntry], variant: str) -> dict[str, Any]:
    from drive.eval.stress import stress

    out = Path(cfg.out) / ("stress" if not variant else f"stress-{variant}-augmented")
    result = stress(
        [str(e.path) for e in entries if e.variant == variant],
        [("gaussian", list(cfg.levels))],
        out,
        scenario="default",
        episodes=1,
        seeds=stress_seeds(cfg.tracks, cfg.noise_seeds),
        workers=cfg.workers,
        duration_s=cfg.duration_s,
        progress=cfg.progress,
        backend=cfg.backend,
        address=cfg.address,
        with_expert=not variant,
        reference="ncp19" + (f"+{variant}" if variant else ""),
    )
    if result["failed"]:
        raise StudyFailed(f"study: {len(result['failed'])} stress cell(s) failed (see {out / 'report.md'}); rerun")
    return {"computed": result["computed"], "reused": result["reused"], "cells": result["cells"]}


def finished(out: Path, result: str, key: dict[str, Any]) -> bool:
    """Whether ``out`` holds ``result`` stamped (``done.json``) with the same inputs ``key``."""
    stamp = out / "done.json"
    return stamp.is_file() and (out / result).is_file() and json.loads(stamp.read_text()) == key


SUITE_CHUNK = 6
"""Drivers per run of the suite in the study (one family set of a seed): an interruption loses at most one chunk."""


def stage_suite(cfg: StudyConfig, entries: list[ZooEntry]) -> dict[str, Any]:
    """The suite per checkpoint (and the expert), each into its own folder, skipped when done with the same inputs."""
    import pandas as pd

    from drive.eval.suite import run_suite, suite_cases
    from drive.eval.sweep import fingerprint

    cases = suite_cases(list(cfg.suite_cases) or None)
    todo = []
    for entry in [None, *entries]:
        out = Path(cfg.out) / "suite" / suite_label(entry)
        key = {
            "fingerprint": "expert" if entry is None else fingerprint(entry.path),
            "cases": cases,
            "tracks": cfg.suite_tracks,
            "duration_s": cfg.duration_s,
        }
        if not finished(out, "results.csv", key):
            todo.append((entry, out, key))
    # the missing drivers in chunks of SUITE_CHUNK (one worker pool each), each chunk stamped into one folder per
    # driver as soon as it is driven: an interruption loses at most the chunk under way
    for start in range(0, len(todo), SUITE_CHUNK):
        chunk = todo[start : start + SUITE_CHUNK]
        batch = Path(cfg.out) / "suite" / ".batch"
        batch.mkdir(parents=True, exist_ok=True)
        run_suite(
            [str(e.path) for e, _, _ in chunk if e is not None],
            batch,
            tracks=cfg.suite_tracks,
            workers=cfg.workers,
            cases=cases,
            duration_s=cfg.duration_s,
            expert=any(e is None for e, _, _ in chunk),
            progress=cfg.progress,
        )
        rows = pd.read_csv(batch / "results.csv")
        for entry, out, key in chunk:
            out.mkdir(parents=True, exist_ok=True)
            label = "expert" if entry is None else entry.path.name
            with atomic_path(out / "results.csv") as tmp:
                rows[rows["driver"] == label].to_csv(tmp, index=False)
            atomic_write_json(out / "done.json", key)
        shutil.rmtree(batch)
        if len(todo) > SUITE_CHUNK:
            print(f"suite: {min(start + SUITE_CHUNK, len(todo))} of {len(todo)} driver(s) done", file=sys.stderr)
    return {"computed": len(todo), "reused": len(entries) + 1 - len(todo)}


def explain_key(cfg: StudyConfig, entry: ZooEntry) -> dict[str, Any]:
    """What an explain folder's results depend on (its ``done.json``): a rerun with the same key is skipped."""
    from drive.eval.sweep import fingerprint

    return {
        "fingerprint": fingerprint(entry.path),
        "scenario": "default",
        "levels": list(cfg.levels),
        "episodes": cfg.explain_episodes,
        "frames": cfg.explain_frames,
        "duration_s": cfg.duration_s,
    }


def stage_explain(cfg: StudyConfig, entries: list[ZooEntry]) -> dict[str, Any]:
    """``drive explain`` per checkpoint into ``<out>/explain/<name>/``, skipped when done with the same inputs."""
    from tqdm.auto import tqdm

    from drive.eval.explain import explain

    todo = []
    for entry in entries:
        out = Path(cfg.out) / "explain" / suite_label(entry)
        key = explain_key(cfg, entry)
        if not finished(out, "explain.json", key):
            todo.append((entry, out, key))
    for entry, out, key in tqdm(todo, desc="explain", unit="model", disable=not cfg.progress):
        explain(
            str(entry.path),
            "default",
            out,
            seed=0,
            variances=list(cfg.levels),
            images=0,
            ssim_frames=cfg.explain_frames,
            duration_s=cfg.duration_s,
            video=False,
            episodes=cfg.explain_episodes,
            progress=cfg.progress,
        )
        atomic_write_json(out / "done.json", key)
    return {"computed": len(todo), "reused": len(entries) - len(todo)}


def stage_report(cfg: StudyConfig, entries: list[ZooEntry]) -> dict[str, Any]:
    from drive.study.failures import failure_table
    from drive.study.report import study_markdown, suite_table

    out = Path(cfg.out)
    suite = suite_table(cfg, entries)
    if len(suite):
        with atomic_path(out / "suite.csv") as tmp:
            suite.to_csv(tmp, index=False)
    failures = failure_table([e for e in entries if not e.variant], cfg.data)
    with atomic_path(out / "failures.csv") as tmp:
        failures.to_csv(tmp, index=False)
    for variant in [""] + ([VARIANT] if cfg.noise_augment is not None else []):
        folder = out / ("stress" if not variant else f"stress-{variant}-augmented")
        prefix = f"{variant}-" if variant else ""
        if (folder / "stats.csv").is_file():
            shutil.copyfile(folder / "stats.csv", out / f"{prefix}stats.csv")
        if (folder / "robustness_gaussian.png").is_file():
            shutil.copyfile(folder / "robustness_gaussian.png", out / f"{prefix}robustness_gaussian.png")
    atomic_write_text(out / "study.md", "\n".join(study_markdown(cfg, entries, suite, failures)))
    return {"study_md": "study.md", "failed_runs": int((failures["failed"] == True).sum())}  # noqa: E712


@holds_output_lock("cfg.out")
def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run the stages of ``cfg`` in order; returns what each computed and reused (also ``study.json``)."""
    cfg.validate()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    entries = build_zoo(cfg)
    summary: dict[str, Any] = {
        "models": list(cfg.models),
        "seeds": list(cfg.seeds),
        "levels": list(cfg.levels),
        "noise_seeds": cfg.noise_seeds,
        "noise_augment": cfg.noise_augment,
        "stages": {},
    }
    t0 = time.perf_counter()
    for stage in cfg.stages:
        t = time.perf_counter()
        if stage == "record":
            result = stage_record(cfg)
        elif stage == "train":
            result = stage_train(cfg, entries)
        elif stage == "stress":
            result = {"plain": stage_stress(cfg, entries, "")}
            if cfg.noise_augment is not None:
                result[VARIANT] = stage_stress(cfg, entries, VARIANT)
        elif stage == "suite":
            result = stage_suite(cfg, entries)
        elif stage == "explain":
            result = stage_explain(cfg, entries)
        else:
            result = stage_report(cfg, entries)
        result["stage_s"] = round(time.perf_counter() - t, 1)
        summary["stages"][stage] = result
        print(f"{stage}: {result}", file=sys.stderr)
    summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
    if "report" in cfg.stages:
        atomic_write_json(Path(cfg.out) / "study.json", summary)
    return summary
