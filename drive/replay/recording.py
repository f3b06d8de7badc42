"""A dataset opened for replay: its episodes as recorded paths, and the camera each was filmed with.

The camera's height, pitch and field of view (and the mount's yaw, 0 if absent) are read, per episode,
from the first of:

1. the episode's row in ``meta/episodes/…`` : ``world.camera_height_m``, ``world.camera_pitch_rad``,
   ``world.camera_fov_deg``, ``world.camera_yaw_rad`` (what ``drive record`` stores: the drawn world);
2. ``meta/info.json``'s ``camera`` object: ``height_m``, ``pitch_rad``, ``fov_deg``, ``yaw_rad``
   (what ``drive import --camera-height-m --camera-pitch-rad --fov-deg`` stores, for the frames as
   stored, after its crop and resize: :func:`drive.data.importers.camera_metadata`). Its ``pixel_aspect``
   (f_y/f_x of the stored frames) must be 1 within :data:`PIXEL_ASPECT_TOLERANCE`: a source stretched to
   another aspect ratio (``drive import --resize stretch``) has pixels that are not square, which the
   ground-plane view does not model, and is refused in one line (re-import it with ``--resize crop``);
3. ``meta/info.json``'s ``scenario.camera`` when its values are plain numbers (recordings made before
   the world columns).

A dataset with none of them is refused in one line that names the file and the flags. The frame size
is the dataset's (``image_width`` x ``image_height``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from drive.data import layout
from drive.data.reader import DatasetReader
from drive.errors import UserError
from drive.io import read_json
from drive.replay.path import RecordedPath, path_from_table
from drive.world.camera import CameraConfig

CAMERA_FIELDS = ("height_m", "pitch_rad", "fov_deg")
"""The camera metadata replay needs; ``yaw_rad`` (the mount's) is optional, default 0."""
CAMERA_FLAGS = "--camera-height-m, --camera-pitch-rad and --fov-deg"
"""The ``drive import`` flags that record them."""
PIXEL_ASPECT_TOLERANCE = 0.02
"""Largest relative difference of an imported camera's ``pixel_aspect`` from 1 (a crop's rounding)."""


@dataclasses.dataclass
class Recording:
    """A dataset's episodes for replay: ``paths[e]``, ``cameras[e]`` and ``frames(e)``."""

    root: Path
    reader: DatasetReader
    episodes: list[int]
    paths: dict[int, RecordedPath]
    cameras: dict[int, CameraConfig]

    @property
    def fps(self) -> float:
        return self.reader.info.fps

    @property
    def max_steer_rad(self) -> float:
        return self.reader.info.max_steer_rad

    def frames(self, episode: int) -> np.ndarray:
        """The recorded frames of an episode, RGB uint8 (N, H, W, 3)."""
        return self.reader.read_frames(episode)


def open_recording(data: str | Path, episodes: Sequence[int] | None = None) -> Recording:
    """Open a dataset for replay and check every chosen episode (camera, speed, frame times) up front."""
    reader = DatasetReader(data)
    root = reader.root
    chosen = list(reader.episodes) if episodes is None else [int(e) for e in episodes]
    if not chosen:
        raise UserError(f"{root}: dataset has no complete episode to replay")
    missing = sorted(set(chosen) - set(reader.episodes))
    if missing:
        raise UserError(f"{root}: no complete episode {missing[0]} (it has {len(reader.episodes)})")
    raw_info = read_json(layout.info_path(root), "not a drive dataset: meta/info.json", expect=dict)
    paths, cameras = {}, {}
    for e in chosen:
        cameras[e] = camera_config(reader, e, raw_info)
        paths[e] = path_from_table(reader.episode_table(e), reader.info.max_steer_rad, layout.data_path(root, e))
        if len(paths[e]) < 2:
            raise UserError(f"{layout.data_path(root, e)}: episode {e} has 1 frame; replay needs at least 2")
    return Recording(root, reader, chosen, paths, cameras)


def camera_config(reader: DatasetReader, episode: int, raw_info: dict[str, Any]) -> CameraConfig:
    """The camera an episode was filmed with (see the module docstring for where it is read)."""
    root = reader.root
    world = reader.world(episode)
    sources: list[tuple[str, dict[str, Any]]] = []
    if any(f"camera_{f}" in world for f in CAMERA_FIELDS):
        meta = layout.episode_meta_path(root, episode)
        sources.append(
            (f"{meta}: field 'world.camera_", {f: world.get(f"camera_{f}") for f in (*CAMERA_FIELDS, "yaw_rad")})
        )
    camera = raw_info.get("camera")
    if isinstance(camera, dict):
        sources.append((f"{layout.info_path(root)}: field 'camera.", camera))
    scenario = raw_info.get("scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("camera"), dict):
        spec = scenario["camera"]
        if all(_is_number(spec.get(f)) for f in CAMERA_FIELDS):
            sources.append((f"{layout.info_path(root)}: field 'scenario.camera.", spec))
    if not sources:
        raise UserError(
            f"{layout.info_path(root)}: no camera metadata (field 'camera' with height_m, pitch_rad, fov_deg; "
            f"episode {episode} has no world.camera_* columns): import the dataset with {CAMERA_FLAGS}"
        )
    where, values = sources[0]
    for f in CAMERA_FIELDS:
        if values.get(f) is None:
            raise UserError(f"{where}{f}' is missing: import the dataset with {CAMERA_FLAGS}")
        if not _is_number(values[f]):
            raise UserError(f"{where}{f}' must be a number, got {values[f]!r}")
    height, pitch, fov = (float(values[f]) for f in CAMERA_FIELDS)
    yaw = values.get("yaw_rad")
    yaw = 0.0 if yaw is None or (isinstance(yaw, float) and math.isnan(yaw)) else yaw
    if not _is_number(yaw) or abs(float(yaw)) >= math.pi / 2:
        raise UserError(f"{where}yaw_rad' must be a number in (-pi/2, pi/2), got {yaw!r}")
    if height <= 0:
        raise UserError(f"{where}height_m' must be positive, got {height!r}")
    if not 0 < fov < 180:
        raise UserError(f"{where}fov_deg' must be in (0, 180) degrees, got {fov!r}")
    if not abs(pitch) < math.pi / 2:
        raise UserError(f"{where}pitch_rad' must be in (-pi/2, pi/2), got {pitch!r}")
    aspect = values.get("pixel_aspect")
    if aspect is not None and not (_is_number(aspect) and abs(float(aspect) - 1.0) <= PIXEL_ASPECT_TOLERANCE):
        source = f"{values.get('source_width')}x{values.get('source_height')}"
        raise UserError(
            f"{where}pixel_aspect' is {aspect!r}: the stored frames' pixels are not square ({source} source frames "
            f"stretched with --resize {values.get('resize')}); replay's ground-plane view needs square pixels: "
            "re-import with --resize crop"
        )
    info = reader.info
    return CameraConfig(
        height_m=height,
        pitch_rad=pitch,
        fov_deg=fov,
        yaw_rad=float(yaw),
        width=info.image_width,
        height=info.image_height,
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(float(x))
