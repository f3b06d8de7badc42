"""Statistics for comparing trained drivers: the training seed is the unit of inference.

A study drives every model family (ncp19, lstm, …) with several *training seeds* over the same
*conditions* (a condition is one stress seed: a test track and the seed of its camera noise). Its raw
table has one row per (family, train_seed, level, condition) with the figures of that episode.

- :func:`two_stage_bootstrap_ci`: the mean of a figure and its two-stage bootstrap interval: resample
  training seeds with replacement, then conditions within each drawn seed (Davison & Hinkley 1997, §3.8),
  so the interval reflects seed-to-seed variation and not only the luck of the tracks.
- :func:`bootstrap_mean_ci`: the plain one-stage bootstrap interval of a mean (``drive evaluate``: one
  value per episode, resampled as they are).
- :func:`paired_test`: one family against another on the same conditions. Each condition's figure is
  first averaged over the family's training seeds; the paired differences are then tested with
  ``scipy.stats.permutation_test`` (sign flips, two-sided) or ``scipy.stats.wilcoxon``. The test
  conditions on the trained seeds (it asks whether *these* trained models differ); seed-to-seed
  variation enters through the bootstrap interval. With 3 seeds a family, a test whose unit is the seed
  cannot reach p < 0.05 (a two-sided permutation of 3 + 3 seeds has 20 arrangements, p ≥ 0.1), so
  a claim should cite both: the paired p-value and intervals that do not overlap.
- :func:`holm`: Holm's step-down correction of a family of p-values (Holm 1979).
- :func:`compare_families`: the table a report shows: per family and level the mean with its interval,
  and the reference family's paired test against each other family, Holm-corrected per level.
- :func:`rank_agreement`: how well one figure ranks models like another (Spearman's rho, a paired
  bootstrap interval), e.g. offline steering error against closed-loop off-road per km.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

FAMILY, SEED, LEVEL, CONDITION = "family", "train_seed", "level", "condition"
MIN_OBSERVATIONS = 2
"""The fewest values an interval (finite observations of a family at a level) or a paired test (conditions
both families share) needs; with fewer, the statistic is NaN (a report says it is omitted, and why)."""


def two_stage_bootstrap_ci(
    table: pd.DataFrame,
    value: str,
    confidence: float = 0.95,
    n_resamples: int = 4000,
    seed: int = 0,
    seed_col: str = SEED,
    condition_col: str = CONDITION,
) -> tuple[float, float, float]:
    """(mean, low, high) of ``value`` with a two-stage percentile bootstrap over seeds, then conditions.

    ``table`` holds one family at one level: one row per (training seed, condition). With a single
    training seed this is the ordinary bootstrap over conditions. A single observation (one training seed,
    one condition) has no interval: ``low`` and ``high`` are NaN (see :data:`MIN_OBSERVATIONS`).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    groups = [g[value].to_numpy(dtype=float) for _, g in table.groupby(seed_col, sort=True)]
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean([g.mean() for g in groups]))
    if sum(g.size for g in groups) < MIN_OBSERVATIONS:  # resampling one value gives a zero-width "interval"
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_seeds = len(groups)
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))  # stage 1: which seeds
    stats_ = np.zeros(n_resamples)
    for k, g in enumerate(groups):  # stage 2: conditions within each drawn seed, vectorised per seed
        times = (picks == k).sum(axis=1)  # how often seed k was drawn in each resample
        if not times.any():
            continue
        draws = rng.integers(0, g.size, size=(n_resamples, times.max(), g.size))
        means = g[draws].mean(axis=2)  # (n_resamples, max draws)
        mask = np.arange(times.max())[None, :] < times[:, None]
        stats_ += (means * mask).sum(axis=1)
    stats_ /= n_seeds
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats_, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def condition_means(table: pd.DataFrame, value: str, seed_col: str = SEED, condition_col: str = CONDITION) -> pd.Series:
    """``value`` per condition, averaged over training seeds (index: condition)."""
    del seed_col  # the average runs over every row of a condition, i.e. over the seeds
    return table.groupby(condition_col, sort=True)[value].mean()


