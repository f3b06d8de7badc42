"""`drive simulate`: metrics.json with the documented figures, one video per episode, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drive.cli import main
from drive.eval import metrics as M
from drive.eval.simulate import simulate
from drive.eval.video import read_video
from drive.policy.reference import ExpertPolicy

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "ncp19"


def check_metrics_file(path: Path, episodes: int) -> dict:
    result = json.loads(path.read_text())
    for role in ("policy", "expert"):
        assert len(result[role]["episodes"]) == episodes
        for ep in result[role]["episodes"]:
            assert set(M.EPISODE_FIELDS) <= set(ep)
            assert ep["steps"] > 0 and ep["distance_m"] > 0
        assert set(M.EPISODE_FIELDS) <= set(result[role]["aggregate"])
    assert result["policy"]["episodes"][0]["seed"] == result["expert"]["episodes"][0]["seed"]
    return result


def test_cli_with_a_small_untrained_checkpoint_writes_metrics_and_videos(
    tmp_path, tiny_checkpoint, scenario_file, capsys
):
    ckpt = tiny_checkpoint("ncp19")
    out = tmp_path / "run"
    code = main(
        [
            "simulate",
            "--checkpoint",
            str(ckpt),
            "--scenario",
            str(scenario_file(2.0)),
            "--episodes",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = check_metrics_file(out / "metrics.json", episodes=2)
    assert [e["seed"] for e in result["policy"]["episodes"]] == [3, 4]
    videos = sorted((out / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["episode_000.mp4", "episode_001.mp4"]
    frames = read_video(videos[0])
    assert len(frames) == result["policy"]["episodes"][0]["steps"] == 40
    assert frames[0].shape[0] > 78 * 2 and frames[0].shape[1] > 200 * 2
    assert not [p for p in out.rglob(".*") if p.name != ".drive.lock"]  # no temporary files left (the lock stays)
    printed = capsys.readouterr().out
    assert "| ncp19 |" in printed and "| expert |" in printed


def test_perturbed_run_records_the_perturbation_and_expert_reference(tmp_path, tiny_checkpoint, make_scenario):
    result = simulate(
        str(tiny_checkpoint("cnn")),
        make_scenario(2.0),
        episodes=1,
        seed=0,
        perturbations=["gaussian:0.2", "drop:0.3"],
        out=tmp_path / "p",
        progress=False,
    )
    assert result["perturbations"] == ["gaussian:0.2", "drop:0.3"]
    assert result["policy"]["aggregate"]["dropped_frames"] > 0
    assert (tmp_path / "p" / "metrics.json").is_file() and not (tmp_path / "p" / "videos").exists()


def test_same_seed_gives_the_same_figures(tiny_checkpoint, make_scenario):
    ckpt = str(tiny_checkpoint("ncp19"))
    a = simulate(
        ckpt, make_scenario(2.0), seed=5, perturbations=["gaussian:0.1"], expert_reference=False, progress=False
    )
    b = simulate(
        ckpt, make_scenario(2.0), seed=5, perturbations=["gaussian:0.1"], expert_reference=False, progress=False
    )
    assert_same_figures(a["policy"], b["policy"])


def assert_same_figures(a, b, where="policy"):
    """Equal structure, counts and strings; floats within float32 rounding of the policy (the camera noise and
    the road are seeded NumPy and identical, the network's kernels may round differently per call)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_figures(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_figures(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6, nan_ok=True), where
    else:
        assert a == b, where


def test_expert_policy_needs_the_info():
    with pytest.raises(ValueError, match="info"):
        ExpertPolicy().step(np.zeros((1, 78, 200, 3), np.uint8), None, None)


def test_show_without_a_display_fails_cleanly(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["simulate", "--checkpoint", str(tiny_checkpoint()), "--show", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--show" in err and "DISPLAY" in err and "Traceback" not in err


def test_negative_thread_count_is_a_clean_error(tmp_path, tiny_checkpoint, capsys):
    assert (
        main(["simulate", "--checkpoint", str(tiny_checkpoint()), "--threads", "-1", "--out", str(tmp_path / "x")]) == 2
    )
    err = capsys.readouterr().err
    assert "--threads -1" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_missing_checkpoint_and_mismatched_camera_are_clean_errors(tmp_path, tiny_checkpoint, capsys, make_scenario):
    assert main(["simulate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "nope" in capsys.readouterr().err
    small = make_scenario(2.0)
    small.camera.width = 160
    with pytest.raises(ValueError, match="camera"):
        simulate(str(tiny_checkpoint()), small, progress=False)


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHIPPED / "config.json").is_file(), reason="the shipped checkpoint checkpoints/ncp19 is not there yet"
)
def test_cli_with_no_arguments_drives_the_shipped_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate"]) == 0
    result = check_metrics_file(tmp_path / "runs" / "simulate" / "metrics.json", episodes=1)
    assert result["model"] == "ncp19"
    assert (tmp_path / "runs" / "simulate" / "videos" / "episode_000.mp4").stat().st_size > 0
