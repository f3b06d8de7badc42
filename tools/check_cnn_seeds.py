"""Check that PilotNet (``cnn``) trains on every seed (issue 22: no run may end as a constant predictor).

Writes a small synthetic dataset (a lane of two bright markings whose position follows the steering, on
a noisy background; 10 episodes x 64 frames at 78x200), then runs ``drive.train.loop.train`` for ``cnn``
over ``--seeds`` (10) training seeds, ``--epochs`` (2) epochs each, with the default recipe (augmentation
on, lr_head 5e-4, gradient clip 1, alpha 2; batches of 4 windows of 8 frames, 1 thread). For each seed it
reports the last epoch's mean training loss against the weighted loss of the best constant predictor on
the same training frames (``ratio``; learned: ratio <= 0.5, the issue's target) and the std of the final
model's predictions over the training frames (constant: std < 1 % of the labels' std). ``--relu`` also
runs the old recipe (ReLU between the dense layers, as checkpoints written before ``dense_activation``)
on the same seeds, for comparison. ~1 min on one core (twice that with ``--relu``).

    .venv/bin/python tools/check_cnn_seeds.py [--seeds 10] [--epochs 2] [--relu]

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from drive.data.layout import DatasetInfo  # noqa: E402
from drive.data.sequences import FrameCache, Segment, SequenceDataset  # noqa: E402
from drive.data.writer import DatasetWriter  # noqa: E402
from drive.policy import model as policy_model  # noqa: E402
from drive.policy.perception import DENSE_ACTIVATION  # noqa: E402
from drive.train import loop  # noqa: E402
from drive.train.config import TrainConfig  # noqa: E402

LEARNED_RATIO = 0.5
EPISODES, LENGTH, FPS = 10, 64, 10.0


def lane_frames(steering: np.ndarray, seed: int, h: int = 78, w: int = 200) -> np.ndarray:
    """Frames of two lane markings 60 px apart whose centre moves with the steering, on noise."""
    rng = np.random.default_rng(seed)
    xs = np.arange(w)
    out = rng.integers(30, 100, size=(len(steering), h, w, 3), dtype=np.uint8)
    for i, s in enumerate(steering):
        centre = w / 2 + s * w / 4
        for mark in (centre - 30, centre + 30):
            out[i][:, np.abs(xs - mark) < 4] = (235, 235, 210)
    return out


def write_dataset(root: Path) -> Path:
    writer = DatasetWriter(
        root, DatasetInfo(fps=FPS, image_height=78, image_width=200, max_steer_rad=0.5, source="synthetic")
    )
    for e in range(EPISODES):
        t = np.arange(LENGTH)
        steering = (0.8 * np.sin(t / (5.0 + e % 3) + 0.9 * e)).astype(np.float32)
        writer.add_episode(iter(lane_frames(steering, e)), steering, t / FPS)
    writer.close()
    return root


def one_run(data: Path, out: Path, seed: int, epochs: int, activation: str) -> dict:
    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        model="cnn",
        epochs=epochs,
        batch_size=4,
        seq_len=8,
        seed=seed,
        progress=False,
        threads=1,
    )
    real = policy_model.build_policy

    def build(*args, **kwargs):  # the activation under test (the loop builds the policy itself)
        return real(*args, head={"dense_activation": activation}, **kwargs)

    t0 = time.perf_counter()
    with mock.patch.object(loop, "build_policy", build):
        result = loop.train(cfg)
    wall = time.perf_counter() - t0
    config = json.loads((out / "config.json").read_text())
    segments = [Segment(*s) for s in config["data"]["train_segments"]]
    cache = FrameCache(data, progress=False)
    windows = SequenceDataset(cache, segments, seq_len=cfg.seq_len)
    frames, labels, dt = windows.get_batch(np.arange(len(windows)))
    weight = torch.exp(cfg.alpha * labels.abs())
    constant = (weight * labels).sum() / weight.sum()
    constant_loss = loop.weighted_mse(constant.expand_as(labels), labels, cfg.alpha).item()
    with torch.no_grad():
        result.policy.eval()
        prediction, _ = result.policy(frames, None, dt)
    train_loss = result.progress["epochs"][-1]["train_loss"]
    return {
        "seed": seed,
        "activation": result.policy.head.config["dense_activation"],
        "train_loss": round(train_loss, 5),
        "constant_loss": round(constant_loss, 5),
        "ratio": round(train_loss / constant_loss, 4),
        "final_loss": round(loop.weighted_mse(prediction, labels, cfg.alpha).item(), 5),
        "prediction_std": round(prediction.std().item(), 5),
        "label_std": round(labels.std().item(), 5),
        "learned": train_loss <= LEARNED_RATIO * constant_loss,
        "constant": prediction.std().item() < 0.01 * labels.std().item(),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--relu", action="store_true", help="also run the old recipe (ReLU dense layers)")
    args = p.parse_args()
    torch.set_num_threads(1)
    recipes = [DENSE_ACTIVATION] + (["relu"] if args.relu else [])
    summary: dict = {"seeds": args.seeds, "epochs": args.epochs, "learned_ratio": LEARNED_RATIO}
    with tempfile.TemporaryDirectory(prefix="check_cnn_seeds_") as tmp:
        data = write_dataset(Path(tmp) / "data")
        for activation in recipes:
            runs = []
            for seed in range(args.seeds):
                r = one_run(data, Path(tmp) / f"{activation}-{seed}", seed, args.epochs, activation)
                runs.append(r)
                print(
                    f"{activation:5s} seed {seed}: train loss {r['train_loss']:.4f} = {r['ratio']:.3f} x the constant "
                    f"predictor's; prediction std {r['prediction_std']:.3f} (labels {r['label_std']:.3f}); "
                    f"{'learned' if r['learned'] else 'NOT learned'}{', CONSTANT' if r['constant'] else ''} "
                    f"({r['wall_s']:.0f} s)"
                )
            summary[activation] = {
                "learned": sum(r["learned"] for r in runs),
                "constant": sum(r["constant"] for r in runs),
                "worst_ratio": max(r["ratio"] for r in runs),
                "runs": runs,
            }
            print(
                f"{activation}: {summary[activation]['learned']} of {args.seeds} seeds learned, "
                f"{summary[activation]['constant']} constant, worst ratio {summary[activation]['worst_ratio']:.3f}"
            )
    new = summary[DENSE_ACTIVATION]
    summary["target_met"] = new["learned"] == args.seeds and new["constant"] == 0
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
