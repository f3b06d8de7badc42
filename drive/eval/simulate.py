"""`drive simulate` as a library: drive a checkpoint (or the expert) closed loop over several episodes.

Each episode is one call of the rollout, :func:`drive.eval.rollout.run_episode` (env -> perturbation ->
driver -> action; read that module for one control step top to bottom). This module adds what a run of
several episodes needs: the driver and scenario resolved from names, observers that write a video or
show a live window, the expert's reference run, and ``metrics.json``. A checkpoint becomes a driver
in :mod:`drive.policy.load` (``load_driver``, ``check_compatible``). The command line is
:mod:`drive.commands.simulate`.

Leaving the road: with ``off_road="recover"`` (the default) the env counts the event, puts the car
back on the lane centre and the episode goes on; ``off_road="terminate"`` (``--end-on-off-road``)
ends the episode instead. The expert drives the same episodes (same tracks, seeds and
perturbations) for reference. Figures are defined in :mod:`drive.eval.metrics`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from drive import resources
from drive.errors import UserError
from drive.eval import metrics as M
from drive.eval.perturb import Chain, Perturbation, parse_single
from drive.eval.progress import StepBar
from drive.eval.rollout import Step, make_env, run_episode
from drive.io import atomic_write_json, holds_output_lock
from drive.policy.load import EXPERT, check_compatible, load_driver, with_trained_camera
from drive.policy.protocol import Driver
from drive.policy.reference import ExpertPolicy

DEFAULT_CHECKPOINT = resources.DEFAULT_CHECKPOINT
DEFAULT_SCENARIO = "default"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_SCENARIO",
    "LiveWindow",
    "VideoObserver",
    "check_display",
    "drive_episodes",
    "make_env",
    "resolve_scenario",
    "run_episode",
    "simulate",
    "summary_table",
]


# ---------------------------------------------------------------------------------- observers


class VideoObserver:
    """Composes one picture per step (see :mod:`drive.eval.video`); writes it to an mp4v file when ``path`` is given.

    The last picture is kept in ``last`` so that a live window can show it without composing again.
    """

    def __init__(self, env: Any, policy: Any, path: Path | None, fps: float, title: str = ""):
        from drive.eval.video import Compositor

        self.env, self.path, self.fps, self.title = env, path, fps, title
        cam = env.unwrapped.scenario.camera
        self.compositor = Compositor((cam.height, cam.width), policy.neuron_labels)
        self.path_xy: list[tuple[float, float]] = []
        self.writer = None
        self.last: np.ndarray | None = None

    def __call__(self, step: Step) -> None:
        from drive.eval.video import VideoWriter

        self.last = self.picture(step)
        if self.path is not None:
            if self.writer is None:
                self.writer = VideoWriter(self.path, self.fps, (self.compositor.height, self.compositor.width))
            self.writer.write(self.last)

    def picture(self, step: Step) -> np.ndarray:
        info = step.info
        self.path_xy.append((float(info["x_m"]), float(info["y_m"])))
        topdown = self.env.unwrapped.render_topdown(path_xy=np.asarray(self.path_xy))
        lines = [
            self.title,
            f"t {step.t_s:6.1f} s   {info['distance_m']:7.1f} m",
            f"lateral {info['lateral_offset_m']:+.2f} m",
            f"off-road events {info.get('off_road_events', 0)}",
        ]
        return self.compositor.compose(
            step.seen_frame,
            step.steering,
            step.expert_steering,
            topdown,
            step.activity,
            [ln for ln in lines if ln],
            "frame dropped" if step.dropped else None,
        )

    def close(self, keep: bool = True) -> str | None:
        """Finish the video file; returns its path when one was kept."""
        if self.writer is None:
            return None
        self.writer.close(keep=keep)
        return str(self.path) if keep else None


def check_display() -> None:
    """Raise UserError when there is no display to open a window on."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError(
            "--show: no display to open a window on (DISPLAY and WAYLAND_DISPLAY are not set); "
            "drop --show and watch the video written with --video instead"
        )


