"""`drive import`: turn existing driving logs into a dataset in the layout of :mod:`drive.data.layout`.

Formats (``--format``):

``video-csv``
    SRC is any video OpenCV can read; ``--csv`` is a table with one row per labelled frame. Each row
    names its frame either by a frame-index column (``frame_index``/``frame``, or ``--frame-column``)
    or by a time column in seconds from the video's first frame (``timestamp``/``time``/``t``, or
    ``--time-column``; shift with ``--time-offset-s``), which picks the nearest frame. Steering is in
    ``--steering-column`` (default ``steering``) with unit ``--steering-unit deg|rad|normalized``.
``udacity``
    SRC is the Udacity simulator's ``driving_log.csv`` (or its folder) with images in ``IMG/`` beside it.
    Columns: center, left, right, steering, throttle, brake, speed (a header line is allowed). Steering
    is already normalised to [-1, 1]. Each camera becomes its own episode; the left camera's label is
    steering + ``--steering-correction`` (default 0.2), the right's steering - correction (Udacity's
    sign: positive steers right). Time comes from the image names (``center_YYYY_MM_DD_HH_MM_SS_mmm``);
    a gap over ``--max-gap-s`` or a step back in time starts a new episode.
``sully-chen``
    SRC is Sully Chen's ``data.txt`` (or its folder): ``FILENAME ANGLE`` per line, angle in degrees of
    the steering wheel, images beside the file; the 2018 format's ``,YYYY-MM-DD HH:MM:SS:mmm`` suffix
    gives the time, otherwise ``--fps`` does.

Normalisation: normalised steering = radians / ``max_steer_rad``, clipped to [-1, 1] (a warning says how
many values were clipped). ``--max-steer-rad`` defaults to the largest absolute angle in the log for
``deg``/``rad`` units (the labels then span [-1, 1]), to 25 degrees for Udacity (its simulator's maximum
steering angle), and must be given for ``normalized`` video-csv logs.

Images: each frame is centre-cropped to the dataset's aspect ratio (``--resize crop``, the default;
the crop keeps the full width or the full height, whichever fits) and resized with OpenCV's area
interpolation to ``--height`` x ``--width`` (default 78 x 200); ``--resize stretch`` skips the crop.

The dataset is built in a temporary folder beside ``--out`` and moved there only when complete
(:func:`drive.io.atomic_dir`): a failed import leaves nothing behind.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from drive.data.layout import DatasetInfo
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.io import atomic_dir
from drive.video_io import iter_video, video_fps

FORMATS = ("video-csv", "udacity", "sully-chen")
STEERING_UNITS = ("deg", "rad", "normalized")
UDACITY_MAX_STEER_RAD = math.radians(25.0)
"""The Udacity simulator's maximum steering angle (25 degrees), rad: what its steering 1.0 stands for."""
CAMERAS = ("center", "left", "right")


