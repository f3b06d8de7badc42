"""Pilot of training protocols (issue 12, item 2): which protocol should every model of the study train with?

    python tools/pilot_protocol.py --data data/train                       # ncp19 and lstm, every candidate
    python tools/pilot_protocol.py --data data/train --candidates baseline burn_in ema --epochs 8

Trains each model with each candidate protocol on the same data and budget, then judges the checkpoints on
**validation data and training tracks only** (never the test tracks, which decide the study):

- ``val_mse``: steering MSE (normalised) over every validation episode, the controller's state carried from
  frame to frame through the whole episode as in closed loop (the same yardstick for every candidate,
  whatever its window length or burn-in);
- closed loop on ``scenarios/train.yaml`` (training-split tracks, randomized worlds) for ``--episodes``
  episodes, clean and under Gaussian camera noise of variance ``--noise`` (σ² 0.09 = standard deviation
  0.3): mean |lateral offset| (m) and off-road events per km.

Candidates (``TrainConfig`` changes; all off in the baseline):

- ``baseline``: the shipped protocol;
- ``burn_in``: 4 unscored frames at the start of each window (``--burn-in 4``);
- ``long_windows``: windows of 32 frames (``--seq-len 32``);
- ``cosine``: cosine learning-rate schedule (``--lr-schedule cosine``);
- ``ema``: EMA of the weights, decay 0.999 per step (``--ema-decay 0.999``);
- ``smoothed``: best epoch on a smoothed validation loss (``--val-smoothing 0.5``);
- ``lr_controller``: the controller at 5e-4, the single rate of the paper's training scripts.

A finished training (its config.json has every epoch) is reused, so a rerun resumes. Prints one table and,
last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CANDIDATES: dict[str, dict] = {
    "baseline": {},
    "burn_in": {"burn_in": 4},
    "long_windows": {"seq_len": 32},
    "cosine": {"lr_schedule": "cosine"},
    "ema": {"ema_decay": 0.999},
    "smoothed": {"val_smoothing": 0.5},
    "lr_controller": {"lr_controller": 5e-4},
}


def stateful_val_mse(checkpoint: Path, data: str, val_fraction: float, split_seed: int) -> float:
    """MSE of the steering over every validation segment, state carried through each whole segment."""
    import numpy as np
    import torch

    from drive.data.sequences import FrameCache
    from drive.policy.checkpoint import load_policy
    from drive.train.loop import predict_segment

    cache = FrameCache(data, progress=False)
    _, val = cache.split(val_fraction, split_seed)
    if not val:
        return float("nan")
    policy = load_policy(checkpoint)
    errors = []
    for seg in val:
        o = cache.offsets[seg.episode]
        pred = predict_segment(policy, cache, seg, torch.device("cpu"))
        errors.append((pred - cache.steering[o + seg.start : o + seg.stop]) ** 2)
    return float(np.mean(np.concatenate(errors)))


def closed_loop(checkpoint: Path, episodes: int, duration_s: float | None, noise: float) -> dict[str, float]:
    """Mean |lateral| and off-road per km on training-split tracks, clean and at noise variance ``noise``."""
    from drive.eval import metrics as M
    from drive.eval.perturb import make
    from drive.eval.simulate import drive_episodes, resolve_scenario
    from drive.policy.load import load_driver

    scenario = resolve_scenario(ROOT / "scenarios" / "train.yaml", duration_s)
    policy = load_driver(str(checkpoint))
    out = {}
    for label, perturbations in (("clean", []), (f"noise{noise:g}", [make("gaussian", noise)])):
        per_episode, _ = drive_episodes(policy, scenario, list(range(episodes)), perturbations, progress=False)
        agg = M.aggregate(per_episode)
        out[f"{label}_lateral_m"] = agg["mean_abs_lateral_m"]
        out[f"{label}_off_road_per_km"] = agg["off_road_per_km"]
    return out


def main(argv: list[str] | None = None) -> int:
    from drive.errors import UserError
    from drive.train.config import TrainConfig
    from drive.train.loop import train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "train"), help="training recordings (scenarios/train.yaml)")
    p.add_argument("--out", default=str(ROOT / "runs" / "pilot"), help="where the pilot's checkpoints go")
    p.add_argument("--models", nargs="+", default=["ncp19", "lstm"])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=16, help="window length of every candidate but long_windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10, help="closed-loop episodes on training tracks")
    p.add_argument("--duration-s", type=float, default=None, help="their length, s (default: the scenario's)")
    p.add_argument("--noise", type=float, default=0.09, help="Gaussian noise variance of the noisy closed loop")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        raise UserError(f"--data: {args.data}: dataset folder not found")

    rows = []
    for model in args.models:
        for name in args.candidates:
            changes = dict(CANDIDATES[name])
            if name == "long_windows":
                changes["seq_len"] = 2 * args.seq_len
            cfg = TrainConfig(
                data=args.data,
                out=str(Path(args.out) / f"{model}-{name}"),
                model=model,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seq_len=args.seq_len,
                seed=args.seed,
                device=args.device,
                progress=False,
            )
            cfg = dataclasses.replace(cfg, **changes)
            ckpt = Path(cfg.out)
            config_file = ckpt / "config.json"
            done = (
                config_file.is_file()
                and (json.loads(config_file.read_text()).get("metrics", {}).get("epochs_done") or 0) >= args.epochs
            )
            if not done:
                cfg.resume = config_file.is_file()
                train(cfg)
            metrics = json.loads(config_file.read_text())["metrics"]
            t0 = time.perf_counter()
            row = {
                "model": model,
                "candidate": name,
                "steps": metrics["steps"],
                "train_time_s": round(metrics["train_time_s"], 1),
                "best_epoch": metrics["best_epoch"],
                "val_mse": stateful_val_mse(ckpt, args.data, cfg.val_fraction, cfg.split_seed),
                **closed_loop(ckpt, args.episodes, args.duration_s, args.noise),
            }
            row["judge_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(f"{model:6s} {name:14s} val_mse {row['val_mse']:.4f}", file=sys.stderr)

    from drive.eval.metrics import format_table

    columns = [
        "model",
        "candidate",
        "steps",
        "train_time_s",
        "best_epoch",
        "val_mse",
        "clean_lateral_m",
        "clean_off_road_per_km",
        f"noise{args.noise:g}_lateral_m",
        f"noise{args.noise:g}_off_road_per_km",
    ]
    print(
        f"Pilot: {args.epochs} epoch(s), batch {args.batch_size}; judged on validation episodes (stateful MSE) and "
        f"{args.episodes} closed-loop episode(s) on training-split tracks (clean and σ²={args.noise:g})."
    )
    print(format_table(rows, columns, floatfmt=".4g"))
    print(
        json.dumps(
            {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "episodes": args.episodes,
                "noise": args.noise,
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