class LiveWindow:
    """Shows the video observer's last picture in an OpenCV window (``--show``); needs a display."""

    NAME = "drive simulate"

    def __init__(self, video: VideoObserver):
        import cv2

        check_display()
        self.video = video
        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:
            raise UserError(f"--show: OpenCV cannot open a window here: {exc}") from None

    def __call__(self, step: Step) -> None:
        import cv2

        if self.video.last is not None:
            cv2.imshow(self.NAME, cv2.cvtColor(self.video.last, cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.NAME)


# ------------------------------------------------------------------------------------ simulate


def planned_steps(scenario: Any) -> int:
    """Control steps of one episode of ``scenario``: its duration times its control rate (as the rollout plans)."""
    return int(round(scenario.duration_s * scenario.control_hz))


def step_bar(scenario: Any, episodes: int, desc: str, enabled: bool = True) -> StepBar:
    """A progress bar in control steps over ``episodes`` episodes of ``scenario`` (:func:`planned_steps` each)."""
    return StepBar(planned_steps(scenario), episodes, desc, enabled)


def resolve_scenario(scenario: Any, duration_s: float | None = None) -> Any:
    """A ``Scenario`` from a scenario, path or shipped name, with ``duration_s`` overridden if given."""
    from drive.world.scenario import as_scenario

    sc = as_scenario(scenario)
    if duration_s is not None:
        if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
            raise UserError(f"--duration-s: must be a positive number of seconds, got {duration_s!r}")
        sc = dataclasses.replace(sc, duration_s=float(duration_s))
    return sc


def drive_episodes(
    policy: Driver,
    scenario: Any,
    seeds: Sequence[int],
    perturbations: Sequence[Perturbation] = (),
    off_road: str = "recover",
    video_dir: Path | None = None,
    video_prefix: str = "episode",
    show: bool = False,
    title: str = "",
    progress: bool = True,
) -> tuple[list[dict], list[str]]:
    """Run one episode per reset seed; returns the per-episode figures and the video paths written.

    With ``progress``, a bar in control steps over all episodes (:func:`step_bar`), the episode in its postfix.
    """
    blind = isinstance(policy, ExpertPolicy) and video_dir is None and not show  # the expert needs no pictures
    env = make_env(scenario, off_road, render_camera=not blind)
    chain = Chain(perturbations)
    results, videos = [], []
    bar = step_bar(scenario, len(seeds), title or "episodes", progress)
    try:
        for episode, seed in enumerate(seeds):
            observers: list[Callable[[Step], None]] = [bar.observer(episode)] if progress else []
            video = window = None
            if video_dir is not None or show:
                path = Path(video_dir) / f"{video_prefix}_{episode:03d}.mp4" if video_dir is not None else None
                video = VideoObserver(env, policy, path, scenario.control_hz, title)
                observers.append(video)
            if show:
                window = LiveWindow(video)
                observers.append(window)
            try:
                log = run_episode(policy, env, seed, chain, observers, episode)
            except BaseException:
                if video is not None:
                    video.close(keep=False)
                raise
            finally:
                if window is not None:
                    window.close()
            written = video.close(keep=True) if video is not None else None
            if written:
                videos.append(written)
            world = getattr(env.unwrapped, "world_info", None)  # the episode's drawn world (drive.world.appearance)
            results.append({"seed": int(seed), **M.episode_metrics(log), **({"world": dict(world)} if world else {})})
            bar.episode_done(episode)
    finally:
        bar.close()
        env.close()
    return results, videos


@holds_output_lock("out")
def simulate(
    driver: Driver | str | os.PathLike,
    scenario: Any = DEFAULT_SCENARIO,
    episodes: int = 1,
    seed: int = 0,
    perturbations: Sequence[Perturbation | str] = (),
    out: str | os.PathLike | None = None,
    video: bool = False,
    off_road: str = "recover",
    expert_reference: bool = True,
    duration_s: float | None = None,
    show: bool = False,
    progress: bool = True,
    checkpoint: str | None = None,
    runtime: str = "torch",
    label: str | None = None,
    camera_from_checkpoint: bool = False,
) -> dict[str, Any]:
    """Drive ``episodes`` episodes (reset seeds ``seed, seed+1, …``) and return (and write) the figures.

    ``driver``: a :class:`~drive.policy.protocol.Driver` (a ``DrivingPolicy``, the expert, …), a
    checkpoint path or ``"expert"``; ``checkpoint`` names the checkpoint of a driver passed as an
    object, for ``metrics.json``. ``label``: the driver's name in the table, the video titles and
    ``metrics.json``'s ``label`` (default: :func:`drive.eval.sweep.driver_label`, the checkpoint's folder
    name). ``scenario``: a ``Scenario``, a YAML path or a shipped name.
    ``perturbations``: ``Perturbation`` objects or ``KIND:LEVEL`` strings. With ``out``, writes
    ``out/metrics.json`` and (``video=True``) ``out/videos/*.mp4``; the folder is made before any driving.
    The checkpoint is checked against the scenario (:func:`~drive.policy.load.check_compatible`: frame size,
    else an error; frame rate and camera, else a warning); ``camera_from_checkpoint`` renders with the camera
    its dataset was recorded with (:func:`~drive.policy.load.with_trained_camera`).
    """
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise UserError(f"--episodes: must be a whole number >= 1, got {episodes!r}")
    sc = resolve_scenario(scenario, duration_s)
    source = checkpoint if checkpoint is not None else driver
    if camera_from_checkpoint:
        if not isinstance(source, (str, os.PathLike)) or str(source) == EXPERT:
            raise UserError("--camera-from-checkpoint: needs a checkpoint folder (not the expert)")
        sc = with_trained_camera(sc, source)
    policy = load_driver(driver, runtime)
    where = f"--checkpoint {source}" if isinstance(source, (str, os.PathLike)) else "--checkpoint"
    check_compatible(policy, sc, where, checkpoint=source)
    chain = [parse_single(p) if isinstance(p, str) else p for p in perturbations]
    seeds = [int(seed) + i for i in range(episodes)]
    out_dir = Path(out) if out is not None else None
    video_dir = out_dir / "videos" if (out_dir is not None and video) else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)  # fail before driving, not after

    from drive.eval.sweep import driver_label

    name = label or driver_label(source if isinstance(source, (str, os.PathLike)) else policy)
    drivers = [("policy", policy, name)]
    if expert_reference and not isinstance(policy, ExpertPolicy):
        drivers.append(("expert", ExpertPolicy(), "expert"))
    if checkpoint is None and isinstance(driver, (str, os.PathLike)):
        checkpoint = str(driver)
    result: dict[str, Any] = {
        "checkpoint": checkpoint,
        "label": name,
        "model": policy.model_name,
        "scenario": sc.to_dict(),
        "seed": int(seed),
        "episodes": episodes,
        "off_road": off_road,
        "perturbations": [repr(p) for p in chain],
        "metric_definitions": M.DEFINITIONS,
    }
    for role, driver, label in drivers:
        per_episode, videos = drive_episodes(
            driver,
            sc,
            seeds,
            chain,
            off_road,
            video_dir=video_dir if role == "policy" else None,
            video_prefix="episode",
            show=show and role == "policy",
            title=label,
            progress=progress,
        )
        result[role] = {"episodes": per_episode, "aggregate": M.aggregate(per_episode)}
        if videos:
            result["videos"] = videos
    if out_dir is not None:
        atomic_write_json(out_dir / "metrics.json", result)
    return result


SUMMARY_COLUMNS = ("driver", "episodes", "distance_m", "off_road_events", *M.MAIN_FIGURES)


def summary_table(result: dict[str, Any]) -> str:
    """A markdown table of the aggregate figures of the policy and the expert."""
    rows = []
    for role in ("policy", "expert"):
        if role in result:
            label = result.get("label", result["model"]) if role == "policy" else "expert"
            rows.append({"driver": label, **result[role]["aggregate"]})
    return M.format_table(rows, SUMMARY_COLUMNS)
