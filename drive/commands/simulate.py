"""`drive simulate`: drive a checkpoint (or the expert) closed loop and write metrics.json and videos.

Parses the flags into typed values, checks ``--out`` before any driving, and calls
:func:`drive.eval.simulate.simulate` (the library; one episode = :func:`drive.eval.rollout.run_episode`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drive.commands.common import add_perturb_arguments, seed_type
from drive.commands.runs import OutRule, add_out_arguments, claim_out
from drive.errors import UserError

OUT_RULE = OutRule(own=("metrics.json", "videos/episode_*.mp4"))
"""Not resumable: a folder that holds files is refused unless --overwrite (then these are deleted first)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drive.eval.simulate import DEFAULT_CHECKPOINT, DEFAULT_SCENARIO

    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"checkpoint folder, or 'expert' (default: {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help="scenario YAML file or shipped scenario name (default: scenarios/default.yaml)",
    )
    parser.add_argument("--episodes", type=int, default=1, help="episodes to drive (default: 1)")
    parser.add_argument(
        "--seed", type=seed_type, default=0, help="reset seed of the first episode; episode i uses seed+i"
    )
    parser.add_argument("--out", default="runs/simulate", help="output folder (default: runs/simulate)")
    add_out_arguments(parser, OUT_RULE)
    parser.add_argument(
        "--label",
        default=None,
        help="the driver's name in the table and video titles (default: the checkpoint folder's name)",
    )
    parser.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write one mp4 per episode to OUT/videos (default: on)",
    )
    parser.add_argument("--show", action="store_true", help="show the driving live in a window (needs a display)")
    parser.add_argument(
        "--camera-from-checkpoint",
        action="store_true",
        help="render with the camera mount (height, pitch, yaw, field of view) the checkpoint's dataset was "
        "recorded with, where it recorded one, in place of the scenario's (default: the scenario's; a "
        "different one is warned about)",
    )
    parser.add_argument(
        "--end-on-off-road",
        action="store_true",
        help="end an episode when the car leaves the road (default: count it, recentre, go on)",
    )
    add_perturb_arguments(
        parser, single=True, help="inject a perturbation, e.g. gaussian:0.1 (repeatable; see `drive stress --help`)"
    )
    from drive.world.scenario import duration_s_arg

    parser.add_argument(
        "--duration-s", type=duration_s_arg, default=None, help="override the scenario's episode length, s"
    )
    parser.add_argument("--no-expert", action="store_true", help="skip the expert's reference run")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--runtime",
        choices=("onnx", "torch"),
        default="onnx",
        help="run the checkpoint with onnxruntime (exported once, cached) or torch (default: onnx, "
        "the faster at batch 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: torch's own, one per core; on a busy machine 1 is "
        "faster, since threads waiting for a core cost milliseconds a step)",
    )


def run(args: argparse.Namespace) -> int:
    from drive.eval.simulate import check_display, resolve_scenario, simulate, summary_table
    from drive.policy.load import check_compatible, load_driver

    # 1. typed values from the flags (cheap checks first; nothing is written yet)
    if args.threads < 0:
        raise UserError(f"--threads {args.threads}: must be >= 0")
    if args.episodes < 1:
        raise UserError(f"--episodes {args.episodes}: must be >= 1")
    if args.show:
        check_display()
    scenario = resolve_scenario(args.scenario, args.duration_s)
    driver = load_driver(args.checkpoint, args.runtime)
    check_compatible(driver, scenario, warn=False)  # the frame size, at once; simulate() warns on rate and camera
    # 2. the output folder, before any driving
    out = claim_out(args.out, OUT_RULE, args.overwrite)
    if args.threads and "torch" in sys.modules:  # the onnx runtime does not load torch: nothing to set
        import torch

        torch.set_num_threads(args.threads)
    # 3. the work
    result = simulate(
        driver,
        scenario,
        episodes=args.episodes,
        seed=args.seed,
        perturbations=args.perturb,
        out=out,
        video=args.video,
        off_road="terminate" if args.end_on_off_road else "recover",
        expert_reference=not args.no_expert,
        show=args.show,
        checkpoint=str(args.checkpoint),
        label=args.label,
        camera_from_checkpoint=args.camera_from_checkpoint,
        progress=args.progress,
    )
    print(summary_table(result))
    print(
        f"wrote {Path(out) / 'metrics.json'}" + (f" and {len(result.get('videos', []))} video(s)" if args.video else "")
    )
    return 0
