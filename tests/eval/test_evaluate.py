"""`drive evaluate`: open-loop error on recorded data, the same perturbations as closed loop, held-out episodes."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drive.cli import main
from drive.data import layout
from drive.data.reader import DatasetReader
from drive.errors import UserError
from drive.eval.evaluate import evaluate
from drive.eval.metrics import steering_metrics
from drive.eval.open_loop import perturbed_frames, recorded_trace
from drive.eval.perturb import Chain, make
from drive.eval.rollout import make_env, run_episode
from drive.policy.reference import ConstantPolicy

TESTS = Path(__file__).resolve().parents[1]


def _record(out: Path, episodes: int, duration_s: float, **scenario_overrides) -> Path:
    from drive.data.recorder import record
    from drive.world.scenario import as_scenario

    sc = dataclasses.replace(as_scenario("train"), **scenario_overrides)
    return record(sc, episodes, out, duration_s=duration_s, progress=False)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Three expert episodes of 1.5 s (30 frames at 20 Hz) on training tracks."""
    return _record(tmp_path_factory.mktemp("rec") / "data", 3, 1.5)


@pytest.fixture(scope="module")
def trained(recorded, tmp_path_factory):
    """A checkpoint trained for one step on ``recorded``, one episode held out for validation."""
    from drive.train.config import TrainConfig
    from drive.train.loop import train

    out = tmp_path_factory.mktemp("ckpt") / "ncp19"
    train(
        TrainConfig(
            data=str(recorded),
            model="ncp19",
            out=str(out),
            epochs=1,
            max_steps=1,
            batch_size=2,
            seq_len=4,
            val_fraction=0.34,
            progress=False,
            augment=False,
        )
    )
    return out


def test_expert_labels_as_a_model_give_zero_error(recorded, tmp_path):
    result = evaluate(["expert"], recorded, tmp_path / "out", episodes="all", video=False, progress=False)
    (row,) = result["rows"]
    assert row["episodes"] == 3 and row["frames"] == 90
    for figure in ("mse", "mae", "mse_rad2", "mae_rad", "weighted_mse", "bias", "pooled_mse"):
        assert abs(row[figure]) < 1e-12, figure
    assert row["lag_frames"] == 0


def test_zero_model_mse_is_mean_squared_label(recorded, tmp_path):
    result = evaluate([ConstantPolicy(0.0)], recorded, tmp_path / "out", episodes="all", video=False, progress=False)
    reader = DatasetReader(recorded)
    labels = {e: reader.episode_table(e)[layout.STEERING_LABEL].to_numpy(np.float64) for e in reader.episodes}
    assert any(np.abs(y).max() > 0.01 for y in labels.values())  # the tracks curve: the check is not 0 == 0
    for unit in result["units"]:
        y = labels[unit["episode"]]
        assert unit["metrics"]["mse"] == pytest.approx(np.mean(y**2), rel=1e-9, abs=1e-15)
        assert unit["metrics"]["bias"] == pytest.approx(-np.mean(y), rel=1e-9, abs=1e-15)
        assert unit["metrics"]["weighted_mse"] == pytest.approx(np.mean(np.exp(2 * np.abs(y)) * y**2), rel=1e-9)
    (row,) = result["rows"]
    assert row["pooled_mse"] == pytest.approx(np.mean(np.concatenate(list(labels.values())) ** 2), rel=1e-9)
    assert row["mse_ci_low"] <= row["mse"] <= row["mse_ci_high"]


def test_metrics_of_a_delayed_prediction():
    t = np.arange(200)
    label = np.sin(t / 10.0) * 0.5
    late = np.concatenate([np.zeros(3), label[:-3]])
    m = steering_metrics(late, label, max_steer_rad=0.5, max_lag=10, period_s=0.05, curve_threshold=0.25)
    assert m["lag_frames"] == 3 and m["lag_s"] == pytest.approx(0.15)
    assert m["mae_rad"] == pytest.approx(m["mae"] * 0.5)
    assert m["curve_mae"] is not None and m["straight_mae"] is not None
    assert 0 < m["curve_fraction"] < 1


