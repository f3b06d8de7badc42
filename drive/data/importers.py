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

import argparse
import csv
import datetime as _dt
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.data.reader import iter_video, video_fps
from drive.io import atomic_dir, atomic_path, atomic_write_json

FORMATS = ("video-csv", "udacity", "sully-chen")
STEERING_UNITS = ("deg", "rad", "normalized")
UDACITY_MAX_STEER_RAD = math.radians(25.0)
"""The Udacity simulator's maximum steering angle (25 degrees), rad: what its steering 1.0 stands for."""


# --------------------------------------------------------------------------------------------------
# Writing a dataset


class DatasetWriter:
    """Write episodes into a dataset folder in the layout of :mod:`drive.data.layout`.

    Each episode's files are written atomically, its ``meta/episodes`` file last, so an interrupted
    write leaves every earlier episode readable. Opening an existing dataset appends to it (the image
    size and fps must match). Call :meth:`finish` to write ``meta/info.json``.
    """

    def __init__(self, root: str | Path, fps: float, image_height: int, image_width: int,
                 max_steer_rad: float, source: str, scenario: dict | None = None):
        self.root = Path(root)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{self.root}: fps must be a positive number, got {fps!r}")
        if not (math.isfinite(max_steer_rad) and max_steer_rad > 0):
            raise ValueError(f"{self.root}: max_steer_rad must be a positive number, got {max_steer_rad!r}")
        self.info = DatasetInfo(fps=float(fps), image_height=int(image_height), image_width=int(image_width),
                                max_steer_rad=float(max_steer_rad), source=source, scenario=scenario)
        existing = layout.complete_episodes(self.root)
        if existing:
            old = layout.read_info(self.root)
            if (old.image_height, old.image_width) != (self.info.image_height, self.info.image_width):
                raise ValueError(f"{layout.info_path(self.root)}: image size {old.image_height}x{old.image_width} "
                                 f"differs from the appended {image_height}x{image_width}")
            self.info = old
        self.next_episode = (max(existing) + 1) if existing else 0
        self.next_index = sum(len(pd.read_parquet(layout.data_path(self.root, e), columns=[layout.INDEX]))
                              for e in existing)
        self.episode_count = len(existing)

    def add_episode(self, frames: Iterable[np.ndarray], steering: np.ndarray, timestamps: np.ndarray,
                    columns: dict[str, np.ndarray] | None = None, source: str | None = None,
                    progress: tqdm | None = None, meta: dict | None = None) -> int:
        """Write one episode; returns its index.

        frames: RGB uint8 (H, W, 3) each, exactly ``len(steering)`` of them (an iterable is consumed
        lazily, so a long episode is never held in memory). steering: normalised label in [-1, 1].
        timestamps: s since the episode's first frame. columns: other per-frame columns of
        :data:`layout.FRAME_COLUMNS` (missing ones are NaN); ``STEERING_APPLIED`` defaults to the label.
        meta: extra columns of the episode's meta row (e.g. ``split="train"``).
        """
        steering = np.asarray(steering, dtype=np.float32)
        timestamps = np.asarray(timestamps, dtype=np.float32)
        n = len(steering)
        if n == 0:
            raise ValueError(f"{self.root}: an episode needs at least one frame")
        if timestamps.shape != steering.shape:
            raise ValueError(f"{self.root}: {len(timestamps)} timestamps for {n} steering values")
        episode = self.next_episode
        h, w = self.info.image_height, self.info.image_width
        video = layout.video_path(self.root, episode)
        video.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with atomic_path(video) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.info.fps, (w, h))
            if not writer.isOpened():
                raise ValueError(f"{video}: OpenCV cannot open an mp4v video writer")
            try:
                for frame in frames:
                    if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
                        raise ValueError(f"{video}: frame {written} is {frame.dtype} {frame.shape}, expected uint8 {(h, w, 3)}")
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    written += 1
                    if progress is not None:
                        progress.update(1)
            finally:
                writer.release()
            if written != n:
                raise ValueError(f"{video}: {written} frame(s) written for {n} steering value(s)")
        table = {c: np.full(n, np.nan, dtype=np.float32) for c in layout.FRAME_COLUMNS}
        table[layout.EPISODE_INDEX] = np.full(n, episode, dtype=np.int64)
        table[layout.FRAME_INDEX] = np.arange(n, dtype=np.int64)
        table[layout.TIMESTAMP] = timestamps
        table[layout.INDEX] = np.arange(self.next_index, self.next_index + n, dtype=np.int64)
        table[layout.STEERING_LABEL] = steering
        table[layout.STEERING_APPLIED] = steering
        for name, values in (columns or {}).items():
            if name not in table:
                raise ValueError(f"{self.root}: unknown per-frame column {name!r}")
            table[name] = np.asarray(values, dtype=table[name].dtype)
        with atomic_path(layout.data_path(self.root, episode)) as tmp:
            pd.DataFrame(table).to_parquet(tmp, index=False)
        meta = pd.DataFrame({"episode_index": [episode], "length": [n], "source": [source or self.info.source],
                             "dataset_from_index": [self.next_index], "dataset_to_index": [self.next_index + n],
                             **{k: [v] for k, v in (meta or {}).items()}})
        with atomic_path(layout.episode_meta_path(self.root, episode)) as tmp:
            meta.to_parquet(tmp, index=False)
        self.next_episode += 1
        self.next_index += n
        self.episode_count += 1
        return episode

    def finish(self) -> DatasetInfo:
        """Write ``meta/info.json`` with the episode and frame totals; returns the info written."""
        self.info.total_episodes = self.episode_count
        self.info.total_frames = self.next_index
        atomic_write_json(layout.info_path(self.root), self.info.to_dict())
        return self.info


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
            rgb = rgb[:, x0:x0 + cw]
        elif w / h < target:  # too tall: keep the full width
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            rgb = rgb[y0:y0 + ch]
    elif resize != "stretch":
        raise ValueError(f"--resize must be 'crop' or 'stretch', got {resize!r}")
    if rgb.shape[:2] == (height, width):
        return np.ascontiguousarray(rgb)
    shrink = rgb.shape[0] >= height and rgb.shape[1] >= width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_image(path: Path, where: str) -> np.ndarray:
    """Read an image file as RGB uint8; ``where`` (``FILE line N``) is put in front of any error."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {path} not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{where}: image {path} is unreadable")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------------------
# Parsing helpers


def parse_number(text: str, where: str, what: str = "steering") -> float:
    """A finite float from ``text``, else ValueError naming ``where`` (``FILE line N``), ``what`` and the value."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not a finite number")
    return value


