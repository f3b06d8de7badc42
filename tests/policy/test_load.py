"""drive.policy.load: a checkpoint (path or shipped name) becomes a driver on a runtime; clean one-line errors."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from drive.errors import UserError
from drive.policy.load import check_compatible, load_driver, resolve_checkpoint
from drive.policy.reference import ExpertPolicy

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "ncp19"


def test_the_shipped_checkpoint_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("checkpoints/ncp19").resolve() == SHIPPED.resolve()


def test_expert_and_driver_objects(tmp_path):
    assert isinstance(load_driver("expert"), ExpertPolicy)
    driver = ExpertPolicy()
    assert load_driver(driver) is driver


def test_a_folder_without_a_checkpoint_and_an_unknown_runtime_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint here"):
        load_driver(tmp_path)
    with pytest.raises(UserError, match="--runtime"):
        load_driver(SHIPPED, "tensorrt")


def test_torch_runtime_gives_the_policy_and_its_frames_are_checked_against_the_scenario():
    policy = load_driver(SHIPPED, "torch")
    assert policy.model_name == "ncp19"
    camera = types.SimpleNamespace(height=policy.image_height, width=policy.image_width)
    check_compatible(policy, types.SimpleNamespace(name="fits", camera=camera))
    small = types.SimpleNamespace(name="small", camera=types.SimpleNamespace(height=10, width=20))
    with pytest.raises(UserError, match=r"--checkpoint: the policy takes \d+x\d+ frames but scenario 'small'"):
        check_compatible(policy, small)
    check_compatible(ExpertPolicy(), small)  # the expert takes any frame


def test_a_shipped_checkpoint_is_found_by_its_bare_name_from_any_folder(tmp_path, monkeypatch):
    from drive import resources
    from drive.policy.load import resolve_checkpoint

    monkeypatch.chdir(tmp_path)
    names = resources.shipped_checkpoints()
    assert "ncp19" in names
    for name in names:
        assert resolve_checkpoint(name) == resolve_checkpoint(f"checkpoints/{name}")
        assert (resolve_checkpoint(name) / "config.json").is_file()
    (tmp_path / "ncp19").mkdir()  # a folder of that name here is what the user means: it is not a checkpoint
    with pytest.raises(UserError, match=r"^--checkpoint ncp19: no checkpoint here .*shipped name \(.*ncp19"):
        resolve_checkpoint("ncp19")
