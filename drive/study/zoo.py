"""The zoo: one :class:`ZooEntry` per (family, training seed, variant), each with the exact
:class:`~drive.train.config.TrainConfig` it is trained with, and the functions that train it (here, or as Ray
tasks), tell a finished checkpoint from an interrupted one, and a checkpoint of this study from a *stale* one
(trained on other data or with other options: configs are compared, field by field).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drive.study.config import VARIANT, StudyConfig
from drive.train.config import TrainConfig

NOT_COMPARED = frozenset(
    {
        "data",
        "out",
        "logdir",
        "cache_dir",
        "resume",
        "workers",
        "threads",
        "device",
        "progress",
        "scenario",
        "max_steps",
    }
)
"""TrainConfig fields that do not change what is learned (the data is compared through its sha256)."""


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One training of the study."""

    name: str
    """Folder under the checkpoint root: ``<model>`` for seed 0, ``zoo/<model>-s<k>``, ``zoo/<model>-noise-s<k>``."""
    model: str
    seed: int
    variant: str
    """"" for the plain zoo, :data:`~drive.study.config.VARIANT` for the noise-augmented one."""
    path: Path
    config: TrainConfig

    @property
    def family(self) -> str:
        return self.model + (f"+{self.variant}" if self.variant else "")


def checkpoint_name(model: str, seed: int, variant: str = "") -> str:
    """Seed 0 of a plain family is the shipped ``<model>``; the others live under ``zoo/``."""
    if variant:
        return f"zoo/{model}-{variant}-s{seed}"
    return model if seed == 0 else f"zoo/{model}-s{seed}"


def suite_label(entry: ZooEntry | None) -> str:
    """The folder of a driver's suite results: ``expert``, ``ncp19``, ``ncp19-s1``, …"""
    return "expert" if entry is None else entry.name.replace("zoo/", "")


def build_zoo(cfg: StudyConfig) -> list[ZooEntry]:
    """Every training of the study, each with its TrainConfig (TrainConfig's defaults + the budget)."""
    root = Path(cfg.ckpt_root)
    base = TrainConfig(
        data=cfg.data,
        epochs=cfg.budget.epochs,
        batch_size=cfg.budget.batch_size,
        progress=cfg.progress,
    )
    base = dataclasses.replace(base, **cfg.budget.overrides)
    entries = []
    for variant in [""] + ([VARIANT] if cfg.noise_augment is not None else []):
        for model in cfg.models:
            for seed in cfg.seeds:
                name = checkpoint_name(model, seed, variant)
                train_cfg = dataclasses.replace(base, model=model, seed=seed, out=str(root / name))
                per_family = {
                    "lr_controller": cfg.budget.lr_controller,
                    "lr_head": cfg.budget.lr_head,
                    "epochs": cfg.budget.family_epochs,
                }
                chosen = {field: by[model] for field, by in per_family.items() if model in by}
                train_cfg = dataclasses.replace(train_cfg, **chosen)
                if variant:
                    train_cfg = dataclasses.replace(train_cfg, augment_noise=cfg.noise_augment)
                entries.append(ZooEntry(name, model, seed, variant, root / name, train_cfg))
    return entries


