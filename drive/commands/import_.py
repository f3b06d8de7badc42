"""``drive import``: turn existing driving logs (video+CSV, Udacity, Sully-Chen) into a dataset.

Several sources in one call, and calls into a folder that holds an imported dataset, append to it. The
formats and options are described in :mod:`drive.data.importers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drive.commands.common import prepare_out_dir
from drive.data import layout
from drive.data.importers import (
    CAMERAS,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    FORMATS,
    STEERING_SIGNS,
    STEERING_UNITS,
    ImportOptions,
)

DESCRIPTION = f"""\
Turn driving logs into a dataset. Several sources in one call become one episode each (udacity and
sully-chen: one per gap-free run, and per camera), in order; into a folder that holds a dataset made by
drive import they are appended, keeping every earlier episode. Every clip of a dataset has its frame
size, frame rate and max_steer_rad: a clip that differs is refused. Steering sign: datasets store
action.steering with positive = {layout.STEERING_POSITIVE} (counter-clockwise, ISO 8855), recorded in
meta/info.json as steering_positive; udacity and sully-chen logs (positive = right) are negated, video-csv
follows --steering-sign."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ImportOptions()
    parser.description = DESCRIPTION
    parser.add_argument(
        "src",
        nargs="+",
        metavar="SRC",
        help="the sources, in order: videos (video-csv), driving_log.csv files or their folders (udacity), "
        "data.txt files or their folders (sully-chen)",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="the sources' format")
    parser.add_argument(
        "--out",
        required=True,
        help="the dataset folder: created when absent or empty, appended to when it holds an imported dataset",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the dataset in --out instead of appending (refused for a folder that is not a dataset "
        "or holds other files)",
    )
    parser.add_argument(
        "--height",
        type=int,
        default=None,
        help=f"image height of the dataset, pixels, even (default {DEFAULT_HEIGHT}; when appending, the dataset's)",
    )
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help=f"image width of the dataset, pixels, even (default {DEFAULT_WIDTH}; when appending, the dataset's)",
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
        help="angle, rad, that normalised steering 1.0 stands for, stored in meta/info.json (default: when "
        "appending, the dataset's; else the largest |angle| of the logs for deg/rad, 25 deg for udacity; "
        "required for normalized video-csv). Labels beyond it are clipped to +-1 with a warning that counts them",
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
    g.add_argument(
        "--csv",
        action="append",
        default=None,
        help="per-frame steering CSV; repeat it, one per video in the videos' order "
        "(default: each video's <name>.csv beside it)",
    )
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
    g = parser.add_argument_group(
        "camera (for drive replay; recorded in meta/info.json for the frames as stored, after the crop)"
    )
    g.add_argument("--camera-height-m", type=float, default=None, help="the camera's height over the road, m")
    g.add_argument(
        "--camera-pitch-rad", type=float, default=None, help="the camera's downward pitch, rad (positive looks down)"
    )
    g.add_argument(
        "--fov-deg",
        type=float,
        default=None,
        help="the camera's horizontal field of view over the source frame's full width, degrees (a crop narrows "
        "it: fov = 2 atan(tan(fov/2) x kept width / source width))",
    )
    g.add_argument(
        "--camera-yaw-rad", type=float, default=None, help="the camera mount's yaw, rad, left positive (default 0)"
    )
    g = parser.add_argument_group(
        "speed (for drive replay and --viewpoint-augment; stored per frame as observation.speed_mps, m/s)"
    )
    g.add_argument(
        "--speed-column",
        default=None,
        help="video-csv: the CSV's speed column, m/s, one per row as the steering (udacity logs carry their "
        "speed, mph, converted; sully-chen has none)",
    )
    g.add_argument(
        "--speed-mps",
        type=float,
        default=None,
        help="a constant speed, m/s, for every frame, instead of the log's (any format)",
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
        camera_height_m=args.camera_height_m,
        camera_pitch_rad=args.camera_pitch_rad,
        fov_deg=args.fov_deg,
        camera_yaw_rad=args.camera_yaw_rad,
        speed_column=args.speed_column,
        speed_mps=args.speed_mps,
    )
    options.check()
    out = Path(args.out)
    existed = out.exists()
    prepare_out_dir(out)
    before = layout.read_info(out) if not args.overwrite and layout.is_dataset(out) else None
    try:
        info = import_dataset(
            args.format, args.src, out, options, overwrite=args.overwrite, progress=args.progress, report=print
        )
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed import leaves nothing behind, not even the folder checked for it
        raise
    added = info.total_episodes - (before.total_episodes if before else 0)
    print(
        f"drive import: {added} episode(s) added; {info.total_episodes} episode(s), {info.total_frames} frame(s) "
        f"at {info.fps:.3g} Hz, max_steer_rad {info.max_steer_rad:.4g} rad -> {args.out}"
    )
    return 0
