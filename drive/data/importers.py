"""`drive import`: turn existing driving logs into a dataset in the layout of :mod:`drive.data.layout`.

Many clips, one dataset: SRC may be several sources of one format, written in order, one episode each
(udacity and sully-chen: one per gap-free run, and per camera). Every clip of a dataset shares its frame
size, frame rate (to within :data:`FPS_TOLERANCE`) and ``max_steer_rad``; a clip that differs is refused
in one line naming both values.

Formats (``--format``):

``video-csv``
    SRC is any video FFmpeg (PyAV) can read; ``--csv`` is a table with one row per labelled frame (repeat
    ``--csv`` for several videos, in the videos' order; default: each video's ``<name>.csv`` beside it). Each
    row names its frame either by a frame-index column (``frame_index``/``frame``, or ``--frame-column``:
    the frame's number in display order) or by a time column in seconds from the video's first frame
    (``timestamp``/``time``/``t``, or ``--time-column``; shift with ``--time-offset-s``), which picks the
    frame whose presentation timestamp (``pts * time_base``, not ``n / nominal fps``: variable frame
    rate videos pair right) is nearest. A label with no frame within ``--max-time-error-s`` (default half
    the video's median frame interval), or two labels on one frame, is an error naming the times. The
    dataset's timestamps are the chosen frames' presentation times. Steering is in
    ``--steering-column`` (default ``steering``) with unit ``--steering-unit deg|rad|normalized`` and
    sign ``--steering-sign``: ``left-positive`` (the default: ISO 8855 and the datasets' own convention,
    e.g. openpilot's ``steeringAngleDeg``) or ``right-positive`` (converted by negation).
``udacity``
    SRC is the Udacity simulator's ``driving_log.csv`` (or its folder) with images in ``IMG/`` beside it.
    Columns: center, left, right, steering, throttle, brake, speed (mph; a header line is allowed). Steering
    is already normalised to [-1, 1], and **positive steers right** in Udacity's simulator (its
    behavioural-cloning project: negative = left turn); it is negated on import. Each camera becomes its
    own episode. The left camera sees the car as if it were further left, so its label steers more to
    the right: ours = -(udacity steering) - ``--steering-correction`` (default 0.2); the right camera's
    = -(udacity steering) + correction. Time comes from the image names
    (``center_YYYY_MM_DD_HH_MM_SS_mmm``); a gap over ``--max-gap-s`` or a step back in time starts a new
    episode.
``sully-chen``
    SRC is Sully Chen's ``data.txt`` (or its folder): ``FILENAME ANGLE`` per line, angle in degrees of
    the steering wheel, images beside the file; the 2018 format's ``,YYYY-MM-DD HH:MM:SS:mmm`` suffix
    gives the time, otherwise ``--fps`` does. **Positive turns right** there: the author's own viewer
    (``run_dataset.py`` in SullyChen/Autopilot-TensorFlow) draws the wheel rotated by
    ``cv2.getRotationMatrix2D(centre, -angle, 1)``, i.e. clockwise for a positive angle, and the
    PilotNet reimplementations trained on it read it the same way. It is negated on import.

Sign: every dataset stores ``action.steering`` with **positive = left** (counter-clockwise, the
simulator's action, :mod:`drive.world.env`); ``meta/info.json`` records ``steering_positive: "left"``
and the source's own convention in ``source_steering_positive``.

Normalisation: normalised steering = radians / ``max_steer_rad``, stored in ``meta/info.json``. Labels
beyond it are clipped to [-1, 1], and one warning line per clip counts them and names the largest angle.
``--max-steer-rad`` defaults, when appending, to the dataset's; for a new dataset to the largest absolute
angle of all the logs of the call for ``deg``/``rad`` units (the labels then span [-1, 1]), to 25 degrees
for Udacity (its simulator's maximum steering angle; a Udacity log appended to a dataset with another
value needs the flag), and it must be given for ``normalized`` video-csv logs. The value used, and where
it comes from, is reported before any frame is decoded (``drive import`` prints it).

Images: a source frame (after the crop) smaller than a quarter of the dataset's size on either side
(under 20 x 50 for 78 x 200) is refused with an error naming the file and its size, rather than blown
up. Each frame is centre-cropped to the dataset's aspect ratio (``--resize crop``, the default;
the crop keeps the full width or the full height, whichever fits) and resized with OpenCV's area
interpolation to ``--height`` x ``--width`` (default 78 x 200); ``--resize stretch`` skips the crop.

Camera (for ``drive replay``, :mod:`drive.replay`): ``--camera-height-m``, ``--camera-pitch-rad`` and ``--fov-deg``
(and optionally ``--camera-yaw-rad``, the mount's yaw, left +) describe the source camera: height of its
optical centre over the road, m; downward pitch of its optical axis, rad; its horizontal field of view over
the source frame's full width, degrees. ``meta/info.json`` records ``camera`` for the frames as stored
(:func:`camera_metadata`): height, pitch and yaw as given (a centre crop keeps the principal point at the
centre); the horizontal field of view after the crop, fov = 2·atan(tan(fov_source / 2)·w_crop / w_source)
(``--resize crop`` of a source wider than the dataset keeps w_crop = round(h_source·W/H) of its w_source
columns; a taller source keeps its full width, and its fov); and ``pixel_aspect`` = f_y/f_x of the stored
frames, (H/h_kept)/(W/w_kept): 1 (to rounding) after a crop, H·w_source/(W·h_source) after ``--resize
stretch`` of a source of another aspect ratio, whose pixels are then not square; replay refuses such a
dataset (its ground-plane view needs square pixels: re-import with ``--resize crop``). The source's own
values are kept beside them (``source_fov_deg``, ``source_width``, ``source_height``, ``resize``). The
frame size is the first frame's of each source. All the clips of a dataset share one camera: a clip whose
camera differs (by more than :data:`CAMERA_TOLERANCE`, relative), or clips with and without the flags, are
refused in one line naming both.

Speed (for ``drive replay`` and ``drive train --viewpoint-augment``, which move the car along the recorded
path at the recorded speed): stored per frame in ``observation.speed_mps`` (:data:`layout.SPEED`, what
:mod:`drive.replay.path` reads), m/s. video-csv takes it from ``--speed-column NAME`` (m/s, one per CSV row,
paired with its frame as the steering is); Udacity logs carry it in their ``speed`` column, in miles per
hour (the simulator's unit; its top speed is about 30), converted to m/s (x :data:`MPH_TO_MPS`); Sully-Chen's
``data.txt`` has none. ``--speed-mps V`` gives every frame of any format the constant V instead. A speed
that is not a number, NaN, negative or over :data:`MAX_SPEED_MPS` (80 m/s: another unit, or another column)
is a one-line error naming the file, line and value. Without a speed the column holds NaN, and
``drive replay`` refuses the dataset in one line naming the flags.

``--out``: an absent or empty folder gets a new dataset, built in a temporary folder beside it and moved
there only when complete (:func:`drive.io.atomic_dir`): a failed import leaves nothing behind. A folder
that holds a dataset made by ``drive import`` is appended to: the new episodes are staged as hidden
temporaries and saved together under the folder's lock, the one ``drive record`` uses
(:meth:`DatasetWriter.save_staged`), so a failed append leaves the dataset as it was and every earlier
episode stays. With ``--overwrite`` the folder may instead hold a dataset (a readable ``meta/info.json``,
and nothing but the dataset's own files, lock, temporaries and frame cache), which is replaced. Any
other folder is refused (a dataset of ``drive record`` too), as is an ``--out`` that holds one of the
import's inputs or lies inside a source's folder.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.io import atomic_dir
from drive.video_io import frame_times, iter_video_timed, video_fps

FORMATS = ("video-csv", "udacity", "sully-chen")
STEERING_UNITS = ("deg", "rad", "normalized")
UDACITY_MAX_STEER_RAD = math.radians(25.0)
"""The Udacity simulator's maximum steering angle (25 degrees), rad: what its steering 1.0 stands for."""
CAMERAS = ("center", "left", "right")
STEERING_SIGNS = ("left-positive", "right-positive")
"""video-csv ``--steering-sign``: which way the CSV's positive steering turns."""
SOURCE_STEERING_POSITIVE = {"udacity": "right", "sully-chen": "right"}
"""The fixed sign conventions of the formats (which way a positive value turns); see the module doc."""
MIN_SOURCE_FRACTION = 4
"""A source frame (after the crop) must be at least 1/this of the dataset's image on each side."""
DEFAULT_HEIGHT, DEFAULT_WIDTH = 78, 200
"""A new dataset's image size, pixels, when ``--height``/``--width`` are not given."""
MAX_SPEED_MPS = 80.0
"""The largest speed, m/s (288 km/h), an import takes as a road speed: above it, a wrong unit or column."""
MPH_TO_MPS = 0.44704
"""m/s per mile per hour: Udacity's simulator logs its speed in mph."""
CsvOption = str | os.PathLike | Sequence[str | os.PathLike] | None


