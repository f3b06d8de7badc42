"""`drive train`: flags -> :class:`~drive.train.config.TrainConfig`, then :func:`drive.train.loop.train`,
then, with ``--dagger-rounds K``, :func:`drive.train.dagger.run_dagger`."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from drive.commands.common import add_dataclass_arguments, dataclass_from_args, prepare_out_dir
from drive.errors import UserError
from drive.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainConfig, required=("data", "out"))


def run(args: argparse.Namespace) -> int:
    cfg: TrainConfig = dataclass_from_args(args, TrainConfig)
    cfg.validate()
    if not Path(cfg.data).is_dir():
        raise UserError(f"--data: {cfg.data}: dataset folder not found")
    if int(os.environ.get("RANK", "0")) == 0:  # checked before the frame cache is built
        prepare_out_dir(cfg.out)
        if cfg.logdir:
            prepare_out_dir(cfg.logdir, "--logdir")

    from drive.train.loop import train

    progress = train(cfg).progress
    if cfg.dagger_rounds:
        from drive.train.dagger import run_dagger

        progress = run_dagger(cfg).progress
    if int(os.environ.get("RANK", "0")) == 0:
        best = progress.get("best_val_loss")
        print(
            f"drive train: {progress['step']} step(s), {progress['train_time_s']:.1f} s"
            + (f", best validation loss {best:.4f}" if best is not None and math.isfinite(best) else "")
            + f" -> {cfg.out}"
        )
    return 0
