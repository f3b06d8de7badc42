"""Check: camera faults the training never showed, the shipped checkpoints against earlier ones (issue 22,
"Robustness to faults the training never showed").

The training recording varies the world (light, markings, camera mount, lanes) and the training augments
colour and shadows; it never shows these faults, which ``drive stress`` injects on the test tracks
(``scenarios/default.yaml``, 10 tracks):

- ``roll``: the camera rotated about its optical axis (a loose mount), ``--roll-deg`` degrees;
- ``stuck_pixels``: a fraction of the sensor stuck black, white or hot, a quarter of it as whole columns;
- ``colour_cast``: a wrong white balance, per-episode RGB gains in [1 - level, 1 + level];
- ``freeze``: the camera driver re-delivers a stale frame for 5 steps, with this probability per frame.

Both sets of checkpoints drive every cell, and clean input beside the faults (one episode per test track; ``--seeds`` noise seeds), so each
figure compares the same worlds and the same noise. Per model, fault and level: off-road events per km and
mean |lateral| (m), the new checkpoint beside the earlier one, with a 95 % bootstrap interval of the
difference over the test tracks (paired: the same track and noise seed in both;
``drive.eval.stats.bootstrap_mean_ci``). One training seed per
model: the interval covers tracks and noise, not training runs.

The earlier checkpoints come from git (``--old-rev``, default facb449: the checkpoints shipped before issue
22's retrain), extracted to ``OUT/old/<model>-old`` (config.json and model.safetensors only).

    .venv/bin/python tools/check_unseen_faults.py [--models ncp19,cnn,...] [--old-rev facb449] [--out runs/unseen]

Writes ``OUT/unseen.json`` and ``OUT/unseen.md``; the last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODELS = ("ncp19", "cnn", "lstm", "gru", "ctrnn", "cfc")


def extract(rev: str, model: str, into: Path) -> Path:
    """``checkpoints/<model>`` at git revision ``rev``, as ``into/<model>-old`` (reused when present)."""
    from drive.io import atomic_write_bytes

    folder = into / f"{model}-old"
    if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        blob = subprocess.run(
            ["git", "show", f"{rev}:checkpoints/{model}/{name}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        atomic_write_bytes(folder / name, blob)
    return folder


def markdown(rows: list[dict], args: dict) -> str:
    lines = [
        "## Camera faults the training never showed",
        "",
        f"`tools/check_unseen_faults.py`: each shipped checkpoint (new) beside the one shipped at "
        f"{args['old_rev']} (old), on the 10 test tracks × {args['seeds']} noise seeds × {args['duration_s']:g} s "
        "per cell. Mean |lateral| (m) and off-road events; Δ = new − old with a 95 % paired bootstrap interval "
        "over episodes (one training seed per model: the interval covers tracks and noise, not training runs).",
        "",
        "| model | fault | level | old: off-road | new: off-road | old: mean abs lateral (m) | "
        "new: mean abs lateral (m) | Δ lateral [95 %] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["lateral_diff_interval"]
        lines.append(
            f"| {r['model']} | {r['kind']} | {r['level']:g} | {r['old_off_road']} | {r['new_off_road']} | "
            f"{r['old_lateral_m']:.2f} | {r['new_lateral_m']:.2f} | "
            f"{r['new_lateral_m'] - r['old_lateral_m']:+.2f} [{low:+.2f}, {high:+.2f}] |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--ckpt-root", default="checkpoints", help="the new checkpoints: <root>/<model>")
    p.add_argument("--old-rev", default="facb449", help="git revision of the earlier checkpoints")
    p.add_argument("--out", default="runs/unseen")
    p.add_argument("--roll-deg", default="5,10")
    p.add_argument("--stuck-pixels", default="0.02")
    p.add_argument("--colour-cast", default="0.3")
    p.add_argument("--freeze", default="0.3")
    p.add_argument("--seeds", type=int, default=1, help="noise seeds per test track")
    p.add_argument("--duration-s", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    from drive.eval.stats import bootstrap_mean_ci
    from drive.eval.stress import stress

    out = Path(args.out)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    faults = [
        (kind, [float(v) for v in text.split(",") if v.strip()])
        for kind, text in (
            ("roll", args.roll_deg),
            ("stuck_pixels", args.stuck_pixels),
            ("colour_cast", args.colour_cast),
            ("freeze", args.freeze),
        )
        if text
    ]
    pairs = {m: (str(Path(args.ckpt_root) / m), str(extract(args.old_rev, m, out / "old"))) for m in models}
    t0 = time.perf_counter()
    result = stress(
        [c for pair in pairs.values() for c in pair],
        faults,
        out / "stress",
        scenario="default",
        episodes=10,  # one per test track
        seeds=list(range(args.seeds)),
        workers=args.workers,
        duration_s=args.duration_s,
        with_expert=False,
        progress=False,
    )
    if result["failed"]:
        print(f"check_unseen_faults: {len(result['failed'])} stress cells failed; rerun to retry", file=sys.stderr)
        return 1
    cells = [json.loads(f.read_text()) for f in sorted((out / "stress" / "cells").rglob("*.json"))]

    def episodes(folder: str, kind: str, level: float) -> list[dict]:
        mine = [c for c in cells if Path(c["checkpoint"]) == Path(folder) and c["kind"] == kind]
        mine = [c for c in mine if float(c["level"]) == level]
        return [e for c in sorted(mine, key=lambda c: int(c["seed"])) for e in c["episodes"]]

    rows = []
    print(f"{'model':<6} {'fault':<13} {'level':>6} {'off-road old/new':>16} {'|lat| old/new (m)':>18} {'Δ [95%]':>22}")
    for model, (new, old) in pairs.items():
        for kind, levels in [("clean", [0.0]), *faults]:  # the sweep always drives clean input too
            for level in levels:
                a, b = episodes(new, kind, level), episodes(old, kind, level)
                lat_new = np.array([e["mean_abs_lateral_m"] for e in a])
                lat_old = np.array([e["mean_abs_lateral_m"] for e in b])
                low, high = bootstrap_mean_ci(lat_new - lat_old)  # paired: the same track and noise
                row = {
                    "model": model,
                    "kind": kind,
                    "level": level,
                    "episodes": len(a),
                    "new_off_road": int(sum(e["off_road_events"] for e in a)),
                    "old_off_road": int(sum(e["off_road_events"] for e in b)),
                    "new_lateral_m": float(lat_new.mean()),
                    "old_lateral_m": float(lat_old.mean()),
                    "lateral_diff_interval": [low, high],
                }
                rows.append(row)
                print(
                    f"{model:<6} {kind:<13} {level:>6g} {row['old_off_road']:>7}/{row['new_off_road']:<8} "
                    f"{row['old_lateral_m']:>8.2f}/{row['new_lateral_m']:<9.2f} "
                    f"{row['new_lateral_m'] - row['old_lateral_m']:+.2f} [{low:+.2f}, {high:+.2f}]",
                    flush=True,
                )
    (out / "unseen.md").write_text(markdown(rows, vars(args)))
    (out / "unseen.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    totals = {
        side: {
            "off_road_events": sum(r[f"{side}_off_road"] for r in rows),
            "mean_lateral_m": float(np.mean([r[f"{side}_lateral_m"] for r in rows])),
        }
        for side in ("old", "new")
    }
    print(json.dumps({"elapsed_s": round(time.perf_counter() - t0, 1), "totals": totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
