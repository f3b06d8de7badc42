"""`drive simulate`: drive a checkpoint (or the expert) closed loop and write metrics.json and videos.

One control step, top to bottom (``run_episode``)::

    env obs ─▶ camera perturbations ─▶ frame delivery (drop / latency) ─▶ policy.step (if a frame came)
        ─▶ clamp non-finite ─▶ actuator noise ─▶ push ─▶ env.step ─▶ record

The recurrent state is carried from frame to frame. Continuous-time controllers are told the real
time since the last frame they saw (``dt_s``): one control period normally, more after dropped
frames. A dropped frame means the policy is not called and its previous action is held.

Leaving the road: with ``off_road="recover"`` (the default) the env counts the event, puts the car
back on the lane centre and the episode goes on; ``off_road="terminate"`` (``--end-on-off-road``)
ends the episode instead. The expert drives the same episodes (same tracks, seeds and
perturbations) for reference. Figures are defined in :mod:`drive.eval.metrics`.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from drive.eval import metrics as M
from drive.eval.perturb import Chain, Perturbation, parse_single
from drive.io import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = "checkpoints/ncp19"
DEFAULT_SCENARIO = "default"


# ------------------------------------------------------------------------- reference drivers


class ExpertPolicy:
    """The scripted expert as a policy: returns ``info["expert_steering"]`` of the frame it is shown.

    Same ``step`` interface as ``DrivingPolicy``; the loop hands it the env's ``info`` that came with
    each delivered frame (so latency and dropped frames delay the expert too).
    """

    reads_info = True
    model_name = "expert"
    neuron_labels: list[str] = []
    max_steer_rad: float | None = None  # already in the env's normalisation

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, 0)

    def step(self, frames, state, dt_s=None, infos: Sequence[dict] | None = None):
        if infos is None:
            raise ValueError("ExpertPolicy.step: needs the env's info of each frame (infos=...)")
        return np.array([float(i["expert_steering"]) for i in infos], dtype=np.float64), state

    def neuron_activity(self, state: torch.Tensor) -> np.ndarray:
        return np.zeros((state.shape[0], 0), np.float32)


class ConstantPolicy:
    """Always commands the same normalised steering (NaN and ±inf allowed: for tests of the clamp)."""

    reads_info = False
    neuron_labels: list[str] = []
    max_steer_rad: float | None = None

    def __init__(self, steering: float = 0.0):
        self.steering = float(steering)
        self.model_name = f"constant({self.steering:g})"

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, 0)

    def step(self, frames, state, dt_s=None):
        return np.full(len(frames), self.steering, dtype=np.float64), state

    def neuron_activity(self, state: torch.Tensor) -> np.ndarray:
        return np.zeros((state.shape[0], 0), np.float32)


def policy_step(policy: Any, frame: np.ndarray, info: dict, state: torch.Tensor, dt_s: float) -> tuple[float, torch.Tensor]:
    """One call of ``policy.step`` for a single env (batch of one); returns the raw steering."""
    frames = frame[None]
    dt = np.array([dt_s], dtype=np.float32)
    if getattr(policy, "reads_info", False):
        steering, state = policy.step(frames, state, dt, infos=[info])
    else:
        steering, state = policy.step(frames, state, dt)
    return float(np.asarray(steering).reshape(-1)[0]), state


def clamp_steering(raw: float) -> tuple[float, bool]:
    """A steering command made safe for the env: NaN -> 0, ±inf -> ±1, clipped to [-1, 1]; and whether it was non-finite."""
    if math.isnan(raw):
        return 0.0, True
    if math.isinf(raw):
        return math.copysign(1.0, raw), True
    return float(min(1.0, max(-1.0, raw))), False


# ------------------------------------------------------------------------------------ episode


@dataclasses.dataclass
class Step:
    """What an observer (video writer, live window, explain's collector) sees after each control step."""

    index: int
    """Control step number, from 0."""
    t_s: float
    """Sim time at the end of the step, s."""
    seen_frame: np.ndarray
    """The camera frame as the policy last saw it (perturbed, maybe delayed), RGB uint8."""
    clean_frame: np.ndarray
    """The unperturbed camera frame of this step (before the step), RGB uint8."""
    dropped: bool
    """True when no frame reached the policy this step (the previous action was held)."""
    steering: float
    """Commanded normalised steering (env units, clamped)."""
    applied: float
    """Steering the car received (after actuator noise)."""
    expert_steering: float
    """What the expert would command in the state before the step."""
    activity: np.ndarray
    """Controller neuron activity after the step (N,), empty for feed-forward drivers."""
    state: torch.Tensor
    """The policy's recurrent state after the step, (1, S)."""
    info: dict
    """The env's info after the step."""


def run_episode(policy: Any, env: Any, seed: int, perturbations: Chain | None = None,
                observers: Sequence[Callable[[Step], None]] = (), episode: int = 0) -> M.EpisodeLog:
    """Drive one episode closed loop; returns its log (see :func:`drive.eval.metrics.episode_metrics`)."""
    scenario = env.unwrapped.scenario
    control_period_s = 1.0 / scenario.control_hz
    perturb = perturbations or Chain()
    steer_scale = (policy.max_steer_rad / scenario.max_steer_rad) if getattr(policy, "max_steer_rad", None) else 1.0
    log = M.EpisodeLog(planned_steps=int(round(scenario.duration_s * scenario.control_hz)),
                       control_period_s=control_period_s)

    obs, info = env.reset(seed=seed)
    perturb.reset((seed, episode), obs.shape)
    state = policy.initial_state(1)
    steering, seen_frame = 0.0, obs
    since_seen_s = control_period_s  # real time since the policy last saw a frame
    t_s, warned = 0.0, False

    for index in itertools.count():
        # 1. the camera frame, corrupted by the camera perturbations
        frame = perturb.camera(obs)
        # 2. delivery: the frame (with its info) may be delayed or lost
        delivered = perturb.deliver((frame, info))
        # 3. the policy acts only on a frame that arrives; otherwise the previous action is held
        if delivered is not None:
            seen_frame, seen_info = delivered
            raw, state = policy_step(policy, seen_frame, seen_info, state, since_seen_s)
            steering, nonfinite = clamp_steering(raw * steer_scale)
            since_seen_s = 0.0
            if nonfinite:
                log.nonfinite_actions += 1
                if not warned:
                    warnings.warn(f"episode {episode}: the policy returned a non-finite steering {raw!r} at step {index}; "
                                  "clamped (NaN -> 0) and counted", RuntimeWarning, stacklevel=2)
                    warned = True
        else:
            log.dropped_frames += 1
        # 4. what reaches the car (actuator noise) and what the world does to it (pushes)
        applied = perturb.actuate(steering)
        perturb.disturb(env, t_s)
        expert_steering, frame_before = float(info["expert_steering"]), obs
        obs, _, terminated, truncated, info = env.step(np.array([applied], dtype=np.float32))
        # 5. bookkeeping: time, figures, observers
        dt = float(info["dt_s"])
        t_s += dt
        since_seen_s += dt
        log.add_step(steering, info)
        # recover mode: the env counts exits (and crashes); terminate mode: the exit or crash that ended the episode
        log.off_road_events = int(info["off_road_events"]) + int(terminated)
        if observers:
            activity = np.asarray(policy.neuron_activity(state))[0]
            record = Step(index, t_s, seen_frame, frame_before, delivered is None, steering, applied,
                          expert_steering, activity, state, info)
            for observe in observers:
                observe(record)
        if terminated or truncated:
            break
    return log


# ---------------------------------------------------------------------------------- observers


class VideoObserver:
    """Composes one picture per step (see :mod:`drive.eval.video`); writes it to an mp4v file when ``path`` is given.

    The last picture is kept in ``last`` so that a live window can show it without composing again.
    """

    def __init__(self, env: Any, policy: Any, path: Path | None, fps: float, title: str = ""):
        from drive.eval.video import Compositor

        self.env, self.path, self.fps, self.title = env, path, fps, title
        cam = env.unwrapped.scenario.camera
        self.compositor = Compositor((cam.height, cam.width), getattr(policy, "neuron_labels", []) or [])
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
        lines = [self.title, f"t {step.t_s:6.1f} s   {info['distance_m']:7.1f} m",
                 f"lateral {info['lateral_offset_m']:+.2f} m", f"off-road events {info.get('off_road_events', 0)}"]
        return self.compositor.compose(step.seen_frame, step.steering, step.expert_steering, topdown, step.activity,
                                       [ln for ln in lines if ln], "frame dropped" if step.dropped else None)

    def close(self, keep: bool = True) -> str | None:
        """Finish the video file; returns its path when one was kept."""
        if self.writer is None:
            return None
        self.writer.close(keep=keep)
        return str(self.path) if keep else None


def check_display() -> None:
    """Raise ValueError when there is no display to open a window on."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError("--show: no display to open a window on (DISPLAY and WAYLAND_DISPLAY are not set); "
                         "drop --show and watch the video written with --video instead")


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
            raise ValueError(f"--show: OpenCV cannot open a window here: {exc}") from None

    def __call__(self, step: Step) -> None:
        import cv2

        if self.video.last is not None:
            cv2.imshow(self.NAME, cv2.cvtColor(self.video.last, cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.NAME)


# ------------------------------------------------------------------------------------ simulate


def make_env(scenario: Any, off_road: str = "recover", render_camera: bool = True) -> Any:
    """A ``DriveEnv`` for a scenario (``off_road``: ``recover`` or ``terminate``).

    ``render_camera=False`` gives black frames, for drivers that do not look (the expert).
    """
    from drive.world.env import DriveEnv

    if off_road not in ("recover", "terminate"):
        raise ValueError(f"off_road: expected 'recover' or 'terminate', got {off_road!r}")
    return DriveEnv(scenario, render_mode=None, off_road=off_road, render_camera=render_camera)


def resolve_scenario(scenario: Any, duration_s: float | None = None) -> Any:
    """A ``Scenario`` from a scenario, path or shipped name, with ``duration_s`` overridden if given."""
    from drive.world.scenario import as_scenario

    sc = as_scenario(scenario)
    if duration_s is not None:
        if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"--duration-s: must be a positive number of seconds, got {duration_s!r}")
        sc = dataclasses.replace(sc, duration_s=float(duration_s))
    return sc


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder: as given, or relative to the repository root (for the default)."""
    p = Path(path)
    if not p.exists() and not p.is_absolute() and (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: no checkpoint here (no config.json); train one with `drive train` "
                                "or pass --checkpoint")
    return p


def load_driver(checkpoint: Any, runtime: str = "torch") -> Any:
    """A driver from a checkpoint path (run by ``runtime``: ``torch`` or ``onnx``), the word ``expert``,
    or a policy object (returned as is)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        if str(checkpoint) == "expert":
            return ExpertPolicy()
        from drive.policy.export import load_driver_for_runtime

        return load_driver_for_runtime(resolve_checkpoint(checkpoint), runtime)
    return checkpoint


def check_compatible(policy: Any, scenario: Any, where: str = "--checkpoint") -> None:
    """The policy must take frames of the scenario's camera size."""
    h, w = getattr(policy, "image_height", None), getattr(policy, "image_width", None)
    if h is not None and (h, w) != (scenario.camera.height, scenario.camera.width):
        raise ValueError(f"{where}: the policy takes {h}x{w} frames but scenario {scenario.name!r} renders "
                         f"{scenario.camera.height}x{scenario.camera.width} (camera.height x camera.width)")


def drive_episodes(policy: Any, scenario: Any, seeds: Sequence[int], perturbations: Sequence[Perturbation] = (),
                   off_road: str = "recover", video_dir: Path | None = None, video_prefix: str = "episode",
                   show: bool = False, title: str = "", progress: bool = True) -> tuple[list[dict], list[str]]:
    """Run one episode per reset seed; returns the per-episode figures and the video paths written."""
    from tqdm.auto import tqdm

    blind = isinstance(policy, ExpertPolicy) and video_dir is None and not show  # the expert needs no pictures
    env = make_env(scenario, off_road, render_camera=not blind)
    chain = Chain(perturbations)
    results, videos = [], []
    try:
        for episode, seed in enumerate(tqdm(seeds, desc=title or "episodes", unit="ep", disable=not progress,
                                            leave=False)):
            observers: list[Callable[[Step], None]] = []
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
            results.append({"seed": int(seed), **M.episode_metrics(log)})
    finally:
        env.close()
    return results, videos


def simulate(policy_or_expert: Any, scenario: Any = DEFAULT_SCENARIO, episodes: int = 1, seed: int = 0,
             perturbations: Sequence[Perturbation | str] = (), out: str | os.PathLike | None = None, video: bool = False,
             off_road: str = "recover", expert_reference: bool = True, duration_s: float | None = None,
             show: bool = False, progress: bool = True, runtime: str = "torch") -> dict[str, Any]:
    """Drive ``episodes`` episodes (reset seeds ``seed, seed+1, …``) and return (and write) the figures.

    ``policy_or_expert``: a ``DrivingPolicy``, a checkpoint path, ``"expert"`` or any object with the
    policy step interface. ``perturbations``: ``Perturbation`` objects or ``KIND:LEVEL`` strings.
    With ``out``, writes ``out/metrics.json`` and (``video=True``) ``out/videos/*.mp4``.
    """
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"--episodes: must be a whole number >= 1, got {episodes!r}")
    sc = resolve_scenario(scenario, duration_s)
    policy = load_driver(policy_or_expert, runtime)
    check_compatible(policy, sc)
    chain = [parse_single(p) if isinstance(p, str) else p for p in perturbations]
    seeds = [int(seed) + i for i in range(episodes)]
    out_dir = Path(out) if out is not None else None
    video_dir = out_dir / "videos" if (out_dir is not None and video) else None

    name = getattr(policy, "model_name", type(policy).__name__)
    drivers = [("policy", policy, name)]
    if expert_reference and not isinstance(policy, ExpertPolicy):
        drivers.append(("expert", ExpertPolicy(), "expert"))
    result: dict[str, Any] = {
        "checkpoint": str(policy_or_expert) if isinstance(policy_or_expert, (str, os.PathLike)) else None,
        "model": name,
        "scenario": sc.to_dict(),
        "seed": int(seed),
        "episodes": episodes,
        "off_road": off_road,
        "perturbations": [repr(p) for p in chain],
        "metric_definitions": M.DEFINITIONS,
    }
    for role, driver, label in drivers:
        per_episode, videos = drive_episodes(
            driver, sc, seeds, chain, off_road,
            video_dir=video_dir if role == "policy" else None, video_prefix="episode",
            show=show and role == "policy", title=label, progress=progress)
        result[role] = {"episodes": per_episode, "aggregate": M.aggregate(per_episode)}
        if videos:
            result["videos"] = videos
    if out_dir is not None:
        atomic_write_json(out_dir / "metrics.json", result)
    return result


