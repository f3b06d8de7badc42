"""Closed-loop model selection: choose a training's epoch by how its policy *drives*, not by validation loss
alone (issue "Drivers that keep their lane everywhere", item 3; the README's passive-vs-active section shows
that offline error does not rank drivers as closed-loop driving does).

The check drives the policy on **training-split tracks that the dataset never recorded**, with reset seeds
the recording never used, in one or more check scenarios dealt round-robin over its episodes: by default the
randomized training worlds (``scenarios/train.yaml``) and the nominal world (``scenarios/nominal.yaml``: the
default camera mount and look, every lane position). Never a test track, never the generalization suite:
:func:`check_tracks` refuses any other track seed and :func:`check_scenarios` any scenario whose tracks are not
the training split (so a suite case cannot be named), and every entry point goes through both.

The check's reset seeds are chosen so that each scenario's episodes cycle through its lane positions (the
right, middle and left lane of one, two and three lanes; :func:`stratified_resets`): six episodes of a scenario
drive each position once, so the figure of an epoch does not hinge on which lanes a few random draws gave.

The figure, lower is better, compared in order: off-road events over all check episodes, then mean
|lateral offset| (m). :func:`selection_key` gives it as a tuple.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from drive.errors import UserError

CHECK_SCENARIO = "train,nominal"
"""The check's scenarios, dealt round-robin over its episodes: the randomized training worlds and the nominal
world, both on training-split tracks."""
RESET_SEED_BASE = 7_000_000
"""Reset seeds of the check: ``RESET_SEED_BASE + k``; the recorder draws its reset seeds from a
SeedSequence (32-bit values), and :func:`held_out_tracks` also refuses any the dataset recorded."""


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """What the closed-loop check drives."""

    tracks: tuple[int, ...]
    """Training-split track seeds the dataset never recorded."""
    reset_seeds: tuple[int, ...]
    """One reset seed per episode (start pose, lane position, drawn world)."""
    duration_s: float
    """Length of each check episode, s."""
    scenario: str = CHECK_SCENARIO
    """Comma-separated scenario names or paths; episode ``k`` drives the ``k mod n``-th."""

    def episode_scenarios(self) -> list[str]:
        """The scenario of each episode, in order."""
        return deal(scenario_names(self.scenario), len(self.tracks))


def split_names(scenario: str) -> list[str]:
    """The names in a comma-separated list of check scenarios (possibly none)."""
    return [n.strip() for n in str(scenario).split(",") if n.strip()]


def scenario_names(scenario: str) -> list[str]:
    """The names in a comma-separated list of check scenarios; a UserError when there are none."""
    names = split_names(scenario)
    if not names:
        raise UserError(f"--select-scenario: give one or more scenario names, got {scenario!r}")
    return names


def deal(names: Sequence[str], episodes: int) -> list[str]:
    """The scenario of each of ``episodes`` check episodes: ``names`` in turn (episode ``k`` drives the
    ``k mod n``-th)."""
    return [names[k % len(names)] for k in range(episodes)]


def check_scenarios(scenario: str) -> dict[str, Any]:
    """The check's scenarios by name, loaded; a UserError for one whose tracks are not procedural
    training-split tracks (the test roads, the racetrack and the generalization suite's cases are never driven
    by selection)."""
    from drive.world.scenario import as_scenario

    loaded = {}
    for name in scenario_names(scenario):
        loaded[name] = sc = as_scenario(name)
        kind, split = getattr(sc.track, "kind", None), getattr(sc.track, "split", None)
        if kind != "procedural" or split != "train":
            raise UserError(
                f"--select-scenario: {name!r} has track kind {kind!r}, split {split!r}; closed-loop selection "
                "drives only procedural training-split tracks (never the test tracks or the suite)"
            )
    return loaded


def check_tracks(tracks: Sequence[int]) -> None:
    """Refuse anything but training-split track seeds (the test tracks and the suite are never read)."""
    from drive.world.tracks import TRAIN_SEEDS

    bad = [t for t in tracks if int(t) not in TRAIN_SEEDS]
    if bad or not tracks:
        raise UserError(
            f"closed-loop selection: track seeds {bad or list(tracks)} are not training-split tracks "
            f"({TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1}); selection never drives the test tracks or the suite"
        )


def recorded_seeds(dataset: str | os.PathLike) -> tuple[set[int], set[int]]:
    """(track seeds, reset seeds) the dataset's complete episodes were recorded with (empty for imported video)."""
    import pandas as pd

    from drive.data import layout

    root = Path(dataset)
    tracks: set[int] = set()
    resets: set[int] = set()
    for index in layout.complete_episodes(root):
        table = pd.read_parquet(layout.episode_meta_path(root, index))
        for column, into in (("track_seed", tracks), ("reset_seed", resets)):
            if column in table:
                into.update(int(v) for v in table[column].dropna())
    return tracks, resets


