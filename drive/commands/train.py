"""`drive train`: flags -> :class:`~drive.train.config.TrainConfig`, then :func:`drive.train.loop.train`,
then, with ``--dagger-rounds K``, :func:`drive.train.dagger.run_dagger`, all under ``--out``'s lock.

Several datasets train together as one comma-separated ``--data A,B`` (one value, so ``--config`` and a
checkpoint's recorded ``training.data`` keep a single string).

With ``--resume`` the options not given on the command line are those recorded in ``OUT/config.json``; a
given option that differs from the recorded one is refused, except those of
:data:`drive.train.config.RESUME_MAY_CHANGE` (``--epochs`` to extend the training, ``--threads``, …).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
from pathlib import Path

from drive.commands.common import add_dataclass_arguments, prepare_out_dir, seed_type
from drive.commands.runs import OutRule, add_out_arguments, claim_out, set_config
from drive.errors import UserError
from drive.train.config import TrainConfig, resumed_config

OUT_RULE = OutRule(
    own=(
        "config.json",
        "model.safetensors",
        "ema.safetensors",
        "train_state/*",
        ".train_state.old-*",
        "figures/*",
        "tensorboard/*",
        "dagger-data/*",
    ),
    resumable=True,
)
"""--resume goes on with a checkpoint; without it the library refuses a checkpoint worth keeping and starts
over what a failed run left (:func:`drive.train.loop.train`); --overwrite deletes these first."""

NOT_GIVEN = object()
"""Default of every flag, so :func:`run` knows which options were given (``--resume`` fills in the rest)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainConfig, required=("data", "out"))
    for action in parser._actions:
        if action.dest in ("seed", "split_seed"):
            action.type = seed_type  # 0 <= seed < 2**32, as every verb's --seed
    parser.set_defaults(**{f.name: NOT_GIVEN for f in dataclasses.fields(TrainConfig)})
    add_out_arguments(parser, OUT_RULE)


def run(args: argparse.Namespace) -> int:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in given.items() if v is not NOT_GIVEN}
    cfg = TrainConfig(**given)
    cfg.validate()
    if cfg.resume and args.overwrite:
        raise UserError("--overwrite and --resume: choose one (start afresh, or go on with the checkpoint)")
    for data in cfg.datasets():
        if not Path(data).is_dir():
            raise UserError(f"--data: {data}: dataset folder not found")
    from drive.train.loop import check_out_and_data, hold_out, train

    for data in cfg.datasets():
        check_out_and_data(cfg.out, data)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:  # checked before the frame cache is built
        if not (cfg.resume or args.overwrite) and Path(cfg.out).is_dir():
            from drive.train.loop import _check_fresh_out  # the library's rule, before run.json is written

            _check_fresh_out(Path(cfg.out))
        claim_out(cfg.out, OUT_RULE, args.overwrite)
        if cfg.logdir:
            prepare_out_dir(cfg.logdir, "--logdir")
    dagger_phase = False
    with hold_out(cfg.out) if main else contextlib.nullcontext():
        if cfg.resume:  # the options not given are the recorded ones
            from drive.policy.checkpoint import CONFIG_FILE
            from drive.train.dagger import in_dagger_phase
            from drive.train.loop import recorded_sections

            recorded, recorded_data = recorded_sections(Path(cfg.out))
            cfg = resumed_config(given, recorded, str(Path(cfg.out) / CONFIG_FILE))
            cfg.validate()
            dagger_phase = isinstance(recorded_data, dict) and in_dagger_phase(cfg.out, recorded_data)
        if main:
            set_config(dataclasses.asdict(cfg))  # the resolved options, recorded ones included
            if dagger_phase and not cfg.dagger_rounds:
                raise UserError(
                    f"--resume: {cfg.out} went on with DAgger rounds (its data is {cfg.out}/dagger-data); "
                    "add rounds with --dagger-rounds N --scenario S, or train a new --out"
                )
        if not (cfg.resume and dagger_phase):  # in the DAgger phase the base training is done
            progress = train(cfg).progress
        if cfg.dagger_rounds:
            from drive.train.dagger import run_dagger

            progress = run_dagger(cfg).progress
    if main:
        best = progress.get("best_val_loss")
        print(
            f"drive train: {progress['step']} step(s), {progress['train_time_s']:.1f} s"
            + (f", best validation loss {best:.4f}" if best is not None and math.isfinite(best) else "")
            + f" -> {cfg.out}"
        )
    return 0
