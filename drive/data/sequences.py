"""Training sequences: a frame cache, a train/validation split by episode, and windows of T frames.

* :class:`FrameCache` decodes every complete episode's video once into one memory-mapped uint8 file,
  ``DIR/cache/frames.u8`` (shape (N, H, W, 3), RGB, episodes back to back), described by
  ``DIR/cache/frames.json`` (shape, and for each episode its index, length, offset and the size and
  modification time of its video and table). The cache is rebuilt when that list changes (an episode
  added, removed or rewritten); otherwise later epochs and later runs never decode video again.
* :class:`MultiFrameCache` serves several datasets' caches (one :class:`FrameCache` each, in its own folder)
  as one: their episodes get ids ``base + episode`` (each dataset's ``base`` is past the previous one's
  episodes), their rows follow each other, and the split and the windows see one dataset. They must share
  frame size, fps and ``max_steer_rad`` (:func:`drive.data.reader.check_same_format`).
  :func:`open_frame_cache` opens one dataset's cache or several.
* :func:`split_segments` splits by episode, deterministically from a seed (``--split-seed``, never the
  training seed) and the dataset, stratified: every lane position and every light bin of the drawn
  worlds (:func:`episode_strata`) that two or more episodes share has episodes on both sides. A dataset
  without drawn worlds (imported video) is split by the seeded draw alone. A dataset with a single
  episode is split by time instead: its first ``1 - val_fraction`` of frames train, the rest validate.
  Episodes whose meta row has ``split == "train"`` (DAgger's on-policy episodes) always train and take
  no part in the draw, so adding them leaves the validation set unchanged.
* :class:`SequenceDataset` serves windows of ``seq_len`` frames (16 by default, as in the NCP paper)
  that never cross an episode (or segment) boundary, as (frames uint8 (T, H, W, 3), steering (T,),
  dt_s (T,)); :meth:`SequenceDataset.get_batch` gathers a whole batch with one numpy fancy-index of
  the memory map.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from drive.data import layout
from drive.data.reader import DatasetReader, check_same_format
from drive.data.recorder import episode_bins
from drive.errors import UserError
from drive.io import atomic_path, atomic_write_json

CACHE_VERSION = 1
FRAMES_FILE = "frames.u8"
META_FILE = "frames.json"


def _episode_stamp(root: Path, episode: int, length: int, offset: int) -> dict:
    video = layout.video_path(root, episode)
    table = layout.data_path(root, episode)
    vs, ts = video.stat(), table.stat()
    return {
        "index": episode,
        "length": length,
        "offset": offset,
        "video_bytes": vs.st_size,
        "video_mtime_ns": vs.st_mtime_ns,
        "table_bytes": ts.st_size,
        "table_mtime_ns": ts.st_mtime_ns,
    }


class _SplitByEpisode:
    """What both caches share: the split of their ``lengths``, ``train_only`` and ``strata``."""

    lengths: dict[int, int]
    train_only: list[int]
    strata: dict[int, tuple[str, ...]]

    def split(self, val_fraction: float, seed: int) -> tuple[list[Segment], list[Segment]]:
        """(train, validation) segments of the cached episodes: :func:`split_segments` with the cache's
        ``train_only`` episodes and ``strata``; ``seed`` is the split seed (``TrainConfig.split_seed``)."""
        return split_segments(self.lengths, val_fraction, seed, self.train_only, self.strata)


class FrameCache(_SplitByEpisode):
    """All frames of a dataset's complete episodes in one memory-mapped uint8 array, plus their labels.

    Attributes: ``frames`` (N, H, W, 3) uint8 memmap (RGB); ``steering`` (N,) float32 normalised label;
    ``timestamps_s`` (N,) float32; ``dt_s`` (N,) float32 time since the previous frame of the same
    episode (the nominal frame period ``1/fps`` for an episode's first frame); ``episodes``; ``offsets``
    and ``lengths`` (episode -> first row, number of rows); ``train_only`` (episodes that always train);
    ``strata`` (episode -> :func:`episode_strata`); ``built`` (whether this call decoded video).
    """

    def __init__(
        self,
        root: str | Path,
        cache_dir: str | Path | None = None,
        build: bool = True,
        progress: bool = True,
        episodes: list[int] | None = None,
    ):
        self.root = Path(root)
        self.reader = DatasetReader(self.root)
        self.info = self.reader.info
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / "cache"
        # ``episodes``: a fixed list, e.g. from drive.data.reader.snapshot (None: all complete episodes now)
        self.episodes = list(self.reader.episodes) if episodes is None else [int(e) for e in episodes]
        unknown = sorted(set(self.episodes) - set(self.reader.episodes))
        if unknown:
            raise UserError(f"{self.root}: episode {unknown[0]} is not a complete episode of the dataset")
        if not self.episodes:
            raise UserError(f"{self.root}: dataset has no complete episode")
        table = self.reader.frames_table(self.episodes)
        self.lengths = {e: self.reader.episode_length(e) for e in self.episodes}
        offsets, o = {}, 0
        for e in self.episodes:
            offsets[e] = o
            o += self.lengths[e]
        self.offsets = offsets
        self.num_frames = o
        self.shape = (o, self.info.image_height, self.info.image_width, 3)
        self.steering = table[layout.STEERING_LABEL].to_numpy(dtype=np.float32)
        self.timestamps_s = table[layout.TIMESTAMP].to_numpy(dtype=np.float32)
        self.dt_s = self._dt(table)
        metas = {e: self.reader.episode_meta(e) for e in self.episodes}
        self.train_only = [e for e in self.episodes if metas[e].get("split") == "train"]
        self.strata = {e: episode_strata(metas[e]) for e in self.episodes}
        self.built = False
        expected = self._describe()
        if not self._valid(expected):
            if not build:
                raise FileNotFoundError(f"{self.cache_dir / META_FILE}: frame cache missing or stale")
            self._build(expected, progress)
            self.built = True
        self.frames = np.memmap(self.cache_dir / FRAMES_FILE, dtype=np.uint8, mode="r", shape=self.shape)

    def _dt(self, table) -> np.ndarray:
        dt = np.empty(self.num_frames, dtype=np.float32)
        nominal = 1.0 / self.info.fps
        for e in self.episodes:
            o, n = self.offsets[e], self.lengths[e]
            t = self.timestamps_s[o : o + n].astype(np.float64)
            d = np.diff(t)
            if len(d) and d.min() <= 0:
                k = int(np.argmin(d)) + 1
                raise UserError(
                    f"{layout.data_path(self.root, e)}: column {layout.TIMESTAMP!r} does not increase "
                    f"at frame {k} ({t[k - 1]} then {t[k]})"
                )
            dt[o] = nominal
            dt[o + 1 : o + n] = d
        return dt

    def _describe(self) -> dict:
        return {
            "version": CACHE_VERSION,
            "file": FRAMES_FILE,
            "dtype": "uint8",
            "shape": list(self.shape),
            "episodes": [_episode_stamp(self.root, e, self.lengths[e], self.offsets[e]) for e in self.episodes],
        }

    def _valid(self, expected: dict) -> bool:
        meta, data = self.cache_dir / META_FILE, self.cache_dir / FRAMES_FILE
        if not (meta.is_file() and data.is_file()):
            return False
        try:
            found = json.loads(meta.read_text())
        except json.JSONDecodeError:
            return False
        return found == expected and data.stat().st_size == math.prod(self.shape)

    def _build(self, description: dict, progress: bool) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.cache_dir / FRAMES_FILE) as tmp:
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=self.shape)
            with tqdm(total=self.num_frames, desc="cache frames", unit="frame", disable=not progress) as bar:
                for e in self.episodes:
                    o, n = self.offsets[e], self.lengths[e]
                    out[o : o + n] = self.reader.read_frames(e)
                    bar.update(n)
            out.flush()
            del out
        atomic_write_json(self.cache_dir / META_FILE, description)  # written last: marks the cache complete


class ConcatFrames:
    """Several (N_k, H, W, 3) arrays (the datasets' memory maps) read as one, rows back to back: indexed by
    a slice or an integer array of any shape (gathered from each part with one fancy-index), as the
    training reads :attr:`FrameCache.frames`."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.shape = (int(self.starts[-1]), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rows = np.arange(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        flat = rows.reshape(-1)
        if len(flat) and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        part = np.searchsorted(self.starts, flat, side="right") - 1
        out = np.empty((len(flat), *self.shape[1:]), dtype=self.dtype)
        for k in np.unique(part):
            mine = part == k
            out[mine] = self.parts[k][flat[mine] - self.starts[k]]
        return out.reshape(*rows.shape, *self.shape[1:])


class MultiFrameCache(_SplitByEpisode):
    """Several datasets' :class:`FrameCache` s as one, with the attributes the training reads of a
    :class:`FrameCache` (``info`` is the first dataset's: frame size, fps and ``max_steer_rad`` are shared).

    Dataset ``k``'s episode ``e`` is episode ``bases[k] + e`` here (:meth:`locate` goes back), its rows follow
    dataset ``k - 1``'s; ``rows[k]`` is its (first, stop) row range.
    """

    def __init__(self, caches: Sequence[FrameCache]):
        self.caches = list(caches)
        if not self.caches:
            raise UserError("no dataset to train on")
        check_same_format([(c.root, c.info) for c in self.caches])
        self.info = self.caches[0].info
        self.bases: list[int] = []
        self.rows: list[tuple[int, int]] = []
        self.episodes, self.lengths, self.offsets, self.strata, self.train_only = [], {}, {}, {}, []
        base = row = 0
        for c in self.caches:
            self.bases.append(base)
            self.rows.append((row, row + c.num_frames))
            for e in c.episodes:
                self.episodes.append(base + e)
                self.lengths[base + e] = c.lengths[e]
                self.offsets[base + e] = row + c.offsets[e]
                self.strata[base + e] = c.strata[e]
            self.train_only += [base + e for e in c.train_only]
            base += max(c.episodes) + 1
            row += c.num_frames
        self.num_frames = row
        self.shape = (row, *self.caches[0].shape[1:])
        self.steering, self.timestamps_s, self.dt_s = (
            np.concatenate([getattr(c, name) for c in self.caches]) for name in ("steering", "timestamps_s", "dt_s")
        )
        self.frames = ConcatFrames([c.frames for c in self.caches])
        self.built = any(c.built for c in self.caches)

    def locate(self, episode: int) -> tuple[int, int]:
        """(dataset index, its own episode index) of episode ``episode`` of the whole."""
        k = bisect.bisect_right(self.bases, episode) - 1
        return k, episode - self.bases[k]


def open_frame_cache(
    roots: Sequence[str | os.PathLike],
    episodes: Sequence[list[int] | None],
    cache_dir: str | os.PathLike | None = None,
    build: bool = True,
    progress: bool = True,
) -> FrameCache | MultiFrameCache:
    """The frame cache of one dataset (a :class:`FrameCache`, in ``cache_dir`` or ``ROOT/cache``) or of several
    (a :class:`MultiFrameCache`; each dataset's cache in ``ROOT/cache``, or ``cache_dir/K-NAME`` with K its
    place from 1 and NAME its folder name); ``episodes`` lists each dataset's episodes (None: all complete)."""
    if len(roots) == 1:
        return FrameCache(roots[0], cache_dir, build=build, progress=progress, episodes=episodes[0])
    caches = [
        FrameCache(
            root,
            None if cache_dir is None else Path(cache_dir) / f"{k}-{Path(root).resolve().name}",
            build=build,
            progress=progress,
            episodes=eps,
        )
        for k, (root, eps) in enumerate(zip(roots, episodes), start=1)
    ]
    return MultiFrameCache(caches)


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of consecutive frames of one episode: frames ``start`` .. ``stop - 1``."""

    episode: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def episode_strata(meta: dict) -> tuple[str, ...]:
    """The strata of an episode-table row that the split balances: ``lane_position=<name>`` and
    ``light=<bin>`` of its drawn world (:func:`drive.data.recorder.episode_bins`); ``()`` without one."""
    bins = episode_bins(meta)
    return tuple(f"{k}={bins[k]}" for k in ("lane_position", "light_bin") if bins[k] is not None)


def split_segments(
    lengths: dict[int, int], val_fraction: float, seed: int, train_only=(), strata: dict | None = None
) -> tuple[list[Segment], list[Segment]]:
    """Split episodes into (train, validation) segments.

    Only episodes not in ``train_only`` can validate. Two or more of them: ``round(val_fraction * n)``
    validation episodes, at least one and at most n - 1 when ``val_fraction > 0``, picked in the order of
    a permutation seeded by ``seed``. ``strata`` (episode -> labels, :func:`episode_strata`) stratifies the
    pick: every label carried by two or more eligible episodes ends with episodes on both sides (first
    the validation set takes, in permutation order, an episode of each label it lacks, preferring one that
    brings the most missing labels, never the last training episode of a label; then it is filled up in
    permutation order under the same rule; it grows past ``round(val_fraction * n)`` only when that is too
    few to hold every label). Without labels (``strata`` None or empty for every eligible episode, e.g.
    imported video) the pick is the first episodes of the permutation. Exactly one eligible episode: split
    by time, its last ``ceil(val_fraction * length)`` frames validate. ``val_fraction == 0``: everything trains.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    episodes = sorted(lengths)
    if not episodes:
        raise UserError("no episode to split")
    whole = {e: Segment(e, 0, lengths[e]) for e in episodes}
    forced = set(train_only)
    eligible = [e for e in episodes if e not in forced]
    if val_fraction == 0.0 or not eligible:
        return [whole[e] for e in episodes], []
    if len(eligible) == 1:
        e = eligible[0]
        n_val = math.ceil(val_fraction * lengths[e])
        if n_val >= lengths[e]:
            raise UserError(f"episode {e} has {lengths[e]} frame(s): too short to split by time")
        cut = lengths[e] - n_val
        train = [Segment(e, 0, cut) if x == e else whole[x] for x in episodes]
        return train, [Segment(e, cut, lengths[e])]
    n_val = min(max(1, round(val_fraction * len(eligible))), len(eligible) - 1)
    order = np.random.default_rng(seed).permutation(len(eligible))
    labels = {e: tuple((strata or {}).get(e) or ()) for e in eligible}
    if any(labels.values()):
        val = _stratified_pick([eligible[i] for i in order], labels, n_val)
    else:
        val = sorted(eligible[i] for i in order[:n_val])
    return [whole[e] for e in episodes if e not in val], [whole[e] for e in val]


def _stratified_pick(ranked: list[int], labels: dict[int, tuple], n_val: int) -> list[int]:
    """Validation episodes from ``ranked`` (the seeded order) so that every label held by two or more
    episodes is on both sides; at least ``n_val`` of them, at most ``len(ranked) - 1``."""
    left = {}  # label -> episodes of it still training
    for e in ranked:
        for lab in labels[e]:
            left[lab] = left.get(lab, 0) + 1
    required = {lab for lab, n in left.items() if n >= 2}  # labels held by two or more: on both sides
    missing = set(required)  # the labels the validation set still lacks
    val: list[int] = []

    def can_take(e: int) -> bool:  # taking e leaves every required label of it a training episode
        return e not in val and all(left[lab] >= 2 for lab in labels[e] if lab in required)

    def take(e: int) -> None:
        val.append(e)
        for lab in labels[e]:
            left[lab] -= 1
            missing.discard(lab)

    while missing and len(val) < len(ranked) - 1:
        gain = {e: len(missing.intersection(labels[e])) for e in ranked if can_take(e)}
        best = max(gain.values(), default=0)
        if best == 0:
            break  # no episode left that can bring a missing label without emptying another's training side
        take(next(e for e in ranked if gain.get(e) == best))
    for e in ranked:
        if len(val) >= n_val:
            break
        if can_take(e):
            take(e)
    for e in ranked:  # only if the rule above left too few: fill up in order, as the unstratified draw
        if len(val) >= n_val:
            break
        if e not in val:
            take(e)
    return sorted(val)


def window_starts(segments: list[Segment], offsets: dict[int, int], seq_len: int, stride: int) -> np.ndarray:
    """Global start rows (into the cache) of the windows of ``seq_len`` frames inside each segment.

    Windows start every ``stride`` frames; when the last one stops short of the segment's end, one more
    window ending exactly at the end is added, so every frame of a segment at least ``seq_len`` long is
    covered. Segments shorter than ``seq_len`` give no window.
    """
    if seq_len < 1 or stride < 1:
        raise UserError(f"sequence length and stride must be >= 1, got {seq_len} and {stride}")
    out = []
    for s in segments:
        if len(s) < seq_len:
            continue
        starts = list(range(s.start, s.stop - seq_len + 1, stride))
        if starts[-1] + seq_len < s.stop:
            starts.append(s.stop - seq_len)
        out.append(np.asarray(starts, dtype=np.int64) + offsets[s.episode])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of ``seq_len`` consecutive frames inside the given segments of a :class:`FrameCache`.

    ``dataset[i]`` is (frames uint8 (T, H, W, 3), steering float32 (T,), dt_s float32 (T,)), where dt_s
    is the time since the previous frame, s. :meth:`get_batch` does the same for many windows at once.
    """

    def __init__(self, cache: FrameCache, segments: list[Segment], seq_len: int = 16, stride: int | None = None):
        self.cache = cache
        self.segments = list(segments)
        self.seq_len = int(seq_len)
        self.stride = int(stride or seq_len)
        self.starts = window_starts(self.segments, cache.offsets, self.seq_len, self.stride)
        self._steps = np.arange(self.seq_len, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self, indices) -> np.ndarray:
        """Cache rows (B, T) of the windows ``indices``."""
        return self.starts[np.asarray(indices, dtype=np.int64)][:, None] + self._steps

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frames uint8 (B, T, H, W, 3), steering (B, T), dt_s (B, T)) for the windows ``indices``."""
        rows = self.rows(indices)
        c = self.cache
        return (
            torch.from_numpy(np.ascontiguousarray(c.frames[rows])),
            torch.from_numpy(c.steering[rows]),
            torch.from_numpy(c.dt_s[rows]),
        )

    def __getitem__(self, i: int):
        frames, steering, dt = self.get_batch([i])
        return frames[0], steering[0], dt[0]