def held_out_spec(
    dataset: str | os.PathLike | Sequence[str | os.PathLike],
    episodes: int,
    duration_s: float,
    seed: int = 0,
    scenario: str = CHECK_SCENARIO,
) -> CheckSpec:
    """``episodes`` training-split tracks and reset seeds that the dataset (or every one of several datasets)
    never recorded, drawn from ``seed``, dealt round-robin over the check scenarios ``scenario``; each
    scenario's episodes cycle through its lane positions."""
    import numpy as np

    from drive.world.tracks import TRAIN_SEEDS

    if episodes < 1:
        raise UserError(f"--select-episodes: must be >= 1, got {episodes}")
    used_tracks: set[int] = set()
    used_resets: set[int] = set()
    for root in [dataset] if isinstance(dataset, (str, os.PathLike)) else dataset:
        tracks, resets = recorded_seeds(root)
        used_tracks |= tracks
        used_resets |= resets
    free = np.array([t for t in TRAIN_SEEDS if t not in used_tracks])
    if len(free) < episodes:
        raise UserError(f"closed-loop selection: only {len(free)} training tracks are not in the dataset")
    scenarios = check_scenarios(scenario)
    tracks = tuple(int(t) for t in np.random.default_rng([seed, 0x5E1]).permutation(free)[:episodes])
    per_episode = deal(list(scenarios), episodes)
    resets = {n: iter(stratified_resets(per_episode.count(n), used_resets, sc)) for n, sc in scenarios.items()}
    spec = CheckSpec(tracks, tuple(next(resets[n]) for n in per_episode), float(duration_s), ",".join(scenarios))
    check_tracks(spec.tracks)
    return spec


def stratified_resets(episodes: int, used: set[int], scenario: Any = "train") -> tuple[int, ...]:
    """``episodes`` reset seeds from ``RESET_SEED_BASE`` up, none in ``used``, whose drawn worlds cycle through
    the lane positions the scenario's ``track.lane_position`` can draw (in the order of
    ``drive.world.appearance.LANE_POSITIONS``); the first free seeds when the scenario draws no lane position."""
    from drive.world.appearance import LANE_POSITIONS, draw_world, lane_position
    from drive.world.scenario import as_scenario

    sc = as_scenario(scenario)
    spec = getattr(sc.track, "lane_position", None)
    free = (r for r in range(RESET_SEED_BASE, RESET_SEED_BASE + 10_000 * max(episodes, 1)) if r not in used)
    if spec is None:
        return tuple(r for _, r in zip(range(episodes), free))
    names = [spec] if isinstance(spec, str) else list(spec)
    if isinstance(spec, dict):
        names = [n for n, w in spec.items() if float(w) > 0]
    wanted = [n for n in LANE_POSITIONS if n in names]
    pending: dict[str, list[int]] = {n: [] for n in wanted}
    chosen: list[int] = []
    for reset in free:
        if len(chosen) == episodes:
            break
        world = draw_world(sc, reset)
        pending.setdefault(lane_position(world.lanes, world.ego_lane) or "", []).append(reset)
        while len(chosen) < episodes and pending.get(wanted[len(chosen) % len(wanted)]):
            chosen.append(pending[wanted[len(chosen) % len(wanted)]].pop(0))
    return tuple(chosen)


def check_episodes(driver: Any, spec: CheckSpec) -> list[dict[str, Any]]:
    """Drive ``driver`` once per (track, reset seed) of ``spec``; one metrics row per episode."""
    from drive.eval.simulate import drive_episodes, resolve_scenario

    check_tracks(spec.tracks)
    scenarios = {n: resolve_scenario(sc, spec.duration_s) for n, sc in check_scenarios(spec.scenario).items()}
    episodes = []
    for name, track, reset in zip(spec.episode_scenarios(), spec.tracks, spec.reset_seeds):
        scenario = scenarios[name]
        sc = dataclasses.replace(scenario, track=dataclasses.replace(scenario.track, seeds=[int(track)]))
        rows, _ = drive_episodes(driver, sc, [int(reset)], progress=False)
        episodes += [{**row, "check_scenario": name} for row in rows]
    return episodes


def closed_loop_check(driver: Any, spec: CheckSpec) -> dict[str, Any]:
    """Drive ``driver`` once per (track, reset seed) of ``spec``; the figures, overall and per scenario, and the
    selection key."""
    episodes = check_episodes(driver, spec)
    by_scenario = {
        name: check_figures([e for e in episodes if e["check_scenario"] == name])
        for name in dict.fromkeys(e["check_scenario"] for e in episodes)
    }
    figures = check_figures(episodes)
    return {**figures, "by_scenario": by_scenario, "key": list(selection_key(figures))}


def check_figures(episodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Off-road events, mean |lateral offset| (m), distance (m) and episode count over check episodes."""
    from drive.eval import metrics as M

    summary = M.aggregate(episodes)
    return {
        "off_road_events": int(summary.get("off_road_events") or 0),
        "mean_abs_lateral_m": float(summary.get("mean_abs_lateral_m") or 0.0),
        "distance_m": float(summary.get("distance_m") or 0.0),
        "episodes": len(episodes),
    }


def selection_key(figures: dict[str, Any]) -> tuple[float, float]:
    """Lower is better: off-road events first, then mean |lateral offset|."""
    return (float(figures["off_road_events"]), float(figures["mean_abs_lateral_m"]))
