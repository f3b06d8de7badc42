"""Checkpoints: safetensors + JSON only, same outputs after loading, refusal of mismatched weights,
and an optimiser state that survives a round trip."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import drive
from drive.errors import UserError
from drive.policy.checkpoint import (
    load_policy,
    load_train_state,
    optimizer_tensors,
    read_config,
    save_checkpoint,
    save_train_state,
)
from drive.policy.model import build_policy


@pytest.mark.parametrize("model", ["ncp19", "gru", "cnn"])
def test_round_trip_gives_same_outputs(model, tmp_path, frames):
    torch.manual_seed(0)
    policy = build_policy(model, frame_period_s=0.05, max_steer_rad=0.35).eval()
    seq = frames(2, 4)
    with torch.no_grad():
        before, _ = policy(seq, None, torch.full((2, 4), 0.05))
    save_checkpoint(policy, tmp_path / "ckpt", extra={"metrics": {"best_val_loss": 0.25}})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_policy(tmp_path / "ckpt")
    for name, value in policy.state_dict().items():  # the round trip itself keeps every bit
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        after, _ = loaded(seq, None, torch.full((2, 4), 0.05))
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert loaded.config == policy.config
    config = read_config(tmp_path / "ckpt")
    assert config["code_version"] == drive.__version__ and config["model"] == model
    assert config["metrics"] == {"best_val_loss": 0.25}
    assert config["policy"]["frame_period_s"] == 0.05 and config["policy"]["max_steer_rad"] == 0.35
    if model == "ncp19":
        assert "wiring" in config["policy"]["controller"]


def test_load_refuses_shape_mismatch_naming_file_tensor_and_shapes(tmp_path):
    policy = build_policy("ncp19")
    save_checkpoint(policy, tmp_path / "ckpt")
    cfg_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(cfg_path.read_text())
    config["policy"]["head"]["channels"][0] = 16  # the config now describes another first conv
    cfg_path.write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"model.safetensors: tensor 'head.convs.0.weight' has shape \(24, 3, 5, 5\) "
        r"but the config .*config.json expects \(16, 3, 5, 5\)",
    ):
        load_policy(tmp_path / "ckpt")


def test_load_refuses_missing_and_unexpected_tensors(tmp_path):
    policy = build_policy("cnn")
    save_checkpoint(policy, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(weights))
    missing = dict(tensors)
    del missing["head.dense.0.bias"]
    save_file(missing, str(weights))
    with pytest.raises(ValueError, match=r"model.safetensors: missing tensor 'head.dense.0.bias'.*shape \(100,\)"):
        load_policy(tmp_path / "ckpt")
    save_file({**tensors, "head.extra": torch.zeros(3)}, str(weights))
    with pytest.raises(ValueError, match=r"model.safetensors: unexpected tensor 'head.extra', shape \(3,\)"):
        load_policy(tmp_path / "ckpt")


def test_load_errors_for_missing_or_foreign_files(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint"):
        load_policy(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="field 'format'"):
        load_policy(tmp_path)
    save_checkpoint(build_policy("cnn"), tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="unreadable safetensors"):
        load_policy(tmp_path / "ok")
    (tmp_path / "ok" / "config.json").write_text("[]")
    with pytest.raises(UserError, match=r"config\.json: the top level is an array, expected an object"):
        load_policy(tmp_path / "ok")
    (tmp_path / "ok" / "config.json").write_bytes(b'{"format": "drive-checkpoint \xe9"}')
    with pytest.raises(UserError, match=r"ok/config\.json: not UTF-8 text"):
        load_policy(tmp_path / "ok")


def test_train_state_round_trip_restores_optimizer_exactly(tmp_path, frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19")
    groups = [
        {"params": list(policy.head.parameters()), "lr": 1e-3},
        {"params": list(policy.controller.parameters()), "lr": 1e-2},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    seq = frames(2, 3)
    for _ in range(2):
        y, _ = policy(seq)
        opt.zero_grad()
        y.pow(2).mean().backward()
        opt.step()
    save_checkpoint(policy, tmp_path / "ckpt")
    save_train_state(tmp_path / "ckpt", policy, opt, {"epoch": 1, "step": 2})
    files = {p.name for p in (tmp_path / "ckpt" / "train_state").iterdir()}
    assert files == {"model.safetensors", "optimizer.safetensors", "state.json", "manifest.json"}

    torch.manual_seed(99)
    fresh = build_policy("ncp19")
    fresh_opt = torch.optim.AdamW(
        [
            {"params": list(fresh.head.parameters()), "lr": 5.0},
            {"params": list(fresh.controller.parameters()), "lr": 5.0},
        ]
    )
    state = load_train_state(tmp_path / "ckpt", fresh, fresh_opt)
    assert state == {"epoch": 1, "step": 2}
    a, meta_a = optimizer_tensors(opt)
    b, meta_b = optimizer_tensors(fresh_opt)
    assert meta_a == meta_b and [g["lr"] for g in meta_b["param_groups"]] == [1e-3, 1e-2]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    for p, q in zip(policy.parameters(), fresh.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # one more step on both from the same weights and optimiser state stays the same (up to float rounding)
    for pol, o in ((policy, opt), (fresh, fresh_opt)):
        y, _ = pol(seq)
        o.zero_grad()
        y.pow(2).mean().backward()
        o.step()
    for p, q in zip(policy.parameters(), fresh.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_train_state_is_replaced_whole_and_a_torn_one_is_refused(tmp_path):
    policy = build_policy("cnn")
    opt = torch.optim.AdamW(policy.parameters())
    save_checkpoint(policy, tmp_path / "ckpt")
    save_train_state(tmp_path / "ckpt", policy, opt, {"epoch": 1})
    save_train_state(tmp_path / "ckpt", policy, opt, {"epoch": 2})  # replaces the folder as a whole
    assert [p.name for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".")] == []
    assert load_train_state(tmp_path / "ckpt", policy, opt) == {"epoch": 2}
    # a state.json from another save (e.g. an older tool writing file by file) no longer matches the manifest
    (tmp_path / "ckpt" / "train_state" / "state.json").write_text('{"epoch": 1}\n')
    with pytest.raises(UserError, match=r"state\.json: (torn or truncated|corrupt) training state"):
        load_train_state(tmp_path / "ckpt", policy, opt)


def test_a_save_killed_between_its_renames_is_refused_with_a_hint(tmp_path):
    policy = build_policy("cnn")
    opt = torch.optim.AdamW(policy.parameters())
    save_checkpoint(policy, tmp_path / "ckpt")
    save_train_state(tmp_path / "ckpt", policy, opt, {"epoch": 1})
    # what a kill between atomic_dir's two renames leaves: the old state moved aside, the new one not in place
    (tmp_path / "ckpt" / "train_state").rename(tmp_path / "ckpt" / ".train_state.old-123")
    with pytest.raises(UserError, match=r"train_state: nothing to resume.*\.train_state\.old-123"):
        load_train_state(tmp_path / "ckpt", policy, opt)
