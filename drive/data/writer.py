"""The one dataset writer: frames and per-frame columns streamed in, one episode at a time (LeRobot's shape).

>>> writer = DatasetWriter("data/run", DatasetInfo(fps=20.0, image_height=78, image_width=200,
...                                                max_steer_rad=0.5))            # doctest: +SKIP
>>> for obs, info in steps:                                                        # doctest: +SKIP
...     writer.add_frame(obs, **layout.columns_from_info(info, applied))
>>> episode = writer.save_episode({"source": "drive record", **layout.world_meta(reset_info)})  # doctest: +SKIP
>>> writer.close()                                                                 # doctest: +SKIP

Frames are encoded to H.264 as they arrive (nothing but the per-frame scalars is held in memory); the
video goes to a hidden temporary until :meth:`DatasetWriter.save_episode`. Saving takes the folder's
lock (:func:`drive.io.output_lock`), claims the next free episode index, moves the video into place,
writes the frame table, then the episode's ``meta/episodes`` row (which marks it complete), then
``meta/info.json`` and ``meta/stats.json``. Two writers into one folder, in one process or several,
therefore keep every episode. :meth:`DatasetWriter.stage_episode` and :meth:`DatasetWriter.save_staged`
save several episodes at once, under one hold of the lock (consecutive indices, all or nothing). Opening a folder that holds a dataset appends to it, after checking
that fps, image size, max_steer_rad, source and scenario (but for ``duration_s``) match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from drive.data import layout, stats
from drive.data.layout import DatasetInfo
from drive.errors import UserError
from drive.io import TMP_MARK, atomic_path, atomic_write_json, output_lock
from drive.video_io import DEFAULT_CRF, DEFAULT_PRESET, VideoWriter

VALUE_COLUMNS = (
    layout.STEERING_LABEL,
    layout.STEERING_APPLIED,
    layout.CURVATURE,
    layout.SPEED,
    layout.LATERAL_OFFSET,
    layout.HEADING_ERROR,
)
"""Per-frame columns a caller gives to :meth:`DatasetWriter.add_frame` (the label is required)."""
DATASET_GOP = 10
"""Keyframe interval of dataset videos, frames: cheap random access for LeRobot's reader."""


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Make a system error raised without a file name (pyarrow's, FFmpeg's) name ``path``, so the command
    line's one-line report says which file could not be written."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or exc.filename is not None:
            raise
        strerror = exc.strerror or os.strerror(exc.errno)
        raise OSError(exc.errno, strerror, str(path)) from exc


@dataclasses.dataclass
class _Staged:
    """An episode finished but not yet saved (:meth:`DatasetWriter.stage_episode`)."""

    video: Path | None
    """Its hidden temporary video (None once moved into place)."""
    timestamps: np.ndarray
    table: dict[str, np.ndarray]
    """The per-frame value columns."""
    image_stats: dict[str, Any]
    extra: dict[str, Any]
    """Extra columns of its meta/episodes row."""


def _first_difference(old: Any, new: Any, key: str) -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _first_difference(old.get(k), new.get(k), f"{key}.{k}")
            if d:
                return d
        return None
    return None if old == new else (key, old, new)


