"""`drive stress`: the documented outputs, a clean baseline, per-seed determinism and resumable cells."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from drive.cli import main
from drive.eval import metrics as M
from drive.eval.stress import parse_seeds, stress


def run_sweep(tmp_path, ckpt, scenario, workers=0, out="sweep"):
    return stress(
        [str(ckpt)],
        ["gaussian:0.1,0.3", "drop:0.5"],
        tmp_path / out,
        scenario=scenario,
        episodes=1,
        seeds="0,1",
        workers=workers,
        progress=False,
    )


def test_sweep_writes_the_documented_schema_and_a_rerun_skips_finished_cells(tmp_path, tiny_checkpoint, make_scenario):
    ckpt = tiny_checkpoint("ncp19")
    sc = make_scenario(1.5)
    first = run_sweep(tmp_path, ckpt, sc)
    out = tmp_path / "sweep"
    # cells: 2 models (ncp19 + expert) x (clean + 3 perturbed levels) x 2 seeds
    assert first["cells"] == first["computed"] == 16 and first["reused"] == 0
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == 16

    df = pd.read_csv(out / "results.csv")
    # rows: model x kind x level, level 0 (the clean baseline) included for every kind
    assert len(df) == 2 * (3 + 2)
    assert set(zip(df["kind"], df["level"])) == {
        ("gaussian", 0.0),
        ("gaussian", 0.1),
        ("gaussian", 0.3),
        ("drop", 0.0),
        ("drop", 0.5),
    }
    for figure in M.EPISODE_FIELDS:
        for suffix in ("", "_std", "_min", "_max"):
            assert f"{figure}{suffix}" in df.columns
    assert (df["n_seeds"] == 2).all()
    expert = df[df["model"] == "expert"]
    assert (expert["off_road_per_km"] == 0).all()
    clean = df[df["level"] == 0].groupby("model")["mean_abs_lateral_m"].nunique()
    assert (clean == 1).all()  # every kind's level 0 is the same clean cells

    results = json.loads((out / "results.json").read_text())
    assert results["config"]["computed"] == 16 and len(results["rows"]) == len(df)
    report = (out / "report.md").read_text()
    assert "| model | kind | level |" in report and "robustness_gaussian.png" in report
    assert (out / "robustness_gaussian.png").stat().st_size > 0 and (out / "robustness_drop.png").stat().st_size > 0

    stamps = {p.name: p.stat().st_mtime_ns for p in cells}
    second = run_sweep(tmp_path, ckpt, sc)
    assert second["computed"] == 0 and second["reused"] == 16
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps
    assert pd.read_csv(out / "results.csv").equals(df)


def test_a_changed_input_recomputes_only_the_affected_cells(tmp_path, tiny_checkpoint, make_scenario):
    ckpt = tiny_checkpoint("cnn")
    stress(
        [str(ckpt)], ["gaussian:0.2"], tmp_path / "s", scenario=make_scenario(1.0), seeds=[0], workers=0, progress=False
    )
    again = stress(
        [str(ckpt)],
        ["gaussian:0.2", "blur:2"],
        tmp_path / "s",
        scenario=make_scenario(1.0),
        seeds=[0],
        workers=0,
        progress=False,
    )
    assert again["reused"] == 4 and again["computed"] == 2  # blur:2 for the cnn and the expert
    longer = stress(
        [str(ckpt)], ["gaussian:0.2"], tmp_path / "s", scenario=make_scenario(1.5), seeds=[0], workers=0, progress=False
    )
    assert longer["reused"] == 0  # a different scenario invalidates the stored cells


@pytest.mark.slow
def test_worker_processes_give_the_same_cells_as_in_process(tmp_path, tiny_checkpoint, make_scenario):
    ckpt = tiny_checkpoint("ncp19")
    sc = make_scenario(1.5)
    run_sweep(tmp_path, ckpt, sc, workers=0, out="serial")
    run_sweep(tmp_path, ckpt, sc, workers=2, out="parallel")
    for cell in (tmp_path / "serial" / "cells").glob("*.json"):
        a = json.loads(cell.read_text())
        b = json.loads((tmp_path / "parallel" / "cells" / cell.name).read_text())
        assert a["metrics"] == b["metrics"] and a["episodes"] == b["episodes"]


def test_parse_seeds():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,7") == [4, 7]
    for bad in ("0", "a,b", "1,1", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_cli_rejects_a_bad_perturbation_cleanly(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:  # the flag's type refuses it: argparse's one line, before any work
        main(["stress", "--checkpoint", str(tiny_checkpoint()), "--perturb", "gaussian:zero", "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "--perturb" in err and "'zero'" in err


def test_a_sweep_of_trained_families_writes_statistics(tmp_path, make_scenario):
    """Checkpoints that carry a family and a training seed get cells.csv, stats.csv, a statistics section and
    bands; the statistics are compare_families over the stress seeds as conditions."""
    from drive.eval.stats import compare_families
    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy

    ckpts = []
    for family in ("ncp19", "cnn"):
        for seed in (0, 1):
            torch.manual_seed(seed)
            policy = build_policy(family, frame_period_s=0.05, max_steer_rad=0.35)
            ckpts.append(
                str(save_checkpoint(policy, tmp_path / "zoo" / f"{family}-s{seed}", extra={"training": {"seed": seed}}))
            )
    result = stress(
        ckpts, ["gaussian:0.04"], tmp_path / "s", scenario=make_scenario(1.0), seeds=[0, 1], workers=0, progress=False
    )
    out = tmp_path / "s"
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells.columns) >= {"model", "family", "train_seed", "kind", "level", "sigma", "condition"}
    models = cells[cells["family"].notna()]
    assert set(zip(models["family"], models["train_seed"])) == {("ncp19", 0), ("ncp19", 1), ("cnn", 0), ("cnn", 1)}
    assert set(models["condition"]) == {0, 1} and set(models["level"]) == {0.0, 0.04}
    assert cells[cells["model"] == "expert"]["family"].isna().all()

    stats = pd.read_csv(out / "stats.csv")
    assert set(stats["family"]) == {"ncp19", "cnn"} and set(stats["figure"]) == {
        "mean_abs_lateral_m",
        "off_road_per_km",
    }
    assert (stats["n_seeds"] == 2).all() and (stats["n_conditions"] == 2).all()
    assert stats.loc[stats["level"] == 0.04, "sigma"].to_numpy() == pytest.approx(0.2)
    assert stats.loc[stats["family"] == "ncp19", "p"].isna().all()  # the reference is not tested against itself
    assert stats.loc[stats["family"] == "cnn", "p"].notna().all()
    assert stats["primary"].sum() == len(stats) / 2
    expected = compare_families(models[models["kind"] == "gaussian"].astype({"train_seed": int}), "mean_abs_lateral_m")
    got = stats[(stats["figure"] == "mean_abs_lateral_m")]
    assert got["mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy())
    assert got["ci_low"].to_numpy() == pytest.approx(expected["ci_low"].to_numpy())
    assert result["stats"] is not None and len(result["stats"]) == len(stats)

    report = (out / "report.md").read_text()
    assert "## Statistics" in report and "σ²=0.04 (σ=0.2)" in report and "mean abs lateral (m)" in report
    assert (out / "robustness_gaussian.png").stat().st_size > 0


def test_a_sweep_without_training_seeds_has_no_statistics(tmp_path, tiny_checkpoint, make_scenario):
    stress(
        [str(tiny_checkpoint("cnn"))],
        ["gaussian:0.04"],
        tmp_path / "s",
        scenario=make_scenario(1.0),
        seeds=[0],
        workers=0,
        progress=False,
        with_expert=False,
    )
    assert not (tmp_path / "s" / "stats.csv").exists()
    assert (tmp_path / "s" / "cells.csv").exists()
    assert "## Statistics" not in (tmp_path / "s" / "report.md").read_text()


def test_unique_name_skips_used_and_reserved_names():
    from drive.eval.sweep import unique_name

    used: set[str] = set()
    assert [unique_name(b, used, reserved=("expert",)) for b in ("ncp19", "ncp19", "expert", "ncp19")] == [
        "ncp19",
        "ncp19-2",
        "expert-2",
        "ncp19-3",
    ]


def _family_checkpoints(tmp_path, families=("ncp19", "cnn"), seeds=(0,)):
    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy

    ckpts = []
    for family in families:
        for seed in seeds:
            torch.manual_seed(seed)
            policy = build_policy(family, frame_period_s=0.05, max_steer_rad=0.35)
            path = tmp_path / "zoo" / f"{family}-s{seed}"
            ckpts.append(str(save_checkpoint(policy, path, extra={"training": {"seed": seed}})))
    return ckpts


def test_one_seed_writes_the_results_and_omits_the_statistics_it_cannot_compute(tmp_path, make_scenario):
    """Two families, one stress seed (one condition): no paired test and no interval exist; the sweep writes
    everything else, says what is omitted, and a rerun does the same (it used to die in the permutation test)."""
    ckpts = _family_checkpoints(tmp_path)
    for _ in range(2):  # the rerun reuses every cell and finishes too
        result = stress(
            ckpts, ["gaussian:0.04"], tmp_path / "s", scenario=make_scenario(1.0), seeds=[0], workers=0, progress=False
        )
    out = tmp_path / "s"
    assert result["reused"] == result["cells"]
    assert len(pd.read_csv(out / "results.csv")) == 3 * 2  # ncp19, cnn, expert x levels 0 and 0.04
    stats = pd.read_csv(out / "stats.csv")
    assert stats["p"].isna().all() and stats["ci_low"].isna().all() and stats["mean"].notna().all()
    report = (out / "report.md").read_text()
    assert "## Statistics" in report and "Statistics omitted: paired tests against ncp19" in report
    assert "run --seeds 2 or more" in report and "95 % intervals omitted" in report


def test_ctrl_c_writes_the_finished_cells_and_propagates(tmp_path, tiny_checkpoint, make_scenario, monkeypatch):
    from drive.eval import backends

    real, calls = backends.compute_cell, []

    def interrupted_on_the_third(cell, job):
        calls.append(cell)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cell, job)

    monkeypatch.setattr(backends, "compute_cell", interrupted_on_the_third)
    ckpt = str(tiny_checkpoint("cnn"))
    sweep = dict(scenario=make_scenario(1.0), seeds=[0], workers=0, progress=False)
    with pytest.raises(KeyboardInterrupt):
        stress([ckpt], ["gaussian:0.1,0.2"], tmp_path / "s", **sweep)
    out = tmp_path / "s"
    df = pd.read_csv(out / "results.csv")
    assert set(zip(df["model"], df["kind"], df["level"])) == {("cnn", "gaussian", 0.0), ("cnn", "gaussian", 0.1)}
    assert len(list((out / "cells").glob("*.json"))) == 2
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["interrupted"] and results["config"]["finished"] == 2
    assert "**Interrupted**: 2 of 6 cell(s) finished" in (out / "report.md").read_text()

    monkeypatch.setattr(backends, "compute_cell", real)  # the rerun computes only the rest
    again = stress([ckpt], ["gaussian:0.1,0.2"], tmp_path / "s", **sweep)
    assert again["reused"] == 2 and again["computed"] == 4
    assert "Interrupted" not in (out / "report.md").read_text()


def test_ctrl_c_through_the_command_line_is_one_line_and_exit_130(tmp_path, scenario_file, monkeypatch, capsys):
    from drive.eval import backends

    def interrupted(cell, job):
        raise KeyboardInterrupt

    monkeypatch.setattr(backends, "compute_cell", interrupted)
    argv = ["stress", "--checkpoint", "expert", "--seeds", "1", "--workers", "0", "--out", str(tmp_path / "s")]
    assert main([*argv, "--scenario", str(scenario_file(1.0))]) == 130
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1] == "drive stress: interrupted; what was finished is written"
    assert (tmp_path / "s" / "results.csv").exists()
