"""Reproduce the shipped checkpoints end to end, from an empty folder.

    python tools/make_checkpoints.py                       # record, train every model, summarise
    python tools/make_checkpoints.py --models ncp19 cnn    # a subset
    python tools/make_checkpoints.py --skip-record         # reuse an existing dataset
    python tools/make_checkpoints.py --skip-record --seeds 0,1,2 --backend ray --address auto   # zoo on a cluster

Steps:
1. ``drive record`` on the training-split tracks (``scenarios/train.yaml``) with DART noise injection,
   60 episodes × 20 s (20 minutes of driving, 60 drawn worlds; ``--episodes``, ``--duration-s``).
2. ``drive train`` for each model into ``checkpoints/<model>/`` (same seed, data and budget for every model);
   with ``--seeds`` one training per (model, seed): seed 0 is the shipped ``checkpoints/<model>/``, seed k > 0
   goes to ``checkpoints/zoo/<model>-s<k>/``. A training whose checkpoint is already finished (its
   config.json has the seed and all the epochs) is skipped and an interrupted one continues (``--resume``),
   so a rerun resumes. ``--backend ray`` runs one Ray task per (model, seed), each declaring ``--cpus-per-task`` CPUs
   and a GPU when the cluster has one; a task trains into a temporary folder on its node and sends the
   checkpoint's files back, which this process writes into ``--out-root``. The dataset must be at the same
   path on every node (its frame cache is built there once per node).
3. ``checkpoints/summary.json``: for each model, trainable parameters (NCP paper, Table 2 style),
   best validation loss and training time. The README's table is read off this file.

Everything is run through the ``drive`` CLI, so this script is also an end-to-end check of it.
The last printed line is one JSON object (the summary).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drive.cli import main as drive  # noqa: E402
from drive.io import atomic_dir, atomic_write_json  # noqa: E402

MODELS = ("ncp19", "cnn", "lstm", "gru", "cfc", "ctrnn")
RECORD_EPISODES, RECORD_DURATION_S, NOISE_INJECTION = 60, 20.0, 0.25
EPOCHS, BATCH_SIZE = 8, 16
"""The shipped checkpoints' recording (60 episodes x 20 s: 20 minutes, 60 drawn worlds; DART noise 0.25) and
training budget. tools/run_study.py uses the same by default, so the study reuses the shipped seed-0 checkpoints."""


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


def parse_seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (distinct, >= 0)."""
    try:
        seeds = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected a list like 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds: expected distinct seeds >= 0 like 0,1,2, got {text!r}")
    return seeds


def is_finished(ckpt: Path, seed: int, epochs: int) -> bool:
    """Whether ``ckpt`` holds a training of ``seed`` that has done all ``epochs``."""
    try:
        config = json.loads((ckpt / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and (ckpt / "model.safetensors").is_file()
        and config.get("training", {}).get("seed") == seed
        and (config.get("metrics", {}).get("epochs_done") or 0) >= epochs
    )


def checkpoint_name(model: str, seed: int) -> str:
    """Folder of a (model, seed) under the checkpoint root: seed 0 is the shipped ``<model>``, others ``zoo/<model>-s<k>``."""
    return model if seed == 0 else f"zoo/{model}-s{seed}"


def resume_flag(ckpt: Path) -> list[str]:
    """``--resume`` when ``ckpt`` holds an unfinished training (its config.json and train_state/)."""
    return ["--resume"] if (ckpt / "config.json").is_file() and (ckpt / "train_state").is_dir() else []


def train_argv(data: Path, model: str, out: Path, seed: int, args: argparse.Namespace) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--model",
        model,
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(seed),
        *args.train_args.split(),
    ]