@pytest.mark.parametrize("spec", ["gaussian:0.2", "drop:0.4", "latency:2", "occlusion:0.2"])
def test_perturbations_equal_those_of_the_closed_loop(make_scenario, spec):
    kind, level = spec.split(":")
    sc = make_scenario(duration_s=1.0)
    seen, clean, dropped = [], [], []

    def observe(step):
        seen.append(step.seen_frame)
        clean.append(step.clean_frame)
        dropped.append(step.dropped)

    env = make_env(sc)
    try:
        run_episode(ConstantPolicy(0.0), env, 7, Chain([make(kind, float(level))]), [observe], episode=3)
    finally:
        env.close()
    last = None
    for i, (frame, _) in enumerate(perturbed_frames(clean, kind, float(level), seed=7, episode=3)):
        assert (frame is None) == dropped[i]
        last = frame if frame is not None else last
        np.testing.assert_array_equal(last, seen[i])
    if kind == "drop":
        assert any(dropped) and not all(dropped)
    else:
        assert not np.array_equal(seen[-1], clean[-1])


def test_validation_episodes_by_default_are_those_held_out(recorded, trained, tmp_path):
    held = json.loads((trained / "config.json").read_text())["data"]["val_segments"]
    assert len(held) == 1
    result = evaluate([trained], recorded, tmp_path / "out", video=False, progress=False)
    assert [list(s) for s in result["episodes"]] == held
    assert {u["episode"] for u in result["units"]} == {held[0][0]}
    assert "validation" in result["note"]
    # another dataset: every episode, and the note names them
    other = _record(tmp_path / "other", 2, 1.0)
    result = evaluate([trained], other, tmp_path / "out2", video=False, progress=False)
    assert [s[0] for s in result["episodes"]] == [0, 1]
    assert "not the dataset" in result["note"] and "0, 1" in result["note"]


def test_misfit_dataset_is_one_line_error_naming_both(tmp_path, tiny_checkpoint, capsys):
    data = _record(
        tmp_path / "slow",
        1,
        1.0,
        control_hz=10.0,
        camera=dataclasses.replace(
            __import__("drive.world.scenario", fromlist=["Scenario"]).Scenario().camera, height=66, width=200
        ),
    )
    ckpt = tiny_checkpoint("cnn")
    with pytest.raises(UserError) as err:
        evaluate([ckpt], data, tmp_path / "out", progress=False)
    message = str(err.value)
    assert "\n" not in message and "66x200" in message and "10 fps" in message
    assert "78x200" in message and "20 fps" in message and str(ckpt) in message
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / "o2")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "units").exists()


