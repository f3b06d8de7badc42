"""PilotNet's recipe (issue 22): ELU in the dense layers keeps training alive where ReLU died.

Both tests train PilotNet with the training loop's own step (:func:`drive.train.loop.train_step`) and the
default recipe (AdamW at ``lr_head``, gradient clipping, alpha) on a tiny stripe dataset (the steering is
the stripe's position), from the same initial weights for both activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drive.data.sequences import FrameCache, Segment, SequenceDataset
from drive.policy.model import build_policy
from drive.policy.perception import standardize_images
from drive.train.config import TrainConfig
from drive.train.loop import make_optimizer, train_step, weighted_mse

SEED = 8  # with ReLU this initialisation loses most dense units and ends worse than a constant
STEPS = 40


@pytest.fixture
def stripes(make_train_dataset, tmp_path):
    """(windows of 8 frames over 6 episodes, config, the weighted loss of the best constant predictor)."""
    torch.set_num_threads(1)
    cache = FrameCache(make_train_dataset(lengths=(40,) * 6), progress=False)
    windows = SequenceDataset(cache, [Segment(e, 0, n) for e, n in cache.lengths.items()], seq_len=8)
    cfg = TrainConfig(data="unused", out=str(tmp_path / "unused"), model="cnn", batch_size=4, seq_len=8, seed=SEED)
    labels = torch.tensor(np.asarray(cache.steering, dtype=np.float32))
    weight = torch.exp(cfg.alpha * labels.abs())
    best_constant = (weight * labels).sum() / weight.sum()
    return windows, cfg, weighted_mse(best_constant.expand_as(labels), labels, cfg.alpha).item()


def train_cnn(windows: SequenceDataset, cfg: TrainConfig, activation: str, kill_last: bool = False):
    """``STEPS`` training steps on windows drawn from ``cfg.seed``; the final model's weighted loss over all
    windows and its predictions. ``kill_last``: first shift the biases of the last hidden layer (10 units) so
    that every unit's input is below -0.5 on every frame (the state a dead ReLU layer is in)."""
    torch.manual_seed(cfg.seed)
    info = windows.cache.info
    policy = build_policy(
        "cnn",
        frame_period_s=1.0 / info.fps,
        max_steer_rad=info.max_steer_rad,
        image_height=info.image_height,
        image_width=info.image_width,
        head={"dense_activation": activation},
    )
    everything = windows.get_batch(np.arange(len(windows)))
    if kill_last:
        head = policy.head
        with torch.no_grad():
            images = everything[0].flatten(0, 1).permute(0, 3, 1, 2)
            pre = head.dense[:-2](head.convs(standardize_images(images)).flatten(1))  # inputs of the last activation
            head.dense[-3].bias -= pre.amax(0) + 0.5
    optimizer = make_optimizer(policy, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    order = np.random.default_rng(cfg.seed).integers(0, len(windows), size=(STEPS, cfg.batch_size))
    for step, batch in enumerate(order):
        train_step(policy, optimizer, windows.get_batch(batch), cfg, step, STEPS, base_lrs)
    with torch.no_grad():
        frames, steering, dt = everything
        prediction, _ = policy(frames, None, dt)
    return weighted_mse(prediction, steering, cfg.alpha).item(), prediction


def test_elu_learns_where_relu_does_not(stripes):
    windows, cfg, constant_loss = stripes
    relu_loss, relu_prediction = train_cnn(windows, cfg, "relu")
    elu_loss, elu_prediction = train_cnn(windows, cfg, "elu")
    assert relu_loss > constant_loss, (relu_loss, constant_loss)  # the old recipe: no better than a constant
    assert elu_loss < 0.1 * constant_loss, (elu_loss, constant_loss)  # the new one: at least 90 % below
    assert elu_prediction.std() > 3 * relu_prediction.std()


def test_a_dead_layer_stays_dead_with_relu_and_recovers_with_elu(stripes):
    windows, cfg, constant_loss = stripes
    relu_loss, relu_prediction = train_cnn(windows, cfg, "relu", kill_last=True)
    elu_loss, _ = train_cnn(windows, cfg, "elu", kill_last=True)
    assert torch.all(relu_prediction == relu_prediction.flatten()[0])  # no gradient passes: a constant
    assert relu_loss >= constant_loss * (1 - 1e-6)
    assert elu_loss < 0.5 * constant_loss, (elu_loss, constant_loss)
