"""``ReplayEnv``: the Gymnasium env ``drive/Replay-v0``: drive closed loop through a recorded drive.

Built from a dataset's episodes (``drive record`` or ``drive import``; :mod:`drive.replay.recording`).
The learner's car follows the recorded car's station along the recorded path, and deviates from it by a
lateral offset and a heading error integrated from its own steering (:mod:`drive.replay.path`); each
observation is the recorded frame re-rendered from the learner's pose (:mod:`drive.replay.homography`).

- Observation: RGB uint8 ``Box(0, 255, (H, W, 3))``, the dataset's frame size.
- Action: ``Box(-1, 1, (1,), float32)``, normalised steering in the dataset's units: ×``max_steer_rad``
  (the dataset's) gives the front-wheel angle; positive steers left. Values outside [-1, 1] are clipped;
  NaN/inf raise ``ValueError``.
- One ``step`` goes from frame k to frame k+1 (the recorded frame times: ``dt_s`` varies with them).
- Intervention (PilotNet's rule): when |offset| > ``max_offset_m`` (default 1 m, as PilotNet) or
  |heading error| > ``max_heading_rad`` (default 10°: twice the largest heading error of the issue's view
  check, past which the unfilled share of an 80° camera grows fast), the intervention is counted and the
  car is put back on the path (offset and heading error 0) at the frame reached; the episode goes on.
- Reward: the path length of the step, m. Truncation at the episode's last frame; no termination.
- ``reset``: the option ``episode`` (a dataset episode index) if given; else, for a seed ``s``, episode
  ``episodes[s % n]`` (seeds 0..n-1 replay each once); else one drawn with the env's generator. The
  option ``start_frame`` (default 0) starts later in the episode.
- ``render()`` (``render_mode="rgb_array"``): the synthesized view beside the recorded frame.
- ``push(lateral_m)``: moves the learner sideways by ``lateral_m`` m (left +), as ``drive/Drive-v0``'s does
  (the ``push`` perturbation); the next step checks the intervention limits.
- What the closed loop reads (:func:`drive.eval.rollout.env_limits`): ``control_hz`` (the dataset's fps),
  ``max_steer_rad`` (the dataset's) and ``duration_s``, the reset episode's steps x 1/fps.

``info`` keys (all describe the state of the returned observation):

=========================  ==============================================================
episode                    dataset episode index
frame_index                recorded frame shown (re-rendered), from 0
t_s                        its recorded time, s
lateral_offset_m           offset from the recorded path, m, positive = left
heading_error_rad          yaw minus the recorded car's yaw, rad, positive = pointing left
distance_m                 path length driven since reset, m
speed_mps                  recorded speed at this frame, m/s
dt_s                       time the step lasted, s (the frame interval; 1/fps at reset)
steering_applied           the learner's steering during this step, normalised (clipped)
recorded_steering          the recorded steering after this frame, normalised
expert_steering            the same: the recorded driver is this world's reference (``ExpertPolicy``
                           replays the recording, with no intervention)
intervened                 True if this step ended in an intervention (then offset = heading = 0)
interventions              interventions so far
off_road_events            the same count, under ``drive/Drive-v0``'s name for its takeovers
fill_fraction              share of the observation's pixels with no source in the recorded frame
=========================  ==============================================================
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drive.replay.homography import FILLS, ViewSynthesizer
from drive.replay.path import advance, camera_move, slip_angle
from drive.replay.recording import Recording, open_recording
from drive.world.env import DriveEnv
from drive.world.expert import steer_to_curvature

MAX_OFFSET_M = 1.0
"""Default intervention limit on the lateral offset, m (PilotNet's)."""
MAX_HEADING_RAD = math.radians(10.0)
"""Default intervention limit on the heading error, rad (10°)."""
RESET_OPTIONS = ("episode", "start_frame")


class ReplayEnv(gym.Env):
    """Steer along a recorded drive from re-rendered recorded frames (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        data: str | os.PathLike | Recording,
        episodes: Sequence[int] | None = None,
        max_offset_m: float = MAX_OFFSET_M,
        max_heading_rad: float = MAX_HEADING_RAD,
        fill: str = "replicate",
        render_mode: str | None = None,
    ):
        """``data``: a dataset folder (or an opened :class:`Recording`); ``episodes``: which to replay (all);
        ``fill``: how pixels with no source are filled (:data:`drive.replay.homography.FILLS`)."""
        for name, value in (("max_offset_m", max_offset_m), ("max_heading_rad", max_heading_rad)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ReplayEnv: {name} must be a positive number, got {value!r}")
        if fill not in FILLS:
            raise ValueError(f"ReplayEnv: fill must be one of {', '.join(FILLS)}, got {fill!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"ReplayEnv: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.recording = rec = data if isinstance(data, Recording) else open_recording(data, episodes)
        self.max_offset_m = float(max_offset_m)
        self.max_heading_rad = float(max_heading_rad)
        self.fill = fill
        self.render_mode = render_mode
        self.max_steer_rad = rec.max_steer_rad
        self.control_hz = rec.fps
        self.metadata = {**self.metadata, "render_fps": rec.fps}
        info = rec.reader.info
        self.observation_space = spaces.Box(0, 255, (info.image_height, info.image_width, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._synth: dict[tuple, ViewSynthesizer] = {}
        self._frames_of: tuple[int, np.ndarray] | None = None
        self.episode: int | None = None
        self._obs: np.ndarray | None = None

    # --- gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        opts = dict(options or {})
        for k in opts:
            if k not in RESET_OPTIONS:
                raise ValueError(f"reset: unknown option {k!r} (value {opts[k]!r}); known: {', '.join(RESET_OPTIONS)}")
        rec = self.recording
        if opts.get("episode") is not None:
            episode = opts["episode"]
            if episode not in rec.paths:
                raise ValueError(f"reset: option episode {episode!r} is not one of the replayed {rec.episodes}")
        elif seed is not None:
            episode = rec.episodes[int(seed) % len(rec.episodes)]
        else:
            episode = rec.episodes[int(self.np_random.integers(len(rec.episodes)))]
        self.episode = int(episode)
        self.path = path = rec.paths[self.episode]
        start = opts.get("start_frame", 0)
        if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or not 0 <= start < len(path) - 1:
            raise ValueError(f"reset: option start_frame must be an int in [0, {len(path) - 2}], got {start!r}")
        if self._frames_of is None or self._frames_of[0] != self.episode:
            self._frames_of = (self.episode, rec.frames(self.episode))
        cam = rec.cameras[self.episode]
        key = (cam.height_m, cam.pitch_rad, cam.yaw_rad, cam.fov_deg, cam.width, cam.height)
        if key not in self._synth:
            self._synth[key] = ViewSynthesizer(cam, self.fill)
        self.synthesizer = self._synth[key]
        self._k = self._start = int(start)
        self._offset = self._heading = 0.0
        self._distance = 0.0
        self._interventions = 0
        self._steering = 0.0
        self._intervened = False
        self._dt = 1.0 / rec.fps
        obs = self._observe()
        return obs, self._info()

    def step(self, action):
        if self.episode is None:
            raise RuntimeError("ReplayEnv: call reset() before step()")
        if self._k >= len(self.path) - 1:
            raise RuntimeError("ReplayEnv: the episode is over (truncated); call reset()")
        u = self._steering_from(action)
        self._steering = u
        p, k = self.path, self._k
        delta = u * self.max_steer_rad
        ds = float(p.speed_mps[k] * (p.t_s[k + 1] - p.t_s[k]))
        self._offset, self._heading = advance(
            self._offset,
            self._heading,
            ds,
            float(p.curvature_inv_m[k]),
            float(p.slip_rad[k]),
            steer_to_curvature(delta),
            slip_angle(delta),
        )
        self._k = k + 1
        self._dt = float(p.t_s[k + 1] - p.t_s[k])
        self._distance += ds
        self._intervened = abs(self._offset) > self.max_offset_m or abs(self._heading) > self.max_heading_rad
        if self._intervened:
            self._interventions += 1
            self._offset = self._heading = 0.0
        obs = self._observe()
        truncated = self._k >= len(p) - 1
        return obs, ds, False, truncated, self._info()

    @property
    def duration_s(self) -> float:
        """The reset episode's steps x 1/fps, s (0 before a reset): the steps the closed loop plans for."""
        return 0.0 if self.episode is None else (len(self.path) - 1 - self._start) / self.control_hz

    def recorded_frame(self, k: int | None = None) -> np.ndarray:
        """The recorded frame ``k`` of the reset episode (default: the one shown now), RGB uint8 (H, W, 3)."""
        if self.episode is None:
            raise RuntimeError("ReplayEnv: call reset() before recorded_frame()")
        return self._frames_of[1][self._k if k is None else k]

    def push(self, lateral_m: float) -> None:
        """Move the learner sideways by ``lateral_m`` m (left +); the next step checks the limits."""
        if self.episode is None:
            raise RuntimeError("ReplayEnv: call reset() before push()")
        self._offset += float(lateral_m)

    def render(self):
        if self.render_mode == "rgb_array" and self._obs is not None:
            return np.hstack([self._obs, self.recorded_frame()])
        return None

    # --- internals --------------------------------------------------------------------------

    _steering_from = DriveEnv._steering_from  # drive/Drive-v0's action contract: one finite value, clipped

    def _observe(self) -> np.ndarray:
        frame = self._frames_of[1][self._k]
        dx, dy, dyaw = camera_move(self._offset, self._heading, float(self.path.slip_rad[self._k]))
        obs, self._fill = self.synthesizer.warp(frame, dx, dy, dyaw)
        self._obs = obs
        return obs

    def _info(self) -> dict[str, Any]:
        p, k = self.path, self._k
        return {
            "episode": self.episode,
            "frame_index": k,
            "t_s": float(p.t_s[k]),
            "lateral_offset_m": float(self._offset),
            "heading_error_rad": float(self._heading),
            "distance_m": float(self._distance),
            "speed_mps": float(p.speed_mps[k]),
            "dt_s": float(self._dt),
            "steering_applied": float(self._steering),
            "recorded_steering": float(p.steering[k]),
            "expert_steering": float(p.steering[k]),
            "intervened": bool(self._intervened),
            "interventions": int(self._interventions),
            "off_road_events": int(self._interventions),
            "fill_fraction": float(self._fill),
        }
