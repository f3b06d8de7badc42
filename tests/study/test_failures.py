"""The failure rule (a run fails when its validation loss is not below a constant predictor's): on a constant
predictor, on a tiny model that learns, and on a checkpoint whose training data is not at hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drive.data.layout import DatasetInfo
from drive.data.sequences import Segment
from drive.data.writer import DatasetWriter
from drive.study.failures import TrainingData, constant_predictor_loss, training_failure


def stripe_frames(steering: np.ndarray, seed: int, h: int = 78, w: int = 200) -> np.ndarray:
    """A bright stripe whose x position follows the label, on a textured background: learnable from pixels."""
    background = np.random.default_rng(seed).integers(40, 90, size=(h, w, 3), dtype=np.uint8)
    out = np.repeat(background[None], len(steering), axis=0)
    for i, s in enumerate(steering):
        out[i][:, np.abs(np.arange(w) - (w / 2 + s * w / 3)) < 8] = (230, 230, 200)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures") / "data"
    writer = DatasetWriter(root, DatasetInfo(fps=10.0, image_height=78, image_width=200, max_steer_rad=0.5))
    for e in range(5):
        steering = (0.7 * np.sin(np.arange(40) / 4.0 + 1.3 * e)).astype(np.float32)
        writer.add_episode(iter(stripe_frames(steering, e)), steering, np.arange(40) / 10.0)
    writer.close()
    return root


def test_the_constant_predictor_loss_is_the_weighted_loss_of_the_training_mean():
    labels = np.array([0.0, 1.0, 0.5, 0.5, -1.0, 0.2, 0.4, 0.6], dtype=np.float32)
    offsets = {0: 0, 1: 4}
    train, val = [Segment(0, 0, 4)], [Segment(1, 0, 4)]
    mean = labels[:4].mean()  # 0.5
    y = labels[4:]
    expected = np.mean(np.exp(2.0 * np.abs(y)) * (mean - y) ** 2)
    assert constant_predictor_loss(labels, offsets, train, val, 4, 2.0) == pytest.approx(expected, rel=1e-6)
    # burn-in: the first frame of each window does not count
    burnt = np.mean(np.exp(2.0 * np.abs(y[1:])) * (mean - y[1:]) ** 2)
    assert constant_predictor_loss(labels, offsets, train, val, 4, 2.0, burn_in=1) == pytest.approx(burnt, rel=1e-6)
    assert np.isnan(constant_predictor_loss(labels, offsets, train, val, 5, 2.0))  # no window fits


def test_a_constant_predictor_fails_and_a_model_that_learns_does_not(dataset, tmp_path, monkeypatch):
    from drive.train.config import TrainConfig
    from drive.train.loop import train

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "cnn"
    train(
        TrainConfig(
            data=str(dataset),
            out=str(out),
            model="cnn",
            epochs=3,
            batch_size=4,
            seq_len=8,
            augment=False,
            progress=False,
        )
    )
    config = json.loads((out / "config.json").read_text())
    data = TrainingData(dataset)
    learnt = training_failure(config, data)
    assert learnt["failed"] is False and learnt["best_val_loss"] < learnt["constant_val_loss"]

    # the split the rule recomputes (FrameCache.split's) is the one training recorded
    train_segments, val_segments = data.split(config["training"]["val_fraction"], config["training"]["split_seed"])
    assert [[s.episode, s.start, s.stop] for s in val_segments] == config["data"]["val_segments"]
    without_split = {**config, "data": {k: v for k, v in config["data"].items() if not k.endswith("_segments")}}
    assert training_failure(without_split, data)["constant_val_loss"] == pytest.approx(learnt["constant_val_loss"])

    # a run that only learnt the mean scores the constant predictor's loss: it failed, and so does anything worse
    constant = learnt["constant_val_loss"]
    for loss in (constant, 2 * constant):
        run = {**config, "metrics": {**config["metrics"], "best_val_loss": loss}}
        assert training_failure(run, data)["failed"] is True


def test_without_its_training_data_a_runs_failure_is_unknown(dataset):
    config = {"data": {"name": "elsewhere", "sha256": "0" * 64}, "metrics": {"best_val_loss": 0.1}}
    verdict = training_failure(config, TrainingData(dataset))
    assert verdict["failed"] is None and "not at hand" in verdict["note"]
    assert training_failure(config, None)["failed"] is None
    assert training_failure({"metrics": {}}, None)["note"] == "no validation loss recorded"
