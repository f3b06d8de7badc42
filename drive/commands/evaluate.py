"""`drive evaluate`: open-loop steering error of checkpoints on a recorded dataset, under camera noise.

Parses the command line into typed values and calls :func:`drive.eval.evaluate.evaluate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drive.commands.common import add_checkpoints_argument, add_perturb_arguments, seed_type
from drive.commands.runs import OutRule, add_out_arguments, claim_out

OUT_RULE = OutRule(
    own=(
        "units/*.json",
        "metrics.json",
        "results.csv",
        "episodes.csv",
        "report.md",
        "error_*.png",
        "videos/*/episode_*.mp4",
    ),
    resumable=True,
)
"""Resumable: a rerun reuses the units whose inputs are unchanged; --overwrite deletes these first."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drive.eval.evaluate import DEFAULT_MAX_LAG_S
    from drive.eval.metrics import DEFAULT_ALPHA, DEFAULT_CURVE_THRESHOLD
    from drive.eval.open_loop import OPEN_LOOP_STAGES
    from drive.eval.perturb import KINDS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "perturbation kinds in open loop (KIND:LEVEL,LEVEL…; level 0 = clean):\n" + "\n".join(
        f"  {k.name:12s} {k.doc}" for k in KINDS.values() if k.cls.stage in OPEN_LOOP_STAGES
    )
    add_checkpoints_argument(
        parser,
        "checkpoint folder, or 'expert' for the recorded labels replayed (repeatable; default: checkpoints/ncp19)",
    )
    parser.add_argument("--data", required=True, help="dataset folder (drive record / drive import)")
    add_perturb_arguments(parser)
    parser.add_argument(
        "--episodes",
        default="validation",
        help="validation (those the checkpoint held out; default), all, or a list like 0,3,5",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (default: 2; 0 or 1 = in this process)"
    )
    parser.add_argument(
        "--seed", type=seed_type, default=0, help="perturbation seed; episode e uses (seed, e) (default: 0)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"weighted MSE: weight exp(alpha*|label|), as the training loss (default: {DEFAULT_ALPHA:g})",
    )
    parser.add_argument(
        "--curve-threshold",
        type=float,
        default=DEFAULT_CURVE_THRESHOLD,
        help=f"|label| above which a frame counts as a curve, normalised (default: {DEFAULT_CURVE_THRESHOLD:g})",
    )
    parser.add_argument(
        "--max-lag-s",
        type=float,
        default=DEFAULT_MAX_LAG_S,
        help=f"largest lag searched when aligning prediction and label, s (default: {DEFAULT_MAX_LAG_S:g})",
    )
    parser.add_argument("--no-video", action="store_true", help="skip the overlay videos")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--out", default="runs/evaluate", help="output folder (default: runs/evaluate)")
    add_out_arguments(parser, OUT_RULE)


def run(args: argparse.Namespace) -> int:
    from drive.eval.evaluate import check_options, evaluate
    from drive.eval.metrics import format_table
    from drive.eval.simulate import DEFAULT_CHECKPOINT

    check_options(args.workers, args.seed, args.alpha, args.curve_threshold, args.max_lag_s)  # before --out is made
    claim_out(args.out, OUT_RULE, args.overwrite)
    result = evaluate(
        args.checkpoint or [DEFAULT_CHECKPOINT],
        args.data,
        args.out,
        perturb=args.perturb,
        episodes=args.episodes,
        workers=args.workers,
        seed=args.seed,
        alpha=args.alpha,
        curve_threshold=args.curve_threshold,
        max_lag_s=args.max_lag_s,
        video=not args.no_video,
        progress=args.progress,
    )
    print(f"episodes: {result['note']}")
    print(
        format_table(
            result["rows"],
            (
                "model",
                "kind",
                "level",
                "episodes",
                "mse",
                "mse_ci_low",
                "mse_ci_high",
                "mae_rad",
                "weighted_mse",
                "bias",
                "lag_s",
            ),
        )
    )
    print(f"{result['computed']} unit(s) computed, {result['reused']} reused; wrote {Path(args.out) / 'report.md'}")
    return 0
