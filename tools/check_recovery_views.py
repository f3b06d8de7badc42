"""Check: do recovery views stand in for DART noise? (issue 25, "Recovery views for training")

Trains ``--model`` (ncp19) on ``--seeds`` training seeds in each arm, all for ``--epochs`` epochs with the
tuned controller rate and closed-loop epoch selection on held-out training-split tracks (as ``drive tune``):

- ``dart0.25``: the study's recording (``--dart-data``, 60 episodes x 20 s with DART 0.25), no recovery views;
- ``dart0+views``: a recording of the same worlds and seeds with no DART noise (``--no-dart-data``;
  recorded there when missing), with ``--viewpoint-augment`` (recovery views, drive.train.viewpoint);
- ``dart0+views2m``: the same, with views that reach 2 m and 10 deg (``--viewpoint-max-offset-m 2
  --viewpoint-max-yaw-rad 0.1745``; DART's recording holds excursions to 2.2 m);
- ``dart0``: the same no-DART recording without recovery views (what the views add).

Then ``drive stress`` on the test tracks (``scenarios/default.yaml``) at Gaussian σ² ``--levels``, ``--noise-seeds``
cells of ``--episodes`` episodes each, and, per arm and level, off-road events per km and mean |lateral| (m):
the mean over training seeds with a studentized bootstrap interval over seeds, and the seed-level Welch test of
``dart0+views`` against ``dart0.25`` (the issue's target: at most DART's off-road rate). Resumable: trainings
and stress cells that finished are reused.

    .venv/bin/python tools/check_recovery_views.py [--seeds 0,1,2] [--epochs 4] [--out runs/recovery]

Writes ``OUT/recovery.json`` and ``OUT/recovery.md``; the last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ARMS = ("dart0.25", "dart0+views", "dart0+views2m", "dart0")
#: recovery-view reach per views arm: (largest offset m, largest yaw rad); drive train's defaults are 1 m and 5 deg
VIEW_REACH = {"dart0+views": (1.0, 0.0873), "dart0+views2m": (2.0, 0.1745)}


def markdown(summary: dict[str, dict], arms: list[str], levels: list[float]) -> str:
    """The arms per level as a markdown table (``recovery.md``): mean over training seeds [95 % interval over
    seeds] and, against ``dart0.25``, the difference with Welch's interval and p."""

    def cell(figure: dict) -> str:
        low, high = figure["interval"]
        return f"{figure['mean']:.2f} [{low:.2f}, {high:.2f}]"

    lines = [
        "| σ² | arm | off-road/km | views − DART [95 %] | Welch p | mean abs lateral (m) |",
        "|---|---|---|---|---|---|",
    ]
    for level in levels:
        for arm in arms:
            row = summary[f"{arm}@{level:g}"]
            test = row.get("off_road_vs_dart0.25")
            diff = (
                f"{test['diff']:+.2f} [{test['diff_low']:.2f}, {test['diff_high']:.2f}] | {test['p_welch']:.3f}"
                if test
                else "– | –"
            )
            lines.append(
                f"| {level:g} | {arm} | {cell(row['off_road_per_km'])} | {diff} | {cell(row['mean_abs_lateral_m'])} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/recovery")
    p.add_argument("--dart-data", default="data/train", help="the DART 0.25 recording (the study's)")
    p.add_argument("--no-dart-data", default="runs/levers/data/train-60ep-dart0", help="a DART-0 recording")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--model", default="ncp19")
    p.add_argument("--rate", type=float, default=5e-3, help="learning rate of the tuned field (drive tune)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--levels", default="0,0.1,0.2,0.3", help="Gaussian noise variances σ²")
    p.add_argument("--noise-seeds", type=int, default=2, help="stress cells per (checkpoint, level)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per stress cell")
    p.add_argument("--duration-s", type=float, default=60.0, help="length of each test episode, s")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    from drive.data import layout
    from drive.data.recorder import record
    from drive.eval.stress import stress
    from drive.study.inference import compare, mean_interval
    from drive.study.tune import run_trial, tuned_field
    from drive.train.config import TrainConfig

    out = Path(args.out)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if set(arms) - set(ARMS):
        print(
            f"check_recovery_views: --arms: unknown {sorted(set(arms) - set(ARMS))}; choose from {ARMS}",
            file=sys.stderr,
        )
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    levels = [float(v) for v in args.levels.split(",")]

    no_dart = Path(args.no_dart_data)
    if any(a.startswith("dart0+") or a == "dart0" for a in arms) and len(layout.complete_episodes(no_dart)) != 60:
        if no_dart.exists():
            shutil.rmtree(no_dart)
        print(f"recording {no_dart} (60 episodes x 20 s, no DART)", flush=True)
        record("train", 60, no_dart, seed=0, noise_injection=0.0, duration_s=20.0, progress=False)

    checkpoints: dict[tuple[str, int], str] = {}
    for arm in arms:
        for seed in seeds:
            t0 = time.perf_counter()
            folder = out / "checkpoints" / f"{args.model}-{arm}-seed{seed}"
            cfg = TrainConfig(
                data=str(args.dart_data if arm == "dart0.25" else no_dart),
                out=str(folder),
                model=args.model,
                epochs=args.epochs,
                **{tuned_field(args.model): args.rate},
                seed=seed,
                select_by="closed_loop",
                viewpoint_augment=arm in VIEW_REACH,
                **(
                    dict(viewpoint_max_offset_m=VIEW_REACH[arm][0], viewpoint_max_yaw_rad=VIEW_REACH[arm][1])
                    if arm in VIEW_REACH
                    else {}
                ),
                progress=False,
            )
            trial = run_trial(cfg)
            checkpoints[arm, seed] = str(folder)
            print(f"{arm} seed {seed}: kept epoch {trial['best_epoch']} ({time.perf_counter() - t0:.0f} s)", flush=True)

    result = stress(
        list(checkpoints.values()),
        [("gaussian", levels)],
        out / "stress",
        scenario="default",
        episodes=args.episodes,
        seeds=list(range(args.noise_seeds)),
        workers=args.workers,
        duration_s=args.duration_s,
        with_expert=False,
        progress=False,
    )
    # One figure per (checkpoint, level): pooled over its cells' episodes.
    per: dict[tuple[str, float], dict[str, list[float]]] = {}
    if result["failed"]:
        print(f"check_recovery_views: {len(result['failed'])} stress cells failed; rerun to retry", file=sys.stderr)
        return 1
    cells = [json.loads(f.read_text()) for f in sorted((out / "stress" / "cells").rglob("*.json"))]
    for (arm, seed), folder in checkpoints.items():
        for level in levels:
            mine = [c for c in cells if Path(c["checkpoint"]) == Path(folder) and float(c["level"]) == level]
            episodes = [e for c in mine for e in c["episodes"]]
            km = sum(e["distance_m"] for e in episodes) / 1000.0
            d = per.setdefault((arm, level), {"off_road_per_km": [], "mean_abs_lateral_m": []})
            d["off_road_per_km"].append(sum(e["off_road_events"] for e in episodes) / km if km else float("nan"))
            d["mean_abs_lateral_m"].append(float(np.mean([e["mean_abs_lateral_m"] for e in episodes])))

    summary: dict[str, dict] = {}
    print(f"\n{'arm':<12} {'σ²':>4} {'off-road/km [95% CI over seeds]':>34} {'mean |lat| m [95% CI]':>26}")
    for arm in arms:
        for level in levels:
            d = per[arm, level]
            row = {}
            for figure, values in d.items():
                mean, low, high = mean_interval(values)
                row[figure] = {"per_seed": values, "mean": mean, "interval": [low, high]}
            if arm != "dart0.25" and "dart0.25" in arms:
                # this arm minus DART 0.25, on seed means (Welch and exact permutation)
                row["off_road_vs_dart0.25"] = compare(per["dart0.25", level]["off_road_per_km"], d["off_road_per_km"])
            summary[f"{arm}@{level:g}"] = row
            o, lat = row["off_road_per_km"], row["mean_abs_lateral_m"]
            print(
                f"{arm:<12} {level:>4g} {o['mean']:>12.2f} [{o['interval'][0]:.2f}, {o['interval'][1]:.2f}]"
                f"{'':>8} {lat['mean']:>8.3f} [{lat['interval'][0]:.3f}, {lat['interval'][1]:.3f}]",
                flush=True,
            )
    (out / "recovery.md").write_text(markdown(summary, arms, levels))
    (out / "recovery.json").write_text(
        json.dumps({"args": vars(args), "summary": summary}, indent=1, default=str) + "\n"
    )
    print(json.dumps({"summary": summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
