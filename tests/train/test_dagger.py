"""DAgger: the learner drives, the expert labels, the episodes join the training data only, training resumes."""

import json

import numpy as np
import pandas as pd

from drive.data import layout
from drive.data.reader import DatasetReader
from drive.data.recorder import record
from drive.train.dagger import AGGREGATE_DIR, DAGGER_SOURCE, run_dagger
from drive.train.loop import train


def test_one_dagger_round_aggregates_labelled_learner_episodes(tmp_path, small_config):
    data = record("train", 2, tmp_path / "rec", seed=0, duration_s=2.0, progress=False)
    cfg = small_config(data, epochs=1, batch_size=2, val_fraction=0.5, dagger_rounds=1, scenario="train",
                       dagger_episodes=1, dagger_duration_s=1.5, dagger_epochs=1)
    first = train(cfg)
    out = tmp_path / "ckpt"
    val_before = json.loads((out / "config.json").read_text())["data"]["val_segments"]
    result = run_dagger(cfg)
    agg = DatasetReader(out / AGGREGATE_DIR)
    assert agg.episodes == [0, 1, 2]
    meta = agg.episode_meta(2)
    assert meta["split"] == "train" and meta["dagger_round"] == 1
    table = agg.episode_table(2)
    assert len(table) == 30  # 1.5 s at 20 Hz
    # labels are the expert's; what was applied is the learner's, and they differ
    assert not np.allclose(table[layout.STEERING_LABEL], table[layout.STEERING_APPLIED])
    assert np.isfinite(table[layout.LATERAL_OFFSET]).all()
    # the original data is untouched and the validation episode did not change
    assert DatasetReader(data).episodes == [0, 1]
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["val_segments"] == val_before and len(val_before) == 1
    assert [2, 0, 30] in config["data"]["train_segments"]
    # training resumed: one more epoch on top of the first
    assert result.progress["epoch"] == first.progress["epoch"] + 1
    assert result.progress["losses"][:len(first.progress["losses"])] == first.progress["losses"]
    report = json.loads((out / "dagger.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1] and report["rounds"][0]["episodes"][0]["frames"] == 30
    assert pd.read_parquet(layout.episode_meta_path(out / AGGREGATE_DIR, 2))["source"].iloc[0] == DAGGER_SOURCE
