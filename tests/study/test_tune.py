"""``drive tune``: successive halving picks, per family, the rate whose kept epoch drives best, continues that
run to the full budget, and resumes without redoing a finished trial."""

from __future__ import annotations

import json

import pytest

import drive.study.tune as tune_module
from drive.cli import main
from drive.data.recorder import record
from drive.errors import UserError
from drive.study.tune import TuneConfig, trial_key, tune


def test_trials_rank_exits_then_lateral_then_validation_loss():
    a = {"off_road_events": 0, "mean_abs_lateral_m": 0.5, "val_loss": 0.9}
    b = {"off_road_events": 1, "mean_abs_lateral_m": 0.1, "val_loss": 0.1}
    c = {"off_road_events": 0, "mean_abs_lateral_m": 0.5, "val_loss": 0.2}
    missing = {"off_road_events": None, "mean_abs_lateral_m": None, "val_loss": None}
    assert sorted([b, a, missing, c], key=trial_key) == [c, a, b, missing]


def test_fewer_than_three_rates_are_refused():
    with pytest.raises(UserError, match="at least 3"):
        TuneConfig(rates=(1e-3, 2e-3)).validate()


def test_successive_halving_continues_each_familys_best_rate(tmp_path, monkeypatch):
    scripted = {("ncp19", 1e-3): 2, ("ncp19", 2e-3): 0, ("ncp19", 4e-3): 1, ("lstm", 1e-3): 0}
    calls = []

    def fake_trial(cfg):
        calls.append((cfg.model, cfg.lr_controller, cfg.epochs))
        assert cfg.lr_head == 5e-4  # only the controller's rate is tuned for a recurrent family
        assert cfg.select_by == "closed_loop"  # trials are judged on held-out training tracks only
        off = scripted.get((cfg.model, cfg.lr_controller), 3)
        return {
            "epochs_done": cfg.epochs,
            "best_epoch": cfg.epochs - 1,
            "off_road_events": off,
            "mean_abs_lateral_m": 0.2,
            "val_loss": 0.1,
            "train_time_s": 1.0,
            "elapsed_s": 1.0,
        }

    monkeypatch.setattr(tune_module, "run_trial", fake_trial)
    cfg = TuneConfig(out=str(tmp_path / "t"), models=("ncp19", "lstm"), rates=(1e-3, 2e-3, 4e-3), short_epochs=2)
    result = tune(cfg)
    assert calls[:6] == [(m, r, 2) for m in ("ncp19", "lstm") for r in (1e-3, 2e-3, 4e-3)]
    assert calls[6:] == [("ncp19", 2e-3, 8), ("lstm", 1e-3, 8)]
    assert result["chosen"]["ncp19"]["rate"] == 2e-3 and result["chosen"]["ncp19"]["epochs"] == 7
    assert result["chosen"]["ncp19"]["field"] == "lr_controller"
    saved = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert saved["chosen"]["lstm"]["rate"] == 1e-3 and len(saved["trials"]) == 6
    assert "| ncp19 | 0.002 | lr_controller | 7 |" in (tmp_path / "t" / "tune.md").read_text()


def test_the_cnn_tunes_its_one_learning_rate(tmp_path, monkeypatch):
    from drive.study.tune import trial_config

    cfg = TuneConfig(out=str(tmp_path / "t"))
    cnn = trial_config(cfg, "cnn", 1.2e-3, 4)
    assert cnn.lr_head == 1.2e-3 and cnn.lr_controller == 5e-3
    with pytest.raises(UserError, match="as many as rates"):
        TuneConfig(cnn_rates=(1e-4, 2e-4, 3e-4, 4e-4)).validate()


@pytest.mark.slow
def test_a_tiny_tuning_runs_end_to_end_and_a_rerun_trains_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    record("train", 3, data, seed=0, duration_s=1.5, progress=False)
    argv = ["tune", "--data", str(data), "--out", str(tmp_path / "t"), "--models", "ncp19"]
    argv += ["--rates", "1e-3,5e-3,2e-2", "--short-epochs", "1", "--full-epochs", "2", "--batch-size", "2"]
    argv += ["--select-episodes", "1", "--select-duration-s", "0.5", "--no-progress"]
    assert main(argv) == 0
    chosen = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["chosen"]["ncp19"]
    assert chosen["rate"] in (1e-3, 5e-3, 2e-2) and chosen["epochs_done"] == 2
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "t").glob("*/model.safetensors")}
    assert len(stamps) == 3
    assert main(argv) == 0  # finished trials are skipped
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "t").glob("*/model.safetensors")} == stamps