SUMMARY_COLUMNS = ("driver", "episodes", "distance_m", "off_road_events", "off_road_per_km", "mean_abs_lateral_m",
                   "max_abs_lateral_m", "mean_abs_heading_error_rad", "steering_jerk", "completed_fraction",
                   "nonfinite_actions")


def summary_table(result: dict[str, Any]) -> str:
    """A markdown table of the aggregate figures of the policy and the expert."""
    rows = []
    for role in ("policy", "expert"):
        if role in result:
            label = result["model"] if role == "policy" else "expert"
            rows.append({"driver": label, **result[role]["aggregate"]})
    return M.format_table(rows, SUMMARY_COLUMNS)


# ----------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint folder, or 'expert' (default: {DEFAULT_CHECKPOINT})")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO,
                        help="scenario YAML file or shipped scenario name (default: scenarios/default.yaml)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to drive (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode; episode i uses seed+i")
    parser.add_argument("--out", default="runs/simulate", help="output folder (default: runs/simulate)")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                        help="write one mp4 per episode to OUT/videos (default: on)")
    parser.add_argument("--show", action="store_true", help="show the driving live in a window (needs a display)")
    parser.add_argument("--end-on-off-road", action="store_true",
                        help="end an episode when the car leaves the road (default: count it, recentre, go on)")
    parser.add_argument("--perturb", action="append", default=[], metavar="KIND:LEVEL",
                        help="inject a perturbation, e.g. gaussian:0.1 (repeatable; see `drive stress --help`)")
    parser.add_argument("--duration-s", type=float, default=None, help="override the scenario's episode length, s")
    parser.add_argument("--no-expert", action="store_true", help="skip the expert's reference run")
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx",
                        help="run the checkpoint with onnxruntime (exported once, cached) or torch (default: onnx, "
                             "the faster at batch 1)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default 0: torch's own, one per core; on a busy machine 1 is "
                             "faster, since threads waiting for a core cost milliseconds a step)")


def run(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise ValueError(f"--threads {args.threads}: must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.show:
        check_display()
    result = simulate(args.checkpoint, scenario=args.scenario, episodes=args.episodes, seed=args.seed,
                      perturbations=[parse_single(p, "--perturb") for p in args.perturb], out=args.out,
                      video=args.video, off_road="terminate" if args.end_on_off_road else "recover",
                      expert_reference=not args.no_expert, duration_s=args.duration_s, show=args.show,
                      runtime=args.runtime)
    print(summary_table(result))
    print(f"wrote {Path(args.out) / 'metrics.json'}" + (f" and {len(result.get('videos', []))} video(s)" if args.video else ""))
    return 0
