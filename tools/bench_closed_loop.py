"""Benchmark: closed-loop driving speed, batch 1 and batched, against highway-env's own grayscale racetrack.

Measures, in one run (steps per second of wall time, after a warm-up; the median of ``--rounds``
alternating rounds):

- ``closed_loop_steps_per_s``: the full loop of ``drive simulate`` (``run_episode``: simulation +
  camera + ncp19 policy), one env, batch 1;
- ``env_only_steps_per_s``: the same env and camera with the expert (no network);
- ``batched_steps_per_s``: ``--envs`` envs stepping while one batched policy call serves them all
  (env steps per second over all envs);
- ``highway_gray_steps_per_s``: highway-env's ``racetrack-v0`` with no other vehicles and
  ``GrayscaleObservation`` at the same 78x200 resolution and the same sim/control frequencies,
  stepped with a zero action and no policy (reset time excluded);
- ``speedup_vs_highway_gray`` = closed_loop / highway_gray (target >= 2).

The policy is the shipped ``checkpoints/ncp19`` when present, else an untrained ncp19.
The last printed line is one JSON object.

    .venv/bin/python tools/bench_closed_loop.py [--steps 400] [--envs 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from drive.eval.rollout import clamp_steering, make_env, run_episode
from drive.policy.reference import ExpertPolicy
from drive.world.scenario import Scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim import bench_highway_gray  # noqa: E402  (the same highway-env measurement as tools/bench_sim.py)


def load_ncp19(checkpoint: Path):
    if (checkpoint / "config.json").is_file():
        from drive.policy.checkpoint import load_policy

        return load_policy(checkpoint), str(checkpoint)
    from drive.policy.model import build_policy

    torch.manual_seed(0)
    return build_policy("ncp19", frame_period_s=0.05, max_steer_rad=0.35).eval(), "untrained ncp19"


def closed_loop(policy, scenario: Scenario, steps: int) -> float:
    """Steps per second of ``run_episode`` (one env, batch 1)."""
    env = make_env(dataclasses.replace(scenario, duration_s=20 / scenario.control_hz))
    run_episode(policy, env, seed=1)  # warm-up on the same track: its raster is cached, torch kernels are ready
    env = make_env(dataclasses.replace(scenario, duration_s=steps / scenario.control_hz))
    start = time.perf_counter()
    log = run_episode(policy, env, seed=1)
    elapsed = time.perf_counter() - start
    env.close()
    return len(log.steering) / elapsed


def batched(policy, scenario: Scenario, n_envs: int, steps: int) -> float:
    """Env steps per second of ``n_envs`` envs served by one batched policy call per control step."""
    sc = dataclasses.replace(scenario, duration_s=(steps + 10) / scenario.control_hz)
    envs = [make_env(sc) for _ in range(n_envs)]
    obs = [env.reset(seed=100 + i)[0] for i, env in enumerate(envs)]
    state = policy.initial_state(n_envs)
    dt = np.full(n_envs, 1.0 / sc.control_hz, np.float32)
    scale = policy.max_steer_rad / sc.max_steer_rad

    def one_step(obs, state):
        steering, state = policy.step(np.stack(obs), state, dt)
        out = []
        for env, s in zip(envs, steering):
            action = np.array([clamp_steering(float(s) * scale)[0]], np.float32)
            out.append(env.step(action)[0])
        return out, state

    for _ in range(10):  # warm-up
        obs, state = one_step(obs, state)
    start = time.perf_counter()
    for _ in range(steps):
        obs, state = one_step(obs, state)
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return n_envs * steps / elapsed


def highway_gray(scenario: Scenario, steps: int) -> float:
    """Steps per second of highway-env's racetrack with a grayscale camera at the scenario's resolution, no policy."""
    sps, _ = bench_highway_gray(steps, scenario.camera.height, scenario.camera.width,
                                int(scenario.sim_hz), int(scenario.control_hz))
    return sps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed control steps per measurement")
    parser.add_argument("--envs", type=int, default=8, help="envs served by one batched policy call")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--checkpoint", default=str(REPO_ROOT / "checkpoints" / "ncp19"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = Scenario()
    policy, source = load_ncp19(Path(args.checkpoint))

    # rounds alternate the measurements so that a busy machine slows them alike; medians are reported
    runs: dict[str, list[float]] = {"closed_loop": [], "env_only": [], "batched": [], "highway_gray": []}
    for r in range(args.rounds):
        runs["closed_loop"].append(closed_loop(policy, scenario, args.steps))
        runs["env_only"].append(closed_loop(ExpertPolicy(), scenario, args.steps))
        runs["batched"].append(batched(policy, scenario, args.envs, max(50, args.steps // args.envs)))
        runs["highway_gray"].append(highway_gray(scenario, args.steps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
    cl, env_only, bt, hw = (float(np.median(runs[k])) for k in ("closed_loop", "env_only", "batched", "highway_gray"))
    print(f"closed loop (batch 1):        {cl:8.1f} steps/s")
    print(f"env + camera (expert, no NN): {env_only:8.1f} steps/s")
    print(f"batched ({args.envs} envs, 1 call):    {bt:8.1f} env steps/s")
    print(f"highway racetrack grayscale:  {hw:8.1f} steps/s")
    result = {
        "closed_loop_steps_per_s": round(cl, 1),
        "env_only_steps_per_s": round(env_only, 1),
        "batched_steps_per_s": round(bt, 1),
        "batched_envs": args.envs,
        "highway_gray_steps_per_s": round(hw, 1),
        "speedup_vs_highway_gray": round(cl / hw, 2),
        "batched_speedup_vs_batch1": round(bt / cl, 2),
        "env_only_speedup_vs_highway_gray": round(env_only / hw, 2),
        "policy": source,
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps,
        "rounds": args.rounds,
        "per_round": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "control_hz": scenario.control_hz,
        "sim_hz": scenario.sim_hz,
        "image_hw": [scenario.camera.height, scenario.camera.width],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
