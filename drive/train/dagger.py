"""DAgger rounds (`drive train ... --dagger-rounds K --scenario S`): the learner drives, the expert labels.

After the first training (:func:`drive.train.loop.train`), each round k = 1..K:

1. loads the best policy of ``OUT`` and drives ``--dagger-episodes`` episodes of the scenario with it
   through the rollout (:func:`drive.eval.rollout.run_episode`, as ``drive simulate`` does: the same
   steering scale, and a non-finite steering is clamped and counted, not a crash;
   ``off_road="recover"``: when the learner leaves the road the car is put back, so an episode keeps
   its full length and the data covers the states the learner gets itself into);
2. labels every frame with the expert's steering for that state (``info["expert_steering"]``), converted
   from the scenario's ``max_steer_rad`` to the dataset's;
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
from drive.errors import UserError
from drive.eval.rollout import Step, make_env, run_episode
from drive.io import atomic_dir, atomic_write_json, read_json
from drive.policy.checkpoint import TRAIN_STATE_DIR
from drive.policy.load import load_driver
from drive.policy.protocol import Driver
from drive.train.config import TrainConfig
from drive.train.loop import TrainResult, hold_out, train

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


class _Labeller:
    """Observer of the rollout: each step's clean frame, the expert's label, what the car got and the info columns.

    Steering is stored in the dataset's units: a value v of the env stands for v * ``scenario.max_steer_rad``
    rad, which is v * ``to_dataset`` of the dataset's (``to_dataset`` = scenario / dataset max_steer_rad).
    """

    def __init__(self, to_dataset: float) -> None:
        self.to_dataset = to_dataset
        self.frames: list[np.ndarray] = []
        self.labels: list[float] = []
        self.applied: list[float] = []
        self.columns: dict[str, list[float]] = {c: [] for c in INFO_COLUMNS}
        self.last_info: dict = {}

    def __call__(self, step: Step) -> None:
        self.frames.append(np.array(step.clean_frame))
        self.labels.append(step.expert_steering * self.to_dataset)
        self.applied.append(step.applied * self.to_dataset)
        for column, key in INFO_COLUMNS.items():
            self.columns[column].append(float(step.clean_info[key]))
        self.last_info = step.info


def drive_episode(policy: Driver, env, reset_seed: int, dataset_max_steer_rad: float) -> dict[str, Any]:
    """One episode driven by ``policy`` through the rollout (:func:`drive.eval.rollout.run_episode`: the same
    steering scale and clamp of non-finite steering as ``drive simulate``), labelled by the expert.

    Returns the frames, the expert's labels and the applied steering (both in the units of a dataset whose
    steering 1.0 is ``dataset_max_steer_rad``), the info columns, and the episode's figures.
    """
    scenario = env.unwrapped.scenario
    labeller = _Labeller(scenario.max_steer_rad / dataset_max_steer_rad)
    log = run_episode(policy, env, reset_seed, observers=[labeller])
    return {
        "frames": labeller.frames,
        "labels": np.array(labeller.labels, np.float32),
        "applied": np.array(labeller.applied, np.float32),
        "columns": {k: np.array(v, np.float32) for k, v in labeller.columns.items()},
        "dt_s": 1.0 / scenario.control_hz,
        "nonfinite_actions": log.nonfinite_actions,
        "off_road_events": log.off_road_events,
        "distance_m": log.distance_m,
    }


def write_episode(writer: DatasetWriter, ep: dict[str, Any], round_index: int) -> int:
    """Append one driven episode to the aggregate (training split only); returns its episode index."""
    n = len(ep["labels"])
    return writer.add_episode(
        iter(ep["frames"]),
        ep["labels"],
        np.arange(n) * ep["dt_s"],
        columns={**ep["columns"], layout.STEERING_APPLIED: ep["applied"]},
        episode_meta={"source": DAGGER_SOURCE, "split": "train", "dagger_round": round_index},
    )


def collect_round(
    policy: Driver,
    env,
    writer: DatasetWriter,
    round_index: int,
    episodes: int,
    seed: int,
    dataset_max_steer_rad: float,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Drive ``episodes`` labelled episodes with ``policy`` and append them to ``writer``; returns per-episode stats.

    Episode seeds come from (seed, round, episode).
    """
    stats = []
    for e in tqdm(range(episodes), desc=f"dagger round {round_index}", unit="episode", disable=not progress):
        reset_seed = int(np.random.SeedSequence([seed, round_index, e]).generate_state(1)[0])
        ep = drive_episode(policy, env, reset_seed, dataset_max_steer_rad)
        index = write_episode(writer, ep, round_index)
        stats.append(
            {
                "episode": index,
                "frames": len(ep["labels"]),
                "off_road_events": ep["off_road_events"],
                "distance_m": ep["distance_m"],
                "nonfinite_actions": ep["nonfinite_actions"],
                "mean_abs_error": float(np.mean(np.abs(ep["applied"] - ep["labels"]))),
            }
        )
    return stats