def train_remote(argv: list[str], name: str) -> dict:
    """Body of one Ray task: train into a temporary folder on this node; return the checkpoint's files."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="drive-zoo-") as tmp:
        out = Path(tmp) / name
        argv = [*argv]
        argv[argv.index("--out") + 1] = str(out)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = drive(argv)
        files = (
            {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()} if not rc else {}
        )
    last = [line for line in err.getvalue().splitlines() if line.strip()][-1:]
    return {"rc": rc, "files": files, "elapsed_s": time.perf_counter() - t0, "error": last[0] if last else ""}


def train_on_ray(jobs: list[tuple[str, list[str]]], out_root: Path, args: argparse.Namespace) -> dict[str, float]:
    """One Ray task per job (name, drive argv); each finished checkpoint is written under ``out_root``."""
    from tqdm.auto import tqdm

    from drive.eval.backends import connect_ray, import_ray

    ray = import_ray()
    started = connect_ray(ray, args.address, None)
    timings, failed = {}, []
    try:
        gpus = (
            args.gpus_per_task
            if args.gpus_per_task is not None
            else (1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0)
        )
        task = ray.remote(num_cpus=args.cpus_per_task, num_gpus=gpus, max_retries=2)(train_remote)
        pending = {task.options(name=f"train:{name}").remote(argv, name): name for name, argv in jobs}
        with tqdm(total=len(jobs), desc="zoo trainings", unit="model") as bar:
            try:
                while pending:
                    [ref], _ = ray.wait(list(pending), num_returns=1)
                    name = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failed.append(f"{name}: {str(exc).strip().splitlines()[0]}")
                        continue
                    finally:
                        bar.update()
                    if result["rc"]:
                        failed.append(f"{name}: drive train exited with {result['rc']}: {result['error']}")
                        continue
                    with atomic_dir(out_root / name) as tmp:
                        for rel, data in result["files"].items():
                            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                            (tmp / rel).write_bytes(data)
                    timings[name] = result["elapsed_s"]
            except BaseException:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
    finally:
        if started:
            ray.shutdown()
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    return timings if not failed else {**timings, "__failed__": len(failed)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "train"), help="dataset folder to record into / train from")
    p.add_argument("--out-root", default=str(ROOT / "checkpoints"), help="where checkpoints/<model>/ go")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--episodes", type=int, default=RECORD_EPISODES, help="episodes to record (60 × 20 s = 20 min)")
    p.add_argument(
        "--duration-s",
        type=float,
        default=RECORD_DURATION_S,
        help="length of each recorded episode, s (20: more drawn worlds for the same minutes of driving "
        "than the scenario's 60 s)",
    )
    p.add_argument("--noise-injection", type=float, default=NOISE_INJECTION, help="DART noise level while recording")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per training (the shipped checkpoints: 8)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--seed", type=int, default=0, help="seed of the recording, and of training without --seeds")
    p.add_argument(
        "--seeds",
        type=parse_seed_list,
        default=None,
        metavar="0,1,2",
        help="train each model once per seed: seed 0 into <out-root>/<model>/, seed k into "
        "<out-root>/zoo/<model>-s<k>/",
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="run the trainings one after another here, or as Ray tasks (default: local)",
    )
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (auto = the running one)")
    p.add_argument("--cpus-per-task", type=float, default=1, help="with --backend ray: CPUs each training declares")
    p.add_argument(
        "--gpus-per-task",
        type=float,
        default=None,
        help="with --backend ray: GPUs each training declares (default: 1 if the cluster has a GPU)",
    )
    p.add_argument("--skip-record", action="store_true", help="train on the existing --data")
    p.add_argument("--skip-train", action="store_true", help="only rewrite the summary")
    p.add_argument("--train-args", default="", help="extra arguments for drive train, e.g. '--stride 8'")
    args = p.parse_args()

    data, out_root = Path(args.data), Path(args.out_root)
    if not args.skip_record:
        rc = drive(
            [
                "record",
                "--scenario",
                str(ROOT / "scenarios" / "train.yaml"),
                "--episodes",
                str(args.episodes),
                "--out",
                str(data),
                "--seed",
                str(args.seed),
                "--noise-injection",
                str(args.noise_injection),
                "--duration-s",
                str(args.duration_s),
            ]
        )
        if rc:
            return rc
    runs = [
        (model if args.seeds is None else checkpoint_name(model, seed), model, seed)
        for model in args.models
        for seed in (args.seeds if args.seeds is not None else [args.seed])
    ]
    timings = {}
    if not args.skip_train:
        todo = [
            (name, train_argv(data, model, out_root / name, seed, args))
            for name, model, seed in runs
            if not is_finished(out_root / name, seed, args.epochs)
        ]
        print(
            f"{len(runs) - len(todo)} of {len(runs)} training(s) already finished; {len(todo)} to run", file=sys.stderr
        )
        if args.backend == "ray" and todo:
            from drive.data.sequences import FrameCache

            FrameCache(data)  # decode the frame cache once on this node before the tasks open it
            timings = train_on_ray(todo, out_root, args)
            if timings.pop("__failed__", 0):
                return 1
        for name, argv in todo if args.backend == "local" else []:
            t0 = time.perf_counter()
            rc = drive(argv + resume_flag(out_root / name))
            if rc:
                return rc
            timings[name] = time.perf_counter() - t0
    summary = {"data": data.resolve().name, "models": {}}  # the folder name only: no machine path
    for name, _, _ in runs:
        if (out_root / name / "config.json").exists():
            summary["models"][name] = summarise(out_root / name)
    for model, row in summary["models"].items():
        print(
            f"{model:10s} params {row['parameters']:>8d}  best val loss {row['best_val_loss']}  "
            f"train time {row['train_time_s']}"
        )
    atomic_write_json(out_root / "summary.json", summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
