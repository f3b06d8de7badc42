"""Benchmark video encoding: OpenCV mp4v (what drive wrote before) against H.264/yuv420p via PyAV (now).

Frames are real: ``--frames`` steps of DriveEnv on scenarios/default.yaml driven by the expert, composed
as ``drive simulate`` composes them (camera x2, steering bars, top-down map, neuron strip; 720x372) and,
separately, the bare camera frames a dataset stores (78x200). Each encoder writes every frame to a file
in a temporary folder; composing and rendering are not timed. Also timed, for scale: one ``DriveEnv.step``
with its top-down render and composition, the per-step work ``drive simulate`` does besides encoding.

Reported per encoder and frame size: ms per frame, the ratio to mp4v in the same run (below 1: faster
than mp4v), and bytes per frame. The last printed line is one JSON object.

    .venv/bin/python tools/bench_video.py [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def make_frames(n: int) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    from drive.eval.video import Compositor
    from drive.world.env import DriveEnv

    env = DriveEnv(None)
    obs, info = env.reset(seed=0)
    comp = Compositor(obs.shape[:2], [f"n{i}" for i in range(19)])
    rng = np.random.default_rng(0)
    cams, pics, path = [], [], []
    t_step = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        obs, _, term, trunc, info = env.step(np.array([info["expert_steering"]], dtype=np.float32))
        path.append((info["x_m"], info["y_m"]))
        top = env.render_topdown(path_xy=np.asarray(path))
        pic = comp.compose(obs, info["expert_steering"], info["expert_steering"], top, rng.normal(size=19), ["bench"])
        t_step += time.perf_counter() - t0
        cams.append(obs.copy())
        pics.append(pic)
        if term or trunc:
            obs, info = env.reset(seed=len(pics))
            path = []
    env.close()
    return cams, pics, 1000.0 * t_step / n


def time_mp4v(frames: list[np.ndarray], path: Path, fps: float) -> tuple[float, int]:
    import cv2

    h, w = frames[0].shape[:2]
    t0 = time.perf_counter()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return time.perf_counter() - t0, path.stat().st_size


def time_h264(frames: list[np.ndarray], path: Path, fps: float, **options) -> tuple[float, int]:
    from drive.video_io import VideoWriter

    h, w = frames[0].shape[:2]
    t0 = time.perf_counter()
    with VideoWriter(path, fps, (h, w), **options) as vw:
        for f in frames:
            vw.write(f)
    return time.perf_counter() - t0, path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    cams, pics, step_ms = make_frames(args.frames)
    print(f"{args.frames} frames; DriveEnv.step + top-down + compose: {step_ms:.2f} ms/step")
    encoders = {
        "mp4v": lambda fr, p: time_mp4v(fr, p, 20.0),
        "h264 ultrafast": lambda fr, p: time_h264(fr, p, 20.0, preset="ultrafast"),
        "h264 superfast": lambda fr, p: time_h264(fr, p, 20.0, preset="superfast"),
        "h264 veryfast (default)": lambda fr, p: time_h264(fr, p, 20.0),
        "h264 veryfast gop10 (datasets)": lambda fr, p: time_h264(fr, p, 20.0, gop=10),
        "h264 medium": lambda fr, p: time_h264(fr, p, 20.0, preset="medium"),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size, frames in (("simulate_720x372", pics), ("dataset_200x78", cams)):
            results[size] = {}
            for name, fn in encoders.items():
                best = min((fn(frames, Path(tmp) / f"{k}.mp4") for k in range(3)), key=lambda r: r[0])
                results[size][name] = {
                    "ms_per_frame": 1000.0 * best[0] / len(frames),
                    "bytes_per_frame": best[1] / len(frames),
                }
            base = results[size]["mp4v"]["ms_per_frame"]
            for name, r in results[size].items():
                r["ratio_to_mp4v"] = r["ms_per_frame"] / base
                print(
                    f"{size:18s} {name:32s} {r['ms_per_frame']:7.3f} ms/frame  x{r['ratio_to_mp4v']:.2f} of mp4v  "
                    f"{r['bytes_per_frame']:8.0f} B/frame"
                )
    print(
        json.dumps(
            {
                "frames": args.frames,
                "step_ms": step_ms,
                "results": results,
                "cpu": platform.processor(),
                "threads": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
