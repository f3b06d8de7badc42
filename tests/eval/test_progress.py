"""Progress of the long evaluation verbs: `drive simulate` counts control steps within episodes, `drive explain`
and `drive evaluate` count frames; each is a tqdm bar on stderr that ``--no-progress`` turns off."""

from __future__ import annotations

import re

import pytest

from drive.cli import main


def _bars(err: str) -> list[str]:
    """The tqdm bar lines written to stderr (each refresh starts with a carriage return)."""
    return [line for line in re.split(r"[\r\n]", err) if "%|" in line]


def _counted(err: str, unit: str) -> set[str]:
    """The ``done/total`` counts shown by bars of ``unit``."""
    return {m.group(0) for line in _bars(err) if unit in line for m in re.finditer(r"\d+/\d+", line)}


@pytest.fixture
def recorded(tmp_path):
    """Two expert episodes of 1 s (20 frames each at 20 Hz)."""
    from drive.data.recorder import record
    from drive.world.scenario import as_scenario

    return record(as_scenario("train"), 2, tmp_path / "data", duration_s=1.0, progress=False)


def test_simulate_counts_steps_within_episodes(tmp_path, tiny_checkpoint, scenario_file, capsys):
    argv = ["simulate", "--checkpoint", str(tiny_checkpoint()), "--scenario", str(scenario_file(1.0))]
    argv += ["--episodes", "2", "--runtime", "torch", "--no-expert"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    counts = _counted(err, "step")
    assert "0/40" in counts  # 2 episodes of 20 planned steps, counted in steps (not 0/2 episodes)
    assert "episode 2/2" in err  # the episode in the postfix

    assert main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert not _bars(capsys.readouterr().err)


def test_explain_counts_steps_and_frames(tmp_path, tiny_checkpoint, scenario_file, capsys):
    argv = ["explain", "--checkpoint", str(tiny_checkpoint()), "--scenario", str(scenario_file(1.0))]
    argv += ["--duration-s", "1", "--ssim-frames", "5", "--images", "1", "--noise", "0.1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "0/20" in _counted(err, "step")  # driving: one episode of 20 steps
    frames = _counted(err, "frame")
    assert "0/10" in frames  # attention: 5 frames, clean and one noise level
    assert "0/40" in frames  # saliency: the maps of 20 frames, then the video's 20 frames

    assert main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert not _bars(capsys.readouterr().err)


def test_explain_on_recorded_frames_counts_them(tmp_path, tiny_checkpoint, recorded, capsys):
    from drive.eval.explain import explain

    explain(str(tiny_checkpoint()), None, tmp_path / "x", data=recorded, images=0, ssim_frames=2, video=False)
    err = capsys.readouterr().err
    assert "0/20" in _counted(err, "frame")  # the open-loop run over the recorded episode


def test_evaluate_counts_frames(tmp_path, recorded, capsys):
    argv = ["evaluate", "--checkpoint", "expert", "--data", str(recorded), "--episodes", "all", "--no-video"]
    argv += ["--perturb", "gaussian:0.1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "0/80" in _counted(err, "frame")  # 2 episodes x 20 frames x (clean, gaussian 0.1)

    assert main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert not _bars(capsys.readouterr().err)
