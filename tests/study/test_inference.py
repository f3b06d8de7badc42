"""Seed-level inference on synthetic data with known answers: a true difference is found, no difference gives
p roughly uniform, the interval's coverage holds at n = 10 on normal and skewed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drive.study.inference import (
    compare,
    coverage,
    mean_interval,
    minimum_detectable_difference,
    seed_level_table,
    seed_means,
    verdict,
)


@pytest.mark.parametrize(
    "name, sample, true_mean",
    [
        ("normal", lambda rng, n: rng.normal(1.0, 1.0, n), 1.0),
        ("exponential", lambda rng, n: rng.exponential(1.0, n), 1.0),
        ("gamma k=0.5", lambda rng, n: rng.gamma(0.5, 2.0, n), 1.0),
    ],
)
def test_the_interval_over_ten_seeds_covers_at_least_93_percent(name, sample, true_mean):
    # 600 studies: the standard error of a 95 % coverage estimate is 0.9 %, so 0.93 sits > 2 SE below
    assert coverage(sample, true_mean, n=10, reps=600, n_resamples=499) >= 0.93


def test_a_true_difference_between_families_is_found():
    rng = np.random.default_rng(1)
    found = [
        compare(rng.normal(0, 1, 10), rng.normal(2.0, 1, 10), permutation=False)["p_welch"] < 0.05 for _ in range(100)
    ]
    assert np.mean(found) > 0.9  # power of Welch at d = 2, n = 10 is ~0.99


def test_no_difference_gives_roughly_uniform_p_values():
    rng = np.random.default_rng(2)
    p = np.array(
        [compare(rng.exponential(1, 10), rng.exponential(1, 10), permutation=False)["p_welch"] for _ in range(400)]
    )
    assert 0.02 <= np.mean(p < 0.05) <= 0.09
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_the_permutation_test_on_three_seeds_cannot_go_below_0_1():
    """With 3 seeds a side there are 20 relabellings: the smallest two-sided exact p is 2/20."""
    r = compare([0.0, 0.1, 0.2], [5.0, 5.1, 5.2])
    assert r["p_perm"] == pytest.approx(0.1)
    assert r["diff"] == pytest.approx(5.0)


def test_fewer_than_two_seeds_give_no_interval_and_equal_values_give_the_point():
    assert np.isnan(mean_interval([1.0])[1])
    assert mean_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert np.isnan(compare([1.0], [2.0, 3.0])["p_welch"])


def test_the_table_averages_conditions_within_a_seed_before_testing():
    rng = np.random.default_rng(3)
    rows = []
    for family, shift in (("ncp19", 0.0), ("lstm", 0.0), ("cnn", 2.0)):
        for seed in range(5):
            seed_effect = rng.normal(0, 0.3)  # the seed, not the conditions, carries the variance
            for condition in range(30):
                rows.append(
                    {
                        "kind": "gaussian",
                        "level": 0.1,
                        "family": family,
                        "train_seed": seed,
                        "condition": condition,
                        "off": shift + seed_effect + rng.normal(0, 0.01),
                    }
                )
    cells = pd.DataFrame(rows)
    means = seed_means(cells, "off")
    assert len(means) == 15 and (means["n_conditions"] == 30).all()
    table = seed_level_table(cells, ["off"]).set_index("family")
    assert (table["n_seeds"] == 5).all()
    assert table.loc["cnn", "p_holm"] < 0.05 < table.loc["lstm", "p_holm"]
    assert table.loc["cnn", "diff_low"] < 2.0 < table.loc["cnn", "diff_high"]
    assert np.isnan(table.loc["ncp19", "p_holm"])


@pytest.mark.parametrize("sd_a, n_a, sd_b, n_b", [(1.0, 10, 1.0, 10), (0.5, 3, 2.0, 3), (1.0, 10, 3.0, 5)])
def test_the_minimum_detectable_difference_is_found_with_80_percent_power(sd_a, n_a, sd_b, n_b):
    delta = minimum_detectable_difference(sd_a, n_a, sd_b, n_b)
    rng = np.random.default_rng(5)
    a = rng.normal(0.0, sd_a, (20_000, n_a))
    b = rng.normal(delta, sd_b, (20_000, n_b))
    power = (stats.ttest_ind(b, a, axis=1, equal_var=False).pvalue < 0.05).mean()
    assert power == pytest.approx(0.8, abs=0.03)  # the noncentral t with Satterthwaite df approximates Welch
    assert minimum_detectable_difference(sd_a, n_a, sd_b, n_b, power=0.9) > delta
    assert minimum_detectable_difference(sd_a, 2 * n_a, sd_b, 2 * n_b) < delta
    assert np.isnan(minimum_detectable_difference(1.0, 1, 1.0, 10))
    assert minimum_detectable_difference(0.0, 3, 0.0, 3) == 0.0


def test_the_verdict_rule_needs_holm_p_and_an_interval_excluding_zero():
    better = {"diff": 2.0, "diff_low": 0.5, "diff_high": 3.5, "p_holm": 0.01}  # family − ncp19 > 0
    assert verdict(better, lower_is_better=True) == "reproduced"
    assert verdict(better, lower_is_better=False) == "contradicted"
    assert verdict({**better, "p_holm": 0.2}, lower_is_better=True) == "inconclusive"
    assert verdict({**better, "diff_low": -0.1}, lower_is_better=True) == "inconclusive"
    assert verdict({"diff": 1.0}, lower_is_better=True) == "inconclusive"  # not tested (too few seeds)


def test_few_seeds_get_students_t_interval_not_a_degenerate_bootstrap():
    """At n = 3 a studentized bootstrap resample (a, a, b) has a near-zero standard error, and the bound ran to
    ±1e16; below MIN_BOOTSTRAP_N the interval is Student's t interval, finite and symmetric about the mean."""
    import numpy as np
    from scipy import stats

    from drive.study.inference import MIN_BOOTSTRAP_N, mean_interval

    x = np.array([0.332, 0.248, 1.504])
    mean, low, high = mean_interval(x)
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert MIN_BOOTSTRAP_N > 3
    assert np.isclose(mean, x.mean()) and np.isclose(low, mean - half) and np.isclose(high, mean + half)
    wide = mean_interval(np.arange(MIN_BOOTSTRAP_N, dtype=float))
    assert np.all(np.isfinite(wide)) and wide[1] < wide[0] < wide[2]
