"""``DriveEnv``: the Gymnasium env ``drive/Drive-v0``: steer a car seen through its own camera.

- Observation: the forward camera's RGB uint8 frame, ``Box(0, 255, (H, W, 3), uint8)``.
- Action: ``Box(-1, 1, (1,), float32)``, normalised steering; ×``max_steer_rad`` gives the
  front-wheel angle (default ±0.35 rad). Positive steers left (counter-clockwise). The speed is
  held at the scenario's ``speed_mps``. Values outside [-1, 1] are clipped; NaN/inf raise
  ``ValueError``.
- Dynamics: highway-env's kinematic bicycle (``Vehicle``) integrated at ``sim_hz``, with its
  per-step ``get_closest_lane_index`` replaced by ``Track.project``. The steering is held over
  the ``sim_hz / control_hz`` sub-steps of each ``step()``.
- Traffic: ``traffic.vehicles`` cars in the lanes other than the ego's, following their lane
  centre with the intelligent driver model (highway-env's ``IDMVehicle`` constants) behind the car
  ahead in their lane. They do not react to the ego. Collisions use highway-env's polygon test.
- Reward: the progress along the track made during the step, m.
- Termination: the car's centre beyond the road edge (|lateral from the road centre line| >
  half the road width), or a collision. With ``off_road="recover"`` neither terminates: the
  event is counted in ``info["off_road_events"]`` (a takeover, as the NCP paper counted) and
  the car is put back on its lane centre ``RECOVER_AHEAD_M`` ahead of where it left, facing along
  the lane; the jump is not counted in ``distance_m``. Truncation at ``duration_s``.

Track choice at ``reset``: the ``track_seed`` option if given; else, for a reset seed ``s``, track
``seeds[s % n]`` of the scenario's ``n`` track seeds (so seeds 0..n-1 drive every track once);
else (no seed) a track drawn with the env's generator.

Seeding follows Gymnasium: the first ``reset()`` without a seed seeds the env from entropy (unless
the scenario sets ``seed``); later unseeded resets continue the env's generator. The episode's
world (``drive.world.appearance``: lanes, lane width, speed, markings, surfaces, light, fog,
shadows, camera mount) is drawn from the reset seed (on an unseeded reset, from a seed drawn
with the env's generator), so a seed always gives the same world; the reset info holds it as
``info["world"]``, a flat dict (``world_seed``, ``lanes``, ``lane_width_m``, ``centre_line``, …).

``info`` keys (all describe the state of the returned observation):

=========================  ==============================================================
lateral_offset_m           offset from the ego lane's centre, m, positive = left
heading_error_rad          yaw minus the lane's heading, rad, positive = pointing left
on_road                    False if the car left the road during this step
crashed                    True if it collided with another vehicle during this step
distance_m                 progress along the track since reset, m (cumulative, laps add up)
speed_mps                  speed, m/s
curvature_ahead_inv_m      ego-lane curvature ``CURVATURE_PREVIEW_S``·v ahead, 1/m (left +)
expert_steering            the expert's clean steering for this state, normalised [-1, 1]
dt_s                       time the step lasted, s (1 / control_hz)
steering_applied           steering applied during this step, normalised (clipped) [-1, 1]
x_m, y_m, yaw_rad          pose in the world frame, m, m, rad in [-π, π)
off_road_events            takeovers so far (recover mode; 0 in terminate mode)
track_length_m             length of the track's centre line, m
lap_fraction               position along the lap, [0, 1)
=========================  ==============================================================
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from highway_env import utils as hw_utils
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from drive.errors import UserError
from drive.world.appearance import World, draw_world, haze_distance_m
from drive.world.camera import HAZE_DISTANCE_M, Camera, TopDownCamera, VehicleBox, scenery_for
from drive.world.expert import EgoState, Expert, steer_to_curvature
from drive.world.scenario import Scenario, as_scenario
from drive.world.tracks import Track, curvature_limit, track_for, wrap_angle

ENV_ID = "drive/Drive-v0"
RECOVER_AHEAD_M = 5.0
"""After an off-road event in recover mode the car restarts this far ahead, m."""
CURVATURE_PREVIEW_S = 0.5
"""``curvature_ahead_inv_m`` is read this many seconds of travel ahead, s."""
TRAFFIC_MIN_GAP_M = 25.0
"""Initial spacing of traffic cars in one lane, m (and from the ego's position)."""
OFF_ROAD_MODES = ("terminate", "recover")
RESET_OPTIONS = ("track_seed", "lateral_offset_m", "heading_offset_rad", "start_s_m")
EGO_COLOR = (40, 90, 220)
TRAFFIC_COLORS = (
    (200, 40, 40),
    (230, 230, 230),
    (30, 30, 35),
    (200, 160, 30),
    (60, 140, 70),
    (120, 120, 130),
    (150, 30, 90),
)


class _Ego(Vehicle):
    """highway-env's kinematic bicycle without its per-step lane lookup (``Track.project`` does that)."""

    def on_state_update(self) -> None:
        pass


class DriveEnv(gym.Env):
    """Steer along a track from camera frames (see the module docstring for spaces, info and ends)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        scenario: Scenario | str | os.PathLike | None = None,
        render_mode: str | None = None,
        off_road: str = "terminate",
        render_camera: bool = True,
    ):
        """``render_camera=False`` skips the camera (observations are black): a fast path for tests."""
        self.scenario = sc = as_scenario(scenario)
        if off_road not in OFF_ROAD_MODES:
            raise ValueError(f"DriveEnv: off_road must be one of {', '.join(OFF_ROAD_MODES)}, got {off_road!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"DriveEnv: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.off_road = off_road
        self.render_camera = bool(render_camera)
        self.metadata = {**self.metadata, "render_fps": sc.control_hz}
        self._cameras: dict[tuple, Camera] = {}
        self.camera = self._camera_for(draw_world(sc, 0))
        self.topdown = TopDownCamera()
        self.observation_space = spaces.Box(0, 255, (sc.camera.height, sc.camera.width, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._blank = np.zeros(self.observation_space.shape, np.uint8)
        self._blank.flags.writeable = False
        self._dt = 1.0 / sc.control_hz
        self._dt_sim = 1.0 / sc.sim_hz
        self._substeps = sc.substeps
        self._max_steps = max(1, int(round(sc.duration_s * sc.control_hz)))
        self._track_seeds = sc.track.seed_list()
        self.track: Track | None = None
        self.track_seed: int | None = None
        self.expert: Expert | None = None
        self.vehicle: _Ego | None = None
        self.lane = 0
        self.world: World | None = None
        #: the episode's drawn world as returned in the reset info's ``world`` (empty before the first reset)
        self.world_info: dict[str, Any] = {}
        self._scenery = None

    # --- gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._np_random is None and self.scenario.seed is not None:
            seed = self.scenario.seed  # asked for by the scenario; otherwise Gymnasium seeds from entropy
        super().reset(seed=seed)
        opts = dict(options or {})
        for k in opts:
            if k not in RESET_OPTIONS:
                raise ValueError(f"reset: unknown option {k!r} (value {opts[k]!r}); known: {', '.join(RESET_OPTIONS)}")
        for k in ("lateral_offset_m", "heading_offset_rad", "start_s_m"):
            if k in opts and not (
                isinstance(opts[k], (int, float, np.floating, np.integer)) and math.isfinite(float(opts[k]))
            ):
                raise ValueError(f"reset: option {k} must be a finite number, got {opts[k]!r}")
        sc, rng = self.scenario, self.np_random
        world_seed = int(seed) if seed is not None else int(rng.integers(2**31 - 1))
        self.world = w = draw_world(sc, world_seed)
        if self._track_seeds is None:
            if opts.get("track_seed") is not None:
                raise ValueError(f"reset: option track_seed: the racetrack has no seeds, got {opts['track_seed']!r}")
            track_seed = None
        elif opts.get("track_seed") is not None:
            track_seed = opts["track_seed"]
            if not isinstance(track_seed, (int, np.integer)) or isinstance(track_seed, bool) or track_seed < 0:
                raise ValueError(f"reset: option track_seed must be an int >= 0, got {track_seed!r}")
            track_seed = int(track_seed)
        elif seed is not None:
            # a given reset seed picks its track in turn, so seeds 0..n-1 drive every one of n tracks
            track_seed = int(self._track_seeds[int(seed) % len(self._track_seeds)])
        else:
            track_seed = int(self._track_seeds[int(rng.integers(len(self._track_seeds)))])
        self.track_seed = track_seed
        max_curvature = curvature_limit(w.speed_mps, steer_to_curvature(sc.max_steer_rad)) * w.curvature_fraction
        try:
            self.track = t = track_for(sc.track.kind, track_seed, w.lanes, w.lane_width_m, max_curvature)
        except ValueError as exc:  # a scenario built in code, unvalidated: load_scenario refuses these
            raise UserError(
                f"scenario {sc.name!r}: speed_mps {w.speed_mps:g}, track.curvature_fraction {w.curvature_fraction:g}, "
                f"max_steer_rad {sc.max_steer_rad:g}, track.lanes {w.lanes}, track.lane_width_m {w.lane_width_m:g}: "
                f"{exc}"
            ) from None
        self.expert = Expert(t, sc.max_steer_rad, sim_dt_s=self._dt_sim)
        self.lane = int(w.ego_lane) if w.ego_lane >= 0 else int(rng.integers(t.lanes))
        s0 = float(opts["start_s_m"]) if "start_s_m" in opts else float(rng.uniform(0, t.length_m))
        lat = float(opts.get("lateral_offset_m", 0.0))
        x, y, h = t.pose_at(s0, float(t.lane_offsets_m[self.lane]) + lat)
        self.vehicle = _Ego(None, [x, y], wrap_angle(h + float(opts.get("heading_offset_rad", 0.0))), w.speed_mps)
        self._s, self._d, self._hint = t.project(x, y, None)
        self._s_prev = self._s
        self._distance = 0.0
        self._events = 0
        self._steps = 0
        self._steering = 0.0
        self._init_traffic(rng)
        self.camera = self._camera_for(w)
        self._scenery = scenery_for(t, world=w) if self.render_camera else None
        obs = self._observe()
        info = self._info(on_road=abs(self._d) <= t.half_width_m, crashed=False)
        self.world_info = {**w.as_dict(), "ego_lane": self.lane, "track_seed": -1 if track_seed is None else track_seed}
        info["world"] = dict(self.world_info)
        return obs, info

    def step(self, action):
        if self.vehicle is None:
            raise RuntimeError("DriveEnv: call reset() before step()")
        u = self._steering_from(action)
        self._steering = u
        ego = self.vehicle
        ego.action = {"steering": u * self.scenario.max_steer_rad, "acceleration": 0.0}
        crashed = False
        for _ in range(self._substeps):
            ego.step(self._dt_sim)
            if self._n_traffic:
                self._traffic_step(self._dt_sim)
                crashed = crashed or self._collides()
        t = self.track
        self._s, self._d, self._hint = t.project(float(ego.position[0]), float(ego.position[1]), self._hint)
        progress = _wrap_half(self._s - self._s_prev, t.length_m)
        self._distance += progress
        self._s_prev = self._s
        on_road = abs(self._d) <= t.half_width_m
        terminated = False
        if not on_road or crashed:
            if self.off_road == "recover":
                self._events += 1
                self._place_on_lane(self._s + RECOVER_AHEAD_M)
            else:
                terminated = True
        self._steps += 1
        truncated = (not terminated) and self._steps >= self._max_steps
        obs = self._observe()
        return obs, float(progress), terminated, truncated, self._info(on_road=on_road, crashed=crashed)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_topdown()
        return None

    # --- hooks for evaluation ---------------------------------------------------------------

    def push(self, lateral_m: float) -> None:
        """Move the car sideways by ``lateral_m`` (m, positive = left of the lane direction); yaw kept."""
        if not math.isfinite(lateral_m):
            raise ValueError(f"push: lateral_m must be finite, got {lateral_m!r}")
        self._require_reset()
        h = self.track.heading_at(self._s)
        self.vehicle.position = self.vehicle.position + np.array([-math.sin(h), math.cos(h)]) * float(lateral_m)
        self._s, self._d, self._hint = self.track.project(*map(float, self.vehicle.position), self._hint)
        self._s_prev = self._s

    def recenter(self) -> None:
        """Put the car back on its lane centre where it is, facing along the lane."""
        self._require_reset()
        self._place_on_lane(self._s)

    def render_topdown(self, path_xy: np.ndarray | None = None) -> np.ndarray:
        """Heading-up map around the car (RGB uint8), with ``path_xy`` ((N, 2) world m) drawn on it."""
        self._require_reset()
        ego = self.vehicle
        x, y, yaw = float(ego.position[0]), float(ego.position[1]), float(ego.heading)
        scenery = self._scenery if self._scenery is not None else scenery_for(self.track, world=self.world)
        return self.topdown.render(
            scenery,
            x,
            y,
            yaw,
            self._boxes(),
            ego=VehicleBox(x, y, yaw, Vehicle.LENGTH, Vehicle.WIDTH, 1.5, EGO_COLOR),
            path_xy=path_xy,
        )

    @property
    def state(self) -> EgoState:
        """The car's state as the expert sees it."""
        self._require_reset()
        ego = self.vehicle
        return EgoState(
            float(ego.position[0]), float(ego.position[1]), float(ego.heading), float(ego.speed), self.lane, self._hint
        )

    # --- internals --------------------------------------------------------------------------

    def _camera_for(self, w: World) -> Camera:
        """The camera of a drawn mount and fog (a few kept: building one costs a few ms)."""
        cfg = self.scenario.camera.config(w.camera_height_m, w.camera_pitch_rad, w.camera_yaw_rad, w.camera_fov_deg)
        haze = haze_distance_m(w.fog_density, HAZE_DISTANCE_M)
        key = (cfg.height_m, cfg.pitch_rad, cfg.yaw_rad, cfg.fov_deg, haze)
        cam = self._cameras.get(key)
        if cam is None:
            if len(self._cameras) >= 8:
                self._cameras.pop(next(iter(self._cameras)))
            cam = self._cameras[key] = Camera(cfg, haze)
        return cam

    def _require_reset(self) -> None:
        if self.vehicle is None:
            raise RuntimeError("DriveEnv: call reset() first")

    def _steering_from(self, action) -> float:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (1,):
            raise ValueError(f"step: action must hold one steering value, got shape {np.shape(action)}")
        u = float(a[0])
        if not math.isfinite(u):
            raise ValueError(f"step: action steering must be finite, got {u!r}")
        return min(max(u, -1.0), 1.0)

    def _place_on_lane(self, s: float) -> None:
        t = self.track
        x, y, h = t.pose_at(s, float(t.lane_offsets_m[self.lane]))
        self.vehicle.position = np.array([x, y], dtype=np.float64)
        self.vehicle.heading = h
        self._s, self._d, self._hint = t.project(x, y, self._hint)
        self._s_prev = self._s

    def _observe(self) -> np.ndarray:
        if not self.render_camera:
            return self._blank
        ego = self.vehicle
        return self.camera.render(
            self._scenery, float(ego.position[0]), float(ego.position[1]), float(ego.heading), self._boxes()
        )

    def _info(self, on_road: bool, crashed: bool) -> dict[str, Any]:
        t, ego = self.track, self.vehicle
        o = float(t.lane_offsets_m[self.lane])
        speed = float(ego.speed)
        yaw = wrap_angle(float(ego.heading))
        return {
            "lateral_offset_m": self._d - o,
            "heading_error_rad": wrap_angle(yaw - t.heading_at(self._s)),
            "on_road": bool(on_road),
            "crashed": bool(crashed),
            "distance_m": float(self._distance),
            "speed_mps": speed,
            "curvature_ahead_inv_m": t.curvature_at(self._s + CURVATURE_PREVIEW_S * speed, o),
            "expert_steering": self.expert.steering(self.state),
            "dt_s": self._dt,
            "steering_applied": float(self._steering),
            "x_m": float(ego.position[0]),
            "y_m": float(ego.position[1]),
            "yaw_rad": yaw,
            "off_road_events": int(self._events),
            "track_length_m": float(t.length_m),
            "lap_fraction": float(self._s / t.length_m),
        }

    # --- traffic ----------------------------------------------------------------------------

    def _init_traffic(self, rng: np.random.Generator) -> None:
        n = self.scenario.traffic.vehicles
        t = self.track
        others = [i for i in range(t.lanes) if i != self.lane]
        self._n_traffic = n if others else 0
        lanes, ss = [], []
        for _ in range(self._n_traffic):
            for _attempt in range(100):
                lane = others[int(rng.integers(len(others)))]
                s = float(rng.uniform(0, t.length_m))
                near = [abs(_wrap_half(s - s2, t.length_m)) for l2, s2 in zip(lanes, ss) if l2 == lane]
                if abs(_wrap_half(s - self._s, t.length_m)) >= TRAFFIC_MIN_GAP_M and all(
                    g >= TRAFFIC_MIN_GAP_M for g in near
                ):
                    break
            lanes.append(lane)
            ss.append(s)
        self._tr_lane = np.array(lanes, dtype=int)
        self._tr_offset = t.lane_offsets_m[self._tr_lane] if lanes else np.zeros(0)
        self._tr_s = np.array(ss, dtype=float)
        self._tr_v0 = self.scenario.traffic.speed_mps * rng.uniform(0.9, 1.1, self._n_traffic)
        self._tr_v = self._tr_v0.copy()
        self._tr_color = [TRAFFIC_COLORS[int(rng.integers(len(TRAFFIC_COLORS)))] for _ in range(self._n_traffic)]
        self._tr_pose = t.poses(self._tr_s, self._tr_offset) if lanes else (np.zeros(0),) * 3

    def _traffic_step(self, dt: float) -> None:
        t = self.track
        s, v, L = self._tr_s, self._tr_v, t.length_m
        gap = np.full(len(s), np.inf)
        dv = np.zeros(len(s))
        for lane in np.unique(self._tr_lane):
            idx = np.flatnonzero(self._tr_lane == lane)
            if len(idx) < 2:
                continue
            order = idx[np.argsort(s[idx])]
            lead = np.roll(order, -1)
            gap[order] = (s[lead] - s[order]) % L - Vehicle.LENGTH
            dv[order] = v[order] - v[lead]
        a, b = IDMVehicle.COMFORT_ACC_MAX, -IDMVehicle.COMFORT_ACC_MIN
        s_star = IDMVehicle.DISTANCE_WANTED + np.maximum(
            0.0, v * IDMVehicle.TIME_WANTED + v * dv / (2 * math.sqrt(a * b))
        )
        acc = a * (1 - (v / self._tr_v0) ** IDMVehicle.DELTA - (s_star / np.maximum(gap, 0.1)) ** 2)
        v[:] = np.maximum(v + np.clip(acc, -IDMVehicle.ACC_MAX, IDMVehicle.ACC_MAX) * dt, 0.0)
        k = t.curvatures(s)
        s[:] = (s + v * dt / np.maximum(1.0 - self._tr_offset * k, 0.2)) % L
        self._tr_pose = t.poses(s, self._tr_offset)

    def _collides(self) -> bool:
        ego = self.vehicle
        tx, ty, th = self._tr_pose
        d = np.hypot(tx - ego.position[0], ty - ego.position[1])
        near = np.flatnonzero(d < math.hypot(Vehicle.LENGTH, Vehicle.WIDTH))
        if not len(near):
            return False
        poly = ego.polygon()
        for i in near:
            c, s = math.cos(th[i]), math.sin(th[i])
            hl, hw = Vehicle.LENGTH / 2, Vehicle.WIDTH / 2
            pts = np.array(
                [
                    [tx[i] + a * hl * c - w * hw * s, ty[i] + a * hl * s + w * hw * c]
                    for a, w in ((-1, -1), (-1, 1), (1, 1), (1, -1), (-1, -1))
                ]
            )
            if hw_utils.are_polygons_intersecting(poly, pts, np.zeros(2), np.zeros(2))[0]:
                return True
        return False

    def _boxes(self) -> list[VehicleBox]:
        if not self._n_traffic:
            return []
        tx, ty, th = self._tr_pose
        return [
            VehicleBox(float(tx[i]), float(ty[i]), float(th[i]), Vehicle.LENGTH, Vehicle.WIDTH, 1.5, self._tr_color[i])
            for i in range(self._n_traffic)
        ]


def _wrap_half(ds: float, length: float) -> float:
    """Arc-length difference folded into [-length/2, length/2)."""
    return (ds + length / 2) % length - length / 2
