"""Bad numbers on the evaluation verbs' command lines: one line naming the flag and the value, exit status 2,
before any work and before the output folder is made."""

from __future__ import annotations

import pytest

from drive.cli import main


@pytest.mark.parametrize("verb", ["simulate", "evaluate", "explain"])
@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5", "x"])
def test_a_bad_seed_is_one_line(verb, seed, tmp_path, capsys):
    argv = [verb, "--seed", seed, "--out", str(tmp_path / "out")] + (
        ["--data", str(tmp_path)] if verb == "evaluate" else []
    )
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"drive {verb}: error: argument --seed:") and repr(seed) in err
    assert not (tmp_path / "out").exists()


def test_seed_type_accepts_the_whole_range():
    from drive.commands.common import seed_type

    assert seed_type("0") == 0 and seed_type(str(2**32 - 1)) == 2**32 - 1


@pytest.mark.parametrize("seeds", ["1,-2", "0,4294967296", "4294967297", "10001"])
def test_stress_seeds_out_of_range_are_one_line(seeds, tmp_path, capsys):
    assert main(["stress", "--checkpoint", "expert", "--seeds", seeds, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--seeds" in err and repr(seeds) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("alpha", ["1e6", "10.5", "-1", "nan", "inf"])
def test_evaluate_alpha_outside_the_finite_range_is_one_line(alpha, tmp_path, capsys):
    rc = main(["evaluate", "--data", str(tmp_path / "missing"), "--alpha", alpha, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("drive evaluate: error: --alpha:")
    assert not (tmp_path / "out").exists()


def test_the_largest_alpha_keeps_the_weighted_mse_finite():
    import numpy as np

    from drive.eval.metrics import MAX_ALPHA, steering_metrics

    label = np.linspace(-1.0, 1.0, 21)
    for dtype in (np.float32, np.float64):
        weight = np.exp(dtype(MAX_ALPHA) * np.abs(label).astype(dtype))
        assert np.isfinite(weight).all() and np.isfinite((weight * dtype(2.0) ** 2).sum())
    m = steering_metrics(label + 0.1, label, max_steer_rad=0.5, alpha=MAX_ALPHA, max_lag=2)
    assert np.isfinite(m["weighted_mse"]) and m["weighted_mse"] > m["mse"]
