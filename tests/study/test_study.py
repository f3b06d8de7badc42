"""``drive study``: one command runs the whole robustness study; an interrupted study resumes, skips finished
work and ends with the results of an uninterrupted run. A tiny configuration: 2 models x 2 training seeds
trained two epochs on a few seconds of recordings, 2 noise levels, 2 stress seeds, 2 s episodes, 1 suite case."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drive.cli import main as drive
from drive.commands.study import add_arguments, config_from_args
from drive.study import report
from drive.study.config import stress_seeds
from drive.study.zoo import build_zoo, checkpoint_name


def study(argv: list[str]) -> int:
    return drive(["study", *argv])


def study_config(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def study_argv(root: Path, *extra: str, episodes: int = 3, seeds: str = "0,1", data: Path | None = None) -> list[str]:
    return [
        "--models",
        "ncp19",
        "cnn",
        "--seeds",
        seeds,
        "--noise-seeds",
        "2",
        "--tracks",
        "1",
        "--levels",
        "0.04,0.09",
        "--out",
        str(root / "out"),
        "--ckpt-root",
        str(root / "ck"),
        "--data",
        str(data or root / "data"),
        "--episodes",
        str(episodes),
        "--record-duration-s",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--train",
        "seq_len=8,select_by=val_loss",
        "--workers",
        "1",
        "--duration-s",
        "2",
        "--suite-tracks",
        "1",
        "--suite-case",
        "camera_mount",
        "--no-progress",
        *extra,
    ]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_checkpoint_names_keep_seed_0_as_the_shipped_folder():
    assert checkpoint_name("ncp19", 0) == "ncp19"
    assert checkpoint_name("lstm", 2) == "zoo/lstm-s2"
    assert checkpoint_name("ncp19", 0, "noise") == "zoo/ncp19-noise-s0"
    assert stress_seeds(10, 3) == list(range(30))
    assert stress_seeds(1, 2) == [0, 10]


def test_a_tuned_recipe_sets_each_familys_rates_and_epochs(tmp_path):
    argv = study_argv(tmp_path, "--models", "ncp19", "cnn", "lstm", "--lr-controller", "ncp19=0.012")
    argv += ["--lr-head", "cnn=0.0012", "--family-epochs", "ncp19=6,cnn=5"]
    entries = {e.name: e.config for e in build_zoo(study_config(argv))}
    assert (entries["ncp19"].lr_controller, entries["ncp19"].epochs, entries["ncp19"].lr_head) == (0.012, 6, 5e-4)
    assert (entries["zoo/cnn-s1"].lr_head, entries["zoo/cnn-s1"].epochs) == (0.0012, 5)
    # a family not named keeps the tuned recipe's rate; the budget is the study's (--epochs 2)
    assert (entries["lstm"].lr_controller, entries["lstm"].epochs) == (1.2e-2, 2)
    assert entries["lstm"].select_by == "val_loss" and entries["lstm"].seq_len == 8  # --train on top of the recipe


def test_the_studys_defaults_are_the_tuned_recipe():
    """``drive study`` with no flags trains what the shipped checkpoints were trained with."""
    cfg = study_config([])
    entries = {e.name: e.config for e in build_zoo(dataclasses.replace(cfg, seeds=(0,)))}
    assert cfg.recording.episodes == 120 and cfg.recording.duration_s == 20 and cfg.recording.noise_injection == 0.25
    assert {m: c.epochs for m, c in entries.items()} == dict.fromkeys(entries, 4)
    assert {m: c.select_by for m, c in entries.items()} == dict.fromkeys(entries, "closed_loop")
    rates = {m: entries[m].lr_controller for m in ("ncp19", "lstm", "gru", "cfc", "ctrnn")}
    assert rates == {"ncp19": 5e-3, "lstm": 1.2e-2, "gru": 2e-3, "cfc": 5e-3, "ctrnn": 5e-3}
    assert entries["cnn"].lr_head == 5e-4
    gpu = {e.name: e.config for e in build_zoo(study_config(["--seeds", "0", "--train", "device=cuda"]))}
    assert gpu["ncp19"].device == "cuda" and gpu["ncp19"].select_by == "closed_loop"  # merged, not replaced


def test_the_zoo_is_built_from_one_config_by_replacing_fields(tmp_path):
    """Each entry's TrainConfig is the study's budget with the family, seed and folder set; nothing else differs."""
    cfg = study_config(study_argv(tmp_path, "--lr-controller", "lstm=0.001", "--noise-augment", "0.05"))
    entries = {e.name: e for e in build_zoo(cfg)}
    assert sorted(entries) == sorted(
        [
            "ncp19",
            "cnn",
            "zoo/ncp19-s1",
            "zoo/cnn-s1",
            *(f"zoo/{m}-noise-s{k}" for m in ("ncp19", "cnn") for k in (0, 1)),
        ]
    )
    a, b = entries["ncp19"].config, entries["zoo/cnn-s1"].config
    assert (a.model, a.seed, b.model, b.seed) == ("ncp19", 0, "cnn", 1)
    assert a.epochs == b.epochs == 2 and a.batch_size == 4 and a.seq_len == 8 and a.augment_noise == 0
    assert entries["zoo/cnn-noise-s1"].config.augment_noise == 0.05
    assert Path(a.out) == tmp_path / "ck" / "ncp19" and Path(a.data) == tmp_path / "data"
    assert study_config(study_argv(tmp_path, "--models", "lstm", "--lr-controller", "lstm=0.001")).budget.lr_controller
    lstm = build_zoo(study_config(study_argv(tmp_path, "--models", "lstm", "--lr-controller", "lstm=0.001")))[0]
    assert lstm.config.lr_controller == 0.001


@pytest.mark.slow
def test_an_interrupted_study_resumes_to_the_results_of_an_uninterrupted_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    a, b = tmp_path / "a", tmp_path / "b"

    # A: uninterrupted
    assert study(study_argv(a)) == 0
    first = last_json(capsys)["stages"]
    assert first["record"]["recorded"] == 3 and first["train"]["trained"] == 4
    assert (
        first["stress"]["plain"]["computed"] == 4 * 3 * 2 + 3 * 2
    )  # 4 checkpoints + expert, clean + 2 levels, 2 seeds
    assert first["suite"]["computed"] == 5
    assert (a / "ck" / "ncp19" / "config.json").is_file() and (a / "ck" / "zoo" / "cnn-s1" / "config.json").is_file()

    # B: records its own data (a recording repeats byte for byte, so it trains on what A did), then is interrupted
    # at every stage after the recording and resumed by running the same command again.
    data = b / "data"
    assert (
        study(study_argv(b, "--stages", "record,train", seeds="0", data=data)) == 0
    )  # the zoo stopped after seed 0 ...
    from drive.data.reader import snapshot

    assert snapshot(data)[1]["sha256"] == snapshot(a / "data")[1]["sha256"]
    from drive.train.loop import train

    entries = {e.name: e for e in build_zoo(study_config(study_argv(b, data=data)))}
    # ... and during the second epoch of ncp19 seed 1: a kill leaves the state saved at the end of the first epoch
    per_epoch = json.loads((a / "ck" / "zoo" / "ncp19-s1" / "config.json").read_text())["metrics"]["steps"] // 2
    entry = entries["zoo/ncp19-s1"]
    entry.path.mkdir(parents=True)
    train(dataclasses.replace(entry.config, max_steps=per_epoch))
    assert json.loads((b / "ck" / "zoo" / "ncp19-s1" / "config.json").read_text())["metrics"]["epochs_done"] == 1
    capsys.readouterr()
    from drive.study import stages

    monkeypatch.setattr(stages, "SUITE_CHUNK", 2)  # B drives the suite in chunks of 2 drivers (A: one run of all 5)
    assert study(study_argv(b, data=data)) == 0
    captured = capsys.readouterr()
    resumed = json.loads(captured.out.strip().splitlines()[-1])["stages"]
    assert resumed["suite"]["computed"] == 5 and "suite: 4 of 5 driver(s) done" in captured.err
    assert resumed["train"]["trained"] == 2 and resumed["train"]["reused"] == 2
    cells = sorted((b / "out" / "stress" / "cells").glob("*.json"))
    for cell in cells[:5]:  # the stress sweep was killed before these cells were written
        cell.unlink()
    (b / "out" / "suite" / "cnn-s1" / "done.json").unlink()  # and the suite before it stamped cnn seed 1
    assert study(study_argv(b, data=data)) == 0
    again = last_json(capsys)["stages"]
    assert again["train"]["trained"] == 0
    assert again["stress"]["plain"]["computed"] == 5 and again["stress"]["plain"]["reused"] == 25
    assert again["suite"] == {"computed": 1, "reused": 4, "stage_s": again["suite"]["stage_s"]}

    # a rerun of a finished study computes nothing and touches no checkpoint
    stamps = {p: p.stat().st_mtime_ns for p in (b / "ck").rglob("model.safetensors")}
    assert study(study_argv(b, data=data)) == 0
    done = last_json(capsys)["stages"]
    assert done["record"]["recorded"] == 0 and done["train"]["trained"] == 0
    assert done["stress"]["plain"]["computed"] == 0 and done["suite"]["computed"] == 0
    assert {p: p.stat().st_mtime_ns for p in (b / "ck").rglob("model.safetensors")} == stamps

    # the resumed study's results are the uninterrupted one's
    for name in ("stress/cells.csv", "stats.csv", "suite.csv"):
        x, y = pd.read_csv(a / "out" / name), pd.read_csv(b / "out" / name)
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-6, atol=1e-9)
    stats = pd.read_csv(b / "out" / "stats.csv")
    assert set(stats["family"]) == {"ncp19", "cnn"} and (stats["n_seeds"] == 2).all()
    assert (stats["n_conditions"] == 2).all() and set(stats["level"]) == {0.0, 0.04, 0.09}
    text = (b / "out" / "study.md").read_text()
    assert "## Robustness study" in text and "σ²=0.09 (σ=0.3)" in text and "Generalization suite" in text
    assert (b / "out" / "robustness_gaussian.png").stat().st_size > 0


def test_a_stale_checkpoint_stops_the_study(tmp_path, capsys):
    """A checkpoint trained with other options than the study asks for is named, not silently reused."""
    assert study(study_argv(tmp_path, "--stages", "record", episodes=1)) == 0  # a recording stopped early ...
    assert last_json(capsys)["stages"]["record"]["recorded"] == 1
    assert study(study_argv(tmp_path, "--stages", "record,train", "--models", "cnn", seeds="0", episodes=2)) == 0
    assert last_json(capsys)["stages"]["record"] == {"recorded": 1, "reused": 1, "stage_s": pytest.approx(0, abs=60)}
    argv = study_argv(tmp_path, "--stages", "train", "--models", "cnn", "--batch-size", "2", seeds="0", episodes=2)
    assert study(argv) == 2
    err = capsys.readouterr().err
    assert "stale checkpoint" in err and "trained with batch_size=4, the study asks for 2" in err
    assert "--retrain-stale" in err.splitlines()[-1]
    assert (
        study(
            study_argv(
                tmp_path,
                "--stages",
                "train",
                "--models",
                "cnn",
                "--batch-size",
                "2",
                "--retrain-stale",
                seeds="0",
                episodes=2,
            )
        )
        == 0
    )
    config = json.loads((tmp_path / "ck" / "cnn" / "config.json").read_text())
    assert config["training"]["batch_size"] == 2


def synthetic_stats(ncp_off: dict[float, float]) -> pd.DataFrame:
    """A stats.csv-like table: cnn and lstm at 1.0 off-road/km at every level, ncp19 as given."""
    rows = []
    for level in (0.01, 0.1, 0.2):
        for family, mean in (("ncp19", ncp_off[level]), ("cnn", 1.0), ("lstm", 1.0)):
            rows.append(
                {
                    "kind": "gaussian",
                    "family": family,
                    "level": level,
                    "figure": "off_road_per_km",
                    "mean": mean,
                    "ci_low": mean - 0.5,
                    "ci_high": mean + 0.5,
                    "p_holm": float("nan") if family == "ncp19" else 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_the_target_check_reads_only_levels_up_to_0_1_and_names_the_miss():
    met = report.target_lines(synthetic_stats({0.01: 0.0, 0.1: 1.0, 0.2: 9.0}))
    assert "met at every level" in met[0]
    assert len([line for line in met if line.startswith("- ")]) == 2  # σ² 0.01 and 0.1; 0.2 is beyond the target
    missed = report.target_lines(synthetic_stats({0.01: 0.0, 0.1: 1.25, 0.2: 0.0}))
    assert "missed at one level or more" in missed[0]
    assert any("missed by 0.25/km" in line for line in missed)


def test_the_seed_level_report_gives_failure_rates_verdicts_and_says_what_is_missing(tmp_path):
    """Synthetic cells, explain results and failures: ncp19 has clearly fewer exits (reproduced), a less stable
    saliency (contradicted), every PC1 share near 1 (the measure does not discriminate); cnn seed 2 failed."""
    cfg = study_config(study_argv(tmp_path, seeds="0,1,2"))
    entries = build_zoo(cfg)
    rng = np.random.default_rng(0)
    rows = []
    for family, off in (("ncp19", 0.0), ("cnn", 10.0)):
        for seed in range(3):
            for level in (0.0, 0.04, 0.09):
                for condition in range(2):
                    rows.append(
                        {
                            "family": family,
                            "train_seed": seed,
                            "kind": "gaussian",
                            "level": level,
                            "condition": condition,
                            "off_road_per_km": off + rng.uniform(0, 0.5),
                            "mean_abs_lateral_m": 0.2 + rng.uniform(0, 0.05),
                        }
                    )
    rows.append({"family": None, "train_seed": None, "kind": "gaussian", "level": 0.0, "condition": 0})  # the expert
    (tmp_path / "out" / "stress").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "out" / "stress" / "cells.csv", index=False)
    for e in entries:
        if e.name == "zoo/cnn-s2":
            continue  # its explain results are missing
        ssim = 0.3 if e.model == "ncp19" else 0.8
        result = {
            "mean_ssim": {"0.04": ssim + 0.01 * e.seed, "0.09": ssim - 0.01 * e.seed},
            "pc1_share": 0.95 + 0.01 * e.seed,
            "participation_ratio": 1.1,
            "neurons": 19,
        }
        folder = tmp_path / "out" / "explain" / e.name.replace("zoo/", "")
        folder.mkdir(parents=True)
        (folder / "explain.json").write_text(json.dumps(result))
    failures = pd.DataFrame(
        [
            {"family": e.model, "train_seed": e.seed, "name": e.name, "best_val_loss": 0.05, "constant_val_loss": 0.1}
            | {"failed": e.name == "zoo/cnn-s2", "note": ""}
            for e in entries
        ]
    )
    failures.loc[failures["name"] == "zoo/cnn-s2", "best_val_loss"] = 0.2
    text = "\n".join(report.seed_level_markdown(cfg, entries, failures))
    assert "| cnn | 3 | 1 | 0 | 1/3 |" in text and "zoo/cnn-s2 failed" in text
    assert "The same without the 1 failed run(s) (zoo/cnn-s2)" in text
    assert "No explain results for 1 checkpoint(s) (cnn-s2)" in text
    without = text[text.index("#### The paper's three claims without the failed runs") :]  # it comes last
    claims = text[text.index("#### The paper's three claims") : text.index("#### The same without")]
    crash = [line for line in claims.splitlines() if line.startswith("| Crashes")]
    assert len(crash) == 2 and all("| reproduced — +9.9" in line for line in crash)  # the noise levels only
    assert all(
        "| contradicted — +0.49" in line or "| contradicted — +0.50" in line
        for line in claims.splitlines()
        if line.startswith("| Saliency")
    )
    assert "here the measure does not discriminate" in claims
    assert "inconclusive at n = 2 seeds in 1 of 1" in claims  # cnn's PC1 has two seeds with results
    # beside it, every figure and the claims without the failed run: cnn keeps 2 seeds of stress cells
    crash = [line for line in without.splitlines() if line.startswith("| Crashes")]
    assert len(crash) == 2 and all("| reproduced — +9.9" in line and line.endswith("| n = 2 |") for line in crash)


def test_the_explain_stage_runs_each_checkpoint_once_for_the_same_inputs(tmp_path, monkeypatch):
    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy
    from drive.study import stages

    cfg = dataclasses.replace(
        study_config(study_argv(tmp_path, "--models", "cnn", seeds="0")),
        explain_episodes=2,
        explain_frames=3,
        duration_s=0.3,
    )
    entries = build_zoo(cfg)
    for e in entries:
        save_checkpoint(build_policy(e.model, frame_period_s=0.05), e.path)
    calls = []
    from drive.eval import explain as library  # the stage imports drive explain when it runs

    original = library.explain
    monkeypatch.setattr(library, "explain", lambda *a, **k: calls.append(k) or original(*a, **k))
    assert stages.stage_explain(cfg, entries) == {"computed": 1, "reused": 0}
    result = json.loads((tmp_path / "out" / "explain" / "cnn" / "explain.json").read_text())
    assert result["episodes"] == 2 and result["ssim_frames"] == 6 and set(result["mean_ssim"]) == {"0.04", "0.09"}
    assert calls[0]["images"] == 0 and calls[0]["video"] is False
    assert calls[0]["progress"] is False  # --no-progress reaches drive explain's bars
    assert stages.stage_explain(cfg, entries) == {"computed": 0, "reused": 1}
    assert stages.stage_explain(dataclasses.replace(cfg, explain_frames=2), entries)["computed"] == 1


def test_the_glance_table_gives_each_familys_seed_mean_at_the_papers_levels():
    from drive.study.inference import seed_level_table

    rows = [
        {
            "family": family,
            "train_seed": seed,
            "kind": "gaussian",
            "level": level,
            "condition": condition,
            "off_road_per_km": seed + offset + level,
            "mean_abs_lateral_m": 0.5,
        }
        for family, offset in (("ncp19", 0.0), ("cnn", 10.0))
        for seed in range(5)
        for level in (0.09, 0.1, 0.2, 0.3)
        for condition in range(2)
    ]
    stress = seed_level_table(pd.DataFrame(rows), ["off_road_per_km", "mean_abs_lateral_m"])
    failures = pd.DataFrame(
        [{"family": f, "failed": f == "cnn" and s == 4} for f in ("ncp19", "cnn") for s in range(5)]
    )
    lines = report.glance_lines(stress, pd.DataFrame(), pd.DataFrame(), failures, ("ncp19", "cnn"))
    noise = next(line for line in lines if line.startswith("| family | seeds |"))
    assert "σ²=0.1 |" in noise and "0.09" not in noise  # the paper's levels only
    ncp19 = next(line for line in lines if line.startswith("| ncp19 | 5 |")).split(" | ")
    cnn = next(line for line in lines if line.startswith("| cnn | 5 |")).split(" | ")
    assert ncp19[2] == "0/5" and cnn[2] == "1/5"
    # seed means 0.1, 1.1, ..., 4.1 at σ² 0.1: mean 2.1 with an interval around it; a constant figure has none
    assert ncp19[3].startswith("2.1 [") and cnn[3].startswith("12.1 [") and cnn[5].startswith("12.3 [")
    low, high = (float(x) for x in ncp19[3][len("2.1 [") : -1].split(", "))
    assert low < 2.1 < high
    assert ncp19[6] == "0.5" and ncp19[8].rstrip(" |") == "0.5"
    header = next(i for i, line in enumerate(lines) if line.startswith("| family | SSIM"))
    explain = lines[header + 2]  # the explain table's first row, below its header and rule
    assert explain.startswith("| ncp19 |") and explain.count("–") == 5  # no explain results: nothing is invented
