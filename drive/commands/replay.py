"""`drive replay`: closed loop on recorded drives: checkpoints × perturbations × levels × seeds, resumably.

Parses the flags into typed values, checks ``--out`` before any driving, and calls
:func:`drive.eval.replay_sweep.replay` (the library; see its module for the figures and outputs, and
:mod:`drive.replay` for the replay world).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from drive.commands.common import add_checkpoints_argument, add_perturb_arguments
from drive.commands.runs import OutRule, add_out_arguments, claim_out
from drive.errors import UserError

OUT_RULE = OutRule(
    own=(
        "cells/*.json",
        "results.csv",
        "results.json",
        "cells.csv",
        "stats.csv",
        "report.md",
        "replay_*.png",
        "videos/*.mp4",
    ),
    resumable=True,
)
"""Resumable: a rerun reuses the finished cells; --overwrite deletes these first and starts afresh."""


def parse_episodes(text: str | None) -> list[int] | None:
    """``--episodes``: a list of dataset episode indices (``0,2,5``), or None for all."""
    if text is None:
        return None
    try:
        episodes = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise UserError(f"--episodes: expected dataset episode indices such as 0,2,5, got {text!r}") from None
    if not episodes or any(e < 0 for e in episodes) or len(set(episodes)) != len(episodes):
        raise UserError(f"--episodes: expected distinct dataset episode indices >= 0 such as 0,2,5, got {text!r}")
    return episodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drive.eval.perturb import describe
    from drive.replay.homography import FILLS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Each recorded frame is re-rendered from where the driver steered the car (ground-plane homography);\n"
        "past --max-offset-m or --max-heading-deg the car is put back on the recorded path (an intervention).\n"
        "Figures: interventions per km, autonomy % = (1 - interventions x 6 s / elapsed time) x 100 (PilotNet),\n"
        "mean |offset| m, steering jerk. The dataset needs camera metadata (drive import --camera-height-m\n"
        "--camera-pitch-rad --fov-deg) and the speed of every frame.\n\n"
        "perturbation kinds (KIND:LEVEL,LEVEL…; level 0 = clean):\n"
        + "\n".join("  " + line for line in describe().splitlines())
    )
    add_checkpoints_argument(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="the recorded (or imported) dataset")
    parser.add_argument(
        "--episodes", default=None, metavar="E,E…", help="dataset episodes to replay, e.g. 0,2,5 (default: all)"
    )
    add_perturb_arguments(parser)
    parser.add_argument(
        "--seeds",
        default="1",
        help="seeds: a count (3 = 0,1,2) or a list (0,1,2; one seed s: 's,'); seeds vary the perturbations' "
        "draws, every seed replays the same episodes (default: 1)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (default: 2; 0 or 1 = in this process)"
    )
    parser.add_argument(
        "--max-offset-m", type=float, default=1.0, help="intervention past this offset from the path, m (default 1)"
    )
    parser.add_argument(
        "--max-heading-deg",
        type=float,
        default=10.0,
        help="intervention past this heading error, degrees (default 10)",
    )
    parser.add_argument(
        "--fill",
        choices=tuple(FILLS),
        default="replicate",
        help="how pixels with no source in the recorded frame are filled (default: replicate)",
    )
    parser.add_argument(
        "--video",
        action="store_true",
        help="write OUT/videos/*.mp4: the synthesized view beside the recorded one, steering, offset over time",
    )
    parser.add_argument("--no-expert", action="store_true", help="leave the recorded driver (expert) out")
    parser.add_argument("--out", default="runs/replay", help="output folder (default: runs/replay)")
    add_out_arguments(parser, OUT_RULE)


def run(args: argparse.Namespace) -> int:
    from drive.eval import metrics as M
    from drive.eval.replay_sweep import replay
    from drive.eval.simulate import DEFAULT_CHECKPOINT
    from drive.eval.stress import parse_seeds
    from drive.policy.load import resolve_checkpoint
    from drive.replay.recording import open_recording

    # 1. typed values from the flags; nothing is written yet
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be >= 0")
    for flag, value in (("--max-offset-m", args.max_offset_m), ("--max-heading-deg", args.max_heading_deg)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag}: must be a positive number, got {value!r}")
    seeds = parse_seeds(args.seeds)
    episodes = parse_episodes(args.episodes)
    checkpoints = args.checkpoint or [DEFAULT_CHECKPOINT]
    for checkpoint in checkpoints:
        if checkpoint != "expert":
            resolve_checkpoint(checkpoint)
    open_recording(args.data, episodes)  # camera metadata, speed, frame times: one line before --out is made
    # 2. the output folder, before any driving
    out = claim_out(args.out, OUT_RULE, args.overwrite)
    # 3. the work
    result = replay(
        checkpoints,
        args.data,
        out,
        perturb=args.perturb,
        seeds=seeds,
        episodes=episodes,
        workers=args.workers,
        with_expert=not args.no_expert,
        max_offset_m=args.max_offset_m,
        max_heading_rad=math.radians(args.max_heading_deg),
        fill=args.fill,
        video=args.video,
    )
    columns = ("model", "kind", "level", "n_seeds", "interventions_per_km", "autonomy_pct", "mean_abs_lateral_m")
    print(M.format_table(result["rows"], columns))
    print(f"{result['computed']} cell(s) computed, {result['reused']} reused; wrote {Path(out) / 'report.md'}")
    for f in result["failed"]:
        print(f"failed: {f['model']} {f['kind']} {f['level']:g} seed {f['seed']}: {f['error']}", file=sys.stderr)
    return 1 if result["failed"] else 0
