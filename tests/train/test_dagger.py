"""DAgger: the learner drives, the expert labels, the episodes join the training data only, training resumes."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from drive.data import layout
from drive.data.reader import DatasetReader
from drive.data.recorder import record
from drive.eval.rollout import make_env, run_episode
from drive.policy.checkpoint import load_policy
from drive.train.dagger import AGGREGATE_DIR, DAGGER_SOURCE, drive_episode, run_dagger
from drive.train.loop import train
from drive.world.scenario import as_scenario


def test_one_dagger_round_aggregates_labelled_learner_episodes(tmp_path, small_config):
    data = record("train", 2, tmp_path / "rec", seed=0, duration_s=2.0, progress=False)
    cfg = small_config(
        data,
        epochs=1,
        batch_size=2,
        val_fraction=0.5,
        dagger_rounds=1,
        scenario="train",
        dagger_episodes=1,
        dagger_duration_s=1.5,
        dagger_epochs=1,
    )
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
    assert result.progress["losses"][: len(first.progress["losses"])] == first.progress["losses"]
    report = json.loads((out / "dagger.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1] and report["rounds"][0]["episodes"][0]["frames"] == 30
    assert pd.read_parquet(layout.episode_meta_path(out / AGGREGATE_DIR, 2))["source"].iloc[0] == DAGGER_SOURCE


def _poison(checkpoint) -> None:
    """Make every float weight of a checkpoint NaN, so its policy steers NaN."""
    from safetensors.torch import load_file, save_file

    path = checkpoint / "model.safetensors"
    tensors = {k: (v.fill_(float("nan")) if v.is_floating_point() else v) for k, v in load_file(path).items()}
    save_file(tensors, path)


def test_a_policy_steering_nan_finishes_its_round_and_counts_the_nonfinite_actions(tmp_path, small_config):
    data = record("train", 2, tmp_path / "rec", seed=0, duration_s=1.0, progress=False)
    cfg = small_config(
        data,
        epochs=1,
        batch_size=2,
        val_fraction=0.5,
        dagger_rounds=1,
        scenario="train",
        dagger_episodes=1,
        dagger_duration_s=1.0,
        dagger_epochs=1,
    )
    train(cfg)
    out = tmp_path / "ckpt"
    _poison(out)
    with pytest.warns(RuntimeWarning, match="non-finite steering"):
        result = run_dagger(cfg)
    assert result.progress["epoch"] == 2
    episode = json.loads((out / "dagger.json").read_text())["rounds"][0]["episodes"][0]
    assert episode["frames"] == 20 and episode["nonfinite_actions"] == 20
    table = DatasetReader(out / AGGREGATE_DIR).episode_table(2)
    assert np.isfinite(table[layout.STEERING_LABEL]).all()
    np.testing.assert_array_equal(table[layout.STEERING_APPLIED], 0.0)  # NaN clamped to straight ahead


class _Steady:
    """A driver trained on a dataset whose steering 1.0 is ``max_steer_rad``: always commands ``steering``."""

    neuron_labels: list[str] = []
    model_name = "steady"

    def __init__(self, steering: float, max_steer_rad: float):
        self.steering, self.max_steer_rad = steering, max_steer_rad

    def initial_state(self, batch):
        return torch.zeros(batch, 0)

    def step(self, frames, state, dt_s=None, infos=None):
        return np.full(len(frames), self.steering), state

    def neuron_activity(self, state):
        return np.zeros((state.shape[0], 0), np.float32)


def test_steering_is_in_the_datasets_units_when_its_max_steer_differs_from_the_scenarios():
    scenario = dataclasses.replace(as_scenario("train"), duration_s=1.0)
    assert scenario.max_steer_rad == pytest.approx(0.35)
    env = make_env(scenario)
    try:
        driver = _Steady(0.3, max_steer_rad=0.7)  # 0.21 rad: 0.6 of the scenario's 0.35 rad
        env_steps = []
        run_episode(driver, env, 5, observers=[env_steps.append])
        ep = drive_episode(driver, env, 5, dataset_max_steer_rad=0.7)
    finally:
        env.close()
    assert all(s.applied == pytest.approx(0.6) for s in env_steps)  # the car got 0.21 rad
    # the dataset's 1.0 is 0.7 rad: the same angles, in its units
    np.testing.assert_allclose(ep["applied"], 0.3, rtol=1e-6)
    expert_rad = np.array([s.expert_steering for s in env_steps]) * scenario.max_steer_rad
    np.testing.assert_allclose(ep["labels"] * 0.7, expert_rad, rtol=1e-5, atol=1e-7)
    assert np.abs(expert_rad).max() > 1e-3


def test_one_dagger_round_on_a_dataset_with_another_max_steer_labels_the_expert_angle(
    tmp_path, make_train_dataset, small_config
):
    data = make_train_dataset(lengths=(30, 30), fps=20.0)  # steering 1.0 = 0.5 rad; the scenario's is 0.35 rad
    cfg = small_config(
        data,
        epochs=1,
        batch_size=2,
        val_fraction=0.5,
        dagger_rounds=1,
        scenario="train",
        dagger_episodes=1,
        dagger_duration_s=1.0,
        dagger_epochs=1,
    )
    train(cfg)
    out = tmp_path / "ckpt"
    learner = load_policy(out)
    assert learner.max_steer_rad == pytest.approx(0.5)
    run_dagger(cfg)
    table = DatasetReader(out / AGGREGATE_DIR).episode_table(2)
    # replay the round's episode with the same learner: the labels are the expert's angles over 0.5 rad
    scenario = dataclasses.replace(as_scenario("train"), duration_s=1.0)
    env = make_env(scenario)
    steps = []
    try:
        run_episode(
            learner, env, int(np.random.SeedSequence([cfg.seed, 1, 0]).generate_state(1)[0]), observers=[steps.append]
        )
    finally:
        env.close()
    expert_rad = np.array([s.expert_steering for s in steps]) * scenario.max_steer_rad
    applied_rad = np.array([s.applied for s in steps]) * scenario.max_steer_rad
    np.testing.assert_allclose(table[layout.STEERING_LABEL] * 0.5, expert_rad, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table[layout.STEERING_APPLIED] * 0.5, applied_rad, rtol=1e-4, atol=1e-5)
