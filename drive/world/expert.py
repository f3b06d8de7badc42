"""The expert driver: keeps its lane centre from the true road geometry, and DART noise for recording.

Vehicle model: highway-env's kinematic bicycle (``highway_env.vehicle.kinematics.Vehicle``): front
wheel angle δ, slip angle β = atan(tan δ / 2), the reference point moves along yaw + β and the
path curvature is κ = 2 sin β / L with L = ``Vehicle.LENGTH`` = 5 m. Positive δ turns left
(counter-clockwise), like positive κ.

Control law (path tracking in road coordinates, with curvature feed-forward): with e_y the lateral
offset from the lane centre (m, left +), θ = yaw + β(κ_l) − κ_l·v·dt/2 − lane heading the angle
between the direction of travel in steady lane following and the lane (β(κ) = asin(κL/2) is the
slip at curvature κ; κ_l·v·dt/2 is the turn of highway-env's explicit Euler step, which moves the
position before the yaw), κ_l the lane curvature and D = ``settle_time_s``·v the settling
distance, the commanded path curvature is

    κ = κ_ff·cos θ / (1 − κ_l·e_y) − (2/D)·sin θ − e_y / D²,

with κ_ff the lane curvature read (L/2)(1 − L/D) m behind, plus half a control step ahead. The
slip follows the steering at once (no tyre dynamics), so the lateral error obeys, linearised,
e' = (1 − L/D)θ − (L/2D²)e and θ' = −(2/D)θ − e/D² + [κ_ff − κ_l + (L/2)κ_l']: stable for any
D > 0 (trace < 0, determinant 1/D²), and the shifted feed-forward cancels the bracket on
curvature ramps, so the error stays at millimetres on the procedural tracks.

DART (Laskey et al., CoRL 2017): when recording, the steering actually applied is the expert's
plus ``SteeringNoise`` (an Ornstein–Uhlenbeck process, std in normalised steering units), while
the label stays the expert's clean steering for the state the car is really in.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from highway_env.vehicle.kinematics import Vehicle

from drive.world.tracks import Track, wrap_angle

WHEELBASE_M = float(Vehicle.LENGTH)
"""highway-env's ``Vehicle.LENGTH`` (5 m): the bicycle's axle distance, m (axles at ±L/2)."""


def steer_to_curvature(delta_rad: float) -> float:
    """Path curvature (1/m) of the bicycle at front-wheel angle δ."""
    return 2.0 * math.sin(math.atan(0.5 * math.tan(delta_rad))) / WHEELBASE_M


def curvature_to_steer(kappa: float) -> float:
    """Front-wheel angle (rad) that makes path curvature κ (1/m); |κ| is capped at 2/L."""
    sb = min(max(kappa * WHEELBASE_M / 2.0, -0.999), 0.999)
    return math.atan(2.0 * math.tan(math.asin(sb)))


@dataclasses.dataclass
class EgoState:
    """What the expert needs to know about the car."""

    x_m: float
    """Position, m."""
    y_m: float
    """Position, m."""
    yaw_rad: float
    """Heading, rad, counter-clockwise from +x."""
    speed_mps: float
    """Speed, m/s."""
    lane: int
    """The lane to keep, 0 = rightmost."""
    index_hint: int | None = None
    """Last track sample index, to speed up projection (or None)."""


@dataclasses.dataclass
class ExpertConfig:
    """Gains of the lane-keeping law."""

    settle_time_s: float = 0.6
    """Time to settle onto the lane centre, s: the settling distance is this times the speed."""
    min_settle_m: float = 4.0
    """Smallest settling distance, m."""
    preview_s: float = 0.025
    """Read the lane curvature this far ahead, s (half a 20 Hz control step: the command is held)."""


class Expert:
    """Lane-centre follower; ``steering(state)`` -> normalised steering in [-1, 1]."""

    def __init__(self, track: Track, max_steer_rad: float, config: ExpertConfig | None = None, sim_dt_s: float = 0.0):
        """``sim_dt_s``: the simulation step, s; highway-env integrates the position before the yaw
        (explicit Euler), so the car really travels ``κ·v·dt/2`` rad to the right of yaw + β."""
        if max_steer_rad <= 0:
            raise ValueError(f"Expert: max_steer_rad must be > 0, got {max_steer_rad}")
        if sim_dt_s < 0:
            raise ValueError(f"Expert: sim_dt_s must be >= 0, got {sim_dt_s}")
        self.track = track
        self.max_steer_rad = float(max_steer_rad)
        self.config = config or ExpertConfig()
        self.sim_dt_s = float(sim_dt_s)

    def curvature(self, state: EgoState) -> float:
        """The commanded path curvature for ``state``, 1/m."""
        t = self.track
        s, d, _ = t.project(state.x_m, state.y_m, state.index_hint)
        o = float(t.lane_offsets_m[state.lane])
        e_y = d - o
        v = max(abs(state.speed_mps), 0.1)
        kl = t.curvature_at(s, o)
        D = max(self.config.min_settle_m, self.config.settle_time_s * v)
        # the slip β follows the command at once, which shifts the feed-forward by (L/2)(1 - L/D) back
        lag_m = 0.5 * WHEELBASE_M * (1.0 - WHEELBASE_M / D)
        k_ff = t.curvature_at(s + self.config.preview_s * v - lag_m, o)
        # direction of travel relative to the lane in steady lane following: slip β and the Euler turn
        beta = math.asin(min(max(kl * WHEELBASE_M / 2.0, -0.999), 0.999))
        theta = wrap_angle(state.yaw_rad + beta - 0.5 * kl * v * self.sim_dt_s - t.heading_at(s))
        denom = 1.0 - kl * e_y
        ff = k_ff * math.cos(theta) / denom if denom > 0.1 else k_ff
        kappa = ff - (2.0 / D) * math.sin(theta) - e_y / (D * D)
        return kappa

    def steering(self, state: EgoState) -> float:
        """The expert's clean steering for ``state``, normalised to [-1, 1]."""
        delta = curvature_to_steer(self.curvature(state))
        return float(min(max(delta / self.max_steer_rad, -1.0), 1.0))


class SteeringNoise:
    """DART noise: an Ornstein–Uhlenbeck process added to the applied (not the recorded) steering."""

    def __init__(self, std: float, dt_s: float, correlation_s: float = 0.5, rng: np.random.Generator | None = None):
        if std < 0 or not math.isfinite(std):
            raise ValueError(f"SteeringNoise: std must be >= 0, got {std}")
        if dt_s <= 0 or correlation_s <= 0:
            raise ValueError(f"SteeringNoise: dt_s and correlation_s must be > 0, got {dt_s}, {correlation_s}")
        self.std = float(std)
        self.a = math.exp(-dt_s / correlation_s)
        self.b = math.sqrt(1 - self.a**2) * self.std
        self.rng = rng if rng is not None else np.random.default_rng()
        self.value = 0.0
        self.reset()

    def reset(self) -> None:
        """Start from a draw of the stationary distribution."""
        self.value = float(self.rng.normal(0.0, self.std)) if self.std > 0 else 0.0

    def sample(self) -> float:
        """Advance one control step; the noise to add, normalised steering units."""
        if self.std == 0:
            return 0.0
        self.value = self.a * self.value + self.b * float(self.rng.standard_normal())
        return self.value
