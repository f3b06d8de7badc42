"""Benchmark the simulator: our env step with the camera, the camera alone, and highway-env's own image env.

All at 78x200 (H x W), simulation 40 Hz, control 20 Hz, no policy (our env is steered by the
expert's steering from ``info``, which it computes anyway; highway-env by a zero action):

- ``env_steps_per_s``: ``DriveEnv.step`` on scenarios/default.yaml, camera on;
- ``env_steps_no_camera_per_s``: the same with ``render_camera=False``;
- ``camera_fps``: ``Camera.render`` alone along the track, plain appearance (scenarios/default.yaml:
  the reference);
- ``camera_fps_randomized``: the same on scenarios/train.yaml's randomized worlds (markings,
  surfaces, light, fog, shadows, camera mount: one drawn world per 500 frames; the scenery is
  painted once per world, untimed, as at a reset), and its ratio to the plain run;
- ``highway_gray_steps_per_s``: highway-env ``racetrack-v0`` (``other_vehicles: 0``) with its
  ``GrayscaleObservation`` at observation_shape (200, 78) (its order is W, H; the observation is
  (1, 200, 78)). ``SDL_VIDEODRIVER`` is left unset: its ``dummy`` value makes those frames black,
  and the bench checks they are not.

Resets are not timed. The last printed line is one JSON object.

    .venv/bin/python tools/bench_sim.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np


def bench_env(steps: int, render_camera: bool) -> float:
    from drive.world.env import DriveEnv

    env = DriveEnv(None, render_camera=render_camera)
    obs, info = env.reset(seed=0)
    elapsed, n = 0.0, 0
    while n < steps:
        action = np.array([info["expert_steering"]], dtype=np.float32)
        t0 = time.perf_counter()
        obs, _, term, trunc, info = env.step(action)
        elapsed += time.perf_counter() - t0
        n += 1
        if term or trunc:
            obs, info = env.reset()
    return n / elapsed


def bench_camera(frames: int, scenarios: tuple[str, ...] = ("default",), frames_per_world: int = 500) -> list[float]:
    """Frames per second of ``Camera.render`` along the ego's lane, one figure per scenario.

    The scenarios take turns, one world of ``frames_per_world`` frames each (so a busy machine
    slows them alike and their ratio holds): each world (track, scenery, camera mount, fog) is
    made by ``DriveEnv.reset`` with the next seed, outside the timing.
    """
    from drive.world.env import DriveEnv

    envs = [DriveEnv(name) for name in scenarios]
    elapsed, n = [0.0] * len(envs), [0] * len(envs)
    seed = 0
    while min(n) < frames:
        for i, env in enumerate(envs):
            env.reset(seed=seed)
            track, cam, scenery = env.track, env.camera, env._scenery
            k = min(frames_per_world, frames - n[i])
            lane = float(track.lane_offsets_m[env.lane])
            poses = [track.pose_at(0.5 * j, lane) for j in range(k)]
            cam.render(scenery, *poses[0])
            t0 = time.perf_counter()
            for p in poses:
                cam.render(scenery, *p)
            elapsed[i] += time.perf_counter() - t0
            n[i] += k
        seed += 1
    return [c / e for c, e in zip(n, elapsed)]


def bench_highway_gray(
    steps: int, height: int = 78, width: int = 200, sim_hz: int = 40, control_hz: int = 20
) -> tuple[float, float]:
    """Steps per second of highway-env's racetrack (``other_vehicles: 0``) with its
    GrayscaleObservation at ``height`` x ``width``, its screen the same size, a zero action; and the
    mean pixel value (0 would mean the black frames of ``SDL_VIDEODRIVER=dummy``). Shared with
    tools/bench_closed_loop.py."""
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers its envs)

    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        raise SystemExit("unset SDL_VIDEODRIVER: with 'dummy' highway-env's image observations are black")
    config = {
        "observation": {
            "type": "GrayscaleObservation",
            "observation_shape": (width, height),
            "stack_size": 1,
            "weights": [0.2989, 0.5870, 0.1140],
            "scaling": 1.75,
        },
        "other_vehicles": 0,
        "simulation_frequency": int(sim_hz),
        "policy_frequency": int(control_hz),
        "screen_width": width,
        "screen_height": height,
        "duration": 10_000,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("racetrack-v0", config=config)
    obs, _ = env.reset(seed=0)
    if obs.shape[-2:] != (width, height):
        raise SystemExit(f"highway-env gave observations of shape {obs.shape}, expected (1, {width}, {height})")
    action = np.zeros(env.action_space.shape, np.float32)
    for _ in range(10):
        env.step(action)
    elapsed, n, means = 0.0, 0, []
    while n < steps:
        t0 = time.perf_counter()
        obs, _, term, trunc, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        n += 1
        means.append(float(obs.mean()))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    if max(means) < 1.0:
        raise SystemExit("highway-env frames are all black: the benchmark would be meaningless")
    return n / elapsed, float(np.mean(means))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="steps (frames) per measurement")
    args = p.parse_args()
    env_sps = bench_env(args.steps, True)
    env_nocam_sps = bench_env(args.steps, False)
    cam_fps, cam_rand_fps = bench_camera(args.steps, ("default", "train"))
    hw_sps, hw_mean = bench_highway_gray(max(300, args.steps // 5))
    result = {
        "env_steps_per_s": round(env_sps, 1),
        "env_steps_no_camera_per_s": round(env_nocam_sps, 1),
        "camera_fps": round(cam_fps, 1),
        "camera_us_per_frame": round(1e6 / cam_fps, 1),
        "camera_fps_randomized": round(cam_rand_fps, 1),
        "camera_randomized_vs_plain": round(cam_rand_fps / cam_fps, 3),
        "highway_gray_steps_per_s": round(hw_sps, 1),
        "highway_gray_mean_pixel": round(hw_mean, 1),
        "speedup_vs_highway_gray": round(env_sps / hw_sps, 2),
        "resolution_hw": [78, 200],
        "sim_hz": 40,
        "control_hz": 20,
        "steps": args.steps,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(
        f"env {env_sps:.0f} steps/s (no camera {env_nocam_sps:.0f}), camera {cam_fps:.0f} fps "
        f"(randomized worlds {cam_rand_fps:.0f} fps, x{cam_rand_fps / cam_fps:.2f}), "
        f"highway-env gray {hw_sps:.0f} steps/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
