"""drive.eval.stats against known answers on synthetic study tables."""

import numpy as np
import pandas as pd
import pytest

from drive.eval import stats as S


def _table(
    shift: float = 0.0, seeds: int = 3, conditions: int = 30, seed: int = 0, seed_sd: float = 0.0
) -> pd.DataFrame:
    """Two families on the same conditions; 'other' = 'ncp19' + shift, with independent noise.

    ``seed_sd`` adds a per-training-seed offset (what the bootstrap, not the paired test, accounts for).
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.gamma(2.0, 1.0, size=conditions)  # shared by both families: what pairing removes
    rows = []
    for family, offset in (("ncp19", 0.0), ("other", shift)):
        for s in range(seeds):
            seed_effect = rng.normal(0, seed_sd) if seed_sd else 0.0
            for c in range(conditions):
                rows.append(
                    {
                        "family": family,
                        "train_seed": s,
                        "level": 0.1,
                        "condition": c,
                        "off_road_per_km": difficulty[c] + offset + seed_effect + rng.normal(0, 0.3),
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("method", ["permutation", "wilcoxon"])
def test_identical_families_are_not_significant(method):
    p_values = [
        S.compare_families(_table(0.0, seed=k), "off_road_per_km", method=method, n_resamples=500)
        .set_index("family")
        .loc["other", "p"]
        for k in range(5)
    ]
    assert sum(p < 0.05 for p in p_values) <= 1  # a level-0.05 test rarely rejects
    assert np.median(p_values) > 0.2


@pytest.mark.parametrize("method", ["permutation", "wilcoxon"])
def test_a_shifted_family_is_significant(method):
    res = S.compare_families(_table(1.0), "off_road_per_km", method=method, n_resamples=500).set_index("family")
    assert res.loc["other", "p"] < 1e-3
    assert res.loc["other", "diff"] == pytest.approx(1.0, abs=0.25)
    assert np.isnan(res.loc["ncp19", "p"])


def test_identical_samples_give_p_one():
    x = np.arange(10.0)
    assert S.paired_test(x, x) == 1.0
    assert S.paired_test(x, x, method="wilcoxon") == 1.0


def test_bootstrap_interval_covers_the_true_mean_and_narrows_with_data():
    rng = np.random.default_rng(1)
    covered = 0
    for k in range(40):
        t = pd.DataFrame(
            {
                "train_seed": np.repeat(np.arange(5), 20),
                "condition": np.tile(np.arange(20), 5),
                "v": rng.normal(2.0, 1.0, 100),
            }
        )
        mean, lo, hi = S.two_stage_bootstrap_ci(t, "v", n_resamples=1000, seed=k)
        assert lo <= mean <= hi
        covered += lo <= 2.0 <= hi
    assert covered >= 33  # nominal 95 % of 40 = 38; allow for the small-sample bootstrap's undercoverage
    small = pd.DataFrame({"train_seed": 0, "condition": range(10), "v": rng.normal(0, 1, 10)})
    large = pd.DataFrame({"train_seed": 0, "condition": range(1000), "v": rng.normal(0, 1, 1000)})
    _, lo_s, hi_s = S.two_stage_bootstrap_ci(small, "v", n_resamples=1000)
    _, lo_l, hi_l = S.two_stage_bootstrap_ci(large, "v", n_resamples=1000)
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_seed_to_seed_variation_widens_the_interval():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 0.1, 60)
    steady = pd.DataFrame({"train_seed": np.repeat([0, 1, 2], 20), "condition": np.tile(range(20), 3), "v": base})
    spread = steady.assign(v=base + np.repeat([-1.0, 0.0, 1.0], 20))
    _, lo1, hi1 = S.two_stage_bootstrap_ci(steady, "v", n_resamples=2000)
    _, lo2, hi2 = S.two_stage_bootstrap_ci(spread, "v", n_resamples=2000)
    assert hi2 - lo2 > 5 * (hi1 - lo1)


def test_holm_matches_a_hand_computed_example():
    np.testing.assert_allclose(S.holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    np.testing.assert_allclose(S.holm([0.5, 0.9]), [1.0, 1.0])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same length"):
        S.paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="lacks column"):
        S.compare_families(pd.DataFrame({"family": []}), "v")


def test_the_one_stage_bootstrap_of_a_mean():
    assert S.bootstrap_mean_ci([1.0]) == (None, None)  # one value: no interval
    assert S.bootstrap_mean_ci([2.0, 2.0, None, float("nan")]) == (2.0, 2.0)  # None and NaN left out
    lo, hi = S.bootstrap_mean_ci([0.1, 0.4, 0.2, 0.8, 0.5, 0.3], n_resamples=500)
    assert lo < np.mean([0.1, 0.4, 0.2, 0.8, 0.5, 0.3]) < hi


def test_a_stored_result_is_reused_only_with_its_key_and_files(tmp_path):
    import json

    from drive.eval.sweep import Model, load_finished, resume_key

    key = resume_key(1, Model("m", "expert", "expert"), "gaussian", 0.1, segment=(0, 0, 5))
    path = tmp_path / "u.json"
    path.write_text(json.dumps({"key": key, "video": str(tmp_path / "v.mp4")}))
    assert load_finished(path, key) is not None  # tuples compare as the JSON lists they were written as
    assert load_finished(path, {**key, "level": 0.2}) is None
    assert load_finished(path, key, files=("video",)) is None  # the video it names is gone
    (tmp_path / "v.mp4").write_bytes(b"")
    assert load_finished(path, key, files=("video",)) is not None
