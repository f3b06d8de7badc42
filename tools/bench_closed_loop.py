"""Benchmark: closed-loop driving speed, batch 1 and batched, against highway-env's own grayscale racetrack.

Measures, in one run (steps per second of wall time, after a warm-up; the median of ``--rounds``
alternating rounds):

- ``closed_loop_steps_per_s``: the full loop of ``drive simulate`` (``run_episode``: simulation +
  camera + ncp19 policy), one env, batch 1, on the default runtime (``drive simulate --runtime``'s
  default); ``closed_loop_torch_steps_per_s`` and ``closed_loop_onnx_steps_per_s`` for each runtime;
- ``env_only_steps_per_s``: the same env and camera with the expert (no network);
- ``batched_sync_steps_per_s`` / ``batched_async_steps_per_s``: ``--envs`` envs of
  ``gymnasium.make_vec("drive/Drive-v0", vectorization_mode="sync" | "async")`` (``SyncVectorEnv``
  in this process, ``AsyncVectorEnv`` one worker process per env) stepping while one batched call of
  the default runtime serves them all (env steps per second over all envs);
- ``import_to_first_step_s``: a fresh ``python`` process, from its start to the first env step
  driven by the policy (imports, checkpoint load on the default runtime with its ONNX export
  already cached, env reset, one policy step, one env step); the median of ``--rounds`` processes;
- ``highway_gray_steps_per_s``: highway-env's ``racetrack-v0`` with no other vehicles and
  ``GrayscaleObservation`` at the same 78x200 resolution and the same sim/control frequencies,
  stepped with a zero action and no policy (reset time excluded);
- ``speedup_vs_highway_gray`` = closed_loop / highway_gray (target >= 4; ``import_to_first_step_s``
  target <= 2.5 s).

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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from drive.eval.rollout import make_env, run_episode
from drive.policy.load import DEFAULT_RUNTIME, load_driver
from drive.policy.reference import ExpertPolicy
from drive.world.scenario import Scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim import bench_highway_gray


def load_ncp19(checkpoint: Path, runtime: str):
    if (checkpoint / "config.json").is_file():
        return load_driver(checkpoint, runtime), str(checkpoint.name)
    from drive.policy.model import build_policy

    if runtime != "torch":
        raise SystemExit(f"{checkpoint}: no checkpoint; the {runtime} runtime needs one")
    torch.manual_seed(0)
    return build_policy("ncp19", frame_period_s=0.05, max_steer_rad=0.35).eval(), "untrained ncp19"


FIRST_STEP = """
import sys
from pathlib import Path
import numpy as np
from drive.eval.simulate import make_env, resolve_scenario
from drive.policy.load import load_driver
policy = load_driver(Path(sys.argv[1]), sys.argv[2])
env = make_env(resolve_scenario("default"))
obs, info = env.reset(seed=0)
steering, state = policy.step(obs[None], policy.initial_state(1), np.array([0.05]))
env.step(np.array([float(steering[0])], np.float32))
print("first step", flush=True)
"""


def import_to_first_step(checkpoint: Path, runtime: str, threads: int) -> float:
    """Seconds from starting a fresh Python process to its first env step driven by the policy."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", FIRST_STEP, str(checkpoint), runtime],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    assert "first step" in out.stdout, out.stderr
    return elapsed


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


def batched(policy, scenario: Scenario, n_envs: int, steps: int, mode: str) -> float:
    """Env steps per second of ``gymnasium.make_vec`` (``mode`` sync or async) with ``n_envs`` envs,
    served by one batched policy call per control step."""
    import gymnasium

    import drive.world  # noqa: F401  (registers drive/Drive-v0)

    sc = dataclasses.replace(scenario, duration_s=(steps + 10) / scenario.control_hz)
    envs = gymnasium.make_vec(
        "drive/Drive-v0", num_envs=n_envs, vectorization_mode=mode, scenario=sc, off_road="recover"
    )
    obs, _ = envs.reset(seed=100)
    state = policy.initial_state(n_envs)
    dt = np.full(n_envs, 1.0 / sc.control_hz, np.float32)
    scale = policy.max_steer_rad / sc.max_steer_rad

    def one_step(obs, state):
        steering, state = policy.step(obs, state, dt)
        actions = np.clip(np.nan_to_num(np.asarray(steering, np.float32) * scale), -1.0, 1.0)[:, None]
        return envs.step(actions)[0], state

    try:
        for _ in range(10):  # warm-up
            obs, state = one_step(obs, state)
        start = time.perf_counter()
        for _ in range(steps):
            obs, state = one_step(obs, state)
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    return n_envs * steps / elapsed


