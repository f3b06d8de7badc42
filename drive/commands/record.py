"""``drive record``: drive the expert in simulation and write camera video + steering as a dataset."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from drive.commands.common import prepare_out_dir, seed_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", default="train", help="scenario YAML file, or the name of a shipped one (default: train)"
    )
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes to record (default: 10)")
    parser.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
    parser.add_argument(
        "--seed",
        type=seed_type,
        default=0,
        help="seed of track choice, start poses and noise, 0 <= seed < 2**32 (default: 0)",
    )
    parser.add_argument(
        "--noise-injection",
        type=float,
        default=0.0,
        metavar="LEVEL",
        help="DART: std of the noise added to the applied steering, normalised units (default: 0)",
    )
    from drive.world.scenario import duration_s_arg

    parser.add_argument(
        "--duration-s",
        type=duration_s_arg,
        default=None,
        help="episode length in seconds (default: the scenario's duration_s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from drive.data import layout
    from drive.data.reader import DatasetReader
    from drive.data.recorder import check_args, coverage_table, format_coverage, record

    check_args(args.episodes, args.seed, args.noise_injection, args.duration_s)  # before --out is made
    existed = Path(args.out).exists()
    out = prepare_out_dir(args.out)
    try:
        record(
            args.scenario,
            args.episodes,
            out,
            seed=args.seed,
            noise_injection=args.noise_injection,
            duration_s=args.duration_s,
            progress=not args.no_progress,
        )
    except BaseException:
        if not existed and out.is_dir():
            _remove_if_empty(out)  # a run that saved nothing leaves no folder behind
        raise
    info = layout.read_info(out)
    print(f"{out}: {info.total_episodes} episodes, {info.total_frames} frames at {info.fps:g} Hz")
    print(format_coverage(coverage_table(DatasetReader(out).episodes_table())))
    return 0


def _remove_if_empty(out: Path) -> None:
    """Remove ``out`` (a folder this run made) when nothing but empty folders and the lock are in it."""
    for folder, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
        if Path(folder) != out and not os.listdir(folder):
            os.rmdir(folder)
    lock = out / ".drive.lock"
    if [p.name for p in out.iterdir()] == [lock.name]:
        lock.unlink()
    if not any(out.iterdir()):
        out.rmdir()
