"""The recorded path and the learner's deviation from it (kinematic bicycle, exact in the path's frame).

Vehicle model: highway-env's kinematic bicycle, as ``drive/Drive-v0`` drives it
(:mod:`drive.world.expert`): front-wheel angle δ = normalised steering × ``max_steer_rad``, slip angle
β = atan(tan δ / 2), the reference point (mid-way between the axles) moves along yaw + β, and its path
curvature is κ = 2 sin β / L with the wheelbase L = ``WHEELBASE_M`` = 5 m (highway-env's
``Vehicle.LENGTH``; axles at ±L/2).

The recorded path: per frame k its time t_k (``timestamp``), speed v_k (``observation.speed_mps``) and
the steering applied after it (``observation.steering_applied``; the label ``action.steering`` where that
column is missing or not a number, as in imported drives, whose label is what the driver did), held over
the interval to frame k+1. The recorded car's path curvature κ_r and slip β_r over that interval follow
from it through the model above. (The recorded column ``observation.curvature_inv_m`` is the road's
curvature 0.5 s ahead, a preview, not the car's path: it is not used.) Interval k covers
ds_k = v_k·(t_{k+1} - t_k) m of path.

The learner: its lateral offset e (m, left +) from the recorded path, perpendicular to the path's tangent,
and its heading error ψ (rad, left +) from the recorded car's yaw. It keeps the recorded car's station
(frame k shows where it is after the path's first Σ ds m: the recorded speed and frame times), and with
its own steering (κ_l, β_l) held over the interval its state follows the exact kinematics in the path's
arc length s (no small-angle approximation), with χ = ψ + β_l - β_r its direction of travel against the
path's:

    de/ds = (1 - κ_r·e)·tan χ,        dψ/ds = κ_l·(1 - κ_r·e)/cos χ - κ_r,

integrated by RK4 in sub-steps of at most ``MAX_SUBSTEP_M``. (Keeping the station makes the learner's own
speed v·(1 - κ_r·e)/cos χ: within 2 % of the recorded speed for |e| ≤ 1 m on curves of radius ≥ 50 m and
|χ| ≤ 10°.) A learner that applies the recorded steering from a zero deviation keeps e = ψ = 0 exactly.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from drive.data import layout
from drive.errors import UserError
from drive.world.expert import WHEELBASE_M, steer_to_curvature

_SPEED_FLAGS = " (an imported dataset: drive import --speed-column or --speed-mps)"
MAX_SUBSTEP_M = 0.25
"""Longest RK4 sub-step of the deviation kinematics, m of path."""


def slip_angle(delta_rad: float) -> float:
    """Slip angle β (rad) of the bicycle's reference point at front-wheel angle δ: atan(tan δ / 2)."""
    return math.atan(0.5 * math.tan(delta_rad))


@dataclasses.dataclass(frozen=True)
class RecordedPath:
    """One recorded episode as a path: per frame its time, speed, steering, curvature and slip."""

    t_s: np.ndarray
    """Frame times, s, strictly increasing (N,)."""
    speed_mps: np.ndarray
    """Recorded speed per frame, m/s (N,)."""
    steering: np.ndarray
    """Normalised steering applied after each frame (N,)."""
    curvature_inv_m: np.ndarray
    """Path curvature of the recorded car over the interval after each frame, 1/m, left + (N,)."""
    slip_rad: np.ndarray
    """Slip angle over the interval after each frame, rad (N,)."""
    max_steer_rad: float
    """Front-wheel angle of a normalised steering of 1, rad."""

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def ds_m(self) -> np.ndarray:
        """Path length of each interval k -> k+1, m (N-1,): v_k·(t_{k+1} - t_k)."""
        return self.speed_mps[:-1] * np.diff(self.t_s)