def read_checkpoint_config(path: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def is_finished(entry: ZooEntry) -> bool:
    """Whether ``entry.path`` holds a training of the entry's seed that has done all its epochs."""
    config = read_checkpoint_config(entry.path)
    if config is None or not (entry.path / "model.safetensors").is_file():
        return False
    training, metrics = config.get("training", {}), config.get("metrics", {})
    return (
        isinstance(training, dict)
        and isinstance(metrics, dict)
        and training.get("seed") == entry.seed
        and (metrics.get("epochs_done") or 0) >= entry.config.epochs
    )


def is_interrupted(entry: ZooEntry) -> bool:
    """Whether ``entry.path`` holds an unfinished training that ``resume`` continues."""
    return (entry.path / "config.json").is_file() and (entry.path / "train_state").is_dir()


def stale_reason(entry: ZooEntry, data_sha: str) -> str | None:
    """Why the checkpoint at ``entry.path`` does not belong to the study (other data or options), or None
    (also None when nothing is trained there yet)."""
    config = read_checkpoint_config(entry.path)
    if config is None:
        return None
    data = config.get("data")
    sha = data.get("sha256") if isinstance(data, dict) else None
    if sha != data_sha:
        return f"trained on other data (sha256 {str(sha)[:12]}…, the study's is {data_sha[:12]}…)"
    recorded = config.get("training", {})
    recorded = recorded if isinstance(recorded, dict) else {}
    wanted, defaults = entry.config.to_dict(), TrainConfig().to_dict()
    for key, value in wanted.items():
        if key in NOT_COMPARED:
            continue
        had = recorded.get(key, defaults[key])  # an option newer than the checkpoint had its default
        if had != value:
            return f"trained with {key}={had!r}, the study asks for {value!r}"
    return None


def train_entry(entry: ZooEntry) -> float:
    """Train (or resume) one entry here; returns the wall time, s."""
    from drive.train.loop import train

    cfg = dataclasses.replace(entry.config, resume=is_interrupted(entry))
    entry.path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train(cfg)
    return time.perf_counter() - t0


def _train_remote(cfg: TrainConfig, name: str) -> dict[str, Any]:
    """Body of one Ray task: train into a temporary folder on its node; return the checkpoint's files."""
    import torch

    from drive.train.loop import train

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="drive-zoo-") as tmp:
        out = Path(tmp) / Path(name).name
        out.mkdir()
        train(dataclasses.replace(cfg, out=str(out), resume=False, progress=False))
        files = {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}
    return {"files": files, "elapsed_s": time.perf_counter() - t0}


def train_on_ray(entries: list[ZooEntry], cfg: StudyConfig) -> tuple[dict[str, float], list[str]]:
    """One Ray task per entry; each finished checkpoint is written into its folder here.

    Returns (wall time per trained entry, one line per failed entry)."""
    from tqdm.auto import tqdm

    from drive.eval.backends import connect_ray, import_ray
    from drive.io import atomic_dir

    ray = import_ray()
    started = connect_ray(ray, cfg.address, None)
    timings: dict[str, float] = {}
    failed: list[str] = []
    try:
        gpus = cfg.gpus_per_task
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=cfg.cpus_per_task, num_gpus=gpus, max_retries=2)(_train_remote)
        pending = {task.options(name=f"train:{e.name}").remote(e.config, e.name): e for e in entries}
        with tqdm(total=len(entries), desc="zoo trainings", unit="model", disable=not cfg.progress) as bar:
            try:
                while pending:
                    [ref], _ = ray.wait(list(pending), num_returns=1)
                    entry = pending.pop(ref)
                    bar.update()
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failed.append(f"{entry.name}: {str(exc).strip().splitlines()[-1]}")
                        continue
                    with atomic_dir(entry.path) as tmp:
                        for rel, data in result["files"].items():
                            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                            (tmp / rel).write_bytes(data)
                    timings[entry.name] = result["elapsed_s"]
            except BaseException:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
    finally:
        if started:
            ray.shutdown()
    for line in failed:
        print(f"drive study: training failed: {line}", file=sys.stderr)
    return timings, failed


def summarise(path: Path) -> dict[str, Any]:
    """A checkpoint's size and training figures (NCP paper, Table 2 style), for ``summary.json``."""
    from drive.core.inspect import count_trainable_parameters
    from drive.policy.checkpoint import load_policy, read_config

    config = read_config(path)
    policy = load_policy(path)
    controller = policy.controller
    return {
        "model": config.get("model", path.name),
        "parameters": count_trainable_parameters(policy),
        "controller_parameters": count_trainable_parameters(controller) if controller is not None else 0,
        "best_val_loss": config.get("metrics", {}).get("best_val_loss"),
        "train_time_s": config.get("metrics", {}).get("train_time_s"),
    }
