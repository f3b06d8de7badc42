"""``drive record``: drive the expert in simulation and write camera video + steering as a dataset.

Writes the layout of ``drive.data.layout`` (LeRobot v3 style), episode by episode: the frame
table (data/…parquet), the video (videos/…mp4, mp4v, BGR at the OpenCV boundary), then the
episode's meta/episodes file LAST, then meta/info.json; every file is written to a temporary
name and renamed. An interrupted recording leaves every finished episode readable; recording again
into the same folder appends (episode indices continue; an unfinished episode is overwritten).

Row t holds frame t, the expert's clean steering for the state of frame t (the label), and the
steering applied after frame t: the label plus DART noise (``--noise-injection`` = std of an
Ornstein–Uhlenbeck process in normalised steering units, correlation time 0.5 s), clipped to
[-1, 1]. Episode e drives track seed ``permutation(split seeds)[e mod n]`` (the permutation drawn
from ``--seed``), so every episode is on a different track of the scenario's split.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.io import atomic_path, atomic_write_json

SOURCE = "drive record"
TASK = "keep the lane"
DART_CORRELATION_S = 0.5
"""Correlation time of the injected steering noise, s."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="train",
                        help="scenario YAML file, or the name of a shipped one (default: train)")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes to record (default: 10)")
    parser.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
    parser.add_argument("--seed", type=int, default=0, help="seed of track choice, start poses and noise (default: 0)")
    parser.add_argument("--noise-injection", type=float, default=0.0, metavar="LEVEL",
                        help="DART: std of the noise added to the applied steering, normalised units (default: 0)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="episode length in seconds (default: the scenario's duration_s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = record(args.scenario, args.episodes, args.out, seed=args.seed, noise_injection=args.noise_injection,
                 duration_s=args.duration_s, progress=not args.no_progress)
    info = layout.read_info(out)
    print(f"{out}: {info.total_episodes} episodes, {info.total_frames} frames at {info.fps:g} Hz")
    return 0


def _check_args(episodes: Any, seed: Any, noise_injection: Any, duration_s: Any) -> None:
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"--episodes: must be an integer >= 1, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"--seed: must be an integer >= 0, got {seed!r}")
    if not isinstance(noise_injection, (int, float)) or not math.isfinite(noise_injection) or not 0 <= noise_injection <= 1:
        raise ValueError(f"--noise-injection: must be a number in [0, 1], got {noise_injection!r}")
    if duration_s is not None and (not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0):
        raise ValueError(f"--duration-s: must be a positive number of seconds, got {duration_s!r}")


def _first_difference(old: Any, new: Any, key: str) -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _first_difference(old.get(k), new.get(k), f"{key}.{k}")
            if d:
                return d
        return None
    return None if old == new else (key, old, new)


def _open_dataset(root: Path, info: DatasetInfo) -> tuple[int, int]:
    """Check an existing dataset against ``info``; (next episode index, next global frame index)."""
    path = layout.info_path(root)
    if not path.exists():
        if root.exists() and any(root.iterdir()):
            raise ValueError(f"{root}: folder exists, is not empty and holds no meta/info.json: refusing to record into it")
        atomic_write_json(path, info.to_dict())
        return 0, 0
    old = layout.read_info(root)
    for name in ("source", "fps", "image_height", "image_width", "max_steer_rad"):
        a, b = getattr(old, name), getattr(info, name)
        if a != b:
            raise ValueError(f"{path}: field {name}: the dataset has {a!r}, this recording {b!r}; record into another folder")
    old_sc = dict(old.scenario or {})
    new_sc = dict(info.scenario or {})
    old_sc.pop("duration_s", None)  # the episode length may differ between recordings
    new_sc.pop("duration_s", None)
    diff = _first_difference(old_sc, new_sc, "scenario")
    if diff:
        raise ValueError(f"{path}: field {diff[0]}: the dataset has {diff[1]!r}, this recording {diff[2]!r}; record into another folder")
    done = layout.complete_episodes(root)
    frames = sum(_episode_length(root, e) for e in done)
    return (max(done) + 1 if done else 0), frames


def _episode_length(root: Path, episode: int) -> int:
    return int(pd.read_parquet(layout.episode_meta_path(root, episode), columns=["length"])["length"].iloc[0])


def _update_info(root: Path, info: DatasetInfo) -> None:
    done = layout.complete_episodes(root)
    info.total_episodes = len(done)
    info.total_frames = sum(_episode_length(root, e) for e in done)
    atomic_write_json(layout.info_path(root), info.to_dict())


def episode_track_seed(seeds: list[int] | None, seed: int, episode_index: int) -> int | None:
    """The track seed of an episode: a permutation of the split's seeds drawn from ``seed``."""
    if seeds is None:
        return None
    perm = np.random.default_rng([seed, 0x7EC]).permutation(np.asarray(seeds))
    return int(perm[episode_index % len(perm)])


def episode_reset_seed(seed: int, episode_index: int) -> int:
    """The env reset seed of an episode (start pose, lane, traffic)."""
    return int(np.random.SeedSequence([seed, episode_index]).generate_state(1)[0])


def record(scenario: Any, episodes: int, out: str | os.PathLike, seed: int = 0, noise_injection: float = 0.0,
           duration_s: float | None = None, progress: bool = True) -> Path:
    """Record ``episodes`` expert episodes of ``scenario`` (a Scenario, path or shipped name) into ``out``."""
    from drive.world.env import DriveEnv
    from drive.world.expert import SteeringNoise
    from drive.world.scenario import as_scenario

    _check_args(episodes, seed, noise_injection, duration_s)
    base = as_scenario(scenario)
    sc = dataclasses.replace(base, duration_s=float(duration_s)) if duration_s is not None else base
    if sc.track.kind == "procedural" and sc.track.seeds is None and sc.track.split == "test":
        warnings.warn(f"scenario {sc.name!r} drives the test-split tracks: do not train on this recording", stacklevel=2)
    root = Path(out)
    info = DatasetInfo(fps=float(sc.control_hz), image_height=sc.camera.height, image_width=sc.camera.width,
                       max_steer_rad=float(sc.max_steer_rad), source=SOURCE, scenario=sc.to_dict())
    first_episode, index = _open_dataset(root, info)
    env = DriveEnv(sc, off_road="terminate")
    seeds = sc.track.seed_list()
    steps = int(round(sc.duration_s * sc.control_hz))
    bar = tqdm(total=episodes * steps, unit="frame", desc="record", disable=not progress)
    try:
        for k in range(episodes):
            e = first_episode + k
            track_seed = episode_track_seed(seeds, seed, e)
            reset_seed = episode_reset_seed(seed, e)
            noise = SteeringNoise(noise_injection, 1.0 / sc.control_hz, DART_CORRELATION_S,
                                  rng=np.random.default_rng([seed, e, 0xDA27]))
            n, terminated, last_info = _record_episode(root, e, index, env, track_seed, reset_seed, noise, bar)
            meta = {
                "episode_index": [e], "length": [n], "source": [SOURCE], "tasks": [[TASK]],
                "dataset_from_index": [index], "dataset_to_index": [index + n],
                "data/chunk_index": [layout.chunk_of(e)], "data/file_index": [e],
                f"videos/{layout.VIDEO_KEY}/chunk_index": [layout.chunk_of(e)],
                f"videos/{layout.VIDEO_KEY}/file_index": [e],
                f"videos/{layout.VIDEO_KEY}/from_timestamp": [0.0],
                f"videos/{layout.VIDEO_KEY}/to_timestamp": [n / sc.control_hz],
                "scenario": [sc.name], "track_kind": [sc.track.kind],
                "track_seed": pd.array([track_seed], dtype="Int64"), "reset_seed": [reset_seed], "seed": [seed],
                "noise_injection": [float(noise_injection)], "terminated": [bool(terminated)],
                "distance_m": [float(last_info["distance_m"])], "duration_s": [n / sc.control_hz],
            }
            with atomic_path(layout.episode_meta_path(root, e)) as tmp:  # written last: marks the episode complete
                pd.DataFrame(meta).to_parquet(tmp, index=False)
            index += n
            _update_info(root, info)
    finally:
        bar.close()
        env.close()
    return root


def _record_episode(root: Path, e: int, first_index: int, env, track_seed, reset_seed: int, noise, bar) -> tuple[int, bool, dict]:
    sc = env.scenario
    dt = 1.0 / sc.control_hz
    options = {"track_seed": track_seed} if track_seed is not None else None
    obs, info = env.reset(seed=reset_seed, options=options)
    rows: dict[str, list] = {c: [] for c in layout.FRAME_COLUMNS}
    terminated = False
    with atomic_path(layout.video_path(root, e)) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(sc.control_hz),
                                 (sc.camera.width, sc.camera.height))
        if not writer.isOpened():
            raise ValueError(f"{layout.video_path(root, e)}: OpenCV cannot write mp4v video here")
        try:
            t = 0
            while True:
                label = float(info["expert_steering"])
                applied = min(max(label + noise.sample(), -1.0), 1.0)
                writer.write(cv2.cvtColor(obs, cv2.COLOR_RGB2BGR))
                rows[layout.EPISODE_INDEX].append(e)
                rows[layout.FRAME_INDEX].append(t)
                rows[layout.TIMESTAMP].append(t * dt)
                rows[layout.INDEX].append(first_index + t)
                rows[layout.STEERING_LABEL].append(label)
                rows[layout.STEERING_APPLIED].append(applied)
                rows[layout.CURVATURE].append(info["curvature_ahead_inv_m"])
                rows[layout.SPEED].append(info["speed_mps"])
                rows[layout.LATERAL_OFFSET].append(info["lateral_offset_m"])
                rows[layout.HEADING_ERROR].append(info["heading_error_rad"])
                obs, _, terminated, truncated, info = env.step(np.array([applied], dtype=np.float32))
                t += 1
                bar.update(1)
                if terminated or truncated:
                    break
        finally:
            writer.release()
    n = len(rows[layout.FRAME_INDEX])
    ints = (layout.EPISODE_INDEX, layout.FRAME_INDEX, layout.INDEX)
    table = pd.DataFrame({c: np.asarray(v, dtype=np.int64 if c in ints else np.float32) for c, v in rows.items()})
    with atomic_path(layout.data_path(root, e)) as tmp:
        table.to_parquet(tmp, index=False)
    return n, terminated, info