@dataclass
class ImportOptions:
    """How to read a source and shape the dataset (``drive import``'s options; see the module doc)."""

    height: int = 78
    """Image height of the dataset, pixels (even: H.264 yuv420p)."""
    width: int = 200
    """Image width of the dataset, pixels (even)."""
    resize: str = "crop"
    """``crop``: centre-crop to the aspect ratio, then resize; ``stretch``: resize only."""
    max_steer_rad: float | None = None
    """Angle, rad, that normalised steering 1.0 stands for (None: the format's default)."""
    fps: float | None = None
    """Frame rate, Hz, when the source carries no times (None: from the source)."""
    max_gap_s: float = 1.0
    """udacity/sully-chen: a time gap over this, s, starts a new episode."""
    csv: str | None = None
    """video-csv: the per-frame steering CSV."""
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
    cameras: tuple[str, ...] = CAMERAS
    """udacity: the cameras to import, each its own episode."""
    steering_correction: float = 0.2
    """udacity: normalised steering added for the left camera, subtracted for the right."""

    def check(self) -> None:
        """One-line :class:`UserError` naming the option and value for a bad option."""
        if not (
            isinstance(self.height, int)
            and isinstance(self.width, int)
            and self.height > 0
            and self.width > 0
            and self.height % 2 == 0
            and self.width % 2 == 0
        ):
            raise UserError(
                f"--height/--width: must be positive even integers (H.264 yuv420p), got {self.height}x{self.width}"
            )
        if self.resize not in ("crop", "stretch"):
            raise UserError(f"--resize: must be 'crop' or 'stretch', got {self.resize!r}")
        if self.steering_unit not in STEERING_UNITS:
            raise UserError(f"--steering-unit: must be one of {STEERING_UNITS}, got {self.steering_unit!r}")
        for name in ("max_steer_rad", "fps"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(f"--{name.replace('_', '-')}: must be a positive number, got {v!r}")
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise UserError(f"--max-gap-s: must be a positive number, got {self.max_gap_s!r}")
        for cam in self.cameras:
            if cam not in CAMERAS:
                raise UserError(f"--cameras: unknown camera {cam!r} (choose from center, left, right)")
        if not self.cameras:
            raise UserError("--cameras: name at least one camera")


# --------------------------------------------------------------------------------------------------
# Images


def fit_frame(rgb: np.ndarray, height: int, width: int, resize: str = "crop") -> np.ndarray:
    """Resize an RGB image to (height, width): centre-crop to that aspect ratio first (``crop``) or not
    (``stretch``); OpenCV area interpolation when shrinking, linear when enlarging."""
    h, w = rgb.shape[:2]
    if resize == "crop":
        target = width / height
        if w / h > target:  # too wide: keep the full height
            cw = max(1, round(h * target))
            x0 = (w - cw) // 2
            rgb = rgb[:, x0 : x0 + cw]
        elif w / h < target:  # too tall: keep the full width
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            rgb = rgb[y0 : y0 + ch]
    elif resize != "stretch":
        raise UserError(f"--resize must be 'crop' or 'stretch', got {resize!r}")
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    shrink = rgb.shape[0] >= height and rgb.shape[1] >= width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


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


def to_normalized(values: np.ndarray, unit: str, max_steer_rad: float | None, where: str) -> tuple[np.ndarray, float]:
    """Convert steering in ``unit`` to normalised [-1, 1]; returns (normalised, max_steer_rad used)."""
    values = np.asarray(values, dtype=np.float64)
    if unit not in STEERING_UNITS:
        raise UserError(f"--steering-unit must be one of {STEERING_UNITS}, got {unit!r}")
    if max_steer_rad is not None and not (math.isfinite(max_steer_rad) and max_steer_rad > 0):
        raise UserError(f"--max-steer-rad must be a positive number, got {max_steer_rad!r}")
    if unit == "normalized":
        if max_steer_rad is None:
            raise UserError(
                f"{where}: --max-steer-rad is required with --steering-unit normalized "
                "(the angle in radians that steering 1.0 stands for)"
            )
        normalized = values
    else:
        radians = np.radians(values) if unit == "deg" else values
        if max_steer_rad is None:
            max_steer_rad = float(np.max(np.abs(radians)))
            if max_steer_rad == 0.0:
                raise UserError(f"{where}: every steering value is 0; pass --max-steer-rad")
        normalized = radians / max_steer_rad
    clipped = int(np.count_nonzero(np.abs(normalized) > 1.0))
    if clipped:
        print(
            f"drive import: warning: {where}: {clipped} steering value(s) beyond +-1 after normalisation "
            f"(max_steer_rad={max_steer_rad:.4f}) were clipped",
            file=sys.stderr,
        )
    return np.clip(normalized, -1.0, 1.0), float(max_steer_rad)


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
    """One episode to write: image paths (or video frame numbers), labels, times, a source tag."""

    images: list = field(default_factory=list)
    steering: list = field(default_factory=list)
    times: list = field(default_factory=list)
    source: str = ""


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


def _video_csv(src: Path, args: ImportOptions, out: Path, progress: bool) -> DatasetInfo:
    video = src
    if args.csv is None:
        raise UserError("--csv is required with --format video-csv")
    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: CSV not found")
    if not video.is_file():
        raise UserError(f"{video}: video not found")
    fps_video = video_fps(video)
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
    raw, frames_wanted, times = [], [], []
    for line, row in rows:
        where = f"{csv_path} line {line}"
        if len(row) != len(header):
            raise UserError(f"{where}: {len(row)} field(s), the header has {len(header)}")
        raw.append(parse_number(row[s_i], where))
        if frame_col is not None:
            f = parse_number(row[k_i], where, what=f"frame index ({frame_col})")
            if f != int(f) or f < 0:
                raise UserError(f"{where}: frame index {row[k_i]!r} is not a non-negative integer")
            frames_wanted.append(int(f))
        else:
            if fps_video <= 0:
                raise UserError(f"{video}: the video does not say its frame rate; use a frame-index column")
            t = parse_number(row[k_i], where, what=f"time ({time_col})") - args.time_offset_s
            if t < 0:
                raise UserError(
                    f"{where}: time {row[k_i]!r} is before the video's first frame "
                    f"(--time-offset-s {args.time_offset_s})"
                )
            times.append(t)
            frames_wanted.append(int(round(t * fps_video)))
        if len(frames_wanted) > 1 and (
            frames_wanted[-1] < frames_wanted[-2]
            or (times and times[-1] <= times[-2])
            or (not times and frames_wanted[-1] == frames_wanted[-2])
        ):
            raise UserError(f"{where}: {'time' if times else 'frame index'} {row[k_i]!r} does not increase")
    steering, max_steer = to_normalized(np.array(raw), args.steering_unit, args.max_steer_rad, str(csv_path))
    if times:
        t = np.array(times)
        timestamps = t - t[0]
        fps = fps_from_times(t, str(csv_path)) if len(t) > 1 else fps_video
    else:
        if fps_video <= 0 and args.fps is None:
            raise UserError(f"{video}: the video does not say its frame rate; pass --fps")
        fps = args.fps or fps_video
        f = np.array(frames_wanted, dtype=np.float64)
        timestamps = (f - f[0]) / fps
    wanted = np.array(frames_wanted)
    line_of = [line for line, _ in rows]

    def frames() -> Iterator[np.ndarray]:
        k = 0
        last = -1
        for number, rgb in enumerate(iter_video(video, max_frames=int(wanted[-1]) + 1)):
            last = number
            while k < len(wanted) and wanted[k] == number:
                yield fit_frame(rgb, args.height, args.width, args.resize)
                k += 1
            if k == len(wanted):
                return
        raise UserError(
            f"{csv_path} line {line_of[k]}: frame {wanted[k]} is beyond the end of video {video} "
            f"({last + 1} frame(s)): the video is shorter than its log"
        )

    writer = DatasetWriter(out, _info(args, fps, max_steer, f"drive import --format video-csv {video.name}"))
    with tqdm(total=len(steering), desc="import", unit="frame", disable=not progress) as bar:
        writer.add_episode(frames(), steering, timestamps, episode_meta={"source": str(video)}, progress=bar)
    return writer.close()


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


def _udacity(src: Path, args: ImportOptions, out: Path, progress: bool) -> DatasetInfo:
    log = src / "driving_log.csv" if src.is_dir() else src
    if not log.is_file():
        raise UserError(f"{log}: Udacity driving_log.csv not found")
    cameras = list(args.cameras)
    corrections = {"center": 0.0, "left": args.steering_correction, "right": -args.steering_correction}
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
            rows.append((line, row[0], row[1], row[2], parse_number(row[3], where)))
    if not rows:
        raise UserError(f"{log}: no data line")
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
    max_steer = args.max_steer_rad or UDACITY_MAX_STEER_RAD
    episodes = []
    for run in runs:
        for cam in cameras:
            col = {"center": 1, "left": 2, "right": 3}[cam]
            steering, _ = to_normalized(
                np.array([rows[i][4] for i in run]) + corrections[cam], "normalized", max_steer, f"{log} ({cam} camera)"
            )
            episodes.append(
                _Episode(
                    images=[(rows[i][0], rows[i][col]) for i in run],
                    steering=steering,
                    times=t[run] - t[run[0]],
                    source=f"{log.name} lines {rows[run[0]][0]}-{rows[run[-1]][0]} {cam} camera",
                )
            )
    return _write_image_episodes(
        args, progress, out, log, episodes, fps, max_steer, "udacity", lambda rec: _image_beside(log.parent, rec)
    )


# --------------------------------------------------------------------------------------------------
# Sully Chen


def _sully_time(text: str, where: str) -> float:
    try:
        t = _dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S:%f").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise UserError(f"{where}: time {text.strip()!r} is not YYYY-MM-DD HH:MM:SS:mmm") from None
    return t.timestamp()


def _sully_chen(src: Path, args: ImportOptions, out: Path, progress: bool) -> DatasetInfo:
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
    steering, max_steer = to_normalized(np.array(angles), "deg", args.max_steer_rad, str(log))
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
            source=f"{log.name} lines {names[run[0]][0]}-{names[run[-1]][0]}",
        )
        for run in runs
    ]
    return _write_image_episodes(
        args, progress, out, log, episodes, fps, max_steer, "sully-chen", lambda name: log.parent / name
    )


