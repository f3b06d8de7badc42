"""Per-feature statistics in LeRobot v3.0's shape (``meta/stats.json`` and the episodes' ``stats/…`` columns).

For each numeric per-frame column: ``min``, ``max``, ``mean``, ``std`` (population), ``count`` (frames)
and the quantiles ``q01 q10 q50 q90 q99``, each a list of one value. For the camera: the same per colour
channel on pixel values scaled to [0, 1], shaped (3, 1, 1), with ``count`` the number of frames.
Episodes are combined as LeRobot does: count-weighted means, the parallel-variance formula, min of
mins, max of maxes, count-weighted quantiles.

Image statistics use every frame (LeRobot samples up to 100 per episode) and are exact: they come from
per-channel histograms of the uint8 pixels, kept while the frames stream past.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)


class ImageStats:
    """Running per-channel statistics of RGB uint8 frames, from 256-bin histograms (exact)."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        flat = rgb.reshape(-1, 3)
        for c in range(3):
            self.hist[c] += np.bincount(flat[:, c], minlength=256)
        self.frames += 1

    def result(self) -> dict[str, list[float]]:
        """Flat per-channel lists (3 values each; ``count`` one value)."""
        values = np.arange(256, dtype=np.float64) / 255.0
        out: dict[str, list[float]] = {k: [] for k in STAT_KEYS if k != "count"}
        for c in range(3):
            h = self.hist[c]
            n = h.sum()
            nz = np.nonzero(h)[0]
            mean = float((h * values).sum() / n)
            var = float((h * (values - mean) ** 2).sum() / n)
            out["min"].append(float(values[nz[0]]))
            out["max"].append(float(values[nz[-1]]))
            out["mean"].append(mean)
            out["std"].append(math.sqrt(var))
            cdf = np.cumsum(h) / n
            for q, key in zip(QUANTILES, QUANTILE_KEYS):
                out[key].append(float(values[min(int(np.searchsorted(cdf, q)), 255)]))
        return {**out, "count": [float(self.frames)]}


def column_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Statistics of one scalar column over its finite values (all ``nan`` when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {k: [float(len(values))] if k == "count" else [math.nan] for k in STAT_KEYS}
    out = {
        "min": [float(v.min())],
        "max": [float(v.max())],
        "mean": [float(v.mean())],
        "std": [float(v.std())],
        "count": [float(len(v))],
    }
    for key, q in zip(QUANTILE_KEYS, np.quantile(v, QUANTILES)):
        out[key] = [float(q)]
    return out


def aggregate(per_episode: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Combine one feature's statistics over episodes (LeRobot's aggregation)."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    means = np.array([s["mean"] for s in per_episode], dtype=np.float64)
    variances = np.array([s["std"] for s in per_episode], dtype=np.float64) ** 2
    w = counts[:, None]
    total = counts.sum()
    with np.errstate(invalid="ignore"):
        mean = (means * w).sum(axis=0) / total
        var = ((variances + (means - mean) ** 2) * w).sum(axis=0) / total
        out = {
            "min": np.min([s["min"] for s in per_episode], axis=0).tolist(),
            "max": np.max([s["max"] for s in per_episode], axis=0).tolist(),
            "mean": mean.tolist(),
            "std": np.sqrt(var).tolist(),
            "count": [float(total)],
        }
        for key in QUANTILE_KEYS:
            out[key] = ((np.array([s[key] for s in per_episode], dtype=np.float64) * w).sum(axis=0) / total).tolist()
    return out


def to_json(stats: dict[str, dict[str, list[float]]], image_keys: tuple[str, ...]) -> dict[str, Any]:
    """``meta/stats.json``: image statistics reshaped to (3, 1, 1), counts as integers, NaN as null."""

    def clean(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    out: dict[str, Any] = {}
    for feature, s in stats.items():
        d: dict[str, Any] = {}
        for key, values in s.items():
            if key == "count":
                d[key] = [int(values[0])]
            elif feature in image_keys:
                d[key] = [[[clean(v)]] for v in values]
            else:
                d[key] = [clean(v) for v in values]
        out[feature] = d
    return out
