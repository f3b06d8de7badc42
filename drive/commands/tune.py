"""``drive tune``: per-family tuning of the controller learning rate and the epoch budget, judged on validation
episodes and held-out training-split tracks (:mod:`drive.study.tune`); resumes with the same command."""

from __future__ import annotations

import argparse
import json

from drive.commands.runs import OutRule, claim_out
from drive.study.tune import TuneConfig

OUT_RULE = OutRule(resumable=True, overwrite=False)
"""Resumable: a rerun goes on with the trials it finds (each training resumes or is skipped when done)."""


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 2e-3,5e-3,1.2e-2, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TuneConfig()
    parser.add_argument("--data", default=d.data, help=f"training recordings (default {d.data})")
    parser.add_argument("--out", default=d.out, help=f"trials and results (default {d.out})")
    parser.add_argument("--models", nargs="+", default=list(d.models), help="families to tune")
    parser.add_argument("--rates", type=_rates, default=d.rates, help="controller learning rates, at least 3")
    parser.add_argument("--cnn-rates", type=_rates, default=d.cnn_rates, help="the CNN's learning rates (lr_head)")
    for name in ("short_epochs", "full_epochs", "batch_size", "seed", "select_episodes"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    parser.add_argument("--select-duration-s", type=float, default=d.select_duration_s)
    parser.add_argument("--select-scenario", default=d.select_scenario, help="the check's scenarios, comma-separated")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from drive.study.tune import tune

    fields = {f for f in TuneConfig.__dataclass_fields__}
    cfg = TuneConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in fields})
    cfg.validate()
    claim_out(cfg.out, OUT_RULE)
    result = tune(cfg)
    print(json.dumps({"chosen": result["chosen"]}))
    return 0
