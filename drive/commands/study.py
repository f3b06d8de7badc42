"""``drive study``: the robustness study in one resumable command (flags -> :class:`~drive.study.StudyConfig`,
then :func:`drive.study.run_study`). The last printed line is one JSON object: what each stage computed and
reused. A rerun after an interruption resumes where it stopped."""

from __future__ import annotations

import argparse
import json
import math
import sys

from drive.commands.common import add_backend_arguments
from drive.commands.runs import OutRule, claim_out
from drive.study.config import MODELS, PAPER_LEVELS, STAGES, RecordingConfig, StudyConfig, TrainingBudget

OUT_RULE = OutRule(resumable=True, overwrite=False)
"""Resumable: a rerun goes on where the study stopped (stale checkpoints: --retrain-stale)."""


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a list like 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct seeds >= 0 like 0,1,2, got {text!r}")
    return seeds


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected variances like 0.01,0.04, got {text!r}") from None
    if not levels or any(not (math.isfinite(lv) and 0 < lv <= 1) for lv in levels) or len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(f"expected distinct variances in (0, 1], got {text!r}")
    return tuple(sorted(levels))


def _rates(text: str) -> dict[str, float]:
    """``ncp19=5e-4,lstm=1e-3`` -> per-family controller learning rates."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        model, _, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if model not in MODELS or not (math.isfinite(rate) and rate > 0):
            raise argparse.ArgumentTypeError(f"expected MODEL=RATE,… with a model of {', '.join(MODELS)}, got {part!r}")
        out[model] = rate
    return out


def _epochs(text: str) -> dict[str, int]:
    """``ncp19=7,cnn=5`` -> epochs per family."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        model, _, value = part.partition("=")
        if model not in MODELS or not value.isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(
                f"expected MODEL=EPOCHS,… with a model of {', '.join(MODELS)}, got {part!r}"
            )
        out[model] = int(value)
    return out