def to_normalized(values: np.ndarray, unit: str, max_steer_rad: float | None, where: str) -> tuple[np.ndarray, float]:
    """Convert steering in ``unit`` to normalised [-1, 1]; returns (normalised, max_steer_rad used)."""
    values = np.asarray(values, dtype=np.float64)
    if unit not in STEERING_UNITS:
        raise ValueError(f"--steering-unit must be one of {STEERING_UNITS}, got {unit!r}")
    if max_steer_rad is not None and not (math.isfinite(max_steer_rad) and max_steer_rad > 0):
        raise ValueError(f"--max-steer-rad must be a positive number, got {max_steer_rad!r}")
    if unit == "normalized":
        if max_steer_rad is None:
            raise ValueError(f"{where}: --max-steer-rad is required with --steering-unit normalized "
                             "(the angle in radians that steering 1.0 stands for)")
        normalized = values
    else:
        radians = np.radians(values) if unit == "deg" else values
        if max_steer_rad is None:
            max_steer_rad = float(np.max(np.abs(radians)))
            if max_steer_rad == 0.0:
                raise ValueError(f"{where}: every steering value is 0; pass --max-steer-rad")
        normalized = radians / max_steer_rad
    clipped = int(np.count_nonzero(np.abs(normalized) > 1.0))
    if clipped:
        print(f"drive import: warning: {where}: {clipped} steering value(s) beyond +-1 after normalisation "
              f"(max_steer_rad={max_steer_rad:.4f}) were clipped", file=sys.stderr)
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
        raise ValueError(f"{where}: cannot tell the frame rate from the timestamps; pass --fps")
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


