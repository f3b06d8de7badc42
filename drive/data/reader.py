"""Read a dataset in the layout of :mod:`drive.data.layout`: its info, its per-frame table, its video frames.

Only complete episodes (those whose ``meta/episodes`` file exists) are read. Frames come back as RGB
uint8 arrays of shape (H, W, 3), decoded by PyAV (:mod:`drive.video_io`): H.264 and the mp4v videos
of datasets written before it alike. Every error names the file it is about.

Checked on opening: ``meta/info.json`` (:meth:`drive.data.layout.DatasetInfo.from_dict`: fps, sizes,
features) and its totals against the episode table (``total_episodes`` = the complete episodes,
``total_frames`` = the sum of their ``length``; a mismatch is looked at again under the folder's lock,
since a recording may be between its two writes). Per episode: the table's rows match the episode's
``length``, and the video has exactly as many frames as the table has rows (more is an error too: the
frames and labels would no longer line up).

:func:`snapshot` takes the list of episodes and a fingerprint of their files at one instant, under the
folder's lock, so that what is trained on is what is hashed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.errors import UserError
from drive.io import hash_file, output_lock
from drive.video_io import decode_video, iter_video, video_fps

__all__ = ["DatasetReader", "check_same_format", "decode_video", "iter_video", "snapshot", "video_fps"]

LOCK_TIMEOUT_S = 600.0
"""How long opening a dataset waits for a writer's save to finish when the totals look stale, s."""


