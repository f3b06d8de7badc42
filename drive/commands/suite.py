"""`drive suite`: the generalization suite (scenarios/suite/*.yaml) on the test tracks, per checkpoint and the expert."""

from __future__ import annotations

import argparse
from pathlib import Path

from drive.commands.runs import OutRule, add_out_arguments, claim_out
from drive.errors import UserError

OUT_RULE = OutRule(own=("results.csv", "report.md", "suite.png"))
"""Not resumable: a folder that holds files is refused unless --overwrite (then these are deleted first)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="C",
        help="checkpoint folder to measure (repeatable; the expert is always added unless --no-expert)",
    )
    parser.add_argument(
        "--out", default="runs/suite", help="output folder: results.csv, report.md, suite.png (default: runs/suite)"
    )
    add_out_arguments(parser, OUT_RULE)
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes (default: 2)")
    parser.add_argument("--tracks", type=int, default=10, help="test tracks per case, 1..10 (default: 10)")
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this suite case (repeatable; default: every file in scenarios/suite/)",
    )
    from drive.world.scenario import duration_s_arg

    parser.add_argument(
        "--duration-s", type=duration_s_arg, default=None, help="override each case's episode length, s (default: 60)"
    )
    parser.add_argument("--no-expert", action="store_true", help="leave out the expert's reference figures")


def run(args: argparse.Namespace) -> int:
    from drive.eval.suite import run_suite

    if args.duration_s is not None and not args.duration_s > 0:
        raise UserError(f"--duration-s: must be a positive number of seconds, got {args.duration_s!r}")
    out = claim_out(args.out, OUT_RULE, args.overwrite)
    rows = run_suite(
        args.checkpoint,
        out,
        tracks=args.tracks,
        workers=args.workers,
        cases=args.case or None,
        duration_s=args.duration_s,
        expert=not args.no_expert,
    )
    print((Path(out) / "report.md").read_text())
    print(
        f"wrote {len(rows)} rows to {Path(out) / 'results.csv'}, {Path(out) / 'report.md'} and {Path(out) / 'suite.png'}"
    )
    return 0
