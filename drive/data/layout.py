"""The on-disk dataset layout, shared by the recorder, the importers and the reader.

It is LeRobot's v3.0 layout (``LeRobotDataset(repo_id, root=DIR)`` loads it; tools/check_lerobot.py
checks that), with one episode per file so that an interrupted recording leaves every finished
episode readable and a new recording can append::

    DIR/
      meta/info.json                                   typed description (see ``DatasetInfo``)
      meta/tasks.parquet                               the task: one row, "keep the lane"
      meta/stats.json                                  per-feature min/max/mean/std/count/quantiles
      meta/episodes/chunk-000/file-000.parquet         one row per episode: index, length, tasks, file
                                                       indices, timestamps, stats/…, world.<key>, …
      data/chunk-000/file-000.parquet                  one row per frame (columns below)
      videos/observation.images.front/chunk-000/file-000.mp4   the camera frames (H.264, yuv420p)

Files are numbered by episode; chunk ``c`` holds episodes ``c*1000 .. c*1000+999``.
An episode is complete when its meta/episodes file exists: that file is written last, and
every file is written to a temporary name and renamed. Datasets written before the v3.0 fields
(no tasks.parquet, no task_index, mp4v video) are still read by :mod:`drive.data.reader`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from drive.errors import UserError
from drive.io import read_json

CODEBASE_VERSION = "v3.0"
CHUNK_SIZE = 1000
VIDEO_KEY = "observation.images.front"

# Per-frame columns of data/…parquet. Steering is normalised to [-1, 1]; multiply by
# ``DatasetInfo.max_steer_rad`` for radians.
EPISODE_INDEX = "episode_index"
FRAME_INDEX = "frame_index"
TIMESTAMP = "timestamp"  # s since the episode's first frame
INDEX = "index"  # global frame index over the whole dataset
STEERING_LABEL = "action.steering"  # the label to learn: the expert's clean steering, [-1, 1]
STEERING_APPLIED = "observation.steering_applied"  # what was actually applied (DART noise), [-1, 1]
CURVATURE = "observation.curvature_inv_m"  # road curvature ahead, 1/m
SPEED = "observation.speed_mps"  # m/s
LATERAL_OFFSET = "observation.lateral_offset_m"  # m, positive = left of lane centre
HEADING_ERROR = "observation.heading_error_rad"  # rad
TASK_INDEX = "task_index"  # row of meta/tasks.parquet; always 0 (one task)

FRAME_COLUMNS = (
    EPISODE_INDEX,
    FRAME_INDEX,
    TIMESTAMP,
    INDEX,
    STEERING_LABEL,
    STEERING_APPLIED,
    CURVATURE,
    SPEED,
    LATERAL_OFFSET,
    HEADING_ERROR,
    TASK_INDEX,
)
INT_COLUMNS = (EPISODE_INDEX, FRAME_INDEX, INDEX, TASK_INDEX)
TASK = "keep the lane"
"""The one task of every dataset (LeRobot's ``meta/tasks.parquet``)."""
DATA_FILES_SIZE_IN_MB = 100
"""LeRobot's bound on a data file's size; ours hold one episode each, far below it."""
VIDEO_FILES_SIZE_IN_MB = 200
"""LeRobot's bound on a video file's size."""
WORLD_PREFIX = "world."
"""Episode-table columns holding the randomized world's drawn values (``info["world"]`` at reset)."""
INFO_COLUMNS = {  # per-frame dataset column <- env info key
    CURVATURE: "curvature_ahead_inv_m",
    SPEED: "speed_mps",
    LATERAL_OFFSET: "lateral_offset_m",
    HEADING_ERROR: "heading_error_rad",
}


def columns_from_info(info: dict[str, Any], applied: float | None = None) -> dict[str, float]:
    """The per-frame columns of one step, from the env's ``info`` of the frame being stored.

    The label is the expert's clean steering ``info["expert_steering"]``; ``applied`` is the steering
    actually sent to the env after this frame (DART noise, or the learner's in DAgger), default the label.
    """
    label = float(info["expert_steering"])
    out = {STEERING_LABEL: label, STEERING_APPLIED: label if applied is None else float(applied)}
    for column, key in INFO_COLUMNS.items():
        out[column] = float(info[key])
    return out


def world_meta(info: dict[str, Any], where: str = "info['world']") -> dict[str, Any]:
    """Episode-table columns ``world.<key>`` from the flat dict ``info["world"]`` at reset (absent: none)."""
    world = info.get("world")
    if world is None:
        return {}
    if not isinstance(world, dict):
        raise TypeError(f"{where}: must be a flat dict of drawn values, got {type(world).__name__}")
    out = {}
    for key, value in world.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (str, float, int, bool)):
            raise TypeError(f"{where}[{key!r}]: must be str, float, int or bool, got {type(value).__name__}")
        out[f"{WORLD_PREFIX}{key}"] = value
    return out