class DatasetReader:
    """A dataset folder: ``info`` (:class:`DatasetInfo`), ``episodes`` (complete episode indices),
    per-episode tables and frames.

    >>> reader = DatasetReader("data/train")            # doctest: +SKIP
    >>> table = reader.frames_table()                   # all complete episodes, one row per frame
    >>> frames = reader.read_frames(reader.episodes[0])  # (N, H, W, 3) uint8 RGB
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: dataset folder not found")
        self._tables: dict[int, pd.DataFrame] = {}
        if not self._read_meta():
            if not os.access(self.root, os.W_OK):  # nobody can be writing here: the totals are just wrong
                self._totals_error()
            with output_lock(self.root, LOCK_TIMEOUT_S):  # a writer may be between its meta and info writes
                if not self._read_meta():
                    self._totals_error()

    def _read_meta(self) -> bool:
        """Read info.json, the complete episodes and their lengths; whether the totals match them."""
        self.info: DatasetInfo = layout.read_info(self.root)
        self.episodes: list[int] = layout.complete_episodes(self.root)
        self._lengths = {e: _meta_length(self.root, e) for e in self.episodes}
        return (self.info.total_episodes, self.info.total_frames) == (len(self.episodes), sum(self._lengths.values()))

    def _totals_error(self) -> None:
        path = layout.info_path(self.root)
        n, frames = len(self.episodes), sum(self._lengths.values())
        if self.info.total_episodes != n:
            raise UserError(
                f"{path}: field 'total_episodes' is {self.info.total_episodes}, but the dataset has {n} "
                f"complete episode(s) (meta/episodes)"
            )
        raise UserError(
            f"{path}: field 'total_frames' is {self.info.total_frames}, but its {n} complete episode(s) hold "
            f"{frames} frame(s) (their 'length' in meta/episodes)"
        )

    def __repr__(self) -> str:
        return f"DatasetReader({str(self.root)!r}, episodes={len(self.episodes)}, fps={self.info.fps})"

    def episode_table(self, episode: int) -> pd.DataFrame:
        """The per-frame table of one episode, sorted by frame index and checked.

        Checks: the file exists, the required columns are there, frame indices run 0..N-1, the steering
        label and timestamps are finite.
        """
        if episode in self._tables:
            return self._tables[episode]
        path = layout.data_path(self.root, episode)
        if not path.is_file():
            raise UserError(f"{path}: per-frame table of episode {episode} not found")
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise UserError(f"{path}: unreadable parquet file: {exc}") from exc
        missing = [c for c in layout.REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}")
        table = table.sort_values(layout.FRAME_INDEX, kind="stable").reset_index(drop=True)
        if len(table) == 0:
            raise UserError(f"{path}: episode {episode} has no rows")
        if (table[layout.EPISODE_INDEX] != episode).any():
            bad = table.loc[table[layout.EPISODE_INDEX] != episode, layout.EPISODE_INDEX].iloc[0]
            raise UserError(f"{path}: column {layout.EPISODE_INDEX!r} holds {bad}, expected {episode}")
        frame_index = table[layout.FRAME_INDEX].to_numpy()
        if not np.array_equal(frame_index, np.arange(len(table))):
            first = int(np.nonzero(frame_index != np.arange(len(table)))[0][0])
            raise UserError(
                f"{path}: column {layout.FRAME_INDEX!r} must run 0..{len(table) - 1}; "
                f"row {first} holds {frame_index[first]}"
            )
        for column in (layout.STEERING_LABEL, layout.TIMESTAMP):
            values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.nonzero(~np.isfinite(values))[0]
            if len(bad):
                row = int(bad[0])
                raise UserError(
                    f"{path}: column {column!r} is not a finite number at frame {row} "
                    f"(value {table[column].iloc[row]!r}); {len(bad)} bad row(s)"
                )
        expected = self._lengths.get(episode)
        if expected is not None and len(table) != expected:
            raise UserError(
                f"{path}: {len(table)} row(s), but {layout.episode_meta_path(self.root, episode)} gives "
                f"episode {episode} a length of {expected}"
            )
        self._tables[episode] = table
        return table

    def episode_length(self, episode: int) -> int:
        """Number of frames (table rows) of an episode."""
        return len(self.episode_table(episode))

    def episode_meta(self, episode: int) -> dict[str, Any]:
        """The row of ``meta/episodes/…/file-NNN.parquet`` of an episode, as a dict (columns vary by source),
        without the ``stats/…`` columns (as LeRobot loads it). World values are under ``world.<key>``."""
        path = layout.episode_meta_path(self.root, episode)
        try:
            rows = pd.read_parquet(path).to_dict("records")
        except FileNotFoundError:
            raise UserError(f"{path}: episode {episode} has no meta file") from None
        except Exception as exc:
            raise UserError(f"{path}: unreadable parquet file: {exc}") from exc
        if len(rows) != 1:
            raise UserError(f"{path}: expected one row, found {len(rows)}")
        return {k: v for k, v in rows[0].items() if not str(k).startswith("stats/")}

    def world(self, episode: int) -> dict[str, Any]:
        """The randomized world's drawn values of an episode (``info["world"]`` at reset), ``{}`` if none."""
        prefix = layout.WORLD_PREFIX
        return {k[len(prefix) :]: v for k, v in self.episode_meta(episode).items() if k.startswith(prefix)}

    def episodes_table(self) -> pd.DataFrame:
        """One row per complete episode: :meth:`episode_meta` of each, as a DataFrame."""
        return pd.DataFrame([self.episode_meta(e) for e in self.episodes])

    def frames_table(self, episodes: list[int] | None = None) -> pd.DataFrame:
        """The per-frame tables of the given (default: all complete) episodes, concatenated in order."""
        episodes = self.episodes if episodes is None else episodes
        if not episodes:
            raise UserError(f"{self.root}: dataset has no complete episode")
        return pd.concat([self.episode_table(e) for e in episodes], ignore_index=True)

    def video_path(self, episode: int) -> Path:
        return layout.video_path(self.root, episode)

    def read_frames(self, episode: int) -> np.ndarray:
        """All frames of an episode, RGB uint8 (N, H, W, 3), N = the number of table rows.

        A video with fewer or more frames than its table (frames and labels would not line up), or of
        another size than ``meta/info.json`` says, is an error naming the video.
        """
        n = self.episode_length(episode)
        path = self.video_path(episode)
        frames = decode_video(path, max_frames=n + 1)  # one more than needed: tells a longer video
        if len(frames) > n:
            raise UserError(
                f"{path}: video has more frames than the {n} row(s) of its table "
                f"{layout.data_path(self.root, episode)}: frames and labels would not line up"
            )
        if len(frames) < n:
            raise UserError(
                f"{path}: video has {len(frames)} frame(s) but its table "
                f"{layout.data_path(self.root, episode)} has {n} row(s)"
            )
        expected = (self.info.image_height, self.info.image_width)
        if frames.shape[1:3] != expected:
            raise UserError(
                f"{path}: frames are {frames.shape[1]}x{frames.shape[2]} (HxW) but "
                f"{layout.info_path(self.root)} says {expected[0]}x{expected[1]}"
            )
        return frames