def _write_image_episodes(
    args: ImportOptions,
    progress: bool,
    out: Path,
    log: Path,
    episodes: list[_Episode],
    fps: float,
    max_steer: float,
    fmt: str,
    resolve,
) -> DatasetInfo:
    # Check every image exists before decoding any, so a missing frame fails fast.
    for ep in episodes:
        for line, rec in ep.images:
            path = resolve(rec)
            if not path.is_file():
                raise UserError(f"{log} line {line}: image {path} not found")
    writer = DatasetWriter(out, _info(args, fps, max_steer, f"drive import --format {fmt} {log}"))

    def frames(ep: _Episode) -> Iterator[np.ndarray]:
        for line, rec in ep.images:
            yield fit_frame(read_image(resolve(rec), f"{log} line {line}"), args.height, args.width, args.resize)

    total = sum(len(ep.images) for ep in episodes)
    with tqdm(total=total, desc="import", unit="frame", disable=not progress) as bar:
        for ep in episodes:
            writer.add_episode(
                frames(ep),
                np.asarray(ep.steering, dtype=np.float64),
                np.asarray(ep.times, dtype=np.float64),
                episode_meta={"source": ep.source},
                progress=bar,
            )
    return writer.close()


def _info(args: ImportOptions, fps: float, max_steer_rad: float, source: str) -> DatasetInfo:
    return DatasetInfo(
        fps=float(fps),
        image_height=args.height,
        image_width=args.width,
        max_steer_rad=float(max_steer_rad),
        source=source,
    )


