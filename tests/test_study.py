"""tools/run_study.py: one command runs the whole robustness study; an interrupted study resumes, skips finished
work and ends with the results of an uninterrupted run. A tiny configuration: 2 models x 2 training seeds
trained two epochs on a few seconds of recordings, 2 noise levels, 2 stress seeds, 2 s episodes, 1 suite case."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("run_study", ROOT / "tools" / "run_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        "--train-args",
        "--seq-len 8",
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
    tool = load_tool()
    assert tool.checkpoint_name("ncp19", 0) == "ncp19"
    assert tool.checkpoint_name("lstm", 2) == "zoo/lstm-s2"
    assert tool.checkpoint_name("ncp19", 0, "noise") == "zoo/ncp19-noise-s0"
    assert tool.stress_seeds(10, 3) == list(range(30))
    assert tool.stress_seeds(1, 2) == [0, 10]


@pytest.mark.slow
def test_an_interrupted_study_resumes_to_the_results_of_an_uninterrupted_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tool = load_tool()
    a, b = tmp_path / "a", tmp_path / "b"

    # A: uninterrupted
    assert tool.main(study_argv(a)) == 0
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
        tool.main(study_argv(b, "--stages", "record,train", seeds="0", data=data)) == 0
    )  # the zoo stopped after seed 0 ...
    from drive.train.loop import dataset_fingerprint

    assert dataset_fingerprint(data)["sha256"] == dataset_fingerprint(a / "data")["sha256"]
    from drive.cli import main as drive

    runs = {r["name"]: r for r in tool.zoo(tool.parse_args(study_argv(b, data=data)))}
    # ... and during the second epoch of ncp19 seed 1: a kill leaves the state saved at the end of the first epoch
    per_epoch = json.loads((a / "ck" / "zoo" / "ncp19-s1" / "config.json").read_text())["metrics"]["steps"] // 2
    assert drive([*runs["zoo/ncp19-s1"]["argv"], "--max-steps", str(per_epoch)]) == 0
    assert json.loads((b / "ck" / "zoo" / "ncp19-s1" / "config.json").read_text())["metrics"]["epochs_done"] == 1
    capsys.readouterr()
    assert tool.main(study_argv(b, data=data)) == 0
    resumed = last_json(capsys)["stages"]
    assert resumed["train"]["trained"] == 2 and resumed["train"]["reused"] == 2
    cells = sorted((b / "out" / "stress" / "cells").glob("*.json"))
    for cell in cells[:5]:  # the stress sweep was killed before these cells were written
        cell.unlink()
    (b / "out" / "suite" / "cnn-s1" / "done.json").unlink()  # and the suite before it stamped cnn seed 1
    assert tool.main(study_argv(b, data=data)) == 0
    again = last_json(capsys)["stages"]
    assert again["train"]["trained"] == 0
    assert again["stress"]["plain"]["computed"] == 5 and again["stress"]["plain"]["reused"] == 25
    assert again["suite"] == {"computed": 1, "reused": 4, "stage_s": again["suite"]["stage_s"]}

    # a rerun of a finished study computes nothing and touches no checkpoint
    stamps = {p: p.stat().st_mtime_ns for p in (b / "ck").rglob("model.safetensors")}
    assert tool.main(study_argv(b, data=data)) == 0
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
    study = (b / "out" / "study.md").read_text()
    assert "## Robustness study" in study and "σ²=0.09 (σ=0.3)" in study and "Generalization suite" in study
    assert (b / "out" / "robustness_gaussian.png").stat().st_size > 0


def test_a_stale_checkpoint_stops_the_study(tmp_path, capsys):
    """A checkpoint trained with other options than the study asks for is named, not silently reused."""
    tool = load_tool()
    assert tool.main(study_argv(tmp_path, "--stages", "record", episodes=1)) == 0  # a recording stopped early ...
    assert last_json(capsys)["stages"]["record"]["recorded"] == 1
    assert tool.main(study_argv(tmp_path, "--stages", "record,train", "--models", "cnn", seeds="0", episodes=2)) == 0
    assert last_json(capsys)["stages"]["record"] == {"recorded": 1, "reused": 1, "stage_s": pytest.approx(0, abs=60)}
    with pytest.raises(SystemExit, match="--retrain-stale"):
        tool.main(
            study_argv(tmp_path, "--stages", "train", "--models", "cnn", "--batch-size", "2", seeds="0", episodes=2)
        )
    assert "stale checkpoint" in capsys.readouterr().err
    assert (
        tool.main(
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
    tool = load_tool()
    met = tool.target_lines(synthetic_stats({0.01: 0.0, 0.1: 1.0, 0.2: 9.0}))
    assert "met at every level" in met[0]
    assert len([line for line in met if line.startswith("- ")]) == 2  # σ² 0.01 and 0.1; 0.2 is beyond the target
    missed = tool.target_lines(synthetic_stats({0.01: 0.0, 0.1: 1.25, 0.2: 0.0}))
    assert "missed at one level or more" in missed[0]
    assert any("missed by 0.25/km" in line for line in missed)
