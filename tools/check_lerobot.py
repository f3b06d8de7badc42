"""Check that LeRobot itself loads a dataset recorded by ``drive record``.

LeRobot 0.4.4 (the release line that reads v3.0 datasets on Python 3.11) pins ``torch<2.11``, so it cannot
share drive's environment: this tool builds its own virtual environment (default
``~/.cache/drive-lerobot-venv``, reused when it already holds lerobot 0.4.4) with ``pip install
lerobot==0.4.4`` from the package index (PyPI's Linux torch wheel is the CUDA build; it runs on the CPU).

Then it records a tiny dataset with ``drive record`` (2 episodes of 1 s) into a temporary folder, and in
the LeRobot environment, offline (``HF_HUB_OFFLINE=1``):

- loads ``LeRobotDatasetMetadata`` and ``LeRobotDataset(repo_id, root=DIR)`` (PyAV video backend, and
  LeRobot's default backend as a second try);
- reads the first frame, a frame in the middle of episode 1 and the last frame: scalars, task and the
  decoded video frame, which is compared with drive's own reader of the same dataset (mean absolute
  difference in [0, 255] units: both decode the same H.264 stream, so it should be ~0).

Usage: ``python tools/check_lerobot.py [--venv DIR] [--keep DIR]``. Prints what it did; the last line is
one JSON object (``ok`` true when LeRobot loaded the dataset and every read matched).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEROBOT = "lerobot==0.4.4"

CHILD = r"""
import json, os, sys, time
import numpy as np
root, expected_path = sys.argv[1], sys.argv[2]
out = {}
t0 = time.perf_counter()
import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
out["lerobot_version"] = getattr(lerobot, "__version__", None)
meta = LeRobotDatasetMetadata("drive/check", root=root)
out["meta"] = {"total_episodes": meta.total_episodes, "total_frames": meta.total_frames, "fps": meta.fps,
               "tasks": list(meta.tasks.index), "video_keys": meta.video_keys, "robot_type": meta.robot_type,
               "stats_keys": sorted(meta.stats) if meta.stats else None}
expected = np.load(expected_path)
for backend in ("pyav", None):
    name = backend or "default"
    try:
        kwargs = {"video_backend": backend} if backend else {}
        ds = LeRobotDataset("drive/check", root=root, **kwargs)
        reads = []
        for idx in (0, int(expected["middle"]), len(ds) - 1):
            item = ds[idx]
            img = item["observation.images.front"]
            ours = expected[f"frame_{idx}"].astype(np.float64)
            theirs = img.numpy().transpose(1, 2, 0).astype(np.float64) * 255.0
            reads.append({"index": idx, "episode_index": int(item["episode_index"]),
                          "frame_index": int(item["frame_index"]), "timestamp": float(item["timestamp"]),
                          "task": item["task"], "task_index": int(item["task_index"]),
                          "action.steering": float(item["action.steering"]),
                          "steering_matches": bool(abs(float(item["action.steering"]) - float(expected[f"steer_{idx}"])) < 1e-6),
                          "image_shape": list(img.shape), "image_dtype": str(img.dtype),
                          "mean_abs_diff_vs_drive_reader": float(np.abs(theirs - ours).mean())})
        out[name] = {"ok": True, "len": len(ds), "num_episodes": ds.num_episodes, "reads": reads}
    except Exception as exc:
        out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
out["seconds"] = round(time.perf_counter() - t0, 1)
print(json.dumps(out))
"""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> None:
    py = venv_python(venv)
    if py.exists():
        probe = subprocess.run(
            [str(py), "-c", "import importlib.metadata as m; print(m.version('lerobot'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == LEROBOT.split("==")[1]:
            print(f"venv: {venv} already holds {LEROBOT}")
            return
    print(f"venv: building {venv} with {LEROBOT} (a few GB from the package index; minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", LEROBOT], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv",
        default=str(Path.home() / ".cache" / "drive-lerobot-venv"),
        help="the LeRobot virtual environment (built when missing)",
    )
    parser.add_argument("--keep", default=None, help="record into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    venv = Path(args.venv).expanduser()
    ensure_venv(venv)

    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(args.keep) if args.keep else Path(tmp) / "ds"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "drive.cli",
                "record",
                "--episodes",
                "2",
                "--duration-s",
                "1.0",
                "--out",
                str(ds),
                "--no-progress",
            ],
            check=True,
            env=env,
        )
        print(f"recorded {ds} in {time.perf_counter() - t0:.1f} s")

        sys.path.insert(0, str(ROOT))
        import numpy as np

        from drive.data.reader import DatasetReader

        reader = DatasetReader(ds)
        table = reader.frames_table()
        frames = np.concatenate([reader.read_frames(e) for e in reader.episodes])
        n = len(table)
        middle = int(
            table.index[table["episode_index"] == reader.episodes[-1]][
                len(reader.read_frames(reader.episodes[-1])) // 2
            ]
        )
        expected = {"middle": np.array(middle)}
        for i in (0, middle, n - 1):
            expected[f"frame_{i}"] = frames[i]
            expected[f"steer_{i}"] = np.array(table["action.steering"].iloc[i])
        np.savez(Path(tmp) / "expected.npz", **expected)

        child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(Path(tmp) / "hf")}
        child_env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [str(venv_python(venv)), "-c", CHILD, str(ds), str(Path(tmp) / "expected.npz")],
            capture_output=True,
            text=True,
            env=child_env,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            print(json.dumps({"ok": False, "error": f"lerobot child exited {proc.returncode}"}))
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])

    pyav = result.get("pyav", {})
    ok = (
        bool(pyav.get("ok"))
        and pyav.get("len") == n
        and all(
            r["steering_matches"] and r["mean_abs_diff_vs_drive_reader"] < 1.0 and r["task"] == "keep the lane"
            for r in pyav.get("reads", [])
        )
    )
    print(f"lerobot {result.get('lerobot_version')}: metadata {result['meta']}")
    for backend in ("pyav", "default"):
        r = result.get(backend, {})
        if r.get("ok"):
            print(f"  backend {backend}: {r['len']} frames, {r['num_episodes']} episodes")
            for read in r["reads"]:
                print(
                    f"    ds[{read['index']}]: episode {read['episode_index']} frame {read['frame_index']} "
                    f"t={read['timestamp']:.2f}s task={read['task']!r} image {read['image_shape']} {read['image_dtype']} "
                    f"steering matches: {read['steering_matches']}, "
                    f"|LeRobot - drive| = {read['mean_abs_diff_vs_drive_reader']:.3f}/255"
                )
        else:
            print(f"  backend {backend}: FAILED: {r.get('error')}")
    summary = {
        "ok": ok,
        "lerobot": result.get("lerobot_version"),
        "frames": n,
        "episodes": result["meta"]["total_episodes"],
        "pyav_ok": bool(pyav.get("ok")),
        "default_backend_ok": bool(result.get("default", {}).get("ok")),
        "max_mean_abs_diff": max((r["mean_abs_diff_vs_drive_reader"] for r in pyav.get("reads", [])), default=None),
    }
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
