"""`drive replay`: checkpoints closed loop on recorded drives through the one rollout, stress-like and resumable."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from drive.cli import main
from drive.eval import rollout
from drive.eval.replay_sweep import autonomy_pct, replay
from drive.policy.reference import ConstantPolicy, ExpertPolicy
from drive.replay.env import ReplayEnv


def test_autonomy_is_pilotnets_formula():
    assert autonomy_pct(0, 60.0) == 100.0
    assert autonomy_pct(3, 60.0) == pytest.approx(70.0)  # 3 interventions x 6 s of 60 s
    assert autonomy_pct(20, 60.0) == pytest.approx(-100.0)  # not clipped: more often than every 6 s
    assert autonomy_pct(1, 0.0) is None


def test_the_rollout_drives_the_replay_world(recording):
    env = ReplayEnv(recording(steering=np.zeros(30)))
    steps = []
    log = rollout.run_episode(ConstantPolicy(-1.0), env, seed=0, observers=[steps.append])
    assert len(log.steering) == 29 and log.planned_steps == 29  # one step per recorded frame interval
    assert log.off_road_events == steps[-1].info["interventions"] >= 1
    assert all(s.expert_steering == 0.0 for s in steps)  # the recorded steering is the reference
    recorded = ReplayEnv(recording(steering=np.sin(np.arange(30) / 3.0) * 0.6, name="b"))
    log = rollout.run_episode(ExpertPolicy(), recorded, seed=0)  # the expert replays the recording
    assert log.off_road_events == 0 and max(np.abs(log.lateral_m)) == 0.0


def test_a_push_moves_the_learner_off_the_path(recording):
    env = ReplayEnv(recording(steering=np.zeros(10)))
    env.reset(seed=0)
    env.push(0.4)
    _, _, _, _, info = env.step(np.array([0.0], np.float32))
    assert info["lateral_offset_m"] == pytest.approx(0.4, abs=1e-6) and info["fill_fraction"] > 0
    env.push(0.7)
    _, _, _, _, info = env.step(np.array([0.0], np.float32))
    assert info["intervened"] and info["lateral_offset_m"] == 0.0


def test_replay_writes_the_figures_and_a_rerun_computes_nothing(tmp_path, recording, tiny_checkpoint, capsys):
    data = recording(episodes=2)
    out = tmp_path / "run"
    argv = ["replay", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--perturb", "gaussian:0.1"]
    argv += ["--seeds", "2", "--workers", "0", "--out", str(out)]
    assert main(argv) == 0
    assert "8 cell(s) computed, 0 reused" in capsys.readouterr().out  # (ncp19 + expert) x (clean + 1 level) x 2 seeds
    rows = pd.read_csv(out / "results.csv")
    for column in ("interventions_per_km", "autonomy_pct", "mean_abs_lateral_m", "steering_jerk"):
        assert column in rows and f"{column}_std" in rows
    for column in ("interventions_per_km_ci_low", "autonomy_pct_ci_high", "mean_abs_lateral_m_ep_mean"):
        assert column in rows
    expert = rows[rows["model"] == "expert"]
    assert (expert["interventions_per_km"] == 0).all() and (expert["autonomy_pct"] == 100).all()
    assert (expert["mean_abs_lateral_m"] == 0).all()
    cell = json.loads(next((out / "cells").glob("ncp19__clean*seed1.json")).read_text())
    assert [e["episode"] for e in cell["episodes"]] == [0, 1] and cell["reset_seeds"] == [2, 3]
    m = cell["metrics"]
    assert m["interventions"] == m["off_road_events"] == sum(e["interventions"] for e in cell["episodes"])
    assert m["autonomy_pct"] == pytest.approx(autonomy_pct(m["interventions"], m["duration_s"]))
    assert m["duration_s"] == pytest.approx(2 * 23 / 20.0)  # every recorded interval of both episodes
    assert (out / "report.md").read_text().startswith("# Replay") and (out / "replay_gaussian.png").is_file()
    assert main(argv) == 0
    assert "0 cell(s) computed, 8 reused" in capsys.readouterr().out


def test_the_library_call_and_videos(tmp_path, recording):
    data = recording(steering=np.zeros(12))
    result = replay([], data, tmp_path / "run", video=True, progress=False)
    assert result["computed"] == 1 and result["rows"][0]["model"] == "expert"
    from drive.eval.video import read_video

    (video,) = (tmp_path / "run" / "videos").glob("*.mp4")
    frames = read_video(video)
    assert len(frames) == 11 and frames[0].shape == (2 * 78 + 50 + 120, 4 * 200, 3)
    assert replay([], data, tmp_path / "run", video=True, progress=False)["computed"] == 0
    video.unlink()  # a stored cell whose video is gone is computed again
    assert replay([], data, tmp_path / "run", video=True, progress=False)["computed"] == 1


def test_a_dataset_without_camera_metadata_is_one_line_and_writes_nothing(tmp_path, recording, capsys):
    data = recording(camera={})
    out = tmp_path / "run"
    assert main(["replay", "--checkpoint", "expert", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--camera-height-m" in err and "--fov-deg" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--episodes", "0,x"], "--episodes"),
        (["--episodes", "5"], "no complete episode 5"),
        (["--max-offset-m", "0"], "--max-offset-m"),
        (["--seeds", "0"], "--seeds"),
    ],
)
def test_bad_flags_are_one_line(tmp_path, recording, capsys, flags, words):
    data = recording()
    assert main(["replay", "--checkpoint", "expert", "--data", str(data), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
