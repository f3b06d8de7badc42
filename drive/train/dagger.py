"""DAgger rounds (`drive train ... --dagger-rounds K --scenario S`): the learner drives, the expert labels.

After the first training (:func:`drive.train.loop.train`), each round k = 1..K:

1. loads the best policy of ``OUT`` and drives ``--dagger-episodes`` episodes of the scenario with it
   (``off_road="recover"``: when the learner leaves the road the car is put back, so an episode keeps
   its full length and the data covers the states the learner gets itself into);
2. labels every frame with the expert's steering for that state (``info["expert_steering"]``);
3. appends these episodes to the aggregated dataset ``OUT/dagger-data`` (a copy of ``--data`` made at
   the first round) with ``split="train"`` in their meta row, so they only ever train and the
   validation episodes, and therefore the best-model choice, stay those of the original data;
4. continues training (``--resume``) on the aggregate for ``--dagger-epochs`` more epochs.

Per-round driving statistics go to ``OUT/dagger.json``. Episode seeds come from (seed, round, episode).
DAgger runs in one process (not under torchrun).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from drive.data import layout
from drive.data.writer import DatasetWriter
from drive.io import atomic_dir, atomic_write_json
from drive.policy.checkpoint import TRAIN_STATE_DIR, load_policy
from drive.policy.model import DrivingPolicy
from drive.train.config import TrainConfig
from drive.train.loop import TrainResult, train

DAGGER_SOURCE = "drive train --dagger-rounds"
AGGREGATE_DIR = "dagger-data"
INFO_COLUMNS = {  # dataset column <- env info key
    layout.CURVATURE: "curvature_ahead_inv_m",
    layout.SPEED: "speed_mps",
    layout.LATERAL_OFFSET: "lateral_offset_m",
    layout.HEADING_ERROR: "heading_error_rad",
}


def start_aggregate(data: Path, aggregate: Path) -> None:
    """Copy the dataset's episodes and info (not its frame cache) to ``aggregate``, atomically."""
    with atomic_dir(aggregate) as tmp:
        for part in ("meta", "data", "videos"):
            if (data / part).exists():
                shutil.copytree(data / part, tmp / part)


def drive_episode(policy: DrivingPolicy, env, reset_seed: int) -> dict[str, Any]:
    """One episode driven by ``policy`` in ``env``; frames, expert labels, applied steering and info columns."""
    obs, info = env.reset(seed=reset_seed)
    dt = float(info["dt_s"])
    frames, labels, applied, columns = [], [], [], {c: [] for c in INFO_COLUMNS}
    state = None
    while True:
        frames.append(np.array(obs))
        labels.append(float(info["expert_steering"]))
        for column, key in INFO_COLUMNS.items():
            columns[column].append(float(info[key]))
        steering, state = policy.step(obs[None], state, np.array([dt]))
        u = float(np.clip(steering[0], -1.0, 1.0))
        applied.append(u)
        obs, _, terminated, truncated, info = env.step(np.array([u], dtype=np.float32))
        if terminated or truncated:
            break
    return {"frames": frames, "labels": np.array(labels, np.float32), "applied": np.array(applied, np.float32),
            "columns": {k: np.array(v, np.float32) for k, v in columns.items()}, "dt_s": dt,
            "off_road_events": int(info["off_road_events"]), "distance_m": float(info["distance_m"])}


def run_dagger(cfg: TrainConfig) -> TrainResult:
    """Run ``cfg.dagger_rounds`` rounds after the training that wrote ``cfg.out``; returns the last training."""
    from drive.world.env import DriveEnv
    from drive.world.scenario import as_scenario

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--dagger-rounds: DAgger runs in one process; do not start it under torchrun")
    out, data = Path(cfg.out), Path(cfg.data)
    scenario = as_scenario(cfg.scenario)
    if cfg.dagger_duration_s:
        scenario = dataclasses.replace(scenario, duration_s=float(cfg.dagger_duration_s))
    info = layout.read_info(data)
    if (scenario.camera.height, scenario.camera.width) != (info.image_height, info.image_width):
        raise ValueError(f"--scenario {cfg.scenario}: camera {scenario.camera.height}x{scenario.camera.width} differs "
                         f"from the dataset's {info.image_height}x{info.image_width} ({layout.info_path(data)})")
    if abs(scenario.control_hz - info.fps) > 1e-9:
        raise ValueError(f"--scenario {cfg.scenario}: control_hz {scenario.control_hz} differs from the dataset's "
                         f"fps {info.fps} ({layout.info_path(data)})")
    aggregate = out / AGGREGATE_DIR
    if not (aggregate / "meta" / "info.json").exists():
        start_aggregate(data, aggregate)
    report_path = out / "dagger.json"
    rounds = json.loads(report_path.read_text())["rounds"] if report_path.exists() else []
    env = DriveEnv(scenario, off_road="recover")
    result = None
    try:
        for k in range(len(rounds) + 1, len(rounds) + cfg.dagger_rounds + 1):
            policy = load_policy(out).eval()
            writer = DatasetWriter(aggregate, info)
            stats = []
            for e in tqdm(range(cfg.dagger_episodes), desc=f"dagger round {k}", unit="episode",
                          disable=not cfg.progress):
                seed = int(np.random.SeedSequence([cfg.seed, k, e]).generate_state(1)[0])
                ep = drive_episode(policy, env, seed)
                n = len(ep["labels"])
                index = writer.add_episode(iter(ep["frames"]), ep["labels"], np.arange(n) * ep["dt_s"],
                                           columns={**ep["columns"], layout.STEERING_APPLIED: ep["applied"]},
                                           episode_meta={"source": DAGGER_SOURCE, "split": "train", "dagger_round": k})
                stats.append({"episode": index, "frames": n, "off_road_events": ep["off_road_events"],
                              "distance_m": ep["distance_m"],
                              "mean_abs_error": float(np.mean(np.abs(ep["applied"] - ep["labels"])))})
            writer.close()
            done = json.loads((out / TRAIN_STATE_DIR / "state.json").read_text())["epoch"]
            round_cfg = dataclasses.replace(cfg, data=str(aggregate), cache_dir="", resume=True, max_steps=0,
                                            epochs=done + cfg.dagger_epochs, dagger_rounds=0)
            result = train(round_cfg)
            rounds.append({"round": k, "episodes": stats, "best_val_loss": result.progress["best_val_loss"],
                           "epochs_done": result.progress["epoch"]})
            atomic_write_json(report_path, {"scenario": scenario.name, "rounds": rounds})
    finally:
        env.close()
    return result
