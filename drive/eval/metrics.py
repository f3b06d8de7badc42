"""Closed-loop driving figures: what one episode did, and the aggregate over episodes.

Each figure is defined in ``DEFINITIONS`` below (units in the names); the same text is written into
``metrics.json`` so that the file explains itself.

Aggregate over episodes: ``distance_m``, ``off_road_events``, ``nonfinite_actions``,
``dropped_frames``, ``steps`` and ``duration_s`` are totals; ``off_road_per_km`` is total events per
total km; ``max_abs_lateral_m`` is the max; the rest are means over episodes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

DEFINITIONS = {
    "distance_m": "distance driven along the road, m (the env's info['distance_m'] at the end; recover jumps excluded)",
    "off_road_events": "times the car left the road (or crashed); with off_road='recover' the env counts them and puts "
    "the car back on the lane centre; an exit that ends the episode counts as one",
    "off_road_per_km": "off_road_events / (distance_m / 1000); None when nothing was driven",
    "mean_abs_lateral_m": "mean |distance from the lane centre| over the control steps, m",
    "max_abs_lateral_m": "max |distance from the lane centre|, m",
    "mean_abs_heading_error_rad": "mean |car heading - lane heading|, rad",
    "steering_jerk": "mean |s[t] - 2 s[t-1] + s[t-2]| / dt^2: mean absolute second time derivative of the commanded "
    "normalised steering s (clamped, before actuator noise), 1/s^2; dt = control period. 0 for a "
    "constant or linearly ramping command; flipping between -1 and +1 every step at 10 Hz gives 400",
    "completed_fraction": "control steps run / steps the scenario's duration allows (1.0 unless cut short)",
    "nonfinite_actions": "NaN or infinite steering commands, each clamped (NaN -> 0, +-inf -> +-1) before the car",
    "dropped_frames": "frames lost to the drop perturbation (the previous action was held)",
    "steps": "control steps run",
    "duration_s": "sim time driven, s",
}

EPISODE_FIELDS = (
    "distance_m",
    "off_road_events",
    "off_road_per_km",
    "mean_abs_lateral_m",
    "max_abs_lateral_m",
    "mean_abs_heading_error_rad",
    "steering_jerk",
    "completed_fraction",
    "nonfinite_actions",
    "dropped_frames",
    "steps",
    "duration_s",
)
SUMMED = ("distance_m", "off_road_events", "nonfinite_actions", "dropped_frames", "steps", "duration_s")


@dataclasses.dataclass
class EpisodeLog:
    """What the loop records at every control step of one episode, and the totals at its end."""

    planned_steps: int
    """Control steps the scenario's duration allows."""
    control_period_s: float
    """Nominal time between control steps, s (1 / control_hz)."""
    steering: list[float] = dataclasses.field(default_factory=list)
    """Commanded normalised steering at each step (after clamping, before actuator noise)."""
    lateral_m: list[float] = dataclasses.field(default_factory=list)
    """Signed distance from the lane centre after each step, m."""
    heading_error_rad: list[float] = dataclasses.field(default_factory=list)
    """Heading error after each step, rad."""
    dt_s: list[float] = dataclasses.field(default_factory=list)
    """Sim time of each step, s."""
    distance_m: float = 0.0
    """Distance driven along the road at the end, m."""
    off_road_events: int = 0
    """Times the car left the road."""
    nonfinite_actions: int = 0
    """Non-finite steering commands that were clamped."""
    dropped_frames: int = 0
    """Frames the policy did not get."""

    def add_step(self, steering: float, info: Mapping[str, Any]) -> None:
        """Record one control step from the command and the env's ``info`` after it."""
        self.steering.append(float(steering))
        self.lateral_m.append(float(info["lateral_offset_m"]))
        self.heading_error_rad.append(float(info["heading_error_rad"]))
        self.dt_s.append(float(info.get("dt_s", self.control_period_s)))
        self.distance_m = float(info["distance_m"])


def steering_jerk(steering: Sequence[float], dt_s: float) -> float:
    """Mean |second difference| of the steering over dt², 1/s² (0 with fewer than 3 samples)."""
    s = np.asarray(steering, dtype=np.float64)
    if s.size < 3:
        return 0.0
    return float(np.mean(np.abs(np.diff(s, n=2))) / dt_s**2)


def per_km(events: float, distance_m: float) -> float | None:
    """Events per km driven, or None when no distance was driven."""
    return events / (distance_m / 1000.0) if distance_m > 0 else None


def episode_metrics(log: EpisodeLog) -> dict[str, float | int | None]:
    """The figures of one episode (see the module docstring)."""
    lat = np.abs(np.asarray(log.lateral_m, dtype=np.float64))
    head = np.abs(np.asarray(log.heading_error_rad, dtype=np.float64))
    steps = len(log.steering)
    return {
        "distance_m": float(log.distance_m),
        "off_road_events": int(log.off_road_events),
        "off_road_per_km": per_km(log.off_road_events, log.distance_m),
        "mean_abs_lateral_m": float(lat.mean()) if lat.size else 0.0,
        "max_abs_lateral_m": float(lat.max()) if lat.size else 0.0,
        "mean_abs_heading_error_rad": float(head.mean()) if head.size else 0.0,
        "steering_jerk": steering_jerk(log.steering, log.control_period_s),
        "completed_fraction": min(1.0, steps / log.planned_steps) if log.planned_steps > 0 else 1.0,
        "nonfinite_actions": int(log.nonfinite_actions),
        "dropped_frames": int(log.dropped_frames),
        "steps": steps,
        "duration_s": float(sum(log.dt_s)),
    }


def aggregate(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Totals, pooled rate and means over episodes (see the module docstring)."""
    if not episodes:
        raise ValueError("aggregate: no episodes to aggregate")
    out: dict[str, Any] = {"episodes": len(episodes)}
    for key in EPISODE_FIELDS:
        values = [e[key] for e in episodes]
        if key in SUMMED:
            out[key] = type(values[0])(sum(values))
        elif key == "off_road_per_km":
            continue
        elif key == "max_abs_lateral_m":
            out[key] = float(max(values))
        else:
            out[key] = float(np.mean(values))
    out["off_road_per_km"] = per_km(out["off_road_events"], out["distance_m"])
    return {k: out[k] for k in ("episodes", *EPISODE_FIELDS)}


def summarise_across_seeds(rows: Sequence[Mapping[str, Any]], fields: Sequence[str] = EPISODE_FIELDS) -> dict[str, Any]:
    """Mean, std, min and max of each figure over seeds (None values are left out), plus n_seeds."""
    out: dict[str, Any] = {"n_seeds": len(rows)}
    for key in fields:
        values = np.array([r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])], dtype=np.float64)
        if values.size == 0:
            out.update({key: None, f"{key}_std": None, f"{key}_min": None, f"{key}_max": None})
            continue
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[f"{key}_min"] = float(values.min())
        out[f"{key}_max"] = float(values.max())
    return out


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], floatfmt: str = ".3g") -> str:
    """A markdown table of ``rows`` (None shown as ``–``)."""

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