def _overrides(text: str) -> dict:
    """``seq_len=8,device=cuda`` -> TrainConfig overrides (values parsed as JSON where they can be)."""
    import dataclasses

    from drive.train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in fields:
            raise argparse.ArgumentTypeError(f"expected FIELD=VALUE,… with a field of TrainConfig, got {part!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _stages(text: str) -> tuple[str, ...]:
    stages = tuple(s for s in text.split(",") if s)
    if not stages or any(s not in STAGES for s in stages):
        raise argparse.ArgumentTypeError(f"expected a list of {','.join(STAGES)}, got {text!r}")
    return stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, r, b = StudyConfig(), RecordingConfig(), TrainingBudget()
    parser.add_argument("--models", nargs="+", default=list(d.models), choices=MODELS, help="families to compare")
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=d.seeds,
        metavar="0,1,2",
        help="training seeds (default 0-9, the plan's ten)",
    )
    parser.add_argument(
        "--levels",
        type=_levels,
        default=d.levels,
        metavar="0.01,…",
        help=f"Gaussian variances σ² (default {','.join(map(str, PAPER_LEVELS))})",
    )
    parser.add_argument("--noise-seeds", type=int, default=d.noise_seeds, help="noise seeds per test track")
    parser.add_argument("--tracks", type=int, default=d.tracks, help="test tracks of the stress sweep (1..10)")
    parser.add_argument("--out", default=d.out, help=f"study outputs (default {d.out})")
    parser.add_argument("--ckpt-root", default=d.ckpt_root, help="<root>/<model> (seed 0) and <root>/zoo/")
    parser.add_argument("--data", default=d.data, help="training recordings (recorded if missing)")
    parser.add_argument("--scenario", default=r.scenario, help="scenario of the training recordings")
    parser.add_argument("--episodes", type=int, default=r.episodes, help="training episodes to record")
    parser.add_argument("--record-duration-s", type=float, default=r.duration_s, help="length of each, s")
    parser.add_argument("--noise-injection", type=float, default=r.noise_injection, help="DART noise while recording")
    parser.add_argument("--record-seed", type=int, default=r.seed, help="seed of the recording")
    parser.add_argument("--epochs", type=int, default=b.epochs, help="epochs per training")
    parser.add_argument("--batch-size", type=int, default=b.batch_size, help="batch, in sequences")
    parser.add_argument(
        "--lr-controller",
        type=_rates,
        default={},
        metavar="MODEL=RATE,…",
        help=f"controller learning rate per family, on top of the tuned {_show(b.lr_controller)}",
    )
    parser.add_argument(
        "--lr-head",
        type=_rates,
        default={},
        metavar="MODEL=RATE,…",
        help=f"head learning rate per family (cnn: its one), on top of the tuned {_show(b.lr_head)}",
    )
    parser.add_argument(
        "--family-epochs",
        type=_epochs,
        default={},
        metavar="MODEL=EPOCHS,…",
        help="epochs per family where tuning chose another budget than --epochs",
    )
    parser.add_argument(
        "--train",
        type=_overrides,
        default={},
        metavar="FIELD=VALUE,…",
        help=f"other TrainConfig fields for every training, on top of {_show(b.overrides)}, e.g. device=cuda",
    )
    parser.add_argument(
        "--noise-augment",
        type=float,
        nargs="?",
        const=0.1,
        default=None,
        metavar="SIGMA2",
        help="also train and evaluate the noise-augmented variant (default σ² 0.1)",
    )
    parser.add_argument("--retrain-stale", action="store_true", help="delete and retrain stale checkpoints")
    add_backend_arguments(parser, default=d.backend)
    parser.add_argument("--cpus-per-task", type=float, default=d.cpus_per_task, help="with ray: CPUs per training")
    parser.add_argument("--gpus-per-task", type=float, default=None, help="with ray: GPUs per training")
    parser.add_argument("--workers", type=int, default=d.workers, help="parallel stress and suite workers")
    parser.add_argument("--duration-s", type=float, default=None, help="length of the evaluation episodes, s")
    parser.add_argument("--suite-tracks", type=int, default=d.suite_tracks, help="test tracks per suite case")
    parser.add_argument("--suite-case", action="append", default=[], help="only these suite cases (repeatable)")
    parser.add_argument(
        "--explain-episodes", type=int, default=d.explain_episodes, help="clean episodes per checkpoint (explain)"
    )
    parser.add_argument(
        "--explain-frames", type=int, default=d.explain_frames, help="frames per episode for the SSIM (explain)"
    )
    parser.add_argument(
        "--stages", type=_stages, default=d.stages, help=f"stages to run, of {','.join(STAGES)} (default all)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _show(values: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items()) or "none"


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    b = TrainingBudget()
    return StudyConfig(
        models=tuple(args.models),
        seeds=args.seeds,
        levels=args.levels,
        noise_seeds=args.noise_seeds,
        tracks=args.tracks,
        out=args.out,
        ckpt_root=args.ckpt_root,
        data=args.data,
        recording=RecordingConfig(
            scenario=args.scenario,
            episodes=args.episodes,
            duration_s=args.record_duration_s,
            noise_injection=args.noise_injection,
            seed=args.record_seed,
        ),
        budget=TrainingBudget(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr_controller={**b.lr_controller, **args.lr_controller},
            lr_head={**b.lr_head, **args.lr_head},
            family_epochs=args.family_epochs,
            overrides={**b.overrides, **args.train},
        ),
        noise_augment=args.noise_augment,
        retrain_stale=args.retrain_stale,
        backend=args.backend,
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
        workers=args.workers,
        duration_s=args.duration_s,
        suite_tracks=args.suite_tracks,
        suite_cases=tuple(args.suite_case),
        explain_episodes=args.explain_episodes,
        explain_frames=args.explain_frames,
        stages=args.stages,
        progress=args.progress,
    )


def run(args: argparse.Namespace) -> int:
    from drive.study import run_study
    from drive.study.stages import StudyFailed

    cfg = config_from_args(args)
    cfg.validate()
    claim_out(cfg.out, OUT_RULE)
    try:
        summary = run_study(cfg)
    except StudyFailed as exc:
        print(f"drive study: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