def test_rerun_skips_finished_work(recorded, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("ncp19")
    kwargs = {"perturb": ["gaussian:0.2", "drop:0.3"], "episodes": "0,2", "progress": False}
    first = evaluate([ckpt, "expert"], recorded, tmp_path / "out", **kwargs)
    assert first["computed"] == 2 * 2 * 3 and first["reused"] == 0
    units = sorted((tmp_path / "out" / "units").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in units]
    second = evaluate([ckpt, "expert"], recorded, tmp_path / "out", **kwargs)
    assert second["computed"] == 0 and second["reused"] == 12
    assert [p.stat().st_mtime_ns for p in units] == stamps
    assert second["rows"] == first["rows"]
    # a new level computes only its own units
    third = evaluate(
        [ckpt, "expert"],
        recorded,
        tmp_path / "out",
        perturb=["gaussian:0.2,0.3", "drop:0.3"],
        episodes="0,2",
        progress=False,
    )
    assert third["computed"] == 4 and third["reused"] == 12
    out = tmp_path / "out"
    for name in (
        "metrics.json",
        "results.csv",
        "episodes.csv",
        "report.md",
        "error_gaussian.png",
        "error_drop.png",
        "videos/ncp19/episode_000.mp4",
        "videos/expert/episode_002.mp4",
    ):
        assert (out / name).is_file(), name
    rows = {(r["model"], r["kind"], r["level"]): r for r in third["rows"]}
    assert rows[("expert", "drop", 0.3)]["mse"] > 0  # held labels under frame drop are late
    assert rows[("expert", "gaussian", 0.3)]["mse"] == 0  # the labels do not look at the picture


@pytest.mark.slow
def test_parallel_workers_match_in_process(recorded, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("ncp19")
    kwargs = {"perturb": ["gaussian:0.1"], "episodes": "0,1", "video": False, "progress": False}
    serial = evaluate([ckpt], recorded, tmp_path / "a", workers=1, **kwargs)
    parallel = evaluate([ckpt], recorded, tmp_path / "b", workers=2, **kwargs)
    for a, b in zip(serial["rows"], parallel["rows"]):
        assert a["mse"] == pytest.approx(b["mse"], rel=1e-5, abs=1e-9)


def _udacity_maker():
    spec = importlib.util.spec_from_file_location("_importer_fixtures", TESTS / "data" / "test_importers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_udacity


def test_imported_udacity_dataset(tmp_path, capsys):
    from drive.data.importers import import_source
    from drive.policy.checkpoint import load_policy, save_checkpoint
    from drive.policy.model import build_policy

    src = tmp_path / "udacity"
    _udacity_maker()(src, n=8)
    data = tmp_path / "ds"
    info = import_source("udacity", src, data, steering_correction=0.25, progress=False)
    import torch

    torch.manual_seed(0)
    ckpt = save_checkpoint(
        build_policy("ncp19", frame_period_s=1.0 / info.fps, max_steer_rad=info.max_steer_rad),
        tmp_path / "ck" / "ncp19",
    )
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(ckpt),
            "--checkpoint",
            "expert",
            "--data",
            str(data),
            "--perturb",
            "gaussian:0.2",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "no training split" in printed and "0, 1, 2" in printed
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = {(r["model"], r["kind"], r["level"]): r for r in metrics["rows"]}
    assert rows[("expert", "gaussian", 0.0)]["mse"] < 1e-12
    assert rows[("ncp19", "gaussian", 0.2)]["frames"] == 24
    assert (tmp_path / "out" / "videos" / "ncp19" / "episode_001.mp4").is_file()
    # explain on recorded frames of the same dataset
    trace = recorded_trace(load_policy(ckpt), data, episode=1)
    assert trace.frames.shape == (8, 78, 200, 3) and len(trace.steering) == 8
    rc = main(
        [
            "explain",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(data),
            "--episode",
            "1",
            "--images",
            "1",
            "--ssim-frames",
            "4",
            "--out",
            str(tmp_path / "explain"),
        ]
    )
    assert rc == 0
    explained = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert explained["source"] == "ds episode 1" and explained["steps"] == 8
    assert set(explained["mean_ssim"]) == {"0.1", "0.2", "0.3"}


def test_physical_perturbations_are_refused(recorded, tmp_path):
    with pytest.raises(UserError, match="push"):
        evaluate(["expert"], recorded, tmp_path / "out", perturb=["push:0.5"], progress=False)
    with pytest.raises(UserError, match="--episodes: episode 9"):
        evaluate(["expert"], recorded, tmp_path / "out", episodes="0,9", progress=False)


def test_rank_agreement():
    from drive.eval.stats import rank_agreement

    x = [0.1, 0.4, 0.2, 0.8, 0.5, 0.3]
    same = rank_agreement(x, [1, 4, 2, 8, 5, 3], n_resamples=300)
    assert same["rho"] == pytest.approx(1.0) and same["ci_low"] <= 1.0 <= same["ci_high"] + 1e-12
    opposite = rank_agreement(x, [-v for v in x], n_resamples=300)
    assert opposite["rho"] == pytest.approx(-1.0)
    assert rank_agreement(x, [0, 0, 0, 0, 0, 0])["rho"] is None  # a constant side: undefined, not 0


@pytest.mark.parametrize("model", ["ncp19", "cnn"])
def test_batched_run_equals_one_step_per_frame(recorded, tiny_checkpoint, model):
    from drive.data.reader import DatasetReader
    from drive.eval.open_loop import run_open_loop
    from drive.policy.checkpoint import load_policy

    policy = load_policy(tiny_checkpoint(model))
    reader = DatasetReader(recorded)
    table = reader.episode_table(1)
    frames = reader.read_frames(1)
    y, t = table[layout.STEERING_LABEL].to_numpy(np.float64), table[layout.TIMESTAMP].to_numpy(np.float64)
    t[10:] += 0.05  # one long gap: the controller must be told the true elapsed time in both paths
    args = (policy, frames, y, t, reader.info.fps, reader.info.max_steer_rad, "gaussian", 0.1, 0, 1)
    stepped = run_open_loop(*args, activity=True)
    batched = run_open_loop(*args, activity=False, chunk=7)
    assert stepped.activity.shape[0] == len(frames)
    np.testing.assert_allclose(batched.prediction, stepped.prediction, rtol=1e-4, atol=1e-5)
    for a, b in zip(batched.seen, stepped.seen):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_writes_the_finished_units_and_propagates(recorded, tmp_path, monkeypatch):
    from drive.eval import evaluate as ev

    real, calls = ev.run_unit, []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "run_unit", interrupted_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        evaluate(["expert"], recorded, tmp_path / "out", episodes="all", video=False, progress=False)
    out = tmp_path / "out"
    assert len(pd.read_csv(out / "episodes.csv")) == 1 and len(pd.read_csv(out / "results.csv")) == 1
    assert "**Interrupted**: 1 of 3 unit(s) finished" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["config"]["interrupted"] is True
