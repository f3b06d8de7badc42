"""``drive import``: turn existing driving logs (video+CSV, Udacity, Sully-Chen) into a dataset.

The formats and options are described in :mod:`drive.data.importers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drive.commands.common import prepare_out_dir
from drive.data.importers import CAMERAS, FORMATS, STEERING_SIGNS, STEERING_UNITS, ImportOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ImportOptions()
    parser.add_argument(
        "src",
        help="the source: a video (video-csv), driving_log.csv or its folder (udacity), "
        "data.txt or its folder (sully-chen)",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="the source's format")
    parser.add_argument("--out", required=True, help="the dataset folder to create")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the dataset in --out (refused for a folder that is not a dataset or holds other files)",
    )
    parser.add_argument(
        "--height", type=int, default=d.height, help=f"image height of the dataset, pixels, even (default {d.height})"
    )
    parser.add_argument(
        "--width", type=int, default=d.width, help=f"image width of the dataset, pixels, even (default {d.width})"
    )
    parser.add_argument(
        "--resize",
        choices=("crop", "stretch"),
        default=d.resize,
        help="crop: centre-crop to the aspect ratio, then resize (default); stretch: resize only",
    )
    parser.add_argument(
        "--max-steer-rad",
        type=float,
        default=None,
        help="angle, rad, that normalised steering 1.0 stands for (defaults: see drive.data.importers)",
    )
    parser.add_argument("--fps", type=float, default=None, help="frame rate, Hz, when the source does not carry times")
    parser.add_argument(
        "--max-gap-s",
        type=float,
        default=d.max_gap_s,
        help=f"udacity/sully-chen: a time gap over this, s, starts a new episode (default {d.max_gap_s})",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g = parser.add_argument_group("video-csv")
    g.add_argument("--csv", default=None, help="per-frame steering CSV")
    g.add_argument("--steering-column", default=d.steering_column, help="steering column name (default 'steering')")
    g.add_argument(
        "--steering-unit", choices=STEERING_UNITS, default=d.steering_unit, help="steering unit (default normalized)"
    )
    g.add_argument("--frame-column", default=None, help="frame-index column (default: frame_index or frame)")
    g.add_argument(
        "--time-column",
        default=None,
        help="time column, s from the video's first frame (default: timestamp, time or t)",
    )
    g.add_argument(
        "--time-offset-s",
        type=float,
        default=d.time_offset_s,
        help="CSV time of the video's first frame, s (default 0)",
    )
    g.add_argument(
        "--max-time-error-s",
        type=float,
        default=None,
        help="largest gap, s, between a label's time and its frame's presentation time "
        "(default: half the video's median frame interval)",
    )
    g.add_argument(
        "--steering-sign",
        choices=STEERING_SIGNS,
        default=d.steering_sign,
        help=f"which way the CSV's positive steering turns (default {d.steering_sign}, as the datasets store "
        "it; right-positive is negated). udacity and sully-chen: right-positive, converted",
    )
    g = parser.add_argument_group("udacity")
    g.add_argument("--cameras", default=",".join(CAMERAS), help="cameras to import (default center,left,right)")
    g.add_argument(
        "--steering-correction",
        type=float,
        default=d.steering_correction,
        help="normalised steering by which the left camera's label steers more right, the right camera's "
        "more left (default 0.2)",
    )


def run(args: argparse.Namespace) -> int:
    from drive.data.importers import import_dataset

    options = ImportOptions(
        height=args.height,
        width=args.width,
        resize=args.resize,
        max_steer_rad=args.max_steer_rad,
        fps=args.fps,
        max_gap_s=args.max_gap_s,
        csv=args.csv,
        steering_column=args.steering_column,
        steering_unit=args.steering_unit,
        frame_column=args.frame_column,
        time_column=args.time_column,
        time_offset_s=args.time_offset_s,
        steering_sign=args.steering_sign,
        max_time_error_s=args.max_time_error_s,
        cameras=tuple(c.strip() for c in args.cameras.split(",") if c.strip()),
        steering_correction=args.steering_correction,
    )
    options.check()
    out = Path(args.out)
    existed = out.exists()
    prepare_out_dir(out)
    try:
        info = import_dataset(args.format, args.src, out, options, overwrite=args.overwrite, progress=args.progress)
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed import leaves nothing behind, not even the folder checked for it
        raise
    print(
        f"drive import: {info.total_episodes} episode(s), {info.total_frames} frame(s) at {info.fps:.3g} Hz "
        f"-> {args.out}"
    )
    return 0
