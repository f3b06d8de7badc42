"""What a training run shows: TensorBoard's learning rates, hyperparameters and validation figure, and the
shipped validation figure (``figures/validation-best.png``) of the kept epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from drive.train import loop
from drive.train.loop import BEST_FIGURE, LR_TAGS, hparams_of, train


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_gets_learning_rates_hyperparameters_and_the_validation_figure(make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40, 40))
    cfg = small_config(data, epochs=2, val_fraction=0.34, lr_schedule="cosine")
    progress = train(cfg).progress
    acc = _events(Path(cfg.out) / "tensorboard")
    tags = acc.Tags()
    # one learning rate per parameter group per step, the scheduled one (cosine: falling)
    for tag in LR_TAGS:
        values = [e.value for e in acc.Scalars(tag)]
        assert len(values) == progress["step"]
        assert values[0] == pytest.approx(getattr(cfg, tag.replace("lr/", "lr_")), rel=1e-6)
        assert values[-1] < values[0]
    # the validation figure, once per epoch
    assert "val/prediction" in tags["images"]
    images = acc.Images("val/prediction")
    assert len(images) == 2 and images[0].width > 100 and images[0].height > 100
    # the hyperparameters with the final metrics
    hp = acc.PluginTagToContent("hparams")
    assert any("experiment" in t for t in hp) and any("session_start_info" in t for t in hp)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = next(v for t, v in hp.items() if "session_start_info" in t)
    info = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info
    assert info.hparams["model"].string_value == "ncp19"
    assert info.hparams["batch_size"].number_value == 4
    assert info.hparams["data"].string_value == "data"  # the folder's name, no machine path
    best = [e.value for e in acc.Scalars("hparam/best_val_loss")]
    assert best == [pytest.approx(progress["best_val_loss"])]
    assert [e.value for e in acc.Scalars("hparam/best_epoch")] == [progress["best_epoch"]]


def test_hparams_hold_the_closed_loop_figures_of_the_kept_epoch(small_config, tmp_path):
    cfg = small_config(tmp_path / "data", select_by="closed_loop")
    progress = {
        "best_val_loss": 0.04,
        "best_epoch": 3,
        "best_closed_loop": {"epoch": 3, "off_road_events": 1, "mean_abs_lateral_m": 0.2, "key": [1, 0.2]},
    }
    params, metrics = hparams_of(cfg, progress)
    assert params["select_by"] == "closed_loop" and "resume" in params
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
    assert metrics == {
        "hparam/best_val_loss": 0.04,
        "hparam/best_epoch": 3.0,
        "hparam/closed_loop_off_road_events": 1.0,
        "hparam/closed_loop_mean_abs_lateral_m": 0.2,
    }
    # by validation loss, and before any epoch was kept: no closed-loop metric, no null
    _, metrics = hparams_of(small_config(tmp_path / "data"), {"best_val_loss": None, "best_epoch": None})
    assert metrics == {}


def test_best_figure_follows_the_kept_weights(make_train_dataset, small_config, monkeypatch):
    data = make_train_dataset(lengths=(40, 40, 40))
    cfg = small_config(data, epochs=4, val_fraction=0.34)
    scripted = iter([0.5, 0.3, 0.4, 0.35])  # the kept epoch is the second

    def evaluate(policy, data, cfg, dist):
        return {"loss": next(scripted), "mse": 0.1, "sequences": 1}

    monkeypatch.setattr(loop, "evaluate", evaluate)
    progress = train(cfg).progress
    assert progress["best_epoch"] == 2
    figures = Path(cfg.out) / "figures"
    assert sorted(p.name for p in figures.glob("validation-epoch-*.png")) == [
        f"validation-epoch-{e:03d}.png" for e in (1, 2, 3, 4)
    ]
    best = (figures / BEST_FIGURE).read_bytes()
    assert best == (figures / "validation-epoch-002.png").read_bytes()
    assert best != (figures / "validation-epoch-004.png").read_bytes()