def path_from_table(table: pd.DataFrame, max_steer_rad: float, where: str | Path) -> RecordedPath:
    """The recorded path of one episode's per-frame table; a one-line :class:`UserError` naming ``where``
    and the column for a missing or non-finite speed, frame times that do not increase, or a bad steering."""
    if layout.SPEED not in table.columns:
        raise UserError(
            f"{where}: missing column {layout.SPEED!r}: replay needs the recorded speed of every frame{_SPEED_FLAGS}"
        )
    if not np.isfinite(pd.to_numeric(table[layout.SPEED], errors="coerce")).any():
        raise UserError(
            f"{where}: column {layout.SPEED!r} holds no speed (no finite value): replay needs it per frame{_SPEED_FLAGS}"
        )
    speed = _finite_column(table, layout.SPEED, where)
    if (speed < 0).any():
        row = int(np.flatnonzero(speed < 0)[0])
        raise UserError(f"{where}: column {layout.SPEED!r} is negative at frame {row} (value {speed[row]!r})")
    t = _finite_column(table, layout.TIMESTAMP, where)
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        k = int(back[0]) + 1
        raise UserError(
            f"{where}: column {layout.TIMESTAMP!r} does not increase at frame {k} "
            f"({t[k]!r} s after {t[k - 1]!r} s at frame {k - 1})"
        )
    column = layout.STEERING_APPLIED
    if column not in table.columns or not np.isfinite(pd.to_numeric(table[column], errors="coerce")).all():
        column = layout.STEERING_LABEL
    steering = _finite_column(table, column, where)
    delta = np.clip(steering, -1.0, 1.0) * float(max_steer_rad)
    return RecordedPath(
        t_s=t,
        speed_mps=speed,
        steering=steering,
        curvature_inv_m=np.array([steer_to_curvature(float(d)) for d in delta]),
        slip_rad=np.array([slip_angle(float(d)) for d in delta]),
        max_steer_rad=float(max_steer_rad),
    )


def _finite_column(table: pd.DataFrame, column: str, where: str | Path) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        row = int(bad[0])
        raise UserError(
            f"{where}: column {column!r} is not a finite number at frame {row} "
            f"(value {table[column].iloc[row]!r}); {len(bad)} bad row(s)"
        )
    return values


def advance(
    offset_m: float,
    heading_rad: float,
    ds_m: float,
    curvature_path: float,
    slip_path: float,
    curvature_learner: float,
    slip_learner: float,
) -> tuple[float, float]:
    """The learner's (offset, heading error) after ``ds_m`` m of path, its and the path's steering held
    (see the module docstring: exact kinematics, RK4 in sub-steps of at most :data:`MAX_SUBSTEP_M`)."""
    if ds_m <= 0:
        return offset_m, heading_rad
    kr, kl, db = curvature_path, curvature_learner, slip_learner - slip_path

    def rate(e: float, psi: float) -> tuple[float, float]:
        chi = psi + db
        stretch = 1.0 - kr * e
        return stretch * math.tan(chi), kl * stretch / math.cos(chi) - kr

    n = max(1, math.ceil(ds_m / MAX_SUBSTEP_M))
    h = ds_m / n
    e, psi = float(offset_m), float(heading_rad)
    for _ in range(n):
        a1, b1 = rate(e, psi)
        a2, b2 = rate(e + h / 2 * a1, psi + h / 2 * b1)
        a3, b3 = rate(e + h / 2 * a2, psi + h / 2 * b2)
        a4, b4 = rate(e + h * a3, psi + h * b3)
        e += h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
        psi += h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
    return e, psi


def camera_move(offset_m: float, heading_rad: float, slip_path: float) -> tuple[float, float, float]:
    """The learner car's pose (dx forward m, dy left m, dyaw rad) in the recorded car's frame: the offset
    lies along the path's normal, which is turned by the recorded slip β_r from the car's left axis."""
    return -offset_m * math.sin(slip_path), offset_m * math.cos(slip_path), heading_rad


__all__ = [
    "MAX_SUBSTEP_M",
    "WHEELBASE_M",
    "RecordedPath",
    "advance",
    "camera_move",
    "path_from_table",
    "slip_angle",
]
