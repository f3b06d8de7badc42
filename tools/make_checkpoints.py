"""Reproduce the shipped checkpoints end to end, from an empty folder.

    python tools/make_checkpoints.py                       # record, train every model, summarise
    python tools/make_checkpoints.py --models ncp19 cnn    # a subset
    python tools/make_checkpoints.py --skip-record         # reuse an existing dataset

Steps:
1. ``drive record`` on the training-split tracks (``scenarios/train.yaml``) with DART noise injection,
   at least 30 minutes of driving (``--episodes`` × the scenario's ``duration_s``).
2. ``drive train`` for each model into ``checkpoints/<model>/`` (same seed, data and budget for every model).
3. ``checkpoints/summary.json``: for each model, trainable parameters (NCP paper, Table 2 style),
   best validation loss and training time. The README's table is read off this file.

Everything is run through the ``drive`` CLI, so this script is also an end-to-end check of it.
The last printed line is one JSON object (the summary).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drive.cli import main as drive  # noqa: E402
from drive.io import atomic_write_json  # noqa: E402

MODELS = ("ncp19", "cnn", "lstm", "gru", "cfc", "ctrnn")


def summarise(ckpt: Path) -> dict:
    from drive.core.inspect import count_trainable_parameters
    from drive.policy.checkpoint import load_policy, read_config

    config = read_config(ckpt)
    policy = load_policy(ckpt)
    controller = policy.controller
    return {
        "model": config.get("model", ckpt.name),
        "parameters": count_trainable_parameters(policy),
        "controller_parameters": count_trainable_parameters(controller) if controller is not None else 0,
        "best_val_loss": config.get("metrics", {}).get("best_val_loss"),
        "train_time_s": config.get("metrics", {}).get("train_time_s"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "train"), help="dataset folder to record into / train from")
    p.add_argument("--out-root", default=str(ROOT / "checkpoints"), help="where checkpoints/<model>/ go")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--episodes", type=int, default=30, help="episodes to record (30 × 60 s = 30 min)")
    p.add_argument("--noise-injection", type=float, default=0.25, help="DART noise level while recording")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-record", action="store_true", help="train on the existing --data")
    p.add_argument("--skip-train", action="store_true", help="only rewrite the summary")
    p.add_argument("--train-args", default="", help="extra arguments for drive train, e.g. '--stride 8'")
    args = p.parse_args()

    data, out_root = Path(args.data), Path(args.out_root)
    if not args.skip_record:
        rc = drive(["record", "--scenario", str(ROOT / "scenarios" / "train.yaml"), "--episodes", str(args.episodes),
                    "--out", str(data), "--seed", str(args.seed), "--noise-injection", str(args.noise_injection)])
        if rc:
            return rc
    timings = {}
    if not args.skip_train:
        for model in args.models:
            t0 = time.perf_counter()
            rc = drive(["train", "--data", str(data), "--model", model, "--out", str(out_root / model),
                        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
                        *args.train_args.split()])
            if rc:
                return rc
            timings[model] = time.perf_counter() - t0
    summary = {"data": data.resolve().name, "models": {}}  # the folder name only: no machine path
    for model in args.models:
        if (out_root / model / "config.json").exists():
            summary["models"][model] = summarise(out_root / model)
    for model, row in summary["models"].items():
        print(f"{model:10s} params {row['parameters']:>8d}  best val loss {row['best_val_loss']}  "
              f"train time {row['train_time_s']}")
    atomic_write_json(out_root / "summary.json", summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
