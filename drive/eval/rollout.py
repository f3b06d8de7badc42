"""The one rollout loop: a :class:`~drive.policy.protocol.Driver` drives an env for one episode.

``drive simulate``, ``drive stress``, ``drive explain`` and DAgger (:mod:`drive.train.dagger`) all
drive through :func:`run_episode`, so they share the perturbations, the steering scale, the clamp of
non-finite steering and the figures. One control step, top to bottom::

    env obs ─▶ camera perturbations ─▶ frame delivery (drop / latency) ─▶ driver.step (if a frame came)
        ─▶ scale to the env's steering ─▶ clamp non-finite ─▶ actuator noise ─▶ push ─▶ env.step ─▶ observers

The recurrent state is carried from frame to frame. Continuous-time controllers are told the real
time since the last frame they saw (``dt_s``): one control period normally, more after dropped
frames. A dropped frame means the driver is not called and its previous action is held.

Steering scale: a driver's steering 1.0 stands for ``driver.max_steer_rad`` (its training data's
angle) and the env's for ``max_steer_rad`` (:func:`env_limits`); the command is rescaled by their ratio
(drivers with ``max_steer_rad=None``, the expert, already speak the env's units).

Envs: any Gymnasium env whose ``step`` takes one normalised steering and whose ``info`` holds
``dt_s``, ``lateral_offset_m``, ``heading_error_rad``, ``distance_m`` and ``off_road_events``, and
which tells the loop its ``control_hz``, ``duration_s`` and ``max_steer_rad`` (:func:`env_limits`):
``drive/Drive-v0`` (the simulator, through its scenario) and ``drive/Replay-v0`` (recorded drives,
:mod:`drive.replay`). ``info["expert_steering"]``, the reference an observer compares with, is optional.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from drive.eval import metrics as M
from drive.eval.perturb import Chain
from drive.policy.protocol import Driver


def make_env(scenario: Any, off_road: str = "recover", render_camera: bool = True) -> Any:
    """A ``DriveEnv`` for a scenario (``off_road``: ``recover`` or ``terminate``).

    ``render_camera=False`` gives black frames, for drivers that do not look (the expert).
    """
    from drive.world.env import DriveEnv

    if off_road not in ("recover", "terminate"):
        raise ValueError(f"off_road: expected 'recover' or 'terminate', got {off_road!r}")
    return DriveEnv(scenario, render_mode=None, off_road=off_road, render_camera=render_camera)


def env_limits(env: Any) -> Any:
    """What the loop reads of an env: an object with ``control_hz`` (Hz), ``duration_s`` (the episode just
    reset, s: the loop plans ``round(duration_s * control_hz)`` steps) and ``max_steer_rad`` (rad that the
    env's steering 1.0 stands for). ``drive/Drive-v0`` carries them in its ``scenario``; an env without a
    scenario (``drive/Replay-v0``) carries them itself."""
    unwrapped = env.unwrapped
    return getattr(unwrapped, "scenario", unwrapped)


def steering_scale(driver: Driver, scenario: Any) -> float:
    """Factor from the driver's normalised steering to the env's: ``driver.max_steer_rad / scenario.max_steer_rad``
    (``scenario``: anything with ``max_steer_rad``, e.g. :func:`env_limits`)."""
    return driver.max_steer_rad / scenario.max_steer_rad if driver.max_steer_rad else 1.0


def policy_step(driver: Driver, frame: np.ndarray, info: dict, state: Any, dt_s: float) -> tuple[float, Any]:
    """One call of ``driver.step`` for a single env (batch of one); returns the raw steering and the new state."""
    steering, state = driver.step(frame[None], state, np.array([dt_s], dtype=np.float32), infos=[info])
    return float(np.asarray(steering).reshape(-1)[0]), state


def clamp_steering(raw: float) -> tuple[float, bool]:
    """A steering command made safe for the env: NaN -> 0, ±inf -> ±1, clipped to [-1, 1]; and whether it was non-finite."""
    if math.isnan(raw):
        return 0.0, True
    if math.isinf(raw):
        return math.copysign(1.0, raw), True
    return float(min(1.0, max(-1.0, raw))), False


@dataclasses.dataclass
class Step:
    """What an observer (video writer, live window, explain's collector, DAgger's labeller) sees after each step."""

    index: int
    """Control step number, from 0."""
    t_s: float
    """Sim time at the end of the step, s."""
    seen_frame: np.ndarray
    """The camera frame as the driver last saw it (perturbed, maybe delayed), RGB uint8."""
    clean_frame: np.ndarray
    """The unperturbed camera frame of this step (before the step), RGB uint8."""
    dropped: bool
    """True when no frame reached the driver this step (the previous action was held)."""
    steering: float
    """Commanded normalised steering (env units, clamped)."""
    applied: float
    """Steering the car received (after actuator noise), env units."""
    expert_steering: float | None
    """What the expert would command in the state before the step (env units); in ``drive/Replay-v0`` the
    recorded steering; None when the env's info has no ``expert_steering``."""
    activity: np.ndarray
    """Controller neuron activity after the step (N,), empty for drivers without neurons."""
    state: Any
    """The driver's recurrent state after the step, (1, S)."""
    info: dict
    """The env's info after the step."""
    clean_info: dict
    """The env's info that came with ``clean_frame`` (the state before the step)."""


def run_episode(
    driver: Driver,
    env: Any,
    seed: int,
    perturbations: Chain | None = None,
    observers: Sequence[Callable[[Step], None]] = (),
    episode: int = 0,
) -> M.EpisodeLog:
    """Drive one episode closed loop; returns its log (see :func:`drive.eval.metrics.episode_metrics`).

    ``perturbations`` are reset from ``(seed, episode)``; each observer is called with a :class:`Step`
    after every control step. A non-finite steering is clamped (NaN -> 0, ±inf -> ±1), counted in
    ``log.nonfinite_actions`` and warned about once per episode.
    """
    obs, info = env.reset(seed=seed)
    limits = env_limits(env)  # after the reset: a replayed episode has its own duration
    control_period_s = 1.0 / limits.control_hz
    perturb = perturbations or Chain()
    scale = steering_scale(driver, limits)
    log = M.EpisodeLog(
        planned_steps=int(round(limits.duration_s * limits.control_hz)), control_period_s=control_period_s
    )
    perturb.reset((seed, episode), obs.shape)
    state = driver.initial_state(1)
    steering, seen_frame = 0.0, obs
    since_seen_s = control_period_s  # real time since the driver last saw a frame
    t_s, warned = 0.0, False

    for index in itertools.count():
        # 1. the camera frame, corrupted by the camera perturbations
        frame = perturb.camera(obs)
        # 2. delivery: the frame (with its info) may be delayed or lost
        delivered = perturb.deliver((frame, info))
        # 3. the driver acts only on a frame that arrives; otherwise the previous action is held
        if delivered is not None:
            seen_frame, seen_info = delivered
            raw, state = policy_step(driver, seen_frame, seen_info, state, since_seen_s)
            steering, nonfinite = clamp_steering(raw * scale)
            since_seen_s = 0.0
            if nonfinite:
                log.nonfinite_actions += 1
                if not warned:
                    warnings.warn(
                        f"episode {episode}: the policy returned a non-finite steering {raw!r} at step {index}; "
                        "clamped (NaN -> 0) and counted",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    warned = True
        else:
            log.dropped_frames += 1
        # 4. what reaches the car (actuator noise) and what the world does to it (pushes)
        applied = perturb.actuate(steering)
        perturb.disturb(env, t_s)
        frame_before, info_before = obs, info
        obs, _, terminated, truncated, info = env.step(np.array([applied], dtype=np.float32))
        # 5. bookkeeping: time, figures, observers
        dt = float(info["dt_s"])
        t_s += dt
        since_seen_s += dt
        log.add_step(steering, info)
        # recover mode: the env counts exits (and crashes); terminate mode: the exit or crash that ended the episode
        log.off_road_events = int(info["off_road_events"]) + int(terminated)
        if observers:
            activity = np.asarray(driver.neuron_activity(state))[0]
            record = Step(
                index,
                t_s,
                seen_frame,
                frame_before,
                delivered is None,
                steering,
                applied,
                None if info_before.get("expert_steering") is None else float(info_before["expert_steering"]),
                activity,
                state,
                info,
                info_before,
            )
            for observe in observers:
                observe(record)
        if terminated or truncated:
            break
    return log
