"""The figures: what a driver did, closed loop (an episode in the simulator) and open loop (steering on a recording).

Closed loop: each figure is defined in ``DEFINITIONS`` below (units in the names); the same text is written
into ``metrics.json`` so that the file explains itself. ``MAIN_FIGURES`` are those the tables show
(``drive simulate``'s summary, ``drive stress``'s report, ``drive suite``'s results).

Aggregate over episodes: ``distance_m``, ``off_road_events``, ``nonfinite_actions``,
``dropped_frames``, ``steps`` and ``duration_s`` are totals; ``off_road_per_km`` is total events per
total km; ``max_abs_lateral_m`` is the max; the rest are means over episodes.

Open loop (``drive evaluate``): :func:`steering_metrics` compares a prediction with the recorded label over
one episode; its figures are defined in ``STEERING_DEFINITIONS``.
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

MAIN_FIGURES = (
    "off_road_per_km",
    "mean_abs_lateral_m",
    "max_abs_lateral_m",
    "mean_abs_heading_error_rad",
    "steering_jerk",
    "completed_fraction",
    "nonfinite_actions",
)
"""The closed-loop figures the tables show, in their order."""
EPISODE_FIELDS = ("distance_m", "off_road_events", *MAIN_FIGURES, "dropped_frames", "steps", "duration_s")
"""Every figure of an episode, in the order of ``metrics.json`` and ``cells.csv``."""
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


# ------------------------------------------------------------------------------ open loop: steering

DEFAULT_ALPHA = 2.0
MAX_ALPHA = 10.0
"""The largest loss weighting alpha, for training and evaluation alike: exp(10) = 22,026; past that the
weight of full lock overflows float32 gradients quickly."""
DEFAULT_CURVE_THRESHOLD = 0.1

STEERING_DEFINITIONS = {
    "frames": "frames compared (prediction vs recorded label)",
    "mse": "mean (prediction - label)^2, normalised steering ([-1, 1] = +-max_steer_rad of the dataset)",
    "mae": "mean |prediction - label|, normalised steering",
    "mse_rad2": "mse in radians^2 of front-wheel angle (normalised x the dataset's max_steer_rad)",
    "mae_rad": "mae in radians of front-wheel angle",
    "weighted_mse": "mean exp(alpha |label|) (prediction - label)^2, normalised: the training loss (NCP paper), alpha in the config",
    "curve_mse": "mse over frames with |label| > curve_threshold (normalised); None when there are none",
    "curve_mae": "mae over those frames",
    "straight_mse": "mse over frames with |label| <= curve_threshold",
    "straight_mae": "mae over those frames",
    "curve_fraction": "share of the frames that are curves",
    "bias": "mean (prediction - label), normalised: > 0 steers too far left on average",
    "bias_rad": "bias in radians",
    "lag_frames": "k in [-max_lag, max_lag] minimising mean (prediction[t + k] - label[t])^2: > 0 = the prediction "
    "follows the label k frames late",
    "lag_s": "lag_frames x the median frame period, s",
    "nonfinite": "non-finite predictions (clamped as in closed loop: NaN -> 0, +-inf -> +-1)",
    "dropped_frames": "frames lost to the drop perturbation (previous prediction held)",
}
STEERING_FIGURES = (
    "mse",
    "mae",
    "mse_rad2",
    "mae_rad",
    "weighted_mse",
    "curve_mse",
    "curve_mae",
    "straight_mse",
    "straight_mae",
    "bias",
    "bias_rad",
    "lag_frames",
    "lag_s",
)
STEERING_REPORT_FIGURES = ("mse", "mae_rad", "weighted_mse", "curve_mae", "straight_mae", "bias", "lag_s")


def best_lag(prediction: np.ndarray, label: np.ndarray, max_lag: int) -> int:
    """The shift k (|k| <= max_lag, overlap at least half the frames) minimising mean (p[t + k] - y[t])^2."""
    n = len(label)
    best, best_err = 0, math.inf
    for k in range(-max_lag, max_lag + 1):
        if n - abs(k) < max(1, n // 2):
            continue
        p, y = (prediction[k:], label[: n - k]) if k >= 0 else (prediction[: n + k], label[-k:])
        err = float(np.mean((p - y) ** 2))
        if err < best_err - 1e-15 or (abs(err - best_err) <= 1e-15 and abs(k) < abs(best)):
            best, best_err = k, err
    return best


def steering_metrics(
    prediction: np.ndarray,
    label: np.ndarray,
    max_steer_rad: float,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag: int = 20,
    period_s: float = 0.05,
) -> dict[str, Any]:
    """Open-loop figures of one episode (see ``STEERING_DEFINITIONS``); ``prediction`` and ``label`` normalised."""
    p = np.asarray(prediction, np.float64)
    y = np.asarray(label, np.float64)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(
            f"steering_metrics: prediction {p.shape} and label {y.shape} must be the same non-empty 1-D shape"
        )
    e = p - y
    curve = np.abs(y) > curve_threshold

    def part(mask: np.ndarray, fn) -> float | None:
        return float(fn(e[mask])) if mask.any() else None

    lag = best_lag(p, y, max_lag)
    return {
        "frames": int(len(e)),
        "mse": float(np.mean(e**2)),
        "mae": float(np.mean(np.abs(e))),
        "mse_rad2": float(np.mean(e**2)) * max_steer_rad**2,
        "mae_rad": float(np.mean(np.abs(e))) * max_steer_rad,
        "weighted_mse": float(np.mean(np.exp(alpha * np.abs(y)) * e**2)),
        "curve_mse": part(curve, lambda x: np.mean(x**2)),
        "curve_mae": part(curve, lambda x: np.mean(np.abs(x))),
        "straight_mse": part(~curve, lambda x: np.mean(x**2)),
        "straight_mae": part(~curve, lambda x: np.mean(np.abs(x))),
        "curve_fraction": float(curve.mean()),
        "bias": float(np.mean(e)),
        "bias_rad": float(np.mean(e)) * max_steer_rad,
        "lag_frames": int(lag),
        "lag_s": float(lag * period_s),
    }
