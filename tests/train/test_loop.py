"""The training loop: it learns, it writes a complete checkpoint, it resumes exactly, it refuses bad set-ups."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from drive.cli import main
from drive.data import reader as reader_module
from drive.data.sequences import FrameCache, SequenceDataset
from drive.errors import UserError
from drive.policy.checkpoint import load_policy, read_config
from drive.train.distributed import Distributed
from drive.train.loop import evaluate, train, weighted_mse

# Losses of two runs that do the same arithmetic agree bit for bit on one machine and thread count; on
# another CPU or thread count the matmul/conv blocking rounds differently, so compare within float32 noise
# amplified over a few optimiser steps.
LOSS_TOL = {"rtol": 1e-4, "atol": 1e-6}


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Weights saved and loaded again are the same bytes (a safetensors round trip does no arithmetic)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def test_weighted_mse_weights_sharp_steering_more():
    pred = torch.zeros(4)
    label = torch.tensor([0.0, 0.5, -0.5, 1.0])
    expected = (np.exp(2.0 * np.abs(label.numpy())) * label.numpy() ** 2).mean()
    assert weighted_mse(pred, label, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_mse(pred, label, 0.0).item() == pytest.approx((label**2).mean().item())


@pytest.mark.parametrize("model", ["ncp19", pytest.param("cnn", marks=pytest.mark.slow)])
def test_loss_falls_when_overfitting_a_small_set(model, make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    cfg = small_config(data, model=model, epochs=100, max_steps=40, val_fraction=0.0, augment=False)
    losses = train(cfg).progress["losses"]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:5])


def test_checkpoint_is_complete_and_reloads_to_the_same_outputs(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset(lengths=(40, 40, 40))
    cfg = small_config(data, epochs=2, val_fraction=0.34)
    result = train(cfg)
    out = cfg.out
    config = read_config(out)
    assert config["model"] == "ncp19" and config["training"]["batch_size"] == 4
    assert config["data"]["episodes"] == [0, 1, 2] and config["data"]["frames"] == 120
    assert len(config["data"]["val_segments"]) == 1
    assert config["policy"]["frame_period_s"] == pytest.approx(0.1)
    assert config["metrics"]["epochs_done"] == 2 and config["metrics"]["steps"] == len(result.progress["losses"])
    out = Path(out)
    assert (out / "figures" / "validation-epoch-001.png").stat().st_size > 1000
    assert (out / "figures" / "validation-epoch-002.png").exists()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))
    assert config["data"]["name"] == "data" and len(config["data"]["sha256"]) == 64
    assert str(tmp_path) not in (out / "config.json").read_text()  # no machine path in the provenance
    # the latest weights reload to exactly the in-memory policy's, and give its outputs
    latest = load_policy(out, weights=out / "train_state" / "model.safetensors")
    assert_same_parameters(result.policy, latest)
    frames = torch.randint(0, 256, (2, 5, 78, 200, 3), dtype=torch.uint8)
    with torch.no_grad():
        a, _ = result.policy.eval()(frames)
        b, _ = latest(frames)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the best weights reproduce the recorded best validation loss
    best = load_policy(out)
    cache = FrameCache(data, progress=False)
    _, val = cache.split(cfg.val_fraction, cfg.split_seed)
    metrics = evaluate(best, SequenceDataset(cache, val, cfg.seq_len), cfg, Distributed())
    assert metrics["loss"] == pytest.approx(config["metrics"]["best_val_loss"], rel=1e-5)


def test_resume_continues_exactly_and_never_decodes_again(make_train_dataset, small_config, monkeypatch):
    data = make_train_dataset(lengths=(40, 40, 40))
    straight = train(small_config(data, out="straight", epochs=2)).progress

    train(small_config(data, out="resumed", epochs=1))

    def no_decode(*args, **kwargs):
        raise AssertionError("video decoded although the frame cache is valid")

    monkeypatch.setattr(reader_module.DatasetReader, "read_frames", no_decode)
    resumed = train(small_config(data, out="resumed", epochs=2, resume=True)).progress
    # the same batches in the same order from the same weights and optimiser state
    assert len(resumed["losses"]) == len(straight["losses"])
    np.testing.assert_allclose(resumed["losses"], straight["losses"], **LOSS_TOL)
    np.testing.assert_allclose(
        [e["val_loss"] for e in resumed["epochs"]], [e["val_loss"] for e in straight["epochs"]], **LOSS_TOL
    )

    # stopped mid-epoch by --max-steps, then resumed
    train(small_config(data, out="stopped", epochs=2, max_steps=3))
    again = train(small_config(data, out="stopped", epochs=2, resume=True)).progress
    assert len(again["losses"]) == len(straight["losses"])
    np.testing.assert_allclose(again["losses"], straight["losses"], **LOSS_TOL)


def test_refuses_to_overwrite_and_to_resume_with_other_batches(make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    train(small_config(data, max_steps=1))
    with pytest.raises(UserError, match="already holds a checkpoint; pass --resume"):
        train(small_config(data, max_steps=1))
    with pytest.raises(UserError, match="--resume: --batch-size 2 differs from .*config.json's 4"):
        train(small_config(data, resume=True, batch_size=2))
    with pytest.raises(UserError, match="nothing to resume|not a checkpoint"):
        train(small_config(data, out="nothing", resume=True))


def test_bad_data_errors_are_one_clear_line(make_train_dataset, tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "missing: dataset folder not found" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing made for a run that cannot start
    data = make_train_dataset(lengths=(20, 20))
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--seq-len",
            "16",
            "--batch-size",
            "8",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "fewer than --batch-size 8" in err
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--model", "mlp", "--no-progress"])
    assert code == 2 and "--model 'mlp': must be one of" in capsys.readouterr().err


def test_cli_trains_and_reports(make_train_dataset, tmp_path, capsys):
    data = make_train_dataset(lengths=(40, 40))
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "c"),
            "--model",
            "gru",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--seq-len",
            "8",
            "--lr-head",
            "1e-3",
            "--lr-controller",
            "1e-2",
            "--max-steps",
            "2",
            "--no-augment",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "drive train: 2 step(s)" in capsys.readouterr().out
    training = json.loads((tmp_path / "c" / "config.json").read_text())["training"]
    assert training["lr_head"] == 1e-3 and training["lr_controller"] == 1e-2 and training["augment"] is False
    assert load_policy(tmp_path / "c").model_name == "gru"


def test_train_state_is_one_unit_with_a_manifest(make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    cfg = small_config(data, max_steps=2)
    train(cfg)
    state = Path(cfg.out) / "train_state"
    assert sorted(p.name for p in state.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    assert not [p for p in Path(cfg.out).iterdir() if p.name.startswith(".train_state")]  # no temporaries left
    files = json.loads((state / "manifest.json").read_text())["files"]
    assert files["optimizer.safetensors"]["bytes"] == (state / "optimizer.safetensors").stat().st_size


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_resume_refuses_a_torn_or_corrupt_train_state_in_one_line(
    damage, make_train_dataset, small_config, tmp_path, capsys
):
    data = make_train_dataset(lengths=(40, 40))
    out = tmp_path / "ckpt"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--seq-len",
                "8",
                "--max-steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    opt = out / "train_state" / "optimizer.safetensors"
    blob = opt.read_bytes()
    if damage == "truncate":
        opt.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        opt.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    else:
        opt.unlink()
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--seq-len",
            "8",
            "--resume",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{opt}:" in err
    assert {"truncate": "torn or truncated", "flip": "corrupt", "delete": "missing"}[damage] in err


def test_resume_refuses_a_truncated_optimizer_without_manifest(make_train_dataset, small_config, capsys):
    """A state written before manifests existed is still checked as it loads."""
    data = make_train_dataset(lengths=(40, 40))
    cfg = small_config(data, epochs=2, max_steps=2)
    train(cfg)
    state = Path(cfg.out) / "train_state"
    (state / "manifest.json").unlink()
    opt = state / "optimizer.safetensors"
    opt.write_bytes(opt.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"optimizer\.safetensors: unreadable safetensors file"):
        train(small_config(data, epochs=2, resume=True))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[1, 2]", "the top level is an array, expected an object"),
        (b'{"format": "drive-checkpoint", "format_version": 1, "policy": 3}', "field 'policy' is int"),
        (b'{"a": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_bad_checkpoint_config_on_resume_is_one_line_naming_the_file(
    content, message, make_train_dataset, tmp_path, capsys
):
    data = make_train_dataset(lengths=(40, 40))
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "config.json").write_bytes(content)
    code = main(["train", "--data", str(data), "--out", str(out), "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{out / 'config.json'}:" in err and message in err, err


def test_bad_out_is_refused_before_the_frame_cache_is_built(make_train_dataset, tmp_path, capsys):
    data = make_train_dataset(lengths=(40, 40))
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        code = main(["train", "--data", str(data), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--out" in err and str(tmp_path / "file") in err, err
    assert not (data / "cache").exists()  # refused before any work
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code = main(["train", "--data", str(data), "--out", str(locked / "ck"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "is not writable" in err and err.count("\n") == 1, err
        assert not (data / "cache").exists()


def test_bad_device_is_one_line(make_train_dataset, tmp_path, capsys):
    data = make_train_dataset(lengths=(40, 40))
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--device", "tpu9", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--device 'tpu9'" in err, err


def test_training_seeds_change_initialisation_and_order_but_not_the_validation_episodes(
    make_train_dataset, small_config, tmp_path
):
    data = make_train_dataset(lengths=(20, 20, 20, 20, 20))
    runs = {}
    for seed in (0, 1):
        cfg = small_config(data, epochs=1, max_steps=3, val_fraction=0.4, augment=False, seed=seed, out=f"s{seed}")
        result = train(cfg)
        runs[seed] = (
            read_config(cfg.out)["data"]["val_segments"],
            result.progress["losses"],
            load_policy(cfg.out).state_dict(),
        )
    assert runs[0][0] == runs[1][0]  # the same held-out episodes
    assert runs[0][1] != runs[1][1]  # another batch order and initialisation: other losses
    assert any(not torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])
    moved = small_config(data, epochs=1, max_steps=1, val_fraction=0.4, augment=False, split_seed=7, out="split7")
    train(moved)
    assert read_config(moved.out)["data"]["val_segments"] != runs[0][0]  # split_seed moves it
