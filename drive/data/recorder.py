"""``drive record``: drive the expert in simulation and write camera video + steering as a dataset.

Writes through :class:`drive.data.writer.DatasetWriter` (LeRobot v3.0 layout, H.264 video), episode
by episode. An interrupted recording leaves every finished episode readable; recording again into the
same folder appends, and two recordings into one folder at once keep every episode (each episode's
index is claimed under the folder's lock when it is saved). The randomized world's drawn values
(``info["world"]`` at reset) are stored in the episode table as ``world.<key>`` columns;
:func:`coverage_table` counts the episodes per lane position, lane-width bin and light bin from them
(``drive record`` prints it at the end).

Row t holds frame t, the expert's clean steering for the state of frame t (the label), and the
steering applied after frame t: the label plus DART noise (``--noise-injection`` = std of an
Ornstein–Uhlenbeck process in normalised steering units, correlation time 0.5 s), clipped to
[-1, 1]. Episode k of a run uses the seeds of index e = (next free index when the run starts) + k:
track seed ``permutation(split seeds)[e mod n]`` (the permutation drawn from ``--seed``), so every
episode is on a different track of the scenario's split; the seeds used are in the episode table.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from drive.data import layout
from drive.data.layout import DatasetInfo
from drive.data.writer import DatasetWriter
from drive.errors import UserError
from drive.world.appearance import LANE_POSITIONS, LIGHT_BINS, WIDTH_BINS, bin_labels, world_bins

SOURCE = "drive record"
TASK = layout.TASK
DART_CORRELATION_S = 0.5
"""Correlation time of the injected steering noise, s."""


MAX_SEED = 2**32 - 1
"""The largest ``--seed``, as every verb's (``drive.commands.common.seed_type``); it is stored in the
episode table's int64 ``seed`` column."""


def check_args(episodes: Any, seed: Any, noise_injection: Any, duration_s: Any) -> None:
    """One-line :class:`UserError` naming the flag and value for a bad argument of :func:`record`; called
    before any work (the command calls it before it creates ``--out``)."""
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) or episodes < 1:
        raise UserError(f"--episodes: must be an integer >= 1, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed: must be a whole number 0 <= seed < 2**32, got {seed!r}")
    if (
        not isinstance(noise_injection, (int, float))
        or not math.isfinite(noise_injection)
        or not 0 <= noise_injection <= 1
    ):
        raise UserError(f"--noise-injection: must be a number in [0, 1], got {noise_injection!r}")
    if duration_s is not None and (
        not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0
    ):
        raise UserError(f"--duration-s: must be a positive number of seconds, got {duration_s!r}")


#: The coverage table's sections: (what, ``world_bins`` key, every bin with its label).
COVERAGE_SECTIONS = (
    ("lane position", "lane_position", {p: f"{p} (lane {e} of {n})" for p, (n, e) in LANE_POSITIONS.items()}),
    ("lane width", "width_bin", bin_labels(WIDTH_BINS, "m")),
    ("light", "light_bin", bin_labels(LIGHT_BINS, "rad sun elevation")),
)


def episode_bins(meta: dict[str, Any]) -> dict[str, str | None]:
    """:func:`drive.world.appearance.world_bins` of an episode-table row (its ``world.<key>`` columns)."""
    prefix = layout.WORLD_PREFIX
    return world_bins({k[len(prefix) :]: v for k, v in meta.items() if str(k).startswith(prefix)})


def coverage_table(episodes: pd.DataFrame) -> pd.DataFrame:
    """Episodes per lane position, lane-width bin and light bin of the drawn worlds, from a dataset's
    episode table (:meth:`drive.data.reader.DatasetReader.episodes_table`).

    Columns ``what``, ``bin``, ``episodes``, ``share`` (of all episodes); every bin is listed, empty ones
    with 0, and an ``unknown`` row counts the episodes without the values (imported video, older recordings).
    """
    bins = [episode_bins(row) for row in episodes.to_dict("records")]
    total = len(bins)
    rows = []
    for what, key, labels in COVERAGE_SECTIONS:
        counts = {name: 0 for name in labels}
        unknown = 0
        for b in bins:
            if b[key] is None:
                unknown += 1
            else:
                counts[b[key]] += 1
        rows += [(what, labels[name], n) for name, n in counts.items()]
        if unknown:
            rows.append((what, "unknown", unknown))
    table = pd.DataFrame(rows, columns=["what", "bin", "episodes"])
    table["share"] = table["episodes"] / total if total else 0.0
    return table


