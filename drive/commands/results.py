"""``drive results``: the README's results for the shipped checkpoints (flags -> :class:`~drive.study.results.
ResultsConfig`, then :func:`drive.study.results.make_results`). Prints results.md (suite.md with
``--suite-only``); the last printed line is one JSON object: results.json (``{"suite": …}`` with ``--suite-only``).

    drive results                          # every model in checkpoints/ with a config.json
    drive results --models ncp19 lstm      # a subset
    drive results --seeds 3 --episodes 10  # a different budget
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from drive.commands.common import field_docs
from drive.commands.runs import OutRule, claim_out

OUT_RULE = OutRule(resumable=True, overwrite=False)
"""``--work`` is resumable: a rerun reuses the finished work; the run record goes there (not to --publish)."""


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected variances like 0.01,0.04, got {text!r}") from None
    if not levels or any(not (math.isfinite(lv) and 0 < lv <= 1) for lv in levels) or len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(f"expected distinct variances in (0, 1], got {text!r}")
    return levels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drive.study.results import ResultsConfig

    d, doc = ResultsConfig(), field_docs(ResultsConfig)

    def helps(field: str) -> str:
        return doc[field].replace("%", "%%") + f" (default: {getattr(d, field)!r})"

    parser.add_argument("--models", nargs="+", default=list(d.models), help=doc["models"])
    parser.add_argument("--episodes", type=int, default=d.episodes, help=helps("episodes"))
    parser.add_argument("--seeds", type=int, default=d.seeds, help=helps("seeds"))
    parser.add_argument("--workers", type=int, default=d.workers, help=helps("workers"))
    parser.add_argument("--work", default=d.work, help=helps("work"))
    parser.add_argument("--publish", default=d.publish, help=helps("publish"))
    parser.add_argument("--ckpt-root", default=d.ckpt_root, help=helps("ckpt_root"))
    parser.add_argument(
        "--levels", type=_levels, default=d.levels, metavar="0.01,…", help=doc["levels"] + " (default: the paper's)"
    )
    parser.add_argument("--passive-episodes", type=int, default=d.passive_episodes, help=helps("passive_episodes"))
    parser.add_argument(
        "--passive-duration-s", type=float, default=d.passive_duration_s, help=helps("passive_duration_s")
    )
    parser.add_argument("--active-from", default=None, metavar="RESULTS_JSON", help=doc["active_from"])
    parser.add_argument("--suite-duration-s", type=float, default=d.suite_duration_s, help=helps("suite_duration_s"))
    parser.add_argument("--suite-tracks", type=int, default=d.suite_tracks, help=helps("suite_tracks"))
    parser.add_argument("--suite-case", action="append", default=[], help="only this suite case (repeatable)")
    parser.add_argument("--suite-only", action="store_true", help=doc["suite_only"])
    parser.add_argument("--duration-s", type=float, default=None, help=doc["duration_s"])
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from drive.study.results import ResultsConfig

    return ResultsConfig(
        models=tuple(args.models),
        episodes=args.episodes,
        seeds=args.seeds,
        workers=args.workers,
        work=args.work,
        publish=args.publish,
        ckpt_root=args.ckpt_root,
        levels=tuple(args.levels),
        passive_episodes=args.passive_episodes,
        passive_duration_s=args.passive_duration_s,
        active_from=args.active_from,
        suite_duration_s=args.suite_duration_s,
        suite_tracks=args.suite_tracks,
        suite_cases=tuple(args.suite_case),
        suite_only=args.suite_only,
        duration_s=args.duration_s,
        progress=args.progress,
    )


def run(args: argparse.Namespace) -> int:
    from drive.study.results import ResultsFailed, make_results

    cfg = config_from_args(args)
    cfg.validate()
    claim_out(cfg.work, OUT_RULE, flag="--work")
    try:
        result = make_results(cfg)
    except ResultsFailed as exc:
        print(f"drive results: {exc}", file=sys.stderr)
        return 1
    print((Path(cfg.publish) / ("suite.md" if cfg.suite_only else "results.md")).read_text())
    print(json.dumps(result))
    return 0