def in_dagger_phase(out: str | os.PathLike, recorded_data: dict[str, Any]) -> bool:
    """Whether the checkpoint in ``out`` was last trained by a DAgger round (on ``OUT/dagger-data``), given
    the ``data`` section of its config.json: ``--resume`` then goes on with DAgger rounds only."""
    return recorded_data.get("name") == AGGREGATE_DIR and (Path(out) / AGGREGATE_DIR).is_dir()


def run_dagger(cfg: TrainConfig) -> TrainResult:
    """Run ``cfg.dagger_rounds`` rounds after the training that wrote ``cfg.out``; returns the last training.

    Holds ``OUT``'s lock throughout. ``OUT/dagger.json`` records the original dataset's fingerprint
    (``source``) when the aggregate is started; later rounds refuse a ``--data`` with other content.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--dagger-rounds: DAgger runs in one process; do not start it under torchrun")
    with hold_out(cfg.out):
        return _run_dagger(cfg)


def _run_dagger(cfg: TrainConfig) -> TrainResult:
    from drive.data.reader import snapshot
    from drive.world.scenario import as_scenario

    out, data = Path(cfg.out), Path(cfg.data)
    scenario = as_scenario(cfg.scenario)
    if cfg.dagger_duration_s:
        scenario = dataclasses.replace(scenario, duration_s=float(cfg.dagger_duration_s))
    info = layout.read_info(data)
    if (scenario.camera.height, scenario.camera.width) != (info.image_height, info.image_width):
        raise UserError(
            f"--scenario {cfg.scenario}: camera {scenario.camera.height}x{scenario.camera.width} differs "
            f"from the dataset's {info.image_height}x{info.image_width} ({layout.info_path(data)})"
        )
    if abs(scenario.control_hz - info.fps) > 1e-9:
        raise UserError(
            f"--scenario {cfg.scenario}: control_hz {scenario.control_hz} differs from the dataset's "
            f"fps {info.fps} ({layout.info_path(data)})"
        )
    aggregate = out / AGGREGATE_DIR
    report_path = out / "dagger.json"
    _, source = snapshot(data)
    if not (aggregate / "meta" / "info.json").exists():
        start_aggregate(data, aggregate)
        atomic_write_json(report_path, {"scenario": scenario.name, "source": source, "rounds": []})
    report = read_json(report_path, "DAgger report", expect=dict) if report_path.exists() else {}
    recorded = report.get("source")
    if isinstance(recorded, dict) and recorded.get("sha256") != source["sha256"]:
        raise UserError(
            f"--data {cfg.data}: its content differs from the dataset the DAgger rounds of {out} started from "
            f"({report_path}: source {recorded.get('name')!r}); resume with that dataset"
        )
    rounds = report.get("rounds", [])
    if not isinstance(rounds, list):
        raise UserError(f"{report_path}: field 'rounds' is {type(rounds).__name__}, expected an array")
    env = make_env(scenario, off_road="recover")
    result = None
    try:
        for k in range(len(rounds) + 1, len(rounds) + cfg.dagger_rounds + 1):
            policy = load_driver(out)
            writer = DatasetWriter(aggregate, info)
            stats = collect_round(
                policy, env, writer, k, cfg.dagger_episodes, cfg.seed, info.max_steer_rad, progress=cfg.progress
            )
            writer.close()
            done = json.loads((out / TRAIN_STATE_DIR / "state.json").read_text())["epoch"]
            round_cfg = dataclasses.replace(
                cfg,
                data=str(aggregate),
                cache_dir="",
                resume=True,
                max_steps=0,
                epochs=done + cfg.dagger_epochs,
                dagger_rounds=0,
            )
            result = train(round_cfg, dagger_round=True)
            rounds.append(
                {
                    "round": k,
                    "episodes": stats,
                    "best_val_loss": result.progress["best_val_loss"],
                    "epochs_done": result.progress["epoch"],
                }
            )
            atomic_write_json(report_path, {"scenario": scenario.name, "source": source, "rounds": rounds})
    finally:
        env.close()
    return result