# --------------------------------------------------------------------------------------------------
# Entry points


def import_dataset(
    fmt: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: ImportOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetInfo:
    """Import ``src`` in format ``fmt`` (one of :data:`FORMATS`) into the folder ``out``, atomically.

    ``out`` must be absent or empty unless ``overwrite``. Returns the dataset's info. Bad input is a
    one-line :class:`UserError` naming the file, line or option, and the value.
    """
    options = options or ImportOptions()
    if fmt not in FORMATS:
        raise UserError(f"--format: must be one of {FORMATS}, got {fmt!r}")
    options.check()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out}: folder exists and is not empty (pass --overwrite to replace it)")
    run_format = {"video-csv": _video_csv, "udacity": _udacity, "sully-chen": _sully_chen}[fmt]
    with atomic_dir(out) as tmp:
        info = run_format(Path(src), options, tmp, progress)
    return info


def import_source(
    fmt: str, src: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False, progress: bool = True, **options
) -> DatasetInfo:
    """Shorthand: ``import_source("udacity", "logs/", "data/udacity", steering_correction=0.25)``;
    ``options`` are :class:`ImportOptions` fields."""
    known = {f.name for f in fields(ImportOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"import_source: unknown option(s) {unknown}; known: {sorted(known)}")
    return import_dataset(fmt, src, out, ImportOptions(**options), overwrite=overwrite, progress=progress)