def paired_test(
    a: Sequence[float], b: Sequence[float], method: str = "permutation", n_resamples: int = 9999, seed: int = 0
) -> float:
    """Two-sided p-value that paired samples ``a`` and ``b`` (same conditions, same order) differ in mean.

    ``permutation``: random sign flips of the paired differences (exact when 2^n ≤ n_resamples);
    ``wilcoxon``: the signed-rank test (zero differences split, as they are common for event counts).
    Identical samples give p = 1. Fewer than :data:`MIN_OBSERVATIONS` finite pairs admit no test: NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and the same length, got {a.shape} and {b.shape}")
    if method not in ("permutation", "wilcoxon"):
        raise ValueError(f"method must be 'permutation' or 'wilcoxon', got {method!r}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size < MIN_OBSERVATIONS:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    if method == "wilcoxon":
        return float(stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)
    res = stats.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def compare_families(
    table: pd.DataFrame,
    value: str,
    reference: str = "ncp19",
    confidence: float = 0.95,
    method: str = "permutation",
    n_resamples: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per family and level: n_seeds, mean, CI; and the reference's paired test against that family.

    ``table`` columns: ``family``, ``train_seed``, ``level``, ``condition`` and ``value``. The p-values of
    the reference against every other family at one level are Holm-corrected together (``p_holm``).
    ``diff`` is other − reference, so a positive ``diff`` of off-road per km means the reference is better.
    """
    missing = {FAMILY, SEED, LEVEL, CONDITION, value} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}")
    rows = []
    for level, at_level in table.groupby(LEVEL, sort=True):
        ref = at_level[at_level[FAMILY] == reference]
        ref_means = condition_means(ref, value) if len(ref) else None
        level_rows = []
        for family, sel in at_level.groupby(FAMILY, sort=False):
            mean, low, high = two_stage_bootstrap_ci(sel, value, confidence, n_resamples, seed)
            row = {
                FAMILY: family,
                LEVEL: level,
                "n_seeds": sel[SEED].nunique(),
                "n_conditions": sel[CONDITION].nunique(),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "diff": np.nan,
                "p": np.nan,
            }
            if ref_means is not None and family != reference:
                other = condition_means(sel, value)
                common = ref_means.index.intersection(other.index)
                row["diff"] = float((other[common] - ref_means[common]).mean()) if len(common) else np.nan
                row["p"] = (
                    paired_test(other[common].to_numpy(), ref_means[common].to_numpy(), method, seed=seed)
                    if len(common)
                    else np.nan
                )
            level_rows.append(row)
        adjusted = holm([r["p"] for r in level_rows])
        for r, p in zip(level_rows, adjusted):
            r["p_holm"] = p
        rows += level_rows
    return pd.DataFrame(rows)


def bootstrap_mean_ci(
    values: Sequence[float], seed: int = 0, n_resamples: int = 2000
) -> tuple[float | None, float | None]:
    """95 % bootstrap CI of the mean of ``values`` (e.g. one figure over episodes), resampled as they are
    (scipy, BCa; percentile when BCa is undefined); None and non-finite values are left out.

    None, None with fewer than two values; (v, v) when all values are equal.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if len(x) < 2:
        return None, None
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (x,),
                np.mean,
                confidence_level=0.95,
                n_resamples=n_resamples,
                method=method,
                random_state=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return None, None


def rank_agreement(x: Sequence[float], y: Sequence[float], seed: int = 0, n_resamples: int = 2000) -> dict[str, Any]:
    """How well ``x`` ranks like ``y`` (e.g. offline error against closed-loop off-road per km, one pair per model).

    Spearman's rho (``scipy.stats.spearmanr``) with its p-value, and a 95 % percentile interval from a paired
    ``scipy.stats.bootstrap`` over the pairs; resamples whose rho is undefined (a constant side) are left out of
    the interval, and their share is reported. rho is None when either side is constant.
    """
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out: dict[str, Any] = {
        "n": int(len(a)),
        "rho": None,
        "p_value": None,
        "ci_low": None,
        "ci_high": None,
        "undefined_resamples": None,
    }
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    res = stats.spearmanr(a, b)
    out["rho"], out["p_value"] = float(res.statistic), float(res.pvalue)

    def rho(u, v):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            return np.nan
        return stats.spearmanr(u, v).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = stats.bootstrap(
            (a, b),
            rho,
            paired=True,
            vectorized=False,
            n_resamples=n_resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    dist = np.asarray(boot.bootstrap_distribution, np.float64)
    ok = dist[np.isfinite(dist)]
    out["undefined_resamples"] = float(1.0 - len(ok) / len(dist))
    if len(ok):
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(ok, [2.5, 97.5]))
    return out
