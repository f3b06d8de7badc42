"""Benchmark: replay's closed loop against the simulator's, steps per second, in one run (issue 25's target:
replay runs at least as many steps per second as the simulator's closed loop).

One test-track episode of ``--duration-s`` s is recorded by the expert (``scenarios/default.yaml``, kept in
``--data`` and reused). The same checkpoint (default the shipped ncp19, torch runtime, one thread) then
drives, through the one rollout (:func:`drive.eval.rollout.run_episode`, batch 1):

- ``replay_steps_per_s``: ``drive/Replay-v0`` on that recorded episode (each observation the decoded
  recorded frame re-rendered from the learner's pose);
- ``sim_steps_per_s``: ``drive/Drive-v0`` on the same track from the same start (the recorded episode's
  ``reset_seed`` and ``track_seed``), recover mode, for the same number of steps;

and, to split the env's cost from the network's, the same two loops with a constant steering of 0
(``replay_env_only_steps_per_s``, ``sim_env_only_steps_per_s``). Each figure is steps / wall time of a whole
``run_episode`` (its reset included) after a warm-up run; rounds alternate the measurements so that a busy
machine slows them alike, and medians over ``--rounds`` are reported. ``decode_frames_per_s``: the dataset's
H.264 decoding of the episode (replay decodes an episode's video once per reset of another episode).
``ratio`` = replay / sim. The last printed line is one JSON object.

    .venv/bin/python tools/bench_replay.py [--duration-s 30] [--rounds 3] [--checkpoint ncp19]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from drive.data.reader import DatasetReader
from drive.eval.rollout import make_env, run_episode
from drive.policy.load import load_driver
from drive.policy.reference import ConstantPolicy
from drive.replay.check import PathInterventions, record_test_episodes
from drive.replay.env import ReplayEnv
from drive.world.scenario import Scenario


def timed(driver, env, seed: int = 0) -> float:
    """Steps per second of one ``run_episode``, its reset included."""
    start = time.perf_counter()
    log = run_episode(driver, env, seed)
    return len(log.steering) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("runs/bench-replay/data"), help="the recorded episode (reused)")
    ap.add_argument("--duration-s", type=float, default=30.0, help="episode length, s (default 30)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported (default 3)")
    ap.add_argument("--checkpoint", default="ncp19", help="the driver (default the shipped ncp19)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = args.data
    record_test_episodes("default", data, 1, args.duration_s)
    reader = DatasetReader(data)
    episode = reader.episodes[0]
    meta = reader.episode_meta(episode)
    steps = reader.episode_length(episode) - 1
    t = time.perf_counter()
    frames = reader.read_frames(episode)
    decode_fps = len(frames) / (time.perf_counter() - t)

    driver = load_driver(args.checkpoint)
    replay_env = ReplayEnv(data, [episode])
    base = Scenario.from_dict(reader.info.scenario)
    sim_env = PathInterventions(
        make_env(dataclasses.replace(base, duration_s=steps / base.control_hz), off_road="recover"),
        max_offset_m=float("inf"),  # the simulator's own closed loop: no intervention rule
        max_heading_rad=float("inf"),
        start=(int(meta["reset_seed"]), int(meta["track_seed"])),
    )
    loops = {
        "replay_steps_per_s": (driver, replay_env),
        "sim_steps_per_s": (driver, sim_env),
        "replay_env_only_steps_per_s": (ConstantPolicy(0.0), replay_env),
        "sim_env_only_steps_per_s": (ConstantPolicy(0.0), sim_env),
    }
    for d, env in loops.values():  # warm-up: frames decoded, rasters cached, kernels ready
        run_episode(d, env, 0)
    runs: dict[str, list[float]] = {k: [] for k in loops}
    for r in range(args.rounds):
        for name, (d, env) in loops.items():
            runs[name].append(timed(d, env))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()), flush=True)
    med = {k: float(np.median(v)) for k, v in runs.items()}
    summary = {
        "bench": "replay",
        "checkpoint": args.checkpoint,
        "steps_per_episode": steps,
        **{k: round(v, 1) for k, v in med.items()},
        "ratio": round(med["replay_steps_per_s"] / med["sim_steps_per_s"], 3),
        "env_only_ratio": round(med["replay_env_only_steps_per_s"] / med["sim_env_only_steps_per_s"], 3),
        "decode_frames_per_s": round(decode_fps, 1),
        "target_met": med["replay_steps_per_s"] >= med["sim_steps_per_s"],
        "rounds": args.rounds,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(
        f"replay {med['replay_steps_per_s']:.0f} steps/s, simulator {med['sim_steps_per_s']:.0f} steps/s "
        f"(ratio {summary['ratio']:.2f}); env only: replay {med['replay_env_only_steps_per_s']:.0f}, "
        f"simulator {med['sim_env_only_steps_per_s']:.0f}; decoding {decode_fps:.0f} frames/s"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