# Columns an imported dataset must have; the rest may be NaN when the source lacks them.
REQUIRED_COLUMNS = (EPISODE_INDEX, FRAME_INDEX, TIMESTAMP, INDEX, STEERING_LABEL)


def chunk_of(episode_index: int) -> int:
    return episode_index // CHUNK_SIZE


def data_path(root: Path, episode_index: int) -> Path:
    return Path(root) / "data" / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.parquet"


def video_path(root: Path, episode_index: int) -> Path:
    return Path(root) / "videos" / VIDEO_KEY / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.mp4"


def episode_meta_path(root: Path, episode_index: int) -> Path:
    return (
        Path(root) / "meta" / "episodes" / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.parquet"
    )


def info_path(root: Path) -> Path:
    return Path(root) / "meta" / "info.json"


STEERING_POSITIVE = "left"
"""The datasets' steering sign: a positive ``action.steering`` steers left (as the env's action does)."""
MAX_FPS = 1000.0
"""The highest frame rate, Hz, a dataset may declare: more is taken for a corrupt ``meta/info.json``."""


@dataclasses.dataclass
class DatasetInfo:
    """Typed contents of ``meta/info.json``."""

    fps: float
    """Frames per second of the camera (and of the per-frame table), Hz."""
    image_height: int
    """Camera frame height, pixels."""
    image_width: int
    """Camera frame width, pixels."""
    max_steer_rad: float
    """Steering angle in radians that a normalised steering of 1.0 stands for."""
    total_episodes: int = 0
    """Number of complete episodes."""
    total_frames: int = 0
    """Number of frames over all complete episodes."""
    source: str = "drive record"
    """Where the data came from: ``drive record`` or ``drive import --format …``."""
    scenario: dict[str, Any] | None = None
    """The scenario used to record (as a plain dict), if recorded in simulation."""
    codebase_version: str = CODEBASE_VERSION
    """Layout version, following LeRobot's numbering."""
    robot_type: str | None = "car"
    """LeRobot's ``robot_type``: what was driven."""
    steering_positive: str = STEERING_POSITIVE
    """Which way a positive normalised steering turns: always ``left`` (counter-clockwise seen from above,
    ISO 8855 and the simulator's convention); importers convert their source's sign to it."""
    source_steering_positive: str | None = None
    """Imported datasets: which way a positive steering value turned in the source (``left``/``right``)."""
    camera: dict[str, Any] | None = None
    """Imported datasets: the camera of the frames as stored (``height_m``, ``pitch_rad``, ``fov_deg``,
    ``yaw_rad``, ``pixel_aspect``, and the source's values), from ``drive import --camera-height-m
    --camera-pitch-rad --fov-deg`` (:func:`drive.data.importers.camera_metadata`); read by ``drive replay``."""

    def features(self) -> dict[str, Any]:
        """LeRobot-style feature descriptions: dtype, shape and names of every column."""
        scalar = lambda name: {"dtype": "float32", "shape": [1], "names": [name]}  # noqa: E731
        return {
            VIDEO_KEY: {
                "dtype": "video",
                "shape": [self.image_height, self.image_width, 3],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": self.image_height,
                    "video.width": self.image_width,
                    "video.codec": "h264",
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": _number(self.fps),
                    "video.channels": 3,
                    "has_audio": False,
                },
            },
            STEERING_LABEL: scalar("steering"),
            STEERING_APPLIED: scalar("steering"),
            CURVATURE: scalar("curvature_inv_m"),
            SPEED: scalar("speed_mps"),
            LATERAL_OFFSET: scalar("lateral_offset_m"),
            HEADING_ERROR: scalar("heading_error_rad"),
            TIMESTAMP: {"dtype": "float32", "shape": [1], "names": None},
            FRAME_INDEX: {"dtype": "int64", "shape": [1], "names": None},
            EPISODE_INDEX: {"dtype": "int64", "shape": [1], "names": None},
            INDEX: {"dtype": "int64", "shape": [1], "names": None},
            TASK_INDEX: {"dtype": "int64", "shape": [1], "names": None},
        }

    def to_dict(self) -> dict[str, Any]:
        """``meta/info.json``: LeRobot v3.0's fields first, then ours (max_steer_rad, source, scenario, …)."""
        d = {
            "codebase_version": self.codebase_version,
            "robot_type": self.robot_type,
            "total_episodes": self.total_episodes,
            "total_frames": self.total_frames,
            "total_tasks": 1,
            "chunks_size": CHUNK_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": _number(self.fps),
            "splits": {"train": f"0:{self.total_episodes}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": self.features(),
        }
        for f in dataclasses.fields(self):
            d.setdefault(f.name, getattr(self, f.name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "meta/info.json") -> "DatasetInfo":
        """Read and check ``meta/info.json``'s contents; a one-line :class:`UserError` naming ``where``, the
        field and the value for anything missing or out of range (fps in (0, :data:`MAX_FPS`], positive
        integer image size, positive max_steer_rad, non-negative totals, ``features`` with positive shapes
        matching the image size)."""
        if not isinstance(d, dict):
            raise UserError(f"{where}: the top level must be an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        for required in ("fps", "image_height", "image_width", "max_steer_rad", "features"):
            if required not in d:
                raise UserError(f"{where}: missing field {required!r}")
        fps = kwargs["fps"]
        if not (_is_number(fps) and 0 < fps <= MAX_FPS):
            raise UserError(f"{where}: field 'fps' must be a number in (0, {MAX_FPS:g}] Hz, got {fps!r}")
        kwargs["fps"] = float(fps)
        for name in ("image_height", "image_width"):
            if not (_is_int(kwargs[name]) and kwargs[name] > 0):
                raise UserError(f"{where}: field {name!r} must be a positive integer, got {kwargs[name]!r}")
        if not (_is_number(kwargs["max_steer_rad"]) and kwargs["max_steer_rad"] > 0):
            raise UserError(
                f"{where}: field 'max_steer_rad' must be a positive number, got {kwargs['max_steer_rad']!r}"
            )
        for name in ("total_episodes", "total_frames"):
            if name in kwargs and not (_is_int(kwargs[name]) and kwargs[name] >= 0):
                raise UserError(f"{where}: field {name!r} must be a non-negative integer, got {kwargs[name]!r}")
        _check_features(d["features"], kwargs["image_height"], kwargs["image_width"], where)
        if kwargs.get("camera") is not None and not isinstance(kwargs["camera"], dict):
            raise UserError(f"{where}: field 'camera' must be an object, got {kwargs['camera']!r}")
        if kwargs.get("steering_positive", STEERING_POSITIVE) != STEERING_POSITIVE:
            raise UserError(
                f"{where}: field 'steering_positive' is {kwargs['steering_positive']!r}; "
                f"datasets store steering with positive = {STEERING_POSITIVE!r}"
            )
        return cls(**kwargs)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_features(features: Any, height: int, width: int, where: str) -> None:
    if not isinstance(features, dict) or not features:
        raise UserError(f"{where}: field 'features' must be a non-empty object, got {features!r}")
    for name, feature in features.items():
        shape = feature.get("shape") if isinstance(feature, dict) else None
        if not (isinstance(shape, list) and shape and all(_is_int(n) and n > 0 for n in shape)):
            raise UserError(
                f"{where}: field 'features.{name}.shape' must be a list of positive integers, got {shape!r}"
            )
    video = features.get(VIDEO_KEY)
    if not isinstance(video, dict):
        raise UserError(f"{where}: field 'features' has no {VIDEO_KEY!r} entry")
    if video["shape"] != [height, width, 3]:
        raise UserError(
            f"{where}: field 'features.{VIDEO_KEY}.shape' is {video['shape']!r}, but image_height x image_width "
            f"is {height}x{width} (expected {[height, width, 3]})"
        )


def _number(x: float) -> int | float:
    """An integral float as an int (LeRobot's ``fps`` is an int), otherwise the float."""
    return int(x) if float(x).is_integer() else float(x)


def tasks_path(root: Path) -> Path:
    return Path(root) / "meta" / "tasks.parquet"


def stats_path(root: Path) -> Path:
    return Path(root) / "meta" / "stats.json"


def read_info(root: Path) -> DatasetInfo:
    path = info_path(root)
    return DatasetInfo.from_dict(read_json(path, "not a drive dataset: meta/info.json"), where=str(path))


def complete_episodes(root: Path) -> list[int]:
    """Indices of the episodes whose files are all written (their meta/episodes file exists)."""
    base = Path(root) / "meta" / "episodes"
    if not base.exists():
        return []
    out = []
    for p in base.glob("chunk-*/file-*.parquet"):
        out.append(int(p.stem.split("-")[1]))
    return sorted(out)


_OWN_FILE = re.compile(
    r"^(?:meta/(?:info\.json|tasks\.parquet|stats\.json|episodes/chunk-\d{3,}/file-\d{3,}\.parquet|runs/[^/]+\.json)"
    r"|data/chunk-\d{3,}/file-\d{3,}\.parquet"
    r"|videos/[^/]+/chunk-\d{3,}/file-\d{3,}\.mp4"
    r"|cache/[^/]+)$"
)
_OWN_HIDDEN = re.compile(r"^\.(?:drive\.lock|.*\.drive-(?:tmp|old)-\d+-.*)$")


def foreign_entries(root: str | Path) -> list[Path]:
    """Files under ``root`` that are not part of a dataset's layout (nor its lock, temporaries or frame
    cache), sorted: what replacing the folder would destroy that no drive command made."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if _OWN_HIDDEN.match(name) or _OWN_FILE.match((rel / name).as_posix()):
                continue
            found.append(rel / name)
    return sorted(found)


def is_dataset(root: str | Path) -> bool:
    """Whether ``root`` holds a dataset: a ``meta/info.json`` that reads back (:func:`read_info`)."""
    try:
        read_info(Path(root))
    except UserError:
        return False
    return True