class DatasetWriter:
    """Write episodes into the dataset folder ``root`` (layout: :mod:`drive.data.layout`).

    ``info`` describes the data (fps, image size, max_steer_rad, source, scenario); its totals are
    kept up to date by the writer. ``lock_timeout_s`` bounds the wait for another writer's save
    (-1: forever); past it, a one-line :class:`UserError` names the folder.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        info: DatasetInfo,
        lock_timeout_s: float = 600.0,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
    ):
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s
        self.crf, self.preset = crf, preset
        if not (isinstance(info.fps, (int, float)) and math.isfinite(info.fps) and info.fps > 0):
            raise UserError(f"{self.root}: fps must be a positive number, got {info.fps!r}")
        if not (
            isinstance(info.max_steer_rad, (int, float))
            and math.isfinite(info.max_steer_rad)
            and info.max_steer_rad > 0
        ):
            raise UserError(f"{self.root}: max_steer_rad must be a positive number, got {info.max_steer_rad!r}")
        h, w = info.image_height, info.image_width
        if h <= 0 or w <= 0 or h % 2 or w % 2:
            raise UserError(f"{self.root}: image size {h}x{w} (HxW): H.264 video needs positive even sizes")
        self.created = False
        """Whether this writer made the dataset (wrote its meta/info.json)."""
        with output_lock(self.root, self.lock_timeout_s):
            self.info = self._open(info)
        self._known: dict[int, dict[str, Any]] = {}  # episode -> {"length", "stats"}
        self._staged: list[_Staged] = []
        self._reset_episode()

    # ------------------------------------------------------------------------------------------
    def _open(self, info: DatasetInfo) -> DatasetInfo:
        path = layout.info_path(self.root)
        if not path.exists():
            visible = [p.name for p in self.root.iterdir() if not p.name.startswith(".")]
            if visible:
                raise UserError(
                    f"{self.root}: folder is not empty and holds no meta/info.json "
                    f"(found {sorted(visible)[0]!r}): refusing to write a dataset into it"
                )
            try:
                with naming(path):
                    atomic_write_json(path, info.to_dict())
                with naming(layout.tasks_path(self.root)):
                    self._write_tasks()
            except BaseException:
                path.unlink(missing_ok=True)  # a half-made dataset would decide the next run's fps and size
                raise
            self.created = True
            return info
        old = layout.read_info(self.root)
        for name in ("source", "fps", "image_height", "image_width", "max_steer_rad"):
            a, b = getattr(old, name), getattr(info, name)
            if a != b:
                raise UserError(
                    f"{path}: field {name}: the dataset has {a!r}, this writer {b!r}; write into another folder"
                )
        old_sc, new_sc = dict(old.scenario or {}), dict(info.scenario or {})
        old_sc.pop("duration_s", None)  # the episode length may differ between recordings
        new_sc.pop("duration_s", None)
        diff = _first_difference(old_sc, new_sc, "scenario")
        if diff:
            raise UserError(
                f"{path}: field {diff[0]}: the dataset has {diff[1]!r}, this writer {diff[2]!r}; "
                "write into another folder"
            )
        if not layout.tasks_path(self.root).exists():  # a dataset from before the v3.0 fields
            self._write_tasks()
        return old

    def _write_tasks(self) -> None:
        with atomic_path(layout.tasks_path(self.root)) as tmp:
            pd.DataFrame({layout.TASK_INDEX: [0]}, index=pd.Index([layout.TASK], name="task")).to_parquet(tmp)

    def _reset_episode(self) -> None:
        self._video: VideoWriter | None = None
        self._pending: Path | None = None
        self._columns: dict[str, list[float]] = {c: [] for c in VALUE_COLUMNS}
        self._timestamps: list[float] = []
        self._image_stats = stats.ImageStats()

    @property
    def frames_pending(self) -> int:
        """Frames added since the last save."""
        return len(self._timestamps)

    # ------------------------------------------------------------------------------------------
    def add_frame(self, frame: np.ndarray, timestamp_s: float | None = None, **columns: float) -> None:
        """Add one frame (RGB uint8, (H, W, 3)) with its per-frame values, keyed by column name.

        ``columns``: :data:`VALUE_COLUMNS`; the label ``action.steering`` is required, the applied
        steering defaults to the label, the rest to NaN. Pass them as ``**layout.columns_from_info(info)``.
        ``timestamp_s``: s since the episode's first frame, default ``frame_index / fps``.
        """
        h, w = self.info.image_height, self.info.image_width
        frame = np.asarray(frame)
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"{self.root}: frame {self.frames_pending} is {frame.dtype} {frame.shape}, expected uint8 {(h, w, 3)}"
            )
        unknown = set(columns) - set(VALUE_COLUMNS)
        if unknown:
            raise ValueError(f"{self.root}: unknown per-frame column(s) {sorted(unknown)}; known: {VALUE_COLUMNS}")
        if layout.STEERING_LABEL not in columns:
            raise ValueError(f"{self.root}: add_frame needs the label column {layout.STEERING_LABEL!r}")
        t = self.frames_pending / self.info.fps if timestamp_s is None else float(timestamp_s)
        if self._timestamps and not t > self._timestamps[-1]:
            raise ValueError(f"{self.root}: timestamp {t} s of frame {self.frames_pending} does not increase")
        if self._video is None:
            folder = self.root / "videos" / layout.VIDEO_KEY
            self._pending = folder / f".episode{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex}.mp4"
            self._video = VideoWriter(
                self._pending, self.info.fps, (h, w), crf=self.crf, preset=self.preset, gop=DATASET_GOP
            )
        self._video.write(frame, timestamp_s=t)
        self._image_stats.add(frame)
        self._timestamps.append(t)
        label = float(columns[layout.STEERING_LABEL])
        for c in VALUE_COLUMNS:
            default = label if c == layout.STEERING_APPLIED else math.nan
            self._columns[c].append(float(columns.get(c, default)))

    def discard_episode(self) -> None:
        """Drop the frames added since the last save."""
        if self._video is not None:
            self._video.close(keep=False)
        if self._pending is not None and self._pending.exists():
            self._pending.unlink()
        self._reset_episode()

    def save_episode(self, episode_meta: dict[str, Any] | None = None) -> int:
        """Write the frames added since the last save as one episode; returns its index.

        ``episode_meta``: extra columns of the episode's ``meta/episodes`` row, scalars (``source``,
        seeds, ``world.<key>`` from :func:`layout.world_meta`, …); None values are left out. LeRobot
        loads the episode rows as one table: give every episode of a dataset the same keys, with the
        same value types (an int in one episode and a float in the next is a schema clash there).
        """
        if self._staged:
            raise ValueError(f"{self.root}: save the staged episodes first (save_staged)")
        self.stage_episode(episode_meta)
        return self.save_staged()[0]

    def stage_episode(self, episode_meta: dict[str, Any] | None = None) -> None:
        """Finish the frames added since the last save as an episode that :meth:`save_staged` writes
        later, together with the others staged: its video stays a hidden temporary until then.
        ``episode_meta``: as for :meth:`save_episode`."""
        n = self.frames_pending
        if n == 0:
            raise ValueError(f"{self.root}: an episode needs at least one frame")
        extra = {k: v for k, v in (episode_meta or {}).items() if v is not None}
        extra.setdefault("source", self.info.source)
        try:
            self._video.close(keep=True)
            self._video = None
            self._staged.append(
                _Staged(
                    video=self._pending,
                    timestamps=np.asarray(self._timestamps, dtype=np.float64),
                    table={c: np.asarray(v, dtype=np.float32) for c, v in self._columns.items()},
                    image_stats=self._image_stats.result(),
                    extra=extra,
                )
            )
            self._pending = None
        finally:
            self.discard_episode()

    def save_staged(self) -> list[int]:
        """Write every staged episode, in order, under one hold of the folder's lock, so they get
        consecutive indices; returns them. All or nothing: on any error (disk full, Ctrl-C) the ones
        already written are removed again, and the staged temporaries are dropped either way."""
        saved: list[int] = []
        try:
            with output_lock(self.root, self.lock_timeout_s):
                try:
                    for staged in self._staged:
                        saved.append(self._save(staged))
                    self._write_totals()
                except BaseException:
                    for episode in reversed(saved):
                        self._remove_episode(episode)  # no half-written call stays behind
                    raise
        finally:
            self.discard_staged()
        return saved

    def discard_staged(self) -> None:
        """Drop the staged episodes (their temporary videos)."""
        for staged in self._staged:
            if staged.video is not None:
                staged.video.unlink(missing_ok=True)
        self._staged = []

    def _save(self, staged: "_Staged") -> int:
        """Write one staged episode under the next free index; call under the folder lock."""
        timestamps, table = staged.timestamps, staged.table
        n = len(timestamps)
        episode_stats = {layout.VIDEO_KEY: staged.image_stats}
        episode, first = self._next_free()
        full = {
            layout.EPISODE_INDEX: np.full(n, episode, dtype=np.int64),
            layout.FRAME_INDEX: np.arange(n, dtype=np.int64),
            layout.TIMESTAMP: timestamps.astype(np.float32),
            layout.INDEX: np.arange(first, first + n, dtype=np.int64),
            **table,
            layout.TASK_INDEX: np.zeros(n, dtype=np.int64),
        }
        frame_table = pd.DataFrame({c: full[c] for c in layout.FRAME_COLUMNS})
        for c in layout.FRAME_COLUMNS:
            episode_stats[c] = stats.column_stats(full[c])
        meta = self._meta_row(episode, first, n, float(timestamps[-1]), episode_stats, staged.extra)
        try:
            video = layout.video_path(self.root, episode)
            with naming(video):
                video.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged.video, video)
            staged.video = None
            path = layout.data_path(self.root, episode)
            with naming(path), atomic_path(path) as tmp:
                frame_table.to_parquet(tmp, index=False)
            path = layout.episode_meta_path(self.root, episode)
            with naming(path), atomic_path(path) as tmp:  # last: marks it complete
                meta.to_parquet(tmp, index=False)
            self._known[episode] = {"length": n, "stats": episode_stats}
        except BaseException:
            self._remove_episode(episode)  # disk full, Ctrl-C: no half-written episode stays behind
            raise
        return episode

    def _remove_episode(self, episode: int) -> None:
        """Delete an episode this writer was saving (under the lock) and put the totals back; best effort:
        the error that brought us here is the one to report."""
        for path in (
            layout.episode_meta_path(self.root, episode),
            layout.data_path(self.root, episode),
            layout.video_path(self.root, episode),
        ):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        self._known.pop(episode, None)
        try:
            self._write_totals()
        except OSError:
            pass

    def _meta_row(
        self, episode: int, first: int, n: int, last_t: float, episode_stats: dict, extra: dict[str, Any]
    ) -> pd.DataFrame:
        chunk = layout.chunk_of(episode)
        key = layout.VIDEO_KEY
        row: dict[str, Any] = {
            "episode_index": episode,
            "tasks": [layout.TASK],
            "length": n,
            "data/chunk_index": chunk,
            "data/file_index": episode,
            "dataset_from_index": first,
            "dataset_to_index": first + n,
            f"videos/{key}/chunk_index": chunk,
            f"videos/{key}/file_index": episode,
            f"videos/{key}/from_timestamp": 0.0,
            f"videos/{key}/to_timestamp": last_t + 1.0 / self.info.fps,
            "meta/episodes/chunk_index": chunk,
            "meta/episodes/file_index": episode,
        }
        clash = set(extra) & set(row)
        if clash:
            raise ValueError(f"{self.root}: episode_meta may not set the layout's own column(s) {sorted(clash)}")
        for feature, s in episode_stats.items():
            for stat, values in s.items():
                row[f"stats/{feature}/{stat}"] = values
        row.update(extra)
        return pd.DataFrame({k: [v] for k, v in row.items()})

    # ------------------------------------------------------------------------------------------
    def _scan(self) -> list[int]:
        """Complete episodes on disk; reads the length and stats of the ones this writer has not seen."""
        done = layout.complete_episodes(self.root)
        for e in done:
            if e not in self._known:
                self._known[e] = _read_length_and_stats(layout.episode_meta_path(self.root, e))
        for e in set(self._known) - set(done):
            del self._known[e]
        return done

    def _next_free(self) -> tuple[int, int]:
        """(next episode index, its first global frame index); call under the folder lock."""
        done = self._scan()
        return (max(done) + 1 if done else 0), sum(self._known[e]["length"] for e in done)

    def _write_totals(self) -> None:
        done = self._scan()
        self.info.total_episodes = len(done)
        self.info.total_frames = sum(self._known[e]["length"] for e in done)
        with naming(layout.info_path(self.root)):
            atomic_write_json(layout.info_path(self.root), self.info.to_dict())
        with_stats = [self._known[e]["stats"] for e in done if self._known[e]["stats"]]
        if with_stats:
            features = [f for f in with_stats[0] if all(f in s for s in with_stats)]
            merged = {f: stats.aggregate([s[f] for s in with_stats]) for f in features}
            with naming(layout.stats_path(self.root)):
                atomic_write_json(layout.stats_path(self.root), stats.to_json(merged, (layout.VIDEO_KEY,)))

    def next_episode_index(self) -> int:
        """The index the next saved episode would get now (another writer may take it first)."""
        with output_lock(self.root, self.lock_timeout_s):
            return self._next_free()[0]

    def remove_if_empty(self) -> bool:
        """Undo the creation of a dataset that got no episode: when this writer made it and the folder
        holds nothing but its meta files (no episode, no other writer's video in progress), delete them
        and the empty folders, so that a failed first run does not decide the next one's fps, size or
        scenario. The lock file and ``root`` itself stay. Returns whether it removed the dataset."""
        if not self.created:
            return False
        try:
            self.discard_episode()
        except OSError:
            pass  # its temporary is gone either way (atomic_path removes it)
        own = {layout.info_path(self.root), layout.tasks_path(self.root), layout.stats_path(self.root)}
        with output_lock(self.root, self.lock_timeout_s):
            files = [Path(d) / f for d, _, names in os.walk(self.root) for f in names if f != ".drive.lock"]
            if layout.complete_episodes(self.root) or any(f not in own for f in files):
                return False
            for f in files:
                f.unlink()
            for d, _, _ in sorted(os.walk(self.root), key=lambda w: -len(w[0])):
                if Path(d) != self.root and not os.listdir(d):
                    os.rmdir(d)
        self.created = False
        return True

    def close(self) -> DatasetInfo:
        """Drop any unsaved frames and staged episodes; returns the dataset's info as last written."""
        self.discard_episode()
        self.discard_staged()
        return self.info

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    def add_episode(
        self,
        frames: Iterable[np.ndarray],
        steering: np.ndarray,
        timestamps: np.ndarray | None = None,
        columns: dict[str, np.ndarray] | None = None,
        episode_meta: dict[str, Any] | None = None,
        progress=None,
        stage: bool = False,
    ) -> int | None:
        """A whole episode at once: ``frames`` (consumed lazily), the label ``steering`` (normalised),
        ``timestamps`` (s, default i / fps), other per-frame ``columns``; returns the episode index.
        ``stage``: only stage it (:meth:`stage_episode`; returns None), for :meth:`save_staged` to write."""
        steering = np.asarray(steering, dtype=np.float64)
        columns = {k: np.asarray(v, dtype=np.float64) for k, v in (columns or {}).items()}
        n = len(steering)
        if timestamps is not None and len(timestamps) != n:
            raise ValueError(f"{self.root}: {len(timestamps)} timestamps for {n} steering values")
        written = 0
        try:
            for i, frame in enumerate(frames):
                if i >= n:
                    raise ValueError(f"{self.root}: more frames than the {n} steering value(s)")
                values = {layout.STEERING_LABEL: steering[i], **{k: v[i] for k, v in columns.items()}}
                self.add_frame(frame, None if timestamps is None else float(timestamps[i]), **values)
                written += 1
                if progress is not None:
                    progress.update(1)
            if written != n:
                raise ValueError(f"{self.root}: {written} frame(s) for {n} steering value(s)")
        except BaseException:
            self.discard_episode()
            raise
        if stage:
            self.stage_episode(episode_meta)
            return None
        return self.save_episode(episode_meta)


def _read_length_and_stats(path: Path) -> dict[str, Any]:
    row = pd.read_parquet(path).iloc[0]
    per_feature: dict[str, dict[str, list[float]]] = {}
    for col, value in row.items():
        if isinstance(col, str) and col.startswith("stats/"):
            feature, stat = col[len("stats/") :].rsplit("/", 1)
            per_feature.setdefault(feature, {})[stat] = [math.nan if x is None else float(x) for x in np.ravel(value)]
    return {"length": int(row["length"]), "stats": per_feature}
