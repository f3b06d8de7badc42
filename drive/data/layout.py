"""The on-disk dataset layout, shared by the recorder, the importers and the reader.

It follows LeRobot's v3 conventions, one episode per file so that an interrupted recording
leaves every finished episode readable and a new recording can append::

    DIR/
      meta/info.json                                   typed description (see ``DatasetInfo``)
      meta/episodes/chunk-000/file-000.parquet         one row per episode (index, length, source)
      data/chunk-000/file-000.parquet                  one row per frame (columns below)
      videos/observation.images.front/chunk-000/file-000.mp4   the camera frames (mp4v)

Files are numbered by episode; chunk ``c`` holds episodes ``c*1000 .. c*1000+999``.
An episode is complete when its meta/episodes file exists: that file is written last, and
every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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

FRAME_COLUMNS = (
    EPISODE_INDEX, FRAME_INDEX, TIMESTAMP, INDEX, STEERING_LABEL, STEERING_APPLIED,
    CURVATURE, SPEED, LATERAL_OFFSET, HEADING_ERROR,
)
# Columns an imported dataset must have; the rest may be NaN when the source lacks them.
REQUIRED_COLUMNS = (EPISODE_INDEX, FRAME_INDEX, TIMESTAMP, INDEX, STEERING_LABEL)


def chunk_of(episode_index: int) -> int:
    return episode_index // CHUNK_SIZE


def data_path(root: Path, episode_index: int) -> Path:
    return Path(root) / "data" / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.parquet"


def video_path(root: Path, episode_index: int) -> Path:
    return Path(root) / "videos" / VIDEO_KEY / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.mp4"


def episode_meta_path(root: Path, episode_index: int) -> Path:
    return Path(root) / "meta" / "episodes" / f"chunk-{chunk_of(episode_index):03d}" / f"file-{episode_index:03d}.parquet"


def info_path(root: Path) -> Path:
    return Path(root) / "meta" / "info.json"


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

    def features(self) -> dict[str, Any]:
        """LeRobot-style feature descriptions: dtype, shape and names of every column."""
        scalar = lambda name: {"dtype": "float32", "shape": [1], "names": [name]}  # noqa: E731
        return {
            VIDEO_KEY: {
                "dtype": "video",
                "shape": [self.image_height, self.image_width, 3],
                "names": ["height", "width", "channels"],
                "info": {"video.fps": self.fps, "video.codec": "mp4v", "video.pix_fmt": "bgr24"},
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
        }

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["chunks_size"] = CHUNK_SIZE
        d["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        d["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
        d["features"] = self.features()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "meta/info.json") -> "DatasetInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        for required in ("fps", "image_height", "image_width", "max_steer_rad"):
            if required not in kwargs:
                raise ValueError(f"{where}: missing field {required!r}")
        if not (isinstance(kwargs["fps"], (int, float)) and kwargs["fps"] > 0):
            raise ValueError(f"{where}: field 'fps' must be a positive number, got {kwargs['fps']!r}")
        return cls(**kwargs)


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