def _meta_length(root: Path, episode: int) -> int:
    path = layout.episode_meta_path(root, episode)
    try:
        lengths = pd.read_parquet(path, columns=["length"])["length"].tolist()
    except Exception as exc:  # pyarrow raises several types for a broken file or a missing column
        raise UserError(f"{path}: cannot read the episode's 'length': {' '.join(str(exc).split())}") from None
    if len(lengths) != 1 or not isinstance(lengths[0], int) or lengths[0] < 1:
        raise UserError(f"{path}: field 'length' must be one positive integer, got {lengths!r}")
    return lengths[0]


def episode_files(root: str | os.PathLike, episode: int) -> list[Path]:
    """The files an episode is read from: its table, its video and its meta/episodes row."""
    return [layout.data_path(root, episode), layout.video_path(root, episode), layout.episode_meta_path(root, episode)]


SHARED_FORMAT = ("image_height", "image_width", "fps", "max_steer_rad")
"""The :class:`DatasetInfo` fields that datasets trained together must share."""


def check_same_format(infos: Sequence[tuple[str | os.PathLike, DatasetInfo]]) -> None:
    """Refuse, in one line naming the dataset, the field and both values, a dataset whose frame size, fps or
    ``max_steer_rad`` (:data:`SHARED_FORMAT`) differs from the first one's; ``infos`` is (folder, info) pairs."""
    (first, ref), *rest = infos
    for root, info in rest:
        for field in SHARED_FORMAT:
            a, b = getattr(info, field), getattr(ref, field)
            if abs(a - b) > 1e-9 * max(1.0, abs(b)):
                raise UserError(
                    f"--data {root}: {field} {a!r} differs from {b!r} of --data {first}; datasets trained "
                    f"together must share {', '.join(SHARED_FORMAT)}"
                )


def snapshot(root: str | os.PathLike, lock_timeout_s: float = LOCK_TIMEOUT_S) -> tuple[list[int], dict[str, Any]]:
    """The complete episodes of a dataset and a fingerprint of their files, both taken under the folder's
    lock (:func:`drive.io.output_lock`), so a recording appending meanwhile changes neither.

    Returns ``(episodes, {"name": folder name, "sha256": hex digest, "files": number of files hashed})``.
    The digest covers ``meta/info.json``, ``meta/tasks.parquet``, ``meta/stats.json`` (those present) and
    each listed episode's table, video and meta row, by relative path, size and bytes: exactly what
    training on those episodes reads. Train with ``FrameCache(root, episodes=episodes)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    with output_lock(root, lock_timeout_s):
        layout.read_info(root)
        episodes = layout.complete_episodes(root)
        files = [p for p in (layout.info_path(root), layout.tasks_path(root), layout.stats_path(root)) if p.is_file()]
        for e in episodes:
            files.extend(episode_files(root, e))
        digest = hashlib.sha256()
        for p in sorted(files):  # the order of drive.train.loop.dataset_fingerprint: same files, same digest
            if not p.is_file():
                raise UserError(f"{p}: file of a complete episode not found")
            digest.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\0".encode())
            hash_file(digest, p)
    return episodes, {"name": root.resolve().name, "sha256": digest.hexdigest(), "files": len(files)}
