"""The training loop: it learns, it writes a complete checkpoint, it resumes exactly, it refuses bad set-ups."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from drive.cli import main
from drive.data import reader as reader_module
from drive.data.sequences import FrameCache, SequenceDataset, split_segments
from drive.policy.checkpoint import load_policy, read_config
from drive.train.loop import evaluate, train, weighted_mse
from drive.train.distributed import Distributed


def test_weighted_mse_weights_sharp_steering_more():
    pred = torch.zeros(4)
    label = torch.tensor([0.0, 0.5, -0.5, 1.0])
    expected = (np.exp(2.0 * np.abs(label.numpy())) * label.numpy() ** 2).mean()
    assert weighted_mse(pred, label, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_mse(pred, label, 0.0).item() == pytest.approx((label ** 2).mean().item())


@pytest.mark.parametrize("model", ["ncp19", pytest.param("cnn", marks=pytest.mark.slow)])
def test_loss_falls_when_overfitting_a_small_set(model, make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    cfg = small_config(data, model=model, epochs=100, max_steps=40, val_fraction=0.0, augment=False)
    losses = train(cfg).progress["losses"]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:5])


def test_checkpoint_is_complete_and_reloads_to_the_same_outputs(make_train_dataset, small_config):
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
    from pathlib import Path
    out = Path(out)
    assert (out / "figures" / "validation-epoch-001.png").stat().st_size > 1000
    assert (out / "figures" / "validation-epoch-002.png").exists()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))
    # the latest weights reload to exactly the in-memory policy
    latest = load_policy(out, weights=out / "train_state" / "model.safetensors")
    frames = torch.randint(0, 256, (2, 5, 78, 200, 3), dtype=torch.uint8)
    with torch.no_grad():
        a, _ = result.policy.eval()(frames)
        b, _ = latest(frames)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the best weights reproduce the recorded best validation loss
    best = load_policy(out)
    cache = FrameCache(data, progress=False)
    _, val = split_segments(cache.lengths, cfg.val_fraction, cfg.seed)
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
    assert resumed["losses"] == straight["losses"]  # bit for bit
    assert [e["val_loss"] for e in resumed["epochs"]] == [e["val_loss"] for e in straight["epochs"]]

    # stopped mid-epoch by --max-steps, then resumed
    train(small_config(data, out="stopped", epochs=2, max_steps=3))
    again = train(small_config(data, out="stopped", epochs=2, resume=True)).progress
    assert again["losses"] == straight["losses"]


def test_refuses_to_overwrite_and_to_resume_with_other_batches(make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    train(small_config(data, max_steps=1))
    with pytest.raises(ValueError, match="already holds a checkpoint; pass --resume"):
        train(small_config(data, max_steps=1))
    with pytest.raises(ValueError, match="--resume: --batch-size 2 differs from .*config.json's 4"):
        train(small_config(data, resume=True, batch_size=2))
    with pytest.raises(FileNotFoundError, match="nothing to resume|not a checkpoint"):
        train(small_config(data, out="nothing", resume=True))


def test_bad_data_errors_are_one_clear_line(make_train_dataset, tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "missing: dataset folder not found" in err and err.count("\n") == 1
    data = make_train_dataset(lengths=(20, 20))
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--seq-len", "16", "--batch-size", "8",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "fewer than --batch-size 8" in err
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--model", "mlp", "--no-progress"])
    assert code == 2 and "--model 'mlp': must be one of" in capsys.readouterr().err


def test_cli_trains_and_reports(make_train_dataset, tmp_path, capsys):
    data = make_train_dataset(lengths=(40, 40))
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "c"), "--model", "gru", "--epochs", "1",
                 "--batch-size", "2", "--seq-len", "8", "--lr-head", "1e-3", "--lr-controller", "1e-2",
                 "--max-steps", "2", "--no-augment", "--no-progress"])
    assert code == 0
    assert "drive train: 2 step(s)" in capsys.readouterr().out
    training = json.loads((tmp_path / "c" / "config.json").read_text())["training"]
    assert training["lr_head"] == 1e-3 and training["lr_controller"] == 1e-2 and training["augment"] is False
    assert load_policy(tmp_path / "c").model_name == "gru"
