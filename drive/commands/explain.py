"""`drive explain`: saliency maps, attention stability, the neuron activity's PC1 share and neuron traces.

Parses the flags into typed values, checks ``--out`` before any driving, and calls
:func:`drive.eval.explain.explain` (the library; see its module for the method and outputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drive.commands.common import seed_type
from drive.commands.runs import OutRule, add_out_arguments, claim_out
from drive.errors import UserError

OUT_RULE = OutRule(own=("explain.json", "saliency/frame_*.png", "saliency.mp4", "neuron_traces.png", "wiring.png"))
"""Not resumable: a folder that holds files is refused unless --overwrite (then these are deleted first)."""


def _variances(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected variances like 0.1,0.2,0.3, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected variances like 0.1,0.2,0.3, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default="checkpoints/ncp19", help="checkpoint folder (default: checkpoints/ncp19)"
    )
    parser.add_argument("--scenario", default="default", help="scenario YAML file or shipped name (default: default)")
    parser.add_argument(
        "--data", default=None, help="dataset folder: explain on its recorded frames instead of a scenario"
    )
    parser.add_argument("--episode", type=int, default=None, help="with --data: the episode (default: the first)")
    parser.add_argument("--out", default="runs/explain", help="output folder (default: runs/explain)")
    add_out_arguments(parser, OUT_RULE)
    parser.add_argument(
        "--label", default=None, help="the driver's name in the figure titles (default: the checkpoint folder's name)"
    )
    parser.add_argument("--seed", type=seed_type, default=0, help="reset seed of the episode (default: 0)")
    parser.add_argument(
        "--noise",
        type=_variances,
        default=[0.1, 0.2, 0.3],
        help="Gaussian noise variances sigma^2 for the SSIM (default: 0.1,0.2,0.3)",
    )
    parser.add_argument("--images", type=int, default=6, help="saliency PNGs to write (default: 6)")
    parser.add_argument(
        "--ssim-frames", type=int, default=40, help="frames of each episode the SSIM is averaged over (default: 40)"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=1,
        help="clean episodes to drive (reset seeds SEED, SEED+1, ...; default: 1); the SSIM pools their frames, "
        "the PC1 share and participation ratio are means over them",
    )
    from drive.world.scenario import duration_s_arg

    parser.add_argument(
        "--duration-s",
        type=duration_s_arg,
        default=20.0,
        help="episode length, s (default: 20; with --data: the first seconds of the episode)",
    )
    parser.add_argument("--no-video", action="store_true", help="skip the saliency overlay video")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument(
        "--camera-from-checkpoint",
        action="store_true",
        help="render with the camera mount the checkpoint's dataset was recorded with, where it recorded one "
        "(default: the scenario's; a different one is warned about)",
    )


def run(args: argparse.Namespace) -> int:
    from drive.eval.explain import explain
    from drive.eval.simulate import resolve_scenario
    from drive.policy.load import resolve_checkpoint

    # 1. typed values from the flags; nothing is written yet
    if args.images < 0:
        raise UserError(f"--images {args.images}: must be >= 0")
    if args.ssim_frames < 1:
        raise UserError(f"--ssim-frames {args.ssim_frames}: must be >= 1")
    if args.episodes < 1 or (args.data is not None and args.episodes != 1):
        raise UserError(f"--episodes {args.episodes}: must be >= 1, and 1 with --data")
    checkpoint = resolve_checkpoint(args.checkpoint)
    scenario = None if args.data is not None else resolve_scenario(args.scenario)
    # 2. the output folder, before any driving
    out = claim_out(args.out, OUT_RULE, args.overwrite)
    # 3. the work
    result = explain(
        checkpoint,
        scenario,
        out,
        seed=args.seed,
        variances=args.noise,
        images=args.images,
        ssim_frames=args.ssim_frames,
        duration_s=args.duration_s,
        video=not args.no_video,
        data=args.data,
        episode=args.episode,
        episodes=args.episodes,
        label=args.label,
        camera_from_checkpoint=args.camera_from_checkpoint,
        progress=args.progress,
    )
    print("mean SSIM of saliency maps, clean vs Gaussian noise (1 = same attention):")
    for level, value in result["mean_ssim"].items():
        print(f"  sigma^2 = {level:>5s}: {value:.3f}")
    if result["pc1_share"] is not None:
        print(
            f"neuron activity ({result['activity_source']}, {result['neurons']} units): PC1 share "
            f"{result['pc1_share']:.3f}, participation ratio {result['participation_ratio']:.2f} "
            f"(mean over {result['episodes']} episode(s))"
        )
    print(f"wrote {Path(out) / 'explain.json'}")
    return 0