def format_coverage(table: pd.DataFrame) -> str:
    """:func:`coverage_table` as aligned text, one section per ``what``."""
    header = ("drawn worlds", "bin", "episodes", "share")
    cells = []
    for i, r in enumerate(table.itertuples(index=False)):
        first = i == 0 or table["what"].iloc[i - 1] != r.what
        cells.append((r.what if first else "", r.bin, str(r.episodes), f"{100 * r.share:.0f} %"))
    widths = [max(len(c[k]) for c in [header, *cells]) for k in range(4)]
    lines = [header, tuple("-" * w for w in widths), *cells]
    return "\n".join(
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}".rstrip() for a, b, c, d in lines
    )


def episode_track_seed(seeds: list[int] | None, seed: int, episode_index: int) -> int | None:
    """The track seed of an episode: a permutation of the split's seeds drawn from ``seed``."""
    if seeds is None:
        return None
    perm = np.random.default_rng([seed, 0x7EC]).permutation(np.asarray(seeds))
    return int(perm[episode_index % len(perm)])


def episode_reset_seed(seed: int, episode_index: int) -> int:
    """The env reset seed of an episode (start pose, lane, traffic)."""
    return int(np.random.SeedSequence([seed, episode_index]).generate_state(1)[0])


def record(
    scenario: Any,
    episodes: int,
    out: str | os.PathLike,
    seed: int = 0,
    noise_injection: float = 0.0,
    duration_s: float | None = None,
    progress: bool = True,
) -> Path:
    """Record ``episodes`` expert episodes of ``scenario`` (a Scenario, path or shipped name) into ``out``."""
    from drive.world.env import DriveEnv
    from drive.world.expert import SteeringNoise
    from drive.world.scenario import as_scenario

    check_args(episodes, seed, noise_injection, duration_s)
    base = as_scenario(scenario)
    sc = dataclasses.replace(base, duration_s=float(duration_s)) if duration_s is not None else base
    if sc.track.kind == "procedural" and sc.track.seeds is None and sc.track.split == "test":
        warnings.warn(
            f"scenario {sc.name!r} drives the test-split tracks: do not train on this recording", stacklevel=2
        )
    root = Path(out)
    info = DatasetInfo(
        fps=float(sc.control_hz),
        image_height=sc.camera.height,
        image_width=sc.camera.width,
        max_steer_rad=float(sc.max_steer_rad),
        source=SOURCE,
        scenario=sc.to_dict(),
    )
    writer = DatasetWriter(root, info)
    first_episode = writer.next_episode_index()
    env = DriveEnv(sc, off_road="terminate")
    seeds = sc.track.seed_list()
    steps = int(round(sc.duration_s * sc.control_hz))
    bar = tqdm(total=episodes * steps, unit="frame", desc="record", disable=not progress)
    saved = 0
    try:
        for k in range(episodes):
            e = first_episode + k
            track_seed = episode_track_seed(seeds, seed, e)
            reset_seed = episode_reset_seed(seed, e)
            noise = SteeringNoise(
                noise_injection, 1.0 / sc.control_hz, DART_CORRELATION_S, rng=np.random.default_rng([seed, e, 0xDA27])
            )
            n, terminated, world, last_info = _record_episode(writer, env, track_seed, reset_seed, noise, bar)
            writer.save_episode(
                {
                    "source": SOURCE,
                    "scenario": sc.name,
                    "track_kind": sc.track.kind,
                    "track_seed": track_seed,
                    "reset_seed": reset_seed,
                    "seed": seed,
                    "noise_injection": float(noise_injection),
                    "terminated": bool(terminated),
                    "distance_m": float(last_info["distance_m"]),
                    "duration_s": n / sc.control_hz,
                    **world,
                }
            )
            saved += 1
    except BaseException:
        if saved == 0:
            # Nothing recorded: a dataset this run created would fix the next run's scenario for nothing.
            # Best effort: the error that brought us here (disk full, Ctrl-C) is the one to report.
            try:
                writer.remove_if_empty()
            except (OSError, UserError):
                pass
        raise
    finally:
        bar.close()
        writer.close()
        env.close()
    return root


def _record_episode(
    writer: DatasetWriter, env, track_seed, reset_seed: int, noise, bar
) -> tuple[int, bool, dict, dict]:
    """Drive one episode into ``writer`` (not yet saved); (frames, terminated, world columns, last info)."""
    options = {"track_seed": track_seed} if track_seed is not None else None
    obs, info = env.reset(seed=reset_seed, options=options)
    world = layout.world_meta(info)  # read at reset: the env may reuse its info dict
    dt = 1.0 / env.scenario.control_hz
    t = 0
    while True:
        label = float(info["expert_steering"])
        applied = min(max(label + noise.sample(), -1.0), 1.0)
        writer.add_frame(obs, timestamp_s=t * dt, **layout.columns_from_info(info, applied))
        obs, _, terminated, truncated, info = env.step(np.array([applied], dtype=np.float32))
        t += 1
        bar.update(1)
        if terminated or truncated:
            return t, bool(terminated), world, info
