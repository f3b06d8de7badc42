"""`drive stress`: sweep models × perturbation kinds × levels × seeds in parallel, resumably.

Parses the flags into typed values, checks ``--out`` before any driving, and calls
:func:`drive.eval.stress.stress` (the library; see its module for the outputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drive.commands.common import add_backend_arguments, add_checkpoints_argument, add_perturb_arguments
from drive.commands.runs import OutRule, add_out_arguments, claim_out
from drive.errors import UserError

OUT_RULE = OutRule(
    own=("cells/*.json", "results.csv", "results.json", "cells.csv", "stats.csv", "report.md", "robustness_*.png"),
    resumable=True,
)
"""Resumable: a rerun reuses the finished cells; --overwrite deletes these first and starts afresh."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drive.eval.perturb import describe

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "perturbation kinds (KIND:LEVEL,LEVEL…; level 0 = clean):\n" + "\n".join(
        "  " + line for line in describe().splitlines()
    )
    add_checkpoints_argument(parser)
    add_perturb_arguments(parser)
    parser.add_argument("--scenario", default="default", help="scenario YAML file or shipped name (default: default)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per cell (default: 1)")
    parser.add_argument(
        "--seeds", default="3", help="seeds: a count (3 = 0,1,2) or a list (0,1,2; one seed s: 's,') (default: 3)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes (default: 2; 0 or 1 = in this process); "
        "with --backend ray and no --address, the CPUs of the local Ray instance",
    )
    add_backend_arguments(parser)
    parser.add_argument("--out", default="runs/stress", help="output folder (default: runs/stress)")
    add_out_arguments(parser, OUT_RULE)
    from drive.world.scenario import duration_s_arg

    parser.add_argument(
        "--duration-s", type=duration_s_arg, default=None, help="override the scenario's episode length, s"
    )
    parser.add_argument("--end-on-off-road", action="store_true", help="end episodes on leaving the road")
    parser.add_argument("--no-expert", action="store_true", help="leave the expert out of the sweep")


def run(args: argparse.Namespace) -> int:
    from drive.eval import metrics as M
    from drive.eval.backends import check_backend
    from drive.eval.simulate import DEFAULT_CHECKPOINT, resolve_scenario
    from drive.eval.stress import parse_seeds, stress
    from drive.policy.load import resolve_checkpoint

    # 1. typed values from the flags; nothing is written yet
    if args.episodes < 1:
        raise UserError(f"--episodes {args.episodes}: must be >= 1")
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be >= 0")
    seeds = parse_seeds(args.seeds)
    checkpoints = args.checkpoint or [DEFAULT_CHECKPOINT]
    for checkpoint in checkpoints:
        if checkpoint != "expert":
            resolve_checkpoint(checkpoint)
    scenario = resolve_scenario(args.scenario, args.duration_s)
    check_backend(args.backend, args.address)  # the library's check, before --out is made
    # 2. the output folder, before any driving
    out = claim_out(args.out, OUT_RULE, args.overwrite)
    # 3. the work
    result = stress(
        checkpoints,
        args.perturb,
        out,
        scenario=scenario,
        episodes=args.episodes,
        seeds=seeds,
        workers=args.workers,
        off_road="terminate" if args.end_on_off_road else "recover",
        with_expert=not args.no_expert,
        backend=args.backend,
        address=args.address,
    )
    columns = ("model", "kind", "level", "n_seeds", "off_road_per_km", "mean_abs_lateral_m", "completed_fraction")
    print(M.format_table(result["rows"], columns))
    print(
        f"{result['computed']} cell(s) computed, {result['reused']} reused; wrote {Path(out) / 'report.md'}"
        + (f" and {Path(out) / 'stats.csv'}" if result.get("stats") is not None else "")
    )
    for f in result["failed"]:
        print(f"failed: {f['model']} {f['kind']} {f['level']:g} seed {f['seed']}: {f['error']}", file=sys.stderr)
    return 1 if result["failed"] else 0
