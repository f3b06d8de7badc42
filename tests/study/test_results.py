"""``drive results`` (:mod:`drive.study.results`): the README's tables from the library, one config dataclass.

A tiny run: one untrained checkpoint, 1 episode of 2 s, 1 stress seed, 1 noise level, 1 suite case on 1 track."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from drive.commands import results as command
from drive.errors import UserError
from drive.study.config import PAPER_LEVELS
from drive.study.results import ResultsConfig, find_models, make_results


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def tiny_checkpoints(tmp_path):
    """Untrained policies saved as checkpoint folders under ``tmp_path/ck`` (weights seeded, so repeatable)."""
    import torch

    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy

    def factory(*models: str) -> Path:
        for model in models:
            torch.manual_seed(0)
            save_checkpoint(build_policy(model, frame_period_s=0.05, max_steer_rad=0.35), tmp_path / "ck" / model)
        return tmp_path / "ck"

    return factory


def test_the_flags_default_to_the_config_and_the_papers_levels():
    cfg = command.config_from_args(parse([]))
    assert cfg == ResultsConfig()
    assert cfg.levels == PAPER_LEVELS and cfg.spec == "gaussian:0.01,0.04,0.09,0.1,0.2,0.3"
    assert (cfg.work, cfg.publish, cfg.ckpt_root) == ("runs/results", "checkpoints/results", "checkpoints")
    assert (cfg.episodes, cfg.seeds, cfg.workers, cfg.passive_episodes, cfg.suite_tracks) == (10, 5, 2, 10, 10)
    assert (cfg.passive_duration_s, cfg.suite_duration_s, cfg.duration_s) == (30.0, 60.0, None)
    cfg = command.config_from_args(parse(["--models", "cnn", "ncp19", "--levels", "0.09", "--suite-only"]))
    assert cfg.models == ("cnn", "ncp19") and cfg.levels == (0.09,) and cfg.suite_only


def test_models_in_table_order_and_bad_settings_are_user_errors(tmp_path):
    for name in ("lstm", "ncp19", "zeta", "cnn"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "results").mkdir()  # no config.json: not a checkpoint
    assert find_models(ResultsConfig(ckpt_root=str(tmp_path))) == ["ncp19", "cnn", "lstm", "zeta"]
    assert find_models(ResultsConfig(ckpt_root=str(tmp_path), models=("lstm", "cnn"))) == ["lstm", "cnn"]
    with pytest.raises(UserError, match="no checkpoint for \\['gru'\\]"):
        find_models(ResultsConfig(ckpt_root=str(tmp_path), models=("gru",)))
    with pytest.raises(UserError, match="ckpt_root"):
        find_models(ResultsConfig(ckpt_root=str(tmp_path / "nowhere")))
    for field, value in (("episodes", 0), ("levels", (0.0,)), ("suite_tracks", 11), ("duration_s", -1.0)):
        with pytest.raises(UserError, match=field):
            make_results(dataclasses.replace(ResultsConfig(ckpt_root=str(tmp_path)), **{field: value}))


def table_models(section: str) -> list[str]:
    """The first column of the first table in a results.md section (its header and rule left out)."""
    rows: list[str] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return [r.split("|")[1].strip() for r in rows[2:]]


@pytest.mark.slow
def test_a_tiny_run_publishes_consistent_tables(tmp_path, tiny_checkpoints, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ck = tiny_checkpoints("ncp19")
    publish = tmp_path / "publish"
    argv = [
        *("--ckpt-root", str(ck), "--work", str(tmp_path / "work"), "--publish", str(publish)),
        *("--episodes", "1", "--seeds", "1", "--levels", "0.09", "--workers", "1", "--duration-s", "2"),
        *("--passive-episodes", "1", "--passive-duration-s", "2"),
        *("--suite-duration-s", "2", "--suite-tracks", "1", "--suite-case", "plain", "--no-progress"),
    ]
    assert command.run(parse(argv)) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    for name in ("results.md", "results.json", "stress.csv", "suite.md", "suite.csv", "suite.png"):
        assert (publish / name).stat().st_size > 0, name
    assert (publish / "robustness_gaussian.png").is_file()
    result = json.loads((publish / "results.json").read_text())
    assert printed == result
    assert list(result["models"]) == ["ncp19"] and result["levels"] == [0.09] and result["seeds"] == 1

    md = (publish / "results.md").read_text()
    sections = {s.splitlines()[0]: s for s in md.split("### ")[1:]}
    clean = sections["Clean input, test-split tracks (never used for training)"]
    assert table_models(clean) == ["ncp19", "expert"]
    noise = sections["Gaussian camera noise (the NCP paper's comparison)"]
    assert table_models(noise) == list(result["models"])
    assert "σ²=0.09 (σ=0.3)" in noise and "one 2 s episode each" in noise
    passive = sections["Passive against active"]
    assert table_models(passive) == list(result["passive"]["models"]) == list(result["models"])
    assert result["passive"]["data"] == {"episodes": 1, "duration_s": 2.0, "frames": 40, "scenario": "default"}
    assert set(result["passive"]["spearman"]) == {"0", "0.09", "pooled", "clean_mse_vs_clean_lateral"}
    assert "Generalization suite" in md and (publish / "suite.md").read_text().strip() in md

    m = result["models"]["ncp19"]
    assert m["clean"]["distance_m"] > 0 and set(m["ssim"]) == {"0.09"} and m["parameters"] is None
    row = f"| ncp19 | {m['clean']['distance_m'] / 1000:.2f} | {m['clean']['off_road_events']} |"
    assert row in clean
    stress = pd.read_csv(publish / "stress.csv")
    assert set(stress["model"]) == {"ncp19", "expert"} and set(stress["level"]) == {0.0, 0.09}
    got = stress[(stress["model"] == "ncp19") & (stress["level"] == 0.09)]["off_road_per_km"].item()
    assert got == pytest.approx(m["off_road_per_km_gaussian_0.09"])
    suite = pd.read_csv(publish / "suite.csv")
    assert set(suite["case"]) == {"plain"} and set(suite["driver"]) == {"ncp19", "expert"}
