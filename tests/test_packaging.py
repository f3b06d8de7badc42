"""Packaging: a non-editable install finds the shipped scenarios and the default checkpoint from any directory,
and the source tree's metadata names the distribution, licence and package data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from drive import resources

ROOT = Path(__file__).resolve().parents[1]


def test_resources_find_the_shipped_files_in_a_source_checkout():
    assert {"default", "train", "racetrack", "traffic"} <= set(resources.shipped_scenarios())
    assert resources.scenario_path("train") == ROOT / "scenarios" / "train.yaml"
    assert resources.scenario_path("train.yaml") == ROOT / "scenarios" / "train.yaml"
    assert resources.scenario_path("nope") is None and resources.scenario_path("a/train") is None
    assert resources.default_checkpoint() == ROOT / "checkpoints" / "ncp19"


def test_default_checkpoint_is_found_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.resolve_checkpoint_arg("checkpoints/ncp19") == ROOT / "checkpoints" / "ncp19"
    (tmp_path / "checkpoints" / "ncp19").mkdir(parents=True)  # a folder of that name here wins
    assert resources.resolve_checkpoint_arg("checkpoints/ncp19") == Path("checkpoints/ncp19")


def test_metadata_names_a_free_distribution_an_spdx_licence_and_the_package_data():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "drive-ncp" and project["scripts"] == {"drive": "drive.cli:main"}
    assert project["license"] == "Apache-2.0" and (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert project["classifiers"] and project["urls"]
    setuptools = meta["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"drive.scenarios": "scenarios", "drive.checkpoints": "checkpoints"}
    found = sorted(str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "drive").rglob("__init__.py"))
    assert set(found) <= set(setuptools["packages"])  # no package left out of the explicit list


def test_shipped_checkpoints_record_no_machine_path():
    for config in [*ROOT.glob("checkpoints/*/config.json"), ROOT / "checkpoints" / "summary.json"]:
        text = config.read_text()
        assert '"/' not in text, f"{config} records an absolute path"


@pytest.mark.slow
def test_a_non_editable_install_simulates_from_outside_the_repository(tmp_path):
    """``pip install .`` (a built wheel, not a link to the source) into a fresh folder; dependencies come from
    the running environment, so this works offline."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "drive", src / "drive", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scenarios", src / "scenarios")
    shutil.copytree(
        ROOT / "checkpoints" / "ncp19",
        src / "checkpoints" / "ncp19",
        ignore=shutil.ignore_patterns("train_state", "tensorboard"),
    )
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    installed = target / "drive"
    assert sorted(p.name for p in (installed / "scenarios").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "scenarios").glob("*.yaml")
    )
    assert sorted(p.name for p in (installed / "checkpoints" / "ncp19").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert not (installed / "checkpoints" / "cnn").exists()

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import drive.resources as r; print(r.__file__); "
            "print(r.default_checkpoint()); print(r.scenario_path('default'))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout
    # no arguments: the shipped default scenario and checkpoint, results under ./runs/simulate (about a minute)
    run = subprocess.run(
        [str(target / "bin" / "drive"), "simulate"], cwd=work, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((work / "runs" / "simulate" / "metrics.json").read_text())
    assert metrics["model"] == "ncp19" and metrics["policy"]["episodes"][0]["steps"] > 0
