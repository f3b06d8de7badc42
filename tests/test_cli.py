"""The `drive` command: one verb per job, a version string in step with the package metadata."""

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

import drive
from drive.cli import COMMANDS, main


def test_version_matches_installed_metadata():
    assert importlib.metadata.version("drive") == drive.__version__


def test_version_flag_prints_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"drive {drive.__version__}"


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_has_a_module_with_arguments_and_run(verb):
    module = importlib.import_module(COMMANDS[verb][0])
    assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_prints_help(verb):
    proc = subprocess.run([sys.executable, "-m", "drive.cli", verb, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: drive {verb}" in proc.stdout


def test_no_verb_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().out