def _video_csv(args: argparse.Namespace, out: Path) -> DatasetInfo:
    video = Path(args.src)
    if args.csv is None:
        raise ValueError("--csv is required with --format video-csv")
    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: CSV not found")
    if not video.is_file():
        raise FileNotFoundError(f"{video}: video not found")
    fps_video = video_fps(video)
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{csv_path}: empty CSV") from None
        rows = [(i + 2, row) for i, row in enumerate(reader) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{csv_path}: no data line after the header")
    if args.steering_column not in header:
        raise ValueError(f"{csv_path} line 1: no steering column {args.steering_column!r} (columns: {header})")
    frame_col = _find_column(header, args.frame_column, ("frame_index", "frame"))
    time_col = None if frame_col is not None else _find_column(header, args.time_column, ("timestamp", "time", "t"))
    if frame_col is None and time_col is None:
        raise ValueError(f"{csv_path} line 1: needs a frame-index column (frame_index, frame) or a time column "
                         f"(timestamp, time, t); columns: {header}")
    for col in (frame_col, time_col):
        if col is not None and col not in header:
            raise ValueError(f"{csv_path} line 1: no column {col!r} (columns: {header})")
    s_i = header.index(args.steering_column)
    k_i = header.index(frame_col or time_col)
    raw, frames_wanted, times = [], [], []
    for line, row in rows:
        where = f"{csv_path} line {line}"
        if len(row) != len(header):
            raise ValueError(f"{where}: {len(row)} field(s), the header has {len(header)}")
        raw.append(parse_number(row[s_i], where))
        if frame_col is not None:
            f = parse_number(row[k_i], where, what=f"frame index ({frame_col})")
            if f != int(f) or f < 0:
                raise ValueError(f"{where}: frame index {row[k_i]!r} is not a non-negative integer")
            frames_wanted.append(int(f))
        else:
            if fps_video <= 0:
                raise ValueError(f"{video}: the video does not say its frame rate; use a frame-index column")
            t = parse_number(row[k_i], where, what=f"time ({time_col})") - args.time_offset_s
            if t < 0:
                raise ValueError(f"{where}: time {row[k_i]!r} is before the video's first frame "
                                 f"(--time-offset-s {args.time_offset_s})")
            times.append(t)
            frames_wanted.append(int(round(t * fps_video)))
        if len(frames_wanted) > 1 and (frames_wanted[-1] < frames_wanted[-2]
                                       or (times and times[-1] <= times[-2])
                                       or (not times and frames_wanted[-1] == frames_wanted[-2])):
            raise ValueError(f"{where}: {'time' if times else 'frame index'} {row[k_i]!r} does not increase")
    steering, max_steer = to_normalized(np.array(raw), args.steering_unit, args.max_steer_rad, str(csv_path))
    if times:
        t = np.array(times)
        timestamps = t - t[0]
        fps = fps_from_times(t, str(csv_path)) if len(t) > 1 else fps_video
    else:
        if fps_video <= 0 and args.fps is None:
            raise ValueError(f"{video}: the video does not say its frame rate; pass --fps")
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
        raise ValueError(f"{csv_path} line {line_of[k]}: frame {wanted[k]} is beyond the end of video {video} "
                         f"({last + 1} frame(s)): the video is shorter than its log")

    writer = DatasetWriter(out, fps, args.height, args.width, max_steer, source=f"drive import --format video-csv {video.name}")
    with tqdm(total=len(steering), desc="import", unit="frame", disable=not args.progress) as bar:
        writer.add_episode(frames(), steering, timestamps, source=str(video), progress=bar)
    return writer.finish()


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


def _udacity(args: argparse.Namespace, out: Path) -> DatasetInfo:
    src = Path(args.src)
    log = src / "driving_log.csv" if src.is_dir() else src
    if not log.is_file():
        raise FileNotFoundError(f"{log}: Udacity driving_log.csv not found")
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    for cam in cameras:
        if cam not in ("center", "left", "right"):
            raise ValueError(f"--cameras: unknown camera {cam!r} (choose from center, left, right)")
    corrections = {"center": 0.0, "left": args.steering_correction, "right": -args.steering_correction}
    rows = []
    with open(log, newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not any(cell.strip() for cell in row):
                continue
            if line == 1 and [c.strip().lower() for c in row[:4]] == list(_UDACITY_HEADER[:4]):
                continue  # header line
            where = f"{log} line {line}"
            if len(row) < 4:
                raise ValueError(f"{where}: {len(row)} field(s), expected center,left,right,steering,...")
            rows.append((line, row[0], row[1], row[2], parse_number(row[3], where)))
    if not rows:
        raise ValueError(f"{log}: no data line")
    times = [_udacity_time(r[1]) for r in rows]
    if all(t is not None for t in times):
        t = np.array(times)
        runs = split_episodes(t, args.max_gap_s)
        fps = args.fps or fps_from_times(t, str(log))
    else:
        if args.fps is None:
            line = rows[times.index(None)][0]
            raise ValueError(f"{log} line {line}: no time in the image name; pass --fps")
        fps = args.fps
        t = np.arange(len(rows)) / fps
        runs = [np.arange(len(rows))]
    max_steer = args.max_steer_rad or UDACITY_MAX_STEER_RAD
    episodes = []
    for run in runs:
        for cam in cameras:
            col = {"center": 1, "left": 2, "right": 3}[cam]
            steering, _ = to_normalized(np.array([rows[i][4] for i in run]) + corrections[cam], "normalized",
                                        max_steer, f"{log} ({cam} camera)")
            episodes.append(_Episode(images=[(rows[i][0], rows[i][col]) for i in run], steering=steering,
                                     times=t[run] - t[run[0]], source=f"{log.name} lines {rows[run[0]][0]}-"
                                     f"{rows[run[-1]][0]} {cam} camera"))
    return _write_image_episodes(args, out, log, episodes, fps, max_steer, "udacity",
                                 lambda rec: _image_beside(log.parent, rec))


# --------------------------------------------------------------------------------------------------
# Sully Chen


def _sully_time(text: str, where: str) -> float:
    try:
        t = _dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S:%f").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise ValueError(f"{where}: time {text.strip()!r} is not YYYY-MM-DD HH:MM:SS:mmm") from None
    return t.timestamp()


def _sully_chen(args: argparse.Namespace, out: Path) -> DatasetInfo:
    src = Path(args.src)
    log = src / "data.txt" if src.is_dir() else src
    if not log.is_file():
        raise FileNotFoundError(f"{log}: Sully Chen data.txt not found")
    names, angles, times = [], [], []
    with open(log) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{log} line {line}"
            parts = text.strip().split(None, 1)
            if len(parts) != 2:
                raise ValueError(f"{where}: expected 'FILENAME ANGLE', got {text.strip()!r}")
            angle, _, stamp = parts[1].partition(",")
            angles.append(parse_number(angle, where))
            names.append((line, parts[0]))
            if stamp.strip():
                times.append(_sully_time(stamp, where))
    if not names:
        raise ValueError(f"{log}: no data line")
    if times and len(times) != len(names):
        raise ValueError(f"{log}: some lines have a time and some do not")
    steering, max_steer = to_normalized(np.array(angles), "deg", args.max_steer_rad, str(log))
    if times:
        t = np.array(times)
        runs = split_episodes(t, args.max_gap_s)
        fps = args.fps or fps_from_times(t, str(log))
    else:
        if args.fps is None:
            raise ValueError(f"{log}: the lines carry no time; pass --fps (frames per second of the recording)")
        fps = args.fps
        t = np.arange(len(names)) / fps
        runs = [np.arange(len(names))]
    episodes = [_Episode(images=[names[i] for i in run], steering=steering[run], times=t[run] - t[run[0]],
                         source=f"{log.name} lines {names[run[0]][0]}-{names[run[-1]][0]}") for run in runs]
    return _write_image_episodes(args, out, log, episodes, fps, max_steer, "sully-chen",
                                 lambda name: log.parent / name)


def _write_image_episodes(args: argparse.Namespace, out: Path, log: Path, episodes: list[_Episode], fps: float,
                          max_steer: float, fmt: str, resolve) -> DatasetInfo:
    # Check every image exists before decoding any, so a missing frame fails fast.
    for ep in episodes:
        for line, rec in ep.images:
            path = resolve(rec)
            if not path.is_file():
                raise FileNotFoundError(f"{log} line {line}: image {path} not found")
    writer = DatasetWriter(out, fps, args.height, args.width, max_steer, source=f"drive import --format {fmt} {log}")

    def frames(ep: _Episode) -> Iterator[np.ndarray]:
        for line, rec in ep.images:
            yield fit_frame(read_image(resolve(rec), f"{log} line {line}"), args.height, args.width, args.resize)

    total = sum(len(ep.images) for ep in episodes)
    with tqdm(total=total, desc="import", unit="frame", disable=not args.progress) as bar:
        for ep in episodes:
            writer.add_episode(frames(ep), np.asarray(ep.steering, dtype=np.float32),
                               np.asarray(ep.times, dtype=np.float32), source=ep.source, progress=bar)
    return writer.finish()


# --------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="the source: a video (video-csv), driving_log.csv or its folder (udacity), "
                                    "data.txt or its folder (sully-chen)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the source's format")
    parser.add_argument("--out", required=True, help="the dataset folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--height", type=int, default=78, help="image height of the dataset, pixels (default 78)")
    parser.add_argument("--width", type=int, default=200, help="image width of the dataset, pixels (default 200)")
    parser.add_argument("--resize", choices=("crop", "stretch"), default="crop",
                        help="crop: centre-crop to the aspect ratio, then resize (default); stretch: resize only")
    parser.add_argument("--max-steer-rad", type=float, default=None,
                        help="angle, rad, that normalised steering 1.0 stands for (defaults: see the module doc)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate, Hz, when the source does not carry times")
    parser.add_argument("--max-gap-s", type=float, default=1.0,
                        help="udacity/sully-chen: a time gap over this, s, starts a new episode (default 1.0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g = parser.add_argument_group("video-csv")
    g.add_argument("--csv", default=None, help="per-frame steering CSV")
    g.add_argument("--steering-column", default="steering", help="steering column name (default 'steering')")
    g.add_argument("--steering-unit", choices=STEERING_UNITS, default="normalized", help="steering unit (default normalized)")
    g.add_argument("--frame-column", default=None, help="frame-index column (default: frame_index or frame)")
    g.add_argument("--time-column", default=None, help="time column, s from the video's first frame "
                                                       "(default: timestamp, time or t)")
    g.add_argument("--time-offset-s", type=float, default=0.0, help="CSV time of the video's first frame, s (default 0)")
    g = parser.add_argument_group("udacity")
    g.add_argument("--cameras", default="center,left,right", help="cameras to import (default center,left,right)")
    g.add_argument("--steering-correction", type=float, default=0.2,
                   help="normalised steering added for the left camera, subtracted for the right (default 0.2)")


def import_dataset(args: argparse.Namespace) -> DatasetInfo:
    """Import ``args.src`` in ``args.format`` into ``args.out``, atomically. Returns the dataset's info."""
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ValueError(f"--out {out}: folder exists and is not empty (pass --overwrite to replace it)")
    if args.height <= 0 or args.width <= 0:
        raise ValueError(f"--height/--width must be positive, got {args.height}x{args.width}")
    run_format = {"video-csv": _video_csv, "udacity": _udacity, "sully-chen": _sully_chen}[args.format]
    with atomic_dir(out) as tmp:
        info = run_format(args, tmp)
    return info


def import_source(fmt: str, src: str | Path, out: str | Path, **options) -> DatasetInfo:
    """Python entry point: ``import_source("udacity", "logs/", "data/udacity", steering_correction=0.25)``.

    ``options`` are the command-line options with underscores (``csv``, ``steering_unit``, ``progress``, ...);
    the rest take their command-line defaults.
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(src), "--format", fmt, "--out", str(out)])
    for key, value in options.items():
        if not hasattr(args, key):
            raise ValueError(f"import_source: unknown option {key!r}")
        setattr(args, key, value)
    return import_dataset(args)


def run(args: argparse.Namespace) -> int:
    info = import_dataset(args)
    print(f"drive import: {info.total_episodes} episode(s), {info.total_frames} frame(s) at {info.fps:.3g} Hz "
          f"-> {args.out}")
    return 0
