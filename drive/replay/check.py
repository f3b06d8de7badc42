"""Synthesized views against the simulator's true render: SSIM over the valid ground pixels.

For poses on the lane centre of a scenario's tracks, the camera frame rendered there stands for the
recorded frame; the view from a pose moved sideways by ``offset_m`` (left +) and turned by ``heading_deg``
is synthesized from it (:class:`~drive.replay.homography.ViewSynthesizer`) and rendered truly by
:class:`drive.world.camera.Camera`. SSIM (``skimage.metrics.structural_similarity``, 7x7 window, RGB) is
averaged over the pixels below the horizon that have a source; the unwarped frame's SSIM against the true
view over the same pixels is the baseline. The issue's targets: ≥ 0.95 at 0.5 m and 2°, ≥ 0.93 at 1 m
and 5°, on plain and randomized worlds. ``tools/check_replay_views.py`` scores recorded (H.264) frames the
same way (:func:`deviated_pose`, :func:`scored_pixels`, :func:`masked_ssim`, :func:`masked_psnr`).

:class:`PathInterventions` gives the simulator replay's intervention rule, for comparing the two closed
loops (``tools/check_replay_ranking.py``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from drive.replay.env import MAX_HEADING_RAD, MAX_OFFSET_M
from drive.replay.homography import ViewSynthesizer


def record_test_episodes(scenario: Any, data: str | Path, episodes: int, duration_s: float, seed: int = 0) -> int:
    """Record the expert (no DART noise) into ``data`` until it holds ``episodes`` complete episodes of
    ``scenario`` (:func:`drive.data.recorder.record`, seed ``seed``); returns how many it recorded. Recording
    test-split tracks is what the checks need (evaluation data, never training): its warning is silenced."""
    import warnings

    from drive.data.layout import complete_episodes
    from drive.data.recorder import record

    data = Path(data)
    have = len(complete_episodes(data)) if (data / "meta" / "info.json").exists() else 0
    if have >= episodes:
        return 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*drives the test-split tracks.*")
        record(scenario, episodes - have, data, seed=seed, duration_s=duration_s, progress=False)
    return episodes - have


def deviated_pose(x: float, y: float, yaw: float, offset_m: float, dyaw_rad: float) -> tuple[float, float, float]:
    """The world pose (x m, y m, yaw rad) of a car moved ``offset_m`` sideways (left +, across its own yaw)
    and turned by ``dyaw_rad`` (left +) from (x, y, yaw): where ``ViewSynthesizer.warp(frame, 0, offset_m,
    dyaw_rad)`` looks from."""
    return x - offset_m * math.sin(yaw), y + offset_m * math.cos(yaw), yaw + dyaw_rad


def scored_pixels(synth: ViewSynthesizer) -> np.ndarray:
    """(H, W) bool: the pixels of ``synth``'s last warp that see the ground and had a source (where scores
    are taken)."""
    return synth.valid & synth.ground.reshape(synth.valid.shape)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of two RGB uint8 frames (skimage, 7x7 window, channels averaged), averaged over ``mask``'s pixels
    (NaN for an empty mask)."""
    from skimage.metrics import structural_similarity

    if not mask.any():
        return math.nan
    _, s_map = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
    return float(s_map.mean(axis=2)[mask].mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 255) of two RGB uint8 frames over ``mask``'s pixels, all channels; inf when they agree
    there, NaN for an empty mask."""
    if not mask.any():
        return math.nan
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


class PathInterventions(gym.Wrapper):
    """``drive/Drive-v0`` (recover mode) under replay's intervention rule, for comparing the two closed loops.

    After a step that leaves |``lateral_offset_m``| > ``max_offset_m`` or |``heading_error_rad``| >
    ``max_heading_rad`` (:class:`~drive.replay.env.ReplayEnv`'s defaults: 1 m, 10°), the intervention is counted
    and the car is put back on its lane centre where it is, facing along the lane (``DriveEnv.recenter``: the
    simulator's counterpart of replay's reset onto the recorded path); the observation and info returned are
    those after the reset. ``info["interventions"]`` counts the rule's, ``info["intervened"]`` marks the step,
    and ``info["off_road_events"]`` is the rule's plus the env's own takeovers (road edge, crash), so that
    :func:`drive.eval.rollout.run_episode` counts them all.

    ``start``: ``(reset_seed, track_seed)`` or None. When set, every reset starts there, whatever seed it is
    given (a recorded episode's start: its ``reset_seed`` and ``track_seed`` columns); the seed given still
    seeds the perturbations in ``run_episode``.
    """

    def __init__(
        self,
        env: gym.Env,
        max_offset_m: float = MAX_OFFSET_M,
        max_heading_rad: float = MAX_HEADING_RAD,
        start: tuple[int, int | None] | None = None,
    ):
        super().__init__(env)
        self.max_offset_m = float(max_offset_m)
        self.max_heading_rad = float(max_heading_rad)
        self.start = start
        self._interventions = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self.start is not None:
            seed, track_seed = self.start
            options = {**(options or {}), **({} if track_seed is None else {"track_seed": int(track_seed)})}
        self._interventions = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._count(info, False)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        intervened = abs(info["lateral_offset_m"]) > self.max_offset_m or abs(info["heading_error_rad"]) > (
            self.max_heading_rad
        )
        if intervened:
            self._interventions += 1
            sim = self.env.unwrapped
            sim.recenter()
            obs = sim._observe()
            info = {**sim._info(on_road=info["on_road"], crashed=info["crashed"]), "dt_s": info["dt_s"]}
        return obs, reward, terminated, truncated, self._count(info, intervened)

    def _count(self, info: dict[str, Any], intervened: bool) -> dict[str, Any]:
        env_events = int(info["off_road_events"])
        return {
            **info,
            "intervened": intervened,
            "interventions": self._interventions,
            "env_off_road_events": env_events,
            "off_road_events": env_events + self._interventions,
        }


@dataclasses.dataclass(frozen=True)
class ViewScore:
    """One deviation's scores, averaged over the poses."""

    offset_m: float
    heading_deg: float
    ssim: float
    """Synthesized against true view, over the valid ground pixels."""
    ssim_unwarped: float
    """The recorded frame unchanged against the true view, over the same pixels."""
    valid_share: float
    """Share of all pixels that are ground with a source (where SSIM is taken)."""
    fill_share: float
    """Share of all pixels with no source (filled)."""


def view_similarity(
    scenario: Any = "default",
    deviations: Sequence[tuple[float, float]] = ((0.5, 2.0), (-0.5, -2.0), (1.0, 5.0), (-1.0, -5.0)),
    poses: int = 10,
    seed: int = 0,
) -> list[ViewScore]:
    """SSIM of synthesized against true views at (offset m, heading deg) deviations, ``poses`` poses
    (reset seeds ``seed``..``seed + poses - 1``: one per test track of the default scenario)."""
    from drive.world.camera import scenery_for
    from drive.world.env import DriveEnv

    env = DriveEnv(scenario, render_camera=False)
    sums = {d: np.zeros(4) for d in deviations}
    for i in range(poses):
        _, info = env.reset(seed=seed + i)
        cam = env.camera
        scenery = scenery_for(env.track, world=env.world)
        x, y, yaw = info["x_m"], info["y_m"], info["yaw_rad"]
        recorded = cam.render(scenery, x, y, yaw).copy()
        synth = ViewSynthesizer(cam.config)
        for offset, heading_deg in deviations:
            dyaw = math.radians(heading_deg)
            true = cam.render(scenery, *deviated_pose(x, y, yaw, offset, dyaw)).copy()
            view, fill = synth.warp(recorded, 0.0, offset, dyaw)
            mask = scored_pixels(synth)
            sums[(offset, heading_deg)] += (
                masked_ssim(true, view, mask),
                masked_ssim(true, recorded, mask),
                mask.mean(),
                fill,
            )
    env.close()
    return [ViewScore(o, h, *(float(v) for v in sums[(o, h)] / poses)) for o, h in deviations]
