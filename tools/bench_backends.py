"""Wall time of one small stress sweep under ``--backend local`` and ``--backend ray`` on this machine.

    python tools/bench_backends.py [--workers 2] [--seeds 2] [--duration-s 2]

Both sweeps run the same cells (an untrained ncp19 and the expert, clean + 3 perturbed levels per seed)
with ``workers`` processes / a local Ray instance of ``workers`` CPUs, into fresh folders. Prints each wall
time (Ray's includes starting the local instance, timed on its own too), the sum of the cells' own compute
time, and the overhead per cell under Ray three ways: (Ray wall - local wall) / cells; the worker time per
cell not spent computing (wall × workers - compute) / cells, for each backend; and the round trip of a
no-op Ray task that returns a cell's result (200 of them, after a warm-up), which is Ray's own cost per cell.
The last line is one JSON object. On a loaded machine the first two are noisy; compare them in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _echo(result: dict) -> dict:
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=2.0)
    args = p.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))  # a local Ray instance's workers import this checkout

    import ray
    import torch

    from drive.eval.stress import stress
    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy
    from drive.world.scenario import Scenario

    sc = dataclasses.replace(Scenario(name="bench"), duration_s=args.duration_s)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="drive-bench-") as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(build_policy("ncp19", frame_period_s=0.05, max_steer_rad=0.35), Path(tmp) / "ncp19")
        sweep = dict(scenario=sc, episodes=1, seeds=list(range(args.seeds)), workers=args.workers, progress=False)
        perturb = ["gaussian:0.1,0.3", "drop:0.5"]

        t0 = time.perf_counter()
        local = stress([str(ckpt)], perturb, Path(tmp) / "local", backend="local", **sweep)
        figures["local_wall_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ray.init(
            address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="error"
        )
        figures["ray_init_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        remote = stress([str(ckpt)], perturb, Path(tmp) / "ray", backend="ray", **sweep)
        figures["ray_sweep_s"] = time.perf_counter() - t1
        figures["ray_wall_s"] = time.perf_counter() - t0
        result = json.loads(next((Path(tmp) / "ray" / "cells").glob("*.json")).read_text())
        echo = ray.remote(num_cpus=1)(_echo)
        ray.get([echo.remote(result) for _ in range(20)])  # warm-up
        t2 = time.perf_counter()
        ray.get([echo.remote(result) for _ in range(200)])
        figures["ray_noop_task_s"] = (time.perf_counter() - t2) / 200
        ray.shutdown()

        cells = local["computed"]
        assert cells == remote["computed"] and not local["failed"] and not remote["failed"]
        same = (Path(tmp) / "local" / "results.csv").read_bytes() == (Path(tmp) / "ray" / "results.csv").read_bytes()
        compute = {
            b: sum(json.loads(f.read_text())["elapsed_s"] for f in (Path(tmp) / b / "cells").glob("*.json"))
            for b in ("local", "ray")
        }
    figures.update(
        cells=cells,
        workers=args.workers,
        identical_results_csv=same,
        local_cell_compute_s=compute["local"],
        ray_cell_compute_s=compute["ray"],
        ray_overhead_per_cell_s=(figures["ray_wall_s"] - figures["local_wall_s"]) / cells,
        ray_overhead_per_cell_excl_init_s=(figures["ray_sweep_s"] - figures["local_wall_s"]) / cells,
        ray_over_local_wall=figures["ray_wall_s"] / figures["local_wall_s"],
        local_idle_per_cell_s=(figures["local_wall_s"] * args.workers - compute["local"]) / cells,
        ray_idle_per_cell_s=(figures["ray_sweep_s"] * args.workers - compute["ray"]) / cells,
        load_average_1min=os.getloadavg()[0],
    )
    for key, value in figures.items():
        print(f"{key:36s} {value:.3f}" if isinstance(value, float) else f"{key:36s} {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