@dataclass
class ImportOptions:
    """How to read a source and shape the dataset (``drive import``'s options; see the module doc)."""

    height: int | None = None
    """Image height of the dataset, pixels (even: H.264 yuv420p); None: the dataset's when appending,
    else :data:`DEFAULT_HEIGHT`."""
    width: int | None = None
    """Image width of the dataset, pixels (even); None: the dataset's when appending, else
    :data:`DEFAULT_WIDTH`."""
    resize: str = "crop"
    """``crop``: centre-crop to the aspect ratio, then resize; ``stretch``: resize only."""
    max_steer_rad: float | None = None
    """Angle, rad, that normalised steering 1.0 stands for (None: the dataset's when appending, else the
    format's default; see the module doc)."""
    fps: float | None = None
    """Frame rate, Hz, when the source carries no times (None: from the source)."""
    max_gap_s: float = 1.0
    """udacity/sully-chen: a time gap over this, s, starts a new episode."""
    csv: CsvOption = None
    """video-csv: the per-frame steering CSV, or a list of them, one per video in the videos' order (None:
    each video's ``<name>.csv`` beside it)."""
    steering_column: str = "steering"
    """video-csv: the steering column's name."""
    steering_unit: str = "normalized"
    """video-csv: ``deg``, ``rad`` or ``normalized``."""
    frame_column: str | None = None
    """video-csv: the frame-index column (None: ``frame_index`` or ``frame``)."""
    time_column: str | None = None
    """video-csv: the time column, s from the video's first frame (None: ``timestamp``, ``time`` or ``t``)."""
    time_offset_s: float = 0.0
    """video-csv: the CSV time of the video's first frame, s."""
    steering_sign: str = "left-positive"
    """video-csv: ``left-positive`` (ours, ISO 8855) or ``right-positive`` (negated on import)."""
    max_time_error_s: float | None = None
    """video-csv with a time column: the largest gap, s, between a label's time and its frame's
    presentation time (None: half the video's median frame interval)."""
    cameras: tuple[str, ...] = CAMERAS
    """udacity: the cameras to import, each its own episode."""
    steering_correction: float = 0.2
    """udacity: normalised steering by which the left camera's label steers more right (and the right
    camera's more left) than the centre's."""
    camera_height_m: float | None = None
    """The source camera's height over the road, m (None: no camera metadata)."""
    camera_pitch_rad: float | None = None
    """The source camera's downward pitch, rad."""
    fov_deg: float | None = None
    """The source camera's horizontal field of view over the source frame's full width, degrees."""
    camera_yaw_rad: float | None = None
    """The camera mount's yaw, rad, left + (None: 0 when the camera is given)."""
    speed_column: str | None = None
    """video-csv: the column of the car's speed, m/s, one per CSV row as the steering (None: no speed)."""
    speed_mps: float | None = None
    """A constant speed, m/s, for every frame, instead of the log's (None: the log's, if it has one)."""

    def check(self) -> None:
        """One-line :class:`UserError` naming the option and value for a bad option."""
        if not all(n is None or (isinstance(n, int) and n > 0 and n % 2 == 0) for n in (self.height, self.width)):
            raise UserError(
                f"--height/--width: must be positive even integers (H.264 yuv420p), got {self.height}x{self.width}"
            )
        if self.resize not in ("crop", "stretch"):
            raise UserError(f"--resize: must be 'crop' or 'stretch', got {self.resize!r}")
        if self.steering_unit not in STEERING_UNITS:
            raise UserError(f"--steering-unit: must be one of {STEERING_UNITS}, got {self.steering_unit!r}")
        if self.steering_sign not in STEERING_SIGNS:
            raise UserError(f"--steering-sign: must be one of {STEERING_SIGNS}, got {self.steering_sign!r}")
        for name in ("max_steer_rad", "fps", "max_time_error_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(f"--{name.replace('_', '-')}: must be a positive number, got {v!r}")
        if self.speed_mps is not None:
            if self.speed_column is not None:
                raise UserError(
                    f"--speed-column {self.speed_column!r} and --speed-mps {self.speed_mps!r}: give one "
                    "(a speed per CSV row, or one for every frame)"
                )
            check_speed(self.speed_mps, "--speed-mps")
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise UserError(f"--max-gap-s: must be a positive number, got {self.max_gap_s!r}")
        for cam in self.cameras:
            if cam not in CAMERAS:
                raise UserError(f"--cameras: unknown camera {cam!r} (choose from center, left, right)")
        if not self.cameras:
            raise UserError("--cameras: name at least one camera")
        given = [flag for flag, v in zip(CAMERA_FLAGS, self._camera_values()) if v is not None]
        if given and len([f for f in given if f != "--camera-yaw-rad"]) < 3:
            missing = [flag for flag in CAMERA_FLAGS[:3] if flag not in given]
            raise UserError(
                f"{', '.join(missing)}: missing: the camera is given by all of {', '.join(CAMERA_FLAGS[:3])} "
                f"(got only {', '.join(given)})"
            )
        for flag, value, ok, rule in (
            ("--camera-height-m", self.camera_height_m, lambda v: v > 0, "a positive number of metres"),
            ("--camera-pitch-rad", self.camera_pitch_rad, lambda v: abs(v) < math.pi / 2, "in (-pi/2, pi/2)"),
            ("--fov-deg", self.fov_deg, lambda v: 0 < v < 180, "in (0, 180) degrees"),
            ("--camera-yaw-rad", self.camera_yaw_rad, lambda v: abs(v) < math.pi / 2, "in (-pi/2, pi/2)"),
        ):
            if value is not None and not (math.isfinite(value) and ok(value)):
                raise UserError(f"{flag}: must be {rule}, got {value!r}")

    def _camera_values(self) -> tuple[float | None, ...]:
        return (self.camera_height_m, self.camera_pitch_rad, self.fov_deg, self.camera_yaw_rad)


# --------------------------------------------------------------------------------------------------
# Images


def kept_size(source_hw: tuple[int, int], height: int, width: int, resize: str = "crop") -> tuple[int, int]:
    """(rows, columns) of a source frame that :func:`fit_frame` keeps before it resizes: the centre crop to the
    dataset's aspect ratio (``crop``), or the whole frame (``stretch``)."""
    h, w = source_hw
    if resize == "crop":
        target = width / height
        if w / h > target:  # too wide: keep the full height
            return h, max(1, round(h * target))
        if w / h < target:  # too tall: keep the full width
            return max(1, round(w / target)), w
    return h, w


def fit_frame(rgb: np.ndarray, height: int, width: int, resize: str = "crop") -> np.ndarray:
    """Resize an RGB image to (height, width): centre-crop to that aspect ratio first (``crop``) or not
    (``stretch``); OpenCV area interpolation when shrinking, linear when enlarging."""
    if resize not in ("crop", "stretch"):
        raise UserError(f"--resize must be 'crop' or 'stretch', got {resize!r}")
    h, w = rgb.shape[:2]
    ch, cw = kept_size((h, w), height, width, resize)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    rgb = rgb[y0 : y0 + ch, x0 : x0 + cw]
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    shrink = rgb.shape[0] >= height and rgb.shape[1] >= width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def check_source_size(shape: tuple[int, ...], height: int, width: int, resize: str, what: str) -> None:
    """One-line UserError naming ``what`` (the file) and its size when a source frame, after the crop of
    :func:`fit_frame`, is under 1/:data:`MIN_SOURCE_FRACTION` of ``height`` x ``width`` on either side:
    such a frame would be blown up into a blur, not imported."""
    h, w = shape[:2]
    ch, cw = kept_size((h, w), height, width, resize)
    min_h, min_w = math.ceil(height / MIN_SOURCE_FRACTION), math.ceil(width / MIN_SOURCE_FRACTION)
    if ch < min_h or cw < min_w:
        raise UserError(
            f"{what}: frame is {h}x{w} (HxW){f', {ch}x{cw} after the crop' if (ch, cw) != (h, w) else ''}: "
            f"too small for a {height}x{width} dataset (at least {min_h}x{min_w}; see --height/--width)"
        )


CAMERA_FLAGS = ("--camera-height-m", "--camera-pitch-rad", "--fov-deg", "--camera-yaw-rad")
CAMERA_TOLERANCE = 1e-3
"""Relative difference up to which two clips' cameras count as one (the crop's rounding)."""
CAMERA_KEYS = ("height_m", "pitch_rad", "fov_deg", "yaw_rad", "pixel_aspect")
"""The fields of ``meta/info.json``'s ``camera`` that describe the stored frames (compared between clips)."""


def camera_metadata(
    options: ImportOptions, source_hw: tuple[int, int], height: int, width: int
) -> dict[str, float | int | str] | None:
    """``meta/info.json``'s ``camera`` for frames of ``source_hw`` (rows, columns) stored at ``height`` x
    ``width`` by ``options.resize``; None without the camera flags. See the module doc for the formulas."""
    if options.fov_deg is None:
        return None
    h, w = source_hw
    kept_h, kept_w = kept_size(source_hw, height, width, options.resize)
    half = math.radians(options.fov_deg) / 2
    return {
        "height_m": float(options.camera_height_m),
        "pitch_rad": float(options.camera_pitch_rad),
        "fov_deg": math.degrees(2 * math.atan(math.tan(half) * kept_w / w)),
        "yaw_rad": float(options.camera_yaw_rad or 0.0),
        "pixel_aspect": (height / kept_h) / (width / kept_w),
        "source_fov_deg": float(options.fov_deg),
        "source_height": int(h),
        "source_width": int(w),
        "resize": options.resize,
    }


def camera_text(camera: dict | None) -> str:
    """A camera in one line: ``height_m 1.2, pitch_rad 0.1, fov_deg 60, yaw_rad 0, pixel_aspect 1``, or ``none``."""
    if camera is None:
        return "none"
    return ", ".join(f"{k} {camera[k]:.6g}" for k in CAMERA_KEYS if isinstance(camera.get(k), (int, float)))


def read_image(path: Path, where: str) -> np.ndarray:
    """Read an image file as RGB uint8; ``where`` (``FILE line N``) is put in front of any error."""
    if not path.is_file():
        raise UserError(f"{where}: image {path} not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{where}: image {path} is unreadable")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------------------
# Parsing helpers


def parse_number(text: str, where: str, what: str = "steering") -> float:
    """A finite float from ``text``, else ValueError naming ``where`` (``FILE line N``), ``what`` and the value."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise UserError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {what} {text!r} is not a finite number")
    return value


def check_speed(mps: float, where: str, shown: str | None = None) -> float:
    """``mps`` when it is a road speed, m/s: finite, not negative and at most :data:`MAX_SPEED_MPS`; else a
    one-line :class:`UserError` naming ``where`` (``FILE line N`` or the flag) and the value (``shown``: the
    value as the log has it, e.g. ``'200' mph``)."""
    shown = shown or f"{mps!r} m/s"
    if not math.isfinite(mps):
        raise UserError(f"{where}: speed {shown} is not a finite number")
    if mps < 0:
        raise UserError(f"{where}: speed {shown} is negative (the speed is the car's, not a velocity: >= 0)")
    if mps > MAX_SPEED_MPS:
        raise UserError(
            f"{where}: speed {shown} is over {MAX_SPEED_MPS:g} m/s ({MAX_SPEED_MPS * 3.6:g} km/h): not a road "
            "speed in m/s (another unit, or another column?)"
        )
    return float(mps)


def parse_speed(text: str, where: str, scale: float = 1.0, unit: str = "m/s") -> float:
    """A speed in m/s from a log's ``text`` in ``unit`` (``scale`` m/s each), checked by :func:`check_speed`."""
    value = parse_number(text, where, what="speed")
    return check_speed(
        value * scale, where, f"{str(text).strip()!r} {unit}" + ("" if scale == 1 else f" ({value * scale:.4g} m/s)")
    )


def normalize(values: np.ndarray, unit: str, max_steer_rad: float) -> np.ndarray:
    """Steering in ``unit`` as normalised steering (radians / ``max_steer_rad``; ``normalized`` values are
    taken as they are), not clipped: values beyond +-1 are the caller's to count (:func:`clip_labels`)."""
    values = np.asarray(values, dtype=np.float64)
    if unit not in STEERING_UNITS:
        raise UserError(f"--steering-unit must be one of {STEERING_UNITS}, got {unit!r}")
    if unit == "normalized":
        return values
    return (np.radians(values) if unit == "deg" else values) / max_steer_rad


def clip_labels(labels: list[np.ndarray], max_steer_rad: float, where: str) -> list[np.ndarray]:
    """Clip normalised labels to [-1, 1]; when any lay beyond, one warning line on stderr naming
    ``where``, how many of how many, and the largest angle."""
    beyond = sum(int(np.count_nonzero(np.abs(x) > 1.0)) for x in labels)
    if beyond:
        total = sum(len(x) for x in labels)
        largest = max(float(np.max(np.abs(x))) for x in labels if len(x)) * max_steer_rad
        print(
            f"drive import: warning: {where}: {beyond} of {total} steering label(s) beyond max_steer_rad "
            f"{max_steer_rad:.4g} rad (up to {largest:.4g} rad) clipped to +-1",
            file=sys.stderr,
        )
    return [np.clip(x, -1.0, 1.0) for x in labels]


def split_episodes(times: np.ndarray, max_gap_s: float) -> list[np.ndarray]:
    """Row indices of each run of ``times`` with no gap over ``max_gap_s`` and no step back."""
    if len(times) == 0:
        return []
    dt = np.diff(times)
    breaks = np.nonzero((dt > max_gap_s) | (dt <= 0))[0] + 1
    return [r for r in np.split(np.arange(len(times)), breaks) if len(r)]


def fps_from_times(times: np.ndarray, where: str) -> float:
    dt = np.diff(times)
    dt = dt[dt > 0]
    if len(dt) == 0:
        raise UserError(f"{where}: cannot tell the frame rate from the timestamps; pass --fps")
    return float(1.0 / np.median(dt))


@dataclass
class _Episode:
    """One episode to write: image records (image formats), labels (ours-signed, in the clip's unit),
    times, a source tag."""

    images: list = field(default_factory=list)
    steering: np.ndarray = field(default_factory=lambda: np.zeros(0))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: str = ""
    speed: np.ndarray | None = None
    """The car's speed per frame, m/s (None: the log has none)."""


@dataclass
class _Clip:
    """One source of an import (a video with its CSV, or a log), read and checked; its frames are decoded
    only when written, by ``frames(episode)``."""

    name: str
    """The log (video-csv: the CSV), for messages."""
    episodes: list[_Episode]
    fps: float
    unit: str
    """The labels' unit: ``deg``, ``rad`` or ``normalized``."""
    source_positive: str
    """Which way a positive value turned in the source (``left``/``right``)."""
    frames: Callable[[_Episode], Iterator[np.ndarray]]
    scale_rad: float | None = None
    """The angle, rad, a normalised 1.0 of the source stands for where the format fixes it (Udacity: 25°)."""
    source_hw: tuple[int, int] | None = None
    """The source frames' size (rows, columns): the first frame's; None when not probed (no camera flags)."""
    speed_from: str | None = None
    """Where the episodes' speed comes from, for the report (None: the log has none)."""


# --------------------------------------------------------------------------------------------------
# video-csv


def _find_column(columns: list[str], given: str | None, candidates: tuple[str, ...]) -> str | None:
    if given is not None:
        return given
    lower = {c.strip().lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    return None


def _read_video_csv(video: Path, csv_path: Path, args: ImportOptions, csv_given: bool) -> _Clip:
    if not csv_path.is_file():
        raise UserError(
            f"{csv_path}: CSV not found" + ("" if csv_given else f" (the default for video {video}; pass --csv)")
        )
    if not video.is_file():
        raise UserError(f"{video}: video not found")
    shown = frame_times(video)  # presentation times of the frames, display order, s from the first
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise UserError(f"{csv_path}: empty CSV") from None
        rows = [(i + 2, row) for i, row in enumerate(reader) if any(cell.strip() for cell in row)]
    if not rows:
        raise UserError(f"{csv_path}: no data line after the header")
    if args.steering_column not in header:
        raise UserError(f"{csv_path} line 1: no steering column {args.steering_column!r} (columns: {header})")
    if args.speed_column is not None and args.speed_column not in header:
        raise UserError(f"{csv_path} line 1: no speed column {args.speed_column!r} (--speed-column; columns: {header})")
    frame_col = _find_column(header, args.frame_column, ("frame_index", "frame"))
    time_col = None if frame_col is not None else _find_column(header, args.time_column, ("timestamp", "time", "t"))
    if frame_col is None and time_col is None:
        raise UserError(
            f"{csv_path} line 1: needs a frame-index column (frame_index, frame) or a time column "
            f"(timestamp, time, t); columns: {header}"
        )
    for col in (frame_col, time_col):
        if col is not None and col not in header:
            raise UserError(f"{csv_path} line 1: no column {col!r} (columns: {header})")
    s_i = header.index(args.steering_column)
    k_i = header.index(frame_col or time_col)
    v_i = None if args.speed_column is None else header.index(args.speed_column)
    raw, frames_wanted, times, speeds = [], [], [], []
    for line, row in rows:
        where = f"{csv_path} line {line}"
        if len(row) != len(header):
            raise UserError(f"{where}: {len(row)} field(s), the header has {len(header)}")
        raw.append(parse_number(row[s_i], where))
        if v_i is not None:
            speeds.append(parse_speed(row[v_i], where))
        if frame_col is not None:
            f = parse_number(row[k_i], where, what=f"frame index ({frame_col})")
            if f != int(f) or f < 0:
                raise UserError(f"{where}: frame index {row[k_i]!r} is not a non-negative integer")
            frames_wanted.append(int(f))
        else:
            t = parse_number(row[k_i], where, what=f"time ({time_col})") - args.time_offset_s
            if t < 0:
                raise UserError(
                    f"{where}: time {row[k_i]!r} is before the video's first frame "
                    f"(--time-offset-s {args.time_offset_s})"
                )
            times.append(t)
        if (times and len(times) > 1 and times[-1] <= times[-2]) or (
            len(frames_wanted) > 1 and frames_wanted[-1] <= frames_wanted[-2]
        ):
            raise UserError(f"{where}: {'time' if times else 'frame index'} {row[k_i]!r} does not increase")
    steering = np.array(raw, dtype=np.float64)
    if args.steering_sign == "right-positive":
        steering = -steering
    line_of = [line for line, _ in rows]
    if times:
        wanted = _pair_by_time(np.array(times), shown, args.max_time_error_s, csv_path, line_of, video)
    else:
        wanted = np.array(frames_wanted)
        beyond = np.nonzero(wanted >= len(shown))[0]
        if len(beyond):
            k = int(beyond[0])
            raise UserError(
                f"{csv_path} line {line_of[k]}: frame {wanted[k]} is beyond the end of video {video} "
                f"({len(shown)} frame(s)): the video is shorter than its log"
            )
    timestamps = shown[wanted] - shown[wanted[0]]
    if len(timestamps) > 1:
        fps = args.fps or fps_from_times(timestamps, str(video))
    else:
        fps = args.fps or video_fps(video)
        if fps <= 0:
            raise UserError(f"{video}: the video does not say its frame rate; pass --fps")

    def frames(_: _Episode) -> Iterator[np.ndarray]:
        k = 0
        for number, (t, rgb) in enumerate(iter_video_timed(video, max_frames=int(wanted[-1]) + 1)):
            if number == 0:
                check_source_size(rgb.shape, args.height, args.width, args.resize, str(video))
            if math.isfinite(t) and abs(t - shown[number]) > 1e-6:
                raise UserError(
                    f"{video}: frame {number} decodes at {t:.6f} s but its packet says {shown[number]:.6f} s"
                )
            if k < len(wanted) and wanted[k] == number:
                yield fit_frame(rgb, args.height, args.width, args.resize)
                k += 1
            if k == len(wanted):
                return
        raise UserError(
            f"{csv_path} line {line_of[k]}: frame {wanted[k]} of video {video} could not be decoded "
            "(a truncated or damaged file)"
        )

    size = None
    if args.fov_deg is not None:
        from drive.video_io import video_info

        stream = video_info(video)
        size = (stream["video.height"], stream["video.width"])
    return _Clip(
        name=str(csv_path),
        episodes=[
            _Episode(
                steering=steering,
                times=timestamps,
                source=str(video),
                speed=np.array(speeds, dtype=np.float64) if v_i is not None else None,
            )
        ],
        fps=fps,
        unit=args.steering_unit,
        source_positive=args.steering_sign.split("-")[0],
        frames=frames,
        source_hw=size,
        speed_from=None if v_i is None else f"column {args.speed_column!r}, m/s",
    )


def _pair_by_time(
    times: np.ndarray, shown: np.ndarray, max_error_s: float | None, csv_path: Path, line_of: list[int], video: Path
) -> np.ndarray:
    """For each label time, the index of the frame shown nearest to it; UserError naming the times when
    none is within the tolerance (a gap in the video, or clocks that do not match) or two labels share a
    frame (labels denser than the video)."""
    if max_error_s is None:
        steps = np.diff(shown)
        steps = steps[steps > 0]
        max_error_s = 0.5 * float(np.median(steps)) if len(steps) else math.inf
    j = np.clip(np.searchsorted(shown, times), 1, max(1, len(shown) - 1))
    if len(shown) == 1:
        nearest = np.zeros(len(times), dtype=np.int64)
    else:
        nearest = np.where(np.abs(shown[j - 1] - times) <= np.abs(shown[j] - times), j - 1, j)
    error = np.abs(shown[nearest] - times)
    bad = np.nonzero(error > max_error_s + 1e-9)[0]
    if len(bad):
        k = int(bad[0])
        raise UserError(
            f"{csv_path} line {line_of[k]}: no frame of {video} within {max_error_s:.4g} s of the label's time "
            f"{times[k]:.4g} s (nearest frame at {shown[nearest[k]]:.4g} s): a gap in the video, or labels and "
            "video on different clocks (see --time-offset-s, --max-time-error-s)"
        )
    same = np.nonzero(np.diff(nearest) == 0)[0]
    if len(same):
        k = int(same[0])
        raise UserError(
            f"{csv_path} lines {line_of[k]} and {line_of[k + 1]}: the labels at {times[k]:.4g} s and "
            f"{times[k + 1]:.4g} s both fall on the frame at {shown[nearest[k]]:.4g} s of {video}: "
            "the log is denser than the video"
        )
    return nearest


# --------------------------------------------------------------------------------------------------
# Udacity

_UDACITY_TIME = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{3})")
_UDACITY_HEADER = ("center", "left", "right", "steering", "throttle", "brake", "speed")


def _udacity_time(name: str) -> float | None:
    m = _UDACITY_TIME.search(name)
    if m is None:
        return None
    y, mo, d, h, mi, s, ms = (int(g) for g in m.groups())
    try:
        t = _dt.datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return t.timestamp()


def _image_beside(base: Path, recorded: str) -> Path:
    """Udacity logs hold the recording machine's absolute paths: keep the name, look in ``IMG/``."""
    name = recorded.strip().replace("\\", "/").rsplit("/", 1)[-1]
    return base / "IMG" / name


def _read_udacity(src: Path, args: ImportOptions) -> _Clip:
    log = src / "driving_log.csv" if src.is_dir() else src
    if not log.is_file():
        raise UserError(f"{log}: Udacity driving_log.csv not found")
    cameras = list(args.cameras)
    # In our sign (positive = left): the left camera's label steers more right, the right camera's more left.
    corrections = {"center": 0.0, "left": -args.steering_correction, "right": args.steering_correction}
    rows = []
    with open(log, newline="", encoding="utf-8-sig") as fh:  # a BOM is not part of the header
        for line, row in enumerate(csv.reader(fh), start=1):
            if not any(cell.strip() for cell in row):
                continue
            if line == 1 and [c.strip().lower() for c in row[:4]] == list(_UDACITY_HEADER[:4]):
                continue  # header line
            where = f"{log} line {line}"
            if len(row) < 4:
                raise UserError(f"{where}: {len(row)} field(s), expected center,left,right,steering,...")
            keep = len(row) >= 7 and args.speed_mps is None  # --speed-mps replaces the log's speed
            speed = parse_speed(row[6], where, MPH_TO_MPS, "mph") if keep else None
            rows.append((line, row[0], row[1], row[2], parse_number(row[3], where), speed))
    if not rows:
        raise UserError(f"{log}: no data line")
    has_speed = [r[5] is not None for r in rows]
    if any(has_speed) and not all(has_speed):
        line = rows[has_speed.index(False)][0]
        raise UserError(f"{log} line {line}: no speed (7th field, mph), which other lines of the log have")
    times = [_udacity_time(r[1]) for r in rows]
    if all(t is not None for t in times):
        t = np.array(times)
        runs = split_episodes(t, args.max_gap_s)
        fps = args.fps or fps_from_times(t, str(log))
    else:
        if args.fps is None:
            line = rows[times.index(None)][0]
            raise UserError(f"{log} line {line}: no time in the image name; pass --fps")
        fps = args.fps
        t = np.arange(len(rows)) / fps
        runs = [np.arange(len(rows))]
    episodes = []
    for run in runs:
        for cam in cameras:
            col = {"center": 1, "left": 2, "right": 3}[cam]
            ours = -np.array([rows[i][4] for i in run])  # Udacity: positive steers right
            episodes.append(
                _Episode(
                    images=[(rows[i][0], rows[i][col]) for i in run],
                    steering=ours + corrections[cam],
                    times=t[run] - t[run[0]],
                    source=f"{log} lines {rows[run[0]][0]}-{rows[run[-1]][0]} {cam} camera",
                    speed=np.array([rows[i][5] for i in run], dtype=np.float64) if has_speed[0] else None,
                )
            )
    clip = _image_clip(
        args,
        log,
        episodes,
        fps,
        "normalized",
        "udacity",
        lambda rec: _image_beside(log.parent, rec),
        UDACITY_MAX_STEER_RAD,
    )
    return replace(clip, speed_from="the log's speed column, mph (x 0.44704 m/s)" if has_speed[0] else None)


def _sully_time(text: str, where: str) -> float:
    try:
        t = _dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S:%f").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise UserError(f"{where}: time {text.strip()!r} is not YYYY-MM-DD HH:MM:SS:mmm") from None
    return t.timestamp()


def _read_sully_chen(src: Path, args: ImportOptions) -> _Clip:
    log = src / "data.txt" if src.is_dir() else src
    if not log.is_file():
        raise UserError(f"{log}: Sully Chen data.txt not found")
    names, angles, times = [], [], []
    with open(log, encoding="utf-8-sig") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{log} line {line}"
            parts = text.strip().split(None, 1)
            if len(parts) != 2:
                raise UserError(f"{where}: expected 'FILENAME ANGLE', got {text.strip()!r}")
            angle, _, stamp = parts[1].partition(",")
            angles.append(parse_number(angle, where))
            names.append((line, parts[0]))
            if stamp.strip():
                times.append(_sully_time(stamp, where))
    if not names:
        raise UserError(f"{log}: no data line")
    if times and len(times) != len(names):
        raise UserError(f"{log}: some lines have a time and some do not")
    # Sully Chen's angles: positive turns right (clockwise wheel); ours: positive = left.
    steering = -np.array(angles, dtype=np.float64)
    if times:
        t = np.array(times)
        runs = split_episodes(t, args.max_gap_s)
        fps = args.fps or fps_from_times(t, str(log))
    else:
        if args.fps is None:
            raise UserError(f"{log}: the lines carry no time; pass --fps (frames per second of the recording)")
        fps = args.fps
        t = np.arange(len(names)) / fps
        runs = [np.arange(len(names))]
    episodes = [
        _Episode(
            images=[names[i] for i in run],
            steering=steering[run],
            times=t[run] - t[run[0]],
            source=f"{log} lines {names[run[0]][0]}-{names[run[-1]][0]}",
        )
        for run in runs
    ]
    return _image_clip(args, log, episodes, fps, "deg", "sully-chen", lambda name: log.parent / name)


def _image_clip(
    args: ImportOptions,
    log: Path,
    episodes: list[_Episode],
    fps: float,
    unit: str,
    fmt: str,
    resolve: Callable[[str], Path],
    scale_rad: float | None = None,
) -> _Clip:
    """The clip of an image format; checks every image exists before any is decoded, so a missing
    frame fails fast."""
    for ep in episodes:
        for line, rec in ep.images:
            path = resolve(rec)
            if not path.is_file():
                raise UserError(f"{log} line {line}: image {path} not found")

    def frames(ep: _Episode) -> Iterator[np.ndarray]:
        for line, rec in ep.images:
            path = resolve(rec)
            rgb = read_image(path, f"{log} line {line}")
            check_source_size(rgb.shape, args.height, args.width, args.resize, f"{log} line {line}: image {path}")
            yield fit_frame(rgb, args.height, args.width, args.resize)

    size = None
    if args.fov_deg is not None and episodes and episodes[0].images:
        line, rec = episodes[0].images[0]
        size = read_image(resolve(rec), f"{log} line {line}").shape[:2]
    return _Clip(str(log), episodes, fps, unit, SOURCE_STEERING_POSITIVE[fmt], frames, scale_rad, size)


# --------------------------------------------------------------------------------------------------
# One dataset from several clips


FPS_TOLERANCE = 1e-3
"""Relative difference up to which a clip's frame rate counts as the dataset's (timestamps carry the rest)."""


def _dataset_parameters(
    clips: list[_Clip], args: ImportOptions, existing: DatasetInfo | None, out: Path
) -> tuple[float, float, str]:
    """(frame rate, max_steer_rad, where max_steer_rad comes from) of the dataset the clips go into;
    one-line :class:`UserError` naming both values for a clip whose frame rate or max_steer_rad differs
    from the dataset's (``existing``, or for a new dataset the first clip's)."""
    stored = f"the dataset's ({layout.info_path(out)})"
    for clip in clips:
        if not (math.isfinite(clip.fps) and 0 < clip.fps <= layout.MAX_FPS):
            raise UserError(
                f"{clip.name}: frame rate {clip.fps:.6g} Hz from the source's times is out of (0, {layout.MAX_FPS:g}]"
            )
    fps, fps_from = (existing.fps, stored) if existing else (clips[0].fps, f"that of {clips[0].name}")
    for clip in clips:
        if not math.isclose(clip.fps, fps, rel_tol=FPS_TOLERANCE):
            raise UserError(
                f"{clip.name}: frame rate {clip.fps:.6g} Hz differs from {fps_from}, {fps:.6g} Hz: "
                "the clips of one dataset share one frame rate"
            )
    if args.max_steer_rad is not None:
        max_steer, why = args.max_steer_rad, "--max-steer-rad"
        if existing and not math.isclose(max_steer, existing.max_steer_rad, rel_tol=1e-9):
            raise UserError(
                f"--max-steer-rad {max_steer!r} differs from {stored}, {existing.max_steer_rad!r}: the clips of "
                "one dataset share one max_steer_rad (leave the flag out to use the dataset's)"
            )
    elif existing:
        max_steer, why = existing.max_steer_rad, stored
    elif any(c.scale_rad is not None for c in clips):
        max_steer = next(c.scale_rad for c in clips if c.scale_rad is not None)
        why = "the Udacity simulator's maximum steering angle, 25 deg"
    else:
        if any(c.unit == "normalized" for c in clips):
            name = next(c.name for c in clips if c.unit == "normalized")
            raise UserError(
                f"{name}: --max-steer-rad is required with --steering-unit normalized "
                "(the angle in radians that steering 1.0 stands for)"
            )
        radians = [np.abs(normalize(ep.steering, c.unit, 1.0)) for c in clips for ep in c.episodes]
        max_steer = float(max(np.max(r) for r in radians if len(r)))
        if max_steer == 0.0:
            raise UserError(f"{clips[0].name}: every steering value is 0; pass --max-steer-rad")
        why = "the largest |steering| in the log(s): pass --max-steer-rad to choose it"
    if args.max_steer_rad is None:
        for clip in clips:
            if clip.scale_rad is not None and not math.isclose(clip.scale_rad, max_steer, rel_tol=1e-9):
                raise UserError(
                    f"{clip.name}: its steering 1.0 stands for {clip.scale_rad!r} rad (25 deg), which differs from "
                    f"{why}, {max_steer!r}: pass --max-steer-rad {max_steer!r} if it stands for that"
                )
    return fps, max_steer, why


def _dataset_camera(clips: list[_Clip], args: ImportOptions, existing: DatasetInfo | None, out: Path) -> dict | None:
    """The ``camera`` of the dataset the clips go into (:func:`camera_metadata`, the first clip's, or the
    dataset's when appending); one-line :class:`UserError` naming both cameras for a clip whose camera differs
    from it (clips with and without the camera flags included)."""
    cameras = [camera_metadata(args, c.source_hw, args.height, args.width) if c.source_hw else None for c in clips]
    if existing is not None:
        reference, where = existing.camera, f"the dataset's ({layout.info_path(out)})"
    else:
        reference, where = cameras[0], f"that of {clips[0].name}"
    for clip, camera in zip(clips, cameras):
        if (camera is None) != (reference is None):
            flags = ", ".join(CAMERA_FLAGS[:3])
            raise UserError(
                f"{clip.name}: camera {camera_text(camera)} differs from {where}, {camera_text(reference)}: "
                f"the clips of one dataset share one camera ({'give' if camera is None else 'leave out'} {flags})"
            )
        if camera is not None and not all(
            math.isclose(camera[k], reference.get(k, math.nan), rel_tol=CAMERA_TOLERANCE, abs_tol=1e-9)
            for k in CAMERA_KEYS
        ):
            raise UserError(
                f"{clip.name}: camera {camera_text(camera)} differs from {where}, {camera_text(reference)}: "
                "the clips of one dataset share one camera (after the crop: a source of another aspect ratio "
                "keeps another share of its field of view)"
            )
    return reference


def _write(
    fmt: str,
    clips: list[_Clip],
    args: ImportOptions,
    existing: DatasetInfo | None,
    root: Path,
    fps: float,
    max_steer: float,
    progress: bool,
    camera: dict | None = None,
) -> DatasetInfo:
    """Decode the clips' frames and save their episodes into ``root``, all together at the end (all or
    nothing, consecutive indices, under the folder's lock: :meth:`DatasetWriter.save_staged`)."""
    labels = [
        clip_labels([normalize(ep.steering, clip.unit, max_steer) for ep in clip.episodes], max_steer, clip.name)
        for clip in clips
    ]
    signs = {clip.source_positive for clip in clips}
    if existing is None:
        info = DatasetInfo(
            fps=float(fps),
            image_height=args.height,
            image_width=args.width,
            max_steer_rad=float(max_steer),
            source=f"drive import --format {fmt}",
            source_steering_positive=signs.pop() if len(signs) == 1 else "mixed",
            camera=camera,
        )
    else:
        info = existing
    writer = DatasetWriter(root, info)
    try:
        if existing is not None and (signs - {writer.info.source_steering_positive}):
            writer.info.source_steering_positive = "mixed"  # written with the totals
        total = sum(len(ep.steering) for clip in clips for ep in clip.episodes)
        with tqdm(total=total, desc="import", unit="frame", disable=not progress) as bar:
            for clip, clip_labels_ in zip(clips, labels):
                for ep, steering in zip(clip.episodes, clip_labels_):
                    speed = ep.speed if args.speed_mps is None else np.full(len(steering), args.speed_mps)
                    writer.add_episode(
                        clip.frames(ep),
                        steering,
                        np.asarray(ep.times, dtype=np.float64),
                        columns=None if speed is None else {layout.SPEED: speed},
                        episode_meta={"source": ep.source},
                        progress=bar,
                        stage=True,
                    )
        writer.save_staged()
    finally:
        info = writer.close()
    return info


# --------------------------------------------------------------------------------------------------
# Entry points


def _sources(src: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    sources = [Path(src)] if isinstance(src, (str, os.PathLike)) else [Path(s) for s in src]
    if not sources:
        raise UserError("SRC: name at least one source")
    return sources


def _csv_paths(fmt: str, sources: list[Path], csv: CsvOption) -> tuple[list[Path | None], bool]:
    """(each source's steering CSV, whether they were given): video-csv's ``--csv`` in the sources' order,
    or each video's ``<name>.csv`` beside it; None for the other formats."""
    if fmt != "video-csv":
        return [None] * len(sources), csv is not None
    given = [] if csv is None else [Path(csv)] if isinstance(csv, (str, os.PathLike)) else [Path(c) for c in csv]
    if not given:
        return [s.with_suffix(".csv") for s in sources], False
    if len(given) != len(sources):
        raise UserError(
            f"--csv: {len(given)} given for {len(sources)} video(s): give one per video, in the videos' order, "
            "or none to use each video's <name>.csv beside it"
        )
    return list(given), True


def import_dataset(
    fmt: str,
    src: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    options: ImportOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> DatasetInfo:
    """Import ``src`` (one source or several, in order) in format ``fmt`` (one of :data:`FORMATS`) into
    the folder ``out``.

    An absent or empty ``out`` gets a new dataset, built aside and moved there when complete; a dataset
    made by ``drive import`` gets the clips appended (all or nothing, under its lock), after checking
    that their frame size, frame rate and max_steer_rad are the dataset's; with ``overwrite`` a dataset
    is replaced instead (see :func:`check_out`). ``report`` (e.g. ``print``) is told, before any frame
    is decoded, the dataset's frame size, rate and max_steer_rad, and where each comes from. Returns
    the dataset's info. Bad input is a one-line :class:`UserError` naming the file, line or option,
    and the value.
    """
    options = options or ImportOptions()
    if fmt not in FORMATS:
        raise UserError(f"--format: must be one of {FORMATS}, got {fmt!r}")
    options.check()
    if options.speed_column is not None and fmt != "video-csv":
        raise UserError(
            f"--speed-column {options.speed_column!r}: for --format video-csv only (udacity logs carry their "
            "speed; give any log a constant one with --speed-mps)"
        )
    out = Path(out)
    sources = _sources(src)
    csvs, csv_given = _csv_paths(fmt, sources, options.csv)
    existing = check_out(fmt, sources, csvs, out, overwrite)
    options = _with_size(options, existing, out)
    if fmt == "video-csv":
        clips = [_read_video_csv(s, c, options, csv_given) for s, c in zip(sources, csvs)]
    else:
        read = _read_udacity if fmt == "udacity" else _read_sully_chen
        clips = [read(s, options) for s in sources]
    fps, max_steer, why = _dataset_parameters(clips, options, existing, out)
    camera = _dataset_camera(clips, options, existing, out)
    if report is not None:
        report(
            f"drive import: {'appending to' if existing else 'new dataset'} {out}: "
            f"{options.height}x{options.width} at {fps:.6g} Hz, max_steer_rad {max_steer:.6g} rad ({why}); "
            f"steering positive = {layout.STEERING_POSITIVE}"
            + (f"; camera {camera_text(camera)}" if camera is not None else "")
            + f"; speed {_speed_text(fmt, clips, options)}"
        )
    if existing is not None:
        return _write(fmt, clips, options, existing, out, fps, max_steer, progress)
    with atomic_dir(out) as tmp:
        return _write(fmt, clips, options, None, tmp, fps, max_steer, progress, camera)


def _speed_text(fmt: str, clips: list[_Clip], options: ImportOptions) -> str:
    """Where the import's speed comes from, in a few words (``none`` names the flags drive replay needs)."""
    if options.speed_mps is not None:
        return f"{options.speed_mps:g} m/s (--speed-mps)"
    sources = {c.speed_from for c in clips}
    if sources == {None}:
        flags = "--speed-column or --speed-mps" if fmt == "video-csv" else "--speed-mps"
        return f"none (drive replay and --viewpoint-augment need one: {flags})"
    return "; ".join(sorted(x or "none" for x in sources))


def _with_size(options: ImportOptions, existing: DatasetInfo | None, out: Path) -> ImportOptions:
    """The options with the dataset's image size: the one given, else the dataset's when appending,
    else the default; one-line :class:`UserError` naming both when the one given is not the dataset's."""
    if existing is None:
        return replace(options, height=options.height or DEFAULT_HEIGHT, width=options.width or DEFAULT_WIDTH)
    have = (existing.image_height, existing.image_width)
    want = (options.height or have[0], options.width or have[1])
    if want != have:
        raise UserError(
            f"--height/--width: {want[0]}x{want[1]} differs from the dataset's image size {have[0]}x{have[1]} "
            f"({layout.info_path(out)}): the clips of one dataset share one frame size (leave them out to use it)"
        )
    return replace(options, height=have[0], width=have[1])


def _inputs(fmt: str, src: Path, csv_path: Path | None) -> tuple[list[Path], Path | None]:
    """(the files and folders the import reads, the source's folder) of a format."""
    if fmt == "video-csv":
        return [src] + ([csv_path] if csv_path else []), None
    log = src / ("driving_log.csv" if fmt == "udacity" else "data.txt") if src.is_dir() else src
    folder = log.parent
    return [log, folder / "IMG" if fmt == "udacity" else folder], folder


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(fmt: str, sources: list[Path], csvs: list[Path | None], out: Path, overwrite: bool) -> DatasetInfo | None:
    """Decide what the import does with ``out``; returns the dataset to append to, or None for a new one
    (``out`` absent or empty, or ``overwrite``).

    Refused, in one line naming the folder: an ``out`` that holds one of the import's inputs or lies
    inside a source's folder; a non-empty one that holds no dataset, or a dataset not made by
    ``drive import``; with ``overwrite``, one that is not a dataset or holds other files than a
    dataset's (its layout, lock, temporaries, frame cache)."""
    target = out.resolve()
    for src, csv_path in zip(sources, csvs):
        inputs, folder = _inputs(fmt, src, csv_path)
        for path in inputs:
            if _within(path.resolve(), target):
                raise UserError(f"--out {out}: holds the import's input {path}: write the dataset to another folder")
        if folder is not None and _within(target, folder.resolve()):
            raise UserError(f"--out {out}: is inside the source folder {folder}: write the dataset to another folder")
    if not out.exists() or not any(out.iterdir()):
        return None
    if not layout.is_dataset(out):
        if not overwrite:
            raise UserError(
                f"--out {out}: folder exists and is not empty, and holds no dataset to append to "
                f"(no readable {layout.info_path(out).relative_to(out)}): write the dataset to another folder"
            )
        raise UserError(
            f"--out {out}: --overwrite replaces a dataset, and this folder is not one "
            f"(no readable {layout.info_path(out).relative_to(out)}): refusing to delete it"
        )
    if not overwrite:
        existing = layout.read_info(out)
        if not existing.source.startswith("drive import"):
            raise UserError(
                f"--out {out}: holds a dataset made by {existing.source!r}: clips are appended only to a "
                "dataset made by drive import; write them to another folder"
            )
        return existing
    foreign = layout.foreign_entries(out)
    if foreign:
        raise UserError(
            f"--out {out}: --overwrite replaces a dataset, and this folder also holds {foreign[0]} "
            f"({len(foreign)} file(s) not of a dataset): refusing to delete them"
        )
    return None


def import_source(
    fmt: str,
    src: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    **options,
) -> DatasetInfo:
    """Shorthand: ``import_source("udacity", "logs/", "data/udacity", steering_correction=0.25)``;
    ``options`` are :class:`ImportOptions` fields."""
    known = {f.name for f in fields(ImportOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"import_source: unknown option(s) {unknown}; known: {sorted(known)}")
    return import_dataset(fmt, src, out, ImportOptions(**options), overwrite=overwrite, progress=progress)
