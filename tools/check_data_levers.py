"""The data levers of issue 22, item 6: recording size, DART level and DAgger, each judged by how the
trained policy drives on held-out *training-split* tracks (never the test tracks or the suite).

Each lever is one recording of ``scenarios/train.yaml`` (``drive record``, seed 0; its camera-mount ranges set
by the lever, the wide ones unless it says otherwise) and one training of the
family (default ``ncp19`` at its tuned controller rate) for the same number of epochs with closed-loop
epoch selection, as ``drive tune`` trains. Levers (``--levers``, any subset):

- ``base``: 60 episodes x 20 s, DART 0.25, the wide camera-mount ranges (the study's recording before these
  levers chose ``episodes120``; ``--base-data`` reuses it);
- ``episodes30`` / ``episodes120``: 30 or 120 episodes, DART 0.25 (the learning curve in data);
- ``episodes240x5s``: as many frames as the base in 240 episodes of 5 s (four times the drawn worlds);
- ``dart0`` / ``dart0.5``: 60 episodes with no DART noise, or with 0.5;
- ``settle0.3``: the base recording with stiffer labels: the expert settles onto the lane centre in 0.3 s
  instead of 0.6 s (``drive.world.expert.ExpertConfig.settle_time_s``; set for this recording only);
- ``narrowcam``: the base recording with the earlier, narrower camera-mount ranges (height 1.1-1.35 m, pitch
  0.09-0.15 rad, yaw +-0.03 rad, field of view 74-86 deg; today's are 1.0-1.6, 0.07-0.19, +-0.06, 68-90);
- ``midcam``: camera-mount ranges between the two (height 1.05-1.5 m, pitch 0.08-0.17 rad, yaw +-0.04 rad,
  field of view 70-88 deg), the narrowest that still hold the suite's camera_mount case;
- ``midcam-ema``, ``narrowcam-ema``: those recordings, trained with weight averaging (EMA, decay 0.98 per step)
  and a cosine rate schedule; ``midcam-ema-8ep``: the same for 8 epochs; ``midcam-ema-120ep``: 120 episodes of
  the midcam worlds, EMA and cosine;
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
    "midcam": (60, 20.0, 0.25, 0, None, "midcam"),
    # training-protocol levers on the midcam recording (item 3's "any protocol option", chosen by driving):
    # weight averaging (decay 0.98 per step: a half-life of about half an epoch of 75 steps) and a cosine rate
    # schedule, which should steady the epoch-to-epoch swings of the check
    "midcam-ema": (60, 20.0, 0.25, 0, None, "midcam", {"ema_decay": 0.98, "lr_schedule": "cosine"}),
    "midcam-ema-8ep": (60, 20.0, 0.25, 0, None, "midcam", {"ema_decay": 0.98, "lr_schedule": "cosine", "epochs": 8}),
    "narrowcam-ema": (60, 20.0, 0.25, 0, None, "narrowcam", {"ema_decay": 0.98, "lr_schedule": "cosine"}),
    "midcam-ema-120ep": (120, 20.0, 0.25, 0, None, "midcam", {"ema_decay": 0.98, "lr_schedule": "cosine"}),
}
#: ``narrowcam``: the camera-mount ranges of the earlier train.yaml (before they were widened to hold the suite's
#: camera_mount case), on top of today's scenarios/train.yaml.
NARROW_CAMERA = {"height_m": [1.1, 1.35], "pitch_rad": [0.09, 0.15], "yaw_rad": [-0.03, 0.03], "fov_deg": [74.0, 86.0]}
#: ``midcam``: between the two: the smallest ranges that still hold the suite's camera_mount case (1.45 m,
#: 0.16 rad, yaw 0.03 rad, 72 deg) inside them, with a little margin.
MID_CAMERA = {"height_m": [1.05, 1.5], "pitch_rad": [0.08, 0.17], "yaw_rad": [-0.04, 0.04], "fov_deg": [70.0, 88.0]}
#: the other levers: scenarios/train.yaml's wide ranges (1.0-1.6 m, 0.07-0.19 rad, +-0.06 rad, 68-90 deg), set
#: explicitly so that the levers' recordings stay what they were if train.yaml changes.
WIDE_CAMERA = {"height_m": [1.0, 1.6], "pitch_rad": [0.07, 0.19], "yaw_rad": [-0.06, 0.06], "fov_deg": [68.0, 90.0]}
CAMERA_VARIANTS = {"": WIDE_CAMERA, "narrowcam": NARROW_CAMERA, "midcam": MID_CAMERA}


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
        scenario["camera"].update(CAMERA_VARIANTS[variant])
        record(scenario, episodes, root, seed=0, noise_injection=dart, duration_s=duration_s, progress=False)
    return root


def markdown(rows: dict[str, dict], args: dict) -> str:
    """The levers as a markdown table (``levers.md``)."""
    names = [n.strip() for n in args["check_scenario"].split(",")]
    head = " | ".join(f"{n}: off-road | {n}: mean abs lateral (m) [95 %] | {n}: middle_of_3 (m)" for n in names)
    lines = [
        "## Data levers",
        "",
        f"`tools/check_data_levers.py`: {args['model']} (its tuned rate {args['rate']:g}, training seed 0, "
        f"{args['epochs']} epochs unless the lever says otherwise, closed-loop epoch selection) on each recording of `scenarios/train.yaml`, then "
        f"driven on {args['check_episodes']} held-out training-split tracks × {args['check_duration_s']:g} s that "
        f"no recording used (never the test tracks or the suite), dealt over the scenarios {', '.join(names)} "
        "(train: the randomized worlds; nominal: the default camera mount and look), every lane position equally "
        "often in each. Mean |lateral| with a 95 % interval over the check's episodes (one training seed per "
        "lever: the interval covers worlds, not training runs); middle_of_3: the mean over that lane position's "
        "episodes. Camera: the mount ranges of the recording (wide: today's train.yaml; narrow and mid: "
        "`NARROW_CAMERA`, `MID_CAMERA` in the script). In-training check: the scenarios the training's own epoch "
        "selection drove.",
        "",
        "| lever | episodes | episode (s) | DART | DAgger rounds | expert settling (s) | camera | epochs | protocol "
        f"| in-training check | kept epoch | {head} | training (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|---|" * len(names) + "---|",
    ]
    for name, r in rows.items():
        cells = []
        for n in names:
            part = r["check_by_scenario"][n]
            low, high = part["interval"]
            middle = part["by_position"].get("middle_of_3")
            cells.append(
                f"{part['off_road_events']} | {part['mean_abs_lateral_m']:.2f} [{low:.2f}, {high:.2f}] | "
                + ("–" if middle is None else f"{middle:.2f}")
            )
        lines.append(
            f"| {name} | {r['episodes']} | {r['episode_s']:g} | {r['dart']:g} | {r['dagger_rounds']} | "
            f"{r.get('settle_s', 0.6):g} | {r.get('variant', '').replace('cam', '') or 'wide'} | "
            f"{r.get('epochs', args['epochs'])} | "
            f"{', '.join(f'{k} {v}' for k, v in r.get('protocol', {}).items()) or '–'} | "
            f"{r.get('select_scenario', 'train')} | {r['best_epoch']} | {' | '.join(cells)} | "
            f"{r['train_time_s'] or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def names_of(spec) -> list[str]:
    """The check's scenarios, in order."""
    return list(dict.fromkeys(spec.episode_scenarios()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--levers", default=",".join(LEVERS), help="comma-separated subset of " + ", ".join(LEVERS))
    p.add_argument("--out", default="runs/levers")
    p.add_argument(
        "--base-data", default="", help="the base recording (60 x 20 s, DART 0.25, wide camera), reused if given"
    )
    p.add_argument("--model", default="ncp19")
    p.add_argument("--rate", type=float, default=5e-3, help="learning rate of the tuned field (drive tune)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--check-episodes", type=int, default=24)
    p.add_argument("--check-duration-s", type=float, default=15.0)
    p.add_argument("--check-scenario", default="train,nominal", help="the final check's scenarios, comma-separated")
    args = p.parse_args()

    from drive.policy.load import load_driver
    from drive.study.inference import mean_interval
    from drive.study.tune import run_trial, tuned_field
    from drive.train.config import TrainConfig
    from drive.train.selection import check_episodes, held_out_spec
    from drive.world.appearance import lane_position

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
        overrides = dict(extra[2]) if len(extra) > 2 else {}
        epochs = int(overrides.pop("epochs", args.epochs))
        data = recording(out, episodes, duration_s, dart, args.base_data or None, *extra[:2])
        datasets[name] = data
        cfg = TrainConfig(
            data=str(data),
            out=str(out / args.model / name),
            model=args.model,
            epochs=epochs - (1 if dagger else 0),
            **{tuned_field(args.model): args.rate},
            seed=0,
            select_by="closed_loop",
            progress=False,
            **(dict(dagger_rounds=dagger, scenario="train", dagger_episodes=12, dagger_epochs=1) if dagger else {}),
            **overrides,
        )
        trial = run_trial(cfg)
        recorded = json.loads((out / args.model / name / "config.json").read_text())["training"]
        rows[name] = {
            "episodes": episodes,
            "episode_s": duration_s,
            "dart": dart,
            "settle_s": (extra[0] if extra and extra[0] else 0.6),
            "variant": extra[1] if len(extra) > 1 else "",
            "dagger_rounds": dagger,
            "epochs": epochs,
            "protocol": overrides,
            # the in-training check (trainings made before the option drove 6 episodes of the randomized worlds)
            "select_scenario": f"{recorded.get('select_scenario', 'train')} ×{recorded.get('select_episodes', 6)}",
            **trial,
        }
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s, kept epoch {trial['best_epoch']}", flush=True)

    # One check for every lever: tracks and resets that no recording (nor a DAgger aggregate) used.
    used = list(datasets.values()) + [p for p in out.glob(f"{args.model}/*/dagger-data") if p.is_dir()]
    spec = held_out_spec(
        [str(p) for p in used], args.check_episodes, args.check_duration_s, seed=1, scenario=args.check_scenario
    )
    print(f"check: {len(spec.tracks)} training-split tracks x {spec.duration_s:g} s ({spec.scenario})", flush=True)
    print(
        f"{'lever':<15} {'epoch':>5} "
        + " ".join(f"{n + ': off-road, mean |lat| m [95% CI]':>44}" for n in names_of(spec))
    )
    for name in names:
        driver = load_driver(out / args.model / name)
        episodes = check_episodes(driver, spec)  # the training check's own loop, on this larger spec
        r = rows[name]
        r["check_by_scenario"] = {}
        for scenario in names_of(spec):
            mine = [k for k, e in enumerate(episodes) if e["check_scenario"] == scenario]
            lateral = np.array([episodes[k]["mean_abs_lateral_m"] for k in mine])
            _, low, high = mean_interval(lateral)
            by_position: dict[str, list[float]] = {}
            for k in mine:
                world = episodes[k]["world"]  # the world the episode drew, recorded in its row
                position = lane_position(world["lanes"], world["ego_lane"]) or ""
                by_position.setdefault(position, []).append(float(episodes[k]["mean_abs_lateral_m"]))
            r["check_by_scenario"][scenario] = {
                "episodes": len(mine),
                "off_road_events": int(sum(episodes[k]["off_road_events"] for k in mine)),
                "mean_abs_lateral_m": float(lateral.mean()),
                "interval": [low, high],
                "median_abs_lateral_m": float(np.median(lateral)),
                "by_position": {p: float(np.mean(v)) for p, v in by_position.items()},
            }
        r["check_off_road_events"] = int(sum(e["off_road_events"] for e in episodes))
        r["check_mean_abs_lateral_m"] = float(np.mean([e["mean_abs_lateral_m"] for e in episodes]))
        cells = [
            f"{p['off_road_events']:>4} {p['mean_abs_lateral_m']:6.2f} [{p['interval'][0]:.2f}, {p['interval'][1]:.2f}]"
            for p in r["check_by_scenario"].values()
        ]
        print(f"{name:<15} {r['best_epoch']!s:>5} " + " ".join(f"{c:>44}" for c in cells), flush=True)
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