def highway_gray(scenario: Scenario, steps: int) -> float:
    """Steps per second of highway-env's racetrack with a grayscale camera at the scenario's resolution, no policy."""
    sps, _ = bench_highway_gray(
        steps, scenario.camera.height, scenario.camera.width, int(scenario.sim_hz), int(scenario.control_hz)
    )
    return sps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed control steps per measurement")
    parser.add_argument("--envs", type=int, default=8, help="envs served by one batched policy call")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch CPU threads (default: torch's, one per core)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--checkpoint", default=str(REPO_ROOT / "checkpoints" / "ncp19"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = Scenario()
    checkpoint = Path(args.checkpoint)
    policies = {rt: load_ncp19(checkpoint, rt) for rt in ("torch", "onnx")}
    default = policies[DEFAULT_RUNTIME][0]
    source = policies["torch"][1]

    # rounds alternate the measurements so that a busy machine slows them alike; medians are reported
    keys = (
        "closed_loop_torch",
        "closed_loop_onnx",
        "env_only",
        "batched_sync",
        "batched_async",
        "highway_gray",
        "import_to_first_step_s",
    )
    runs: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(args.rounds):
        for rt in ("torch", "onnx"):
            runs[f"closed_loop_{rt}"].append(closed_loop(policies[rt][0], scenario, args.steps))
        runs["env_only"].append(closed_loop(ExpertPolicy(), scenario, args.steps))
        for mode in ("sync", "async"):
            runs[f"batched_{mode}"].append(
                batched(default, scenario, args.envs, max(50, args.steps // args.envs), mode)
            )
        runs["highway_gray"].append(highway_gray(scenario, args.steps))
        runs["import_to_first_step_s"].append(import_to_first_step(checkpoint, DEFAULT_RUNTIME, args.threads))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items()), flush=True)
    med = {k: float(np.median(v)) for k, v in runs.items()}
    cl, hw = med[f"closed_loop_{DEFAULT_RUNTIME}"], med["highway_gray"]
    print(f"closed loop (batch 1), torch:  {med['closed_loop_torch']:8.1f} steps/s")
    print(
        f"closed loop (batch 1), onnx:   {med['closed_loop_onnx']:8.1f} steps/s   (default runtime: {DEFAULT_RUNTIME})"
    )
    print(f"env + camera (expert, no NN):  {med['env_only']:8.1f} steps/s")
    print(f"batched ({args.envs} envs, SyncVectorEnv):  {med['batched_sync']:8.1f} env steps/s")
    print(f"batched ({args.envs} envs, AsyncVectorEnv): {med['batched_async']:8.1f} env steps/s")
    print(f"highway racetrack grayscale:   {hw:8.1f} steps/s")
    print(f"import to first step:          {med['import_to_first_step_s']:8.2f} s")
    result = {
        "closed_loop_steps_per_s": round(cl, 1),
        "closed_loop_torch_steps_per_s": round(med["closed_loop_torch"], 1),
        "closed_loop_onnx_steps_per_s": round(med["closed_loop_onnx"], 1),
        "default_runtime": DEFAULT_RUNTIME,
        "env_only_steps_per_s": round(med["env_only"], 1),
        "batched_sync_steps_per_s": round(med["batched_sync"], 1),
        "batched_async_steps_per_s": round(med["batched_async"], 1),
        "batched_envs": args.envs,
        "highway_gray_steps_per_s": round(hw, 1),
        "speedup_vs_highway_gray": round(cl / hw, 2),
        "onnx_speedup_vs_torch_batch1": round(med["closed_loop_onnx"] / med["closed_loop_torch"], 2),
        "batched_async_speedup_vs_sync": round(med["batched_async"] / med["batched_sync"], 2),
        "env_only_speedup_vs_highway_gray": round(med["env_only"] / hw, 2),
        "import_to_first_step_s": round(med["import_to_first_step_s"], 2),
        "targets_met": {
            "speedup_vs_highway_gray": cl / hw >= 4,
            "import_to_first_step_s": med["import_to_first_step_s"] <= 2.5,
        },
        "policy": source,
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps,
        "rounds": args.rounds,
        "per_round": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "control_hz": scenario.control_hz,
        "sim_hz": scenario.sim_hz,
        "image_hw": [scenario.camera.height, scenario.camera.width],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
