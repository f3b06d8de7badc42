"""The data levers of issue 22, item 6: recording size, DART level and DAgger, each judged by how the
trained policy drives on held-out *training-split* tracks (never the test tracks or the suite).

Each lever is one recording of ``scenarios/train.yaml`` (``drive record``, seed 0) and one training of the
family (default ``ncp19`` at its tuned controller rate) for the same number of epochs with closed-loop
epoch selection, as ``drive tune`` trains. Levers (``--levers``, any subset):

- ``base``: 60 episodes x 20 s, DART 0.25 (the study's recording; ``--base-data`` reuses it);
- ``episodes30`` / ``episodes120``: 30 or 120 episodes, DART 0.25 (the learning curve in data);
- ``episodes240x5s``: as many frames as the base in 240 episodes of 5 s (four times the drawn worlds);
- ``dart0`` / ``dart0.5``: 60 episodes with no DART noise, or with 0.5;
- ``settle0.3``: the base recording with stiffer labels: the expert settles onto the lane centre in 0.3 s
  instead of 0.6 s (``drive.world.expert.ExpertConfig.settle_time_s``; set for this recording only);
- ``narrowcam``: the base recording with the earlier, narrower camera-mount ranges (height 1.1-1.35 m, pitch
  0.09-0.15 rad, yaw +-0.03 rad, field of view 74-86 deg; today's are 1.0-1.6, 0.07-0.19, +-0.06, 68-90);
- ``dagger``: the base recording, ``--epochs`` - 1 epochs, then one DAgger round of 12 episodes on the
  randomized worlds and 1 more epoch (the same number of epochs in all).

Every trained policy is then driven on one fixed check of ``--check-episodes`` held-out training-split
tracks x ``--check-duration-s`` (tracks and reset seeds none of the recordings used; seed 1, so not the
tracks the in-training selection saw): off-road events and mean |lateral| (m), with a bootstrap interval
over episodes for the latter. Resumable: a finished recording or training is reused, a broken one redone.

    .venv/bin/python tools/check_data_levers.py [--levers base,episodes30,...] [--out runs/levers]

Writes ``OUT/levers.json`` and ``OUT/levers.md``. The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

LEVERS = {
    # name: (episodes, episode length s, DART level, DAgger rounds[, the expert's settling time s])
    "base": (60, 20.0, 0.25, 0),
    "episodes30": (30, 20.0, 0.25, 0),
    "episodes120": (120, 20.0, 0.25, 0),
    "episodes240x5s": (240, 5.0, 0.25, 0),
    "dart0": (60, 20.0, 0.0, 0),
    "dart0.5": (60, 20.0, 0.5, 0),
    "dagger": (60, 20.0, 0.25, 1),
    "settle0.3": (60, 20.0, 0.25, 0, 0.3),
    "narrowcam": (60, 20.0, 0.25, 0, None, "narrowcam"),
}
#: ``narrowcam``: the camera-mount ranges of the earlier train.yaml (before they were widened to hold the suite's
#: camera_mount case), on top of today's scenarios/train.yaml.
NARROW_CAMERA = {"height_m": [1.1, 1.35], "pitch_rad": [0.09, 0.15], "yaw_rad": [-0.03, 0.03], "fov_deg": [74.0, 86.0]}


def recording(
    out: Path,
    episodes: int,
    duration_s: float,
    dart: float,
    base_data: str | None,
    settle_s: float | None = None,
    variant: str = "",
) -> Path:
    """The recording of a lever (recorded once; the base's may be given)."""
    import functools
    from unittest import mock

    from drive.data import layout
    from drive.data.recorder import record
    from drive.world import env
    from drive.world.expert import Expert, ExpertConfig
    from drive.world.scenario import as_scenario

    if base_data and (episodes, duration_s, dart) == LEVERS["base"][:3] and settle_s is None and not variant:
        return Path(base_data)
    length = "" if duration_s == 20.0 else f"x{duration_s:g}s"
    settle = "" if settle_s is None else f"-settle{settle_s:g}"
    tail = f"-{variant}" if variant else ""
    root = out / "data" / f"train-{episodes}ep{length}-dart{dart:g}{settle}{tail}"
    if root.is_dir() and len(layout.complete_episodes(root)) == episodes:
        return root
    if root.exists():
        import shutil

        shutil.rmtree(root)  # an interrupted recording of this script's own
    expert = Expert if settle_s is None else functools.partial(Expert, config=ExpertConfig(settle_time_s=settle_s))
    with mock.patch.object(env, "Expert", expert):
        scenario = as_scenario("train").to_dict()
        if variant == "narrowcam":
            scenario["camera"].update(NARROW_CAMERA)
        record(scenario, episodes, root, seed=0, noise_injection=dart, duration_s=duration_s, progress=False)
    return root


def markdown(rows: dict[str, dict], args: dict) -> str:
    """The levers as a markdown table (``levers.md``)."""
    lines = [
        "## Data levers",
        "",
        f"`tools/check_data_levers.py`: {args['model']} (its tuned rate {args['rate']:g}, training seed 0, "
        f"{args['epochs']} epochs, closed-loop epoch selection) on each recording of `scenarios/train.yaml`, then "
        f"driven on {args['check_episodes']} held-out training-split tracks × {args['check_duration_s']:g} s that "
        "no recording used (never the test tracks or the suite). Mean |lateral| with a 95 % bootstrap interval "
        "over the check's episodes (one training seed per lever: the interval covers worlds, not training runs). "
        "The validation losses are each on their own recording's validation episodes, so they do not compare "
        "across recordings.",
        "",
        "| lever | episodes | episode (s) | DART | DAgger rounds | expert settling (s) | kept epoch | off-road | mean abs lateral (m) "
        "| 95 % interval | median (m) | training (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        low, high = r["check_interval"]
        lines.append(
            f"| {name} | {r['episodes']} | {r['episode_s']:g} | {r['dart']:g} | {r['dagger_rounds']} | "
            f"{r.get('settle_s', 0.6):g} | "
            f"{r['best_epoch']} | {r['check_off_road_events']} | {r['check_mean_abs_lateral_m']:.2f} | "
            f"[{low:.2f}, {high:.2f}] | {r['check_median_abs_lateral_m']:.2f} | {r['train_time_s'] or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--levers", default=",".join(LEVERS), help="comma-separated subset of " + ", ".join(LEVERS))
    p.add_argument("--out", default="runs/levers")
    p.add_argument("--base-data", default="data/train", help="the base recording, reused ('' to record it)")
    p.add_argument("--model", default="ncp19")
    p.add_argument("--rate", type=float, default=5e-3, help="learning rate of the tuned field (drive tune)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--check-episodes", type=int, default=24)
    p.add_argument("--check-duration-s", type=float, default=15.0)
    args = p.parse_args()

    from drive.policy.load import load_driver
    from drive.study.inference import mean_interval
    from drive.study.tune import run_trial, tuned_field
    from drive.train.config import TrainConfig
    from drive.train.selection import check_episodes, held_out_spec

    out = Path(args.out)
    names = [n.strip() for n in args.levers.split(",") if n.strip()]
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        print(f"check_data_levers: --levers: unknown {unknown}; choose from {list(LEVERS)}", file=sys.stderr)
        return 2
    rows: dict[str, dict] = {}
    datasets: dict[str, Path] = {}
    for name in names:
        episodes, duration_s, dart, dagger, *extra = LEVERS[name]
        t0 = time.perf_counter()
        data = recording(out, episodes, duration_s, dart, args.base_data or None, *extra)
        datasets[name] = data
        cfg = TrainConfig(
            data=str(data),
            out=str(out / args.model / name),
            model=args.model,
            epochs=args.epochs - (1 if dagger else 0),
            **{tuned_field(args.model): args.rate},
            seed=0,
            select_by="closed_loop",
            progress=False,
            **(dict(dagger_rounds=dagger, scenario="train", dagger_episodes=12, dagger_epochs=1) if dagger else {}),
        )
        trial = run_trial(cfg)
        rows[name] = {
            "episodes": episodes,
            "episode_s": duration_s,
            "dart": dart,
            "settle_s": (extra[0] if extra and extra[0] else 0.6),
            "variant": extra[1] if len(extra) > 1 else "",
            "dagger_rounds": dagger,
            **trial,
        }
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s, kept epoch {trial['best_epoch']}", flush=True)

    # One check for every lever: tracks and resets that no recording (nor a DAgger aggregate) used.
    used = list(datasets.values()) + [p for p in out.glob(f"{args.model}/*/dagger-data") if p.is_dir()]
    spec = held_out_spec([str(p) for p in used], args.check_episodes, args.check_duration_s, seed=1)
    print(f"check: {len(spec.tracks)} training-split tracks x {spec.duration_s:g} s", flush=True)
    header = f"{'lever':<12} {'episodes':>8} {'DART':>5} {'DAgger':>6} {'epoch':>5} {'val loss':>8}"
    print(header + f" {'off-road':>8} {'mean |lat| m [95% CI]':>24} {'median':>6}")
    for name in names:
        driver = load_driver(out / args.model / name)
        episodes = check_episodes(driver, spec)  # the training check's own loop, on this larger spec
        lateral = np.array([e["mean_abs_lateral_m"] for e in episodes])
        _, low, high = mean_interval(lateral)
        r = rows[name]
        r.update(
            check_off_road_events=int(sum(e["off_road_events"] for e in episodes)),
            check_mean_abs_lateral_m=float(lateral.mean()),
            check_interval=[low, high],
            check_median_abs_lateral_m=float(np.median(lateral)),
        )
        ci = f"{lateral.mean():.2f} [{low:.2f}, {high:.2f}]"
        print(
            f"{name:<12} {r['episodes']:>8} {r['dart']:>5g} {r['dagger_rounds']:>6} {r['best_epoch']!s:>5} "
            f"{r['val_loss'] or float('nan'):>8.4f} {r['check_off_road_events']:>8} {ci:>24} "
            f"{r['check_median_abs_lateral_m']:>6.2f}",
            flush=True,
        )
    (out / "levers.json").write_text(json.dumps({"args": vars(args), "levers": rows}, indent=1) + "\n")
    (out / "levers.md").write_text(markdown(rows, vars(args)))
    print(
        json.dumps(
            {
                "levers": {
                    n: {
                        k: rows[n][k]
                        for k in (
                            "check_off_road_events",
                            "check_mean_abs_lateral_m",
                            "check_interval",
                            "val_loss",
                            "best_epoch",
                        )
                    }
                    for n in names
                }
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
