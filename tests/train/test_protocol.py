"""Training-protocol options (issue 12, item 2): burn-in, learning-rate schedule, EMA of the weights, smoothed
best-checkpoint choice and noise augmentation. All are off by default."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from drive.errors import UserError
from drive.train.augment import Augmenter, batch_generator
from drive.train.config import TrainConfig
from drive.train.loop import lr_factor, train, weighted_mse, window_loss


def test_the_new_options_are_off_by_default():
    cfg = TrainConfig()
    assert (cfg.burn_in, cfg.lr_schedule, cfg.ema_decay, cfg.val_smoothing, cfg.augment_noise) == (
        0,
        "none",
        0.0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("burn_in", 8),
        ("burn_in", -1),
        ("lr_schedule", "step"),
        ("ema_decay", 1.0),
        ("val_smoothing", -0.1),
        ("augment_noise", -0.01),
    ],
)
def test_bad_protocol_values_are_refused_naming_the_flag(field, value):
    cfg = dataclasses.replace(TrainConfig(data="d", out="o", seq_len=8), **{field: value})
    with pytest.raises(UserError, match="--" + field.replace("_", "-")):
        cfg.validate()


def test_burn_in_frames_are_unscored():
    torch.manual_seed(0)
    pred = torch.randn(4, 10, requires_grad=True)
    label = torch.randn(4, 10)
    loss = window_loss(pred, label, alpha=2.0, burn_in=3)
    # the loss of the scored frames only
    assert torch.allclose(loss, weighted_mse(pred[:, 3:], label[:, 3:], 2.0))
    # labels of burn-in frames change nothing, and no gradient reaches burn-in predictions
    other = label.clone()
    other[:, :3] += 5.0
    assert torch.allclose(window_loss(pred, other, 2.0, 3), loss)
    loss.backward()
    assert torch.all(pred.grad[:, :3] == 0) and torch.any(pred.grad[:, 3:] != 0)
    assert torch.allclose(window_loss(pred, label, 2.0, 0), weighted_mse(pred, label, 2.0))


def test_burn_in_validation_scores_the_same_frames(make_train_dataset, small_config):
    data = make_train_dataset()
    full = train(small_config(data, out="a", max_steps=2)).progress["epochs"][-1]["val_loss"]
    burnt = train(small_config(data, out="b", max_steps=2, burn_in=4)).progress["epochs"][-1]["val_loss"]
    assert math.isfinite(full) and math.isfinite(burnt) and full != burnt


def test_cosine_schedule_values():
    assert [lr_factor("none", s, 10) for s in (0, 5, 10)] == [1.0, 1.0, 1.0]
    assert lr_factor("cosine", 0, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 10) == pytest.approx(0.0, abs=1e-12)
    values = [lr_factor("cosine", s, 10) for s in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_schedule_sets_the_optimizer_rates(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset()
    cfg = small_config(data, out="cos", epochs=2, lr_schedule="cosine", lr_head=1e-3, lr_controller=4e-3)
    steps = train(cfg).progress["step"]  # 2 epochs: the schedule spans them both
    from safetensors import safe_open

    with safe_open(str(tmp_path / "cos" / "train_state" / "optimizer.safetensors"), "pt") as fh:
        groups = json.loads(fh.metadata()["optimizer"])["param_groups"]
    assert steps >= 2
    factor = lr_factor("cosine", steps - 1, steps)  # the last step ran after steps - 1 were done
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 * factor, 4e-3 * factor])


def test_ema_weights_are_saved_and_differ_from_the_raw_ones(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset()
    result = train(small_config(data, out="ema", max_steps=5, ema_decay=0.8))
    saved = load_file(str(tmp_path / "ema" / "model.safetensors"))
    raw = result.policy.state_dict()
    assert saved.keys() == raw.keys()
    differ = [k for k in saved if saved[k].is_floating_point() and not torch.allclose(saved[k], raw[k])]
    assert differ  # the averaged weights lag the raw ones
    assert all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())
    assert (tmp_path / "ema" / "ema.safetensors").is_file()
    config = json.loads((tmp_path / "ema" / "config.json").read_text())
    assert "EMA" in config["metrics"]["weights"] and config["training"]["ema_decay"] == 0.8
    # a resumed run continues from the stored EMA
    resumed = train(dataclasses.replace(small_config(data, out="ema", ema_decay=0.8, epochs=2), resume=True))
    assert resumed.progress["epoch"] == 2


def test_best_checkpoint_on_smoothed_validation_loss(make_train_dataset, small_config):
    data = make_train_dataset()
    progress = train(small_config(data, out="smooth", epochs=3, val_smoothing=0.5)).progress
    vals = [e["val_loss"] for e in progress["epochs"]]
    smoothed = [vals[0]]
    for v in vals[1:]:
        smoothed.append(0.5 * smoothed[-1] + 0.5 * v)
    assert [e["val_loss_smoothed"] for e in progress["epochs"]] == pytest.approx(smoothed)
    best = int(np.argmin(smoothed))
    assert progress["best_epoch"] == best + 1 and progress["best_val_loss"] == pytest.approx(vals[best])


def test_noise_augmentation_variance_per_sequence_and_fresh_per_frame():
    aug = Augmenter.noise_only(0.02)
    x = torch.full((6, 3, 78, 200, 3), 128, dtype=torch.uint8)
    params = aug.sample(6, 78, 200, batch_generator(0, 0, 0))
    assert torch.all((params["noise_variance"] >= 0) & (params["noise_variance"] <= 0.02))
    y = aug.apply(x, params)
    assert torch.equal(y, aug.apply(x, params))  # seeded: the same parameters give the same bytes
    noise = y.float() / 255.0 - 128 / 255.0
    for i in range(6):  # the measured variance is the drawn one (mid-grey: σ ≤ 0.14, so clipping at ±0.5 is rare)
        assert noise[i].var().item() == pytest.approx(float(params["noise_variance"][i]), rel=0.1, abs=2e-4)
    assert not torch.equal(y[0, 0], y[0, 1])  # fresh noise every frame
    assert abs(noise.mean().item()) < 0.01


def test_no_noise_by_default_and_other_draws_unchanged():
    plain, noisy = Augmenter(), Augmenter(noise_variance=0.05)
    a = plain.sample(4, 78, 200, batch_generator(1, 2, 3))
    b = noisy.sample(4, 78, 200, batch_generator(1, 2, 3))
    assert "noise_variance" not in a
    assert all(torch.equal(a[k], b[k]) for k in a)  # noise is drawn last: the rest is as without it


def test_noise_augmented_training_is_recorded(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset()
    train(small_config(data, out="noisy", max_steps=2, augment=False, augment_noise=0.05))
    assert json.loads((tmp_path / "noisy" / "config.json").read_text())["training"]["augment_noise"] == 0.05
