"""Fixture factories for the evaluation tests: short scenarios, tiny checkpoints and recording fake policies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from drive.world.scenario import Scenario


@pytest.fixture
def make_scenario():
    """A default scenario shortened to ``duration_s`` (a few seconds keeps the tests fast)."""

    def factory(duration_s: float = 3.0, **overrides) -> Scenario:
        return dataclasses.replace(Scenario(name="eval-test"), duration_s=duration_s, **overrides)

    return factory


@pytest.fixture
def scenario_file(tmp_path):
    """A scenario YAML file of ``duration_s`` seconds, for the command line."""

    def factory(duration_s: float = 2.0) -> Path:
        path = tmp_path / f"short_{duration_s:g}.yaml"
        path.write_text(yaml.safe_dump({"name": "short", "duration_s": duration_s}))
        return path

    return factory


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """An untrained policy of a registry model saved as a checkpoint folder (weights seeded, so repeatable)."""
    from drive.policy.checkpoint import save_checkpoint
    from drive.policy.model import build_policy

    def factory(model: str = "ncp19", name: str | None = None) -> Path:
        torch.manual_seed(0)
        policy = build_policy(model, frame_period_s=0.05, max_steer_rad=0.35)
        return save_checkpoint(policy, tmp_path / "checkpoints" / (name or model))

    return factory


class RecordingPolicy:
    """A fake driver that steers a constant and records every call: frames, dt_s and the call count."""

    neuron_labels = ["a", "b"]
    max_steer_rad = None
    model_name = "recording"

    def __init__(self, steering: float = 0.0):
        self.steering = steering
        self.dts: list[float] = []
        self.frames: list[np.ndarray] = []

    def initial_state(self, batch):
        return torch.zeros(batch, 2)

    def step(self, frames, state, dt_s=None, infos=None):
        self.dts.append(float(np.asarray(dt_s).reshape(-1)[0]))
        self.frames.append(np.array(frames[0]))
        return np.full(len(frames), self.steering), state + 1

    def neuron_activity(self, state):
        return state.numpy()


@pytest.fixture
def recording_policy():
    """Factory of ``RecordingPolicy`` (a constant driver that records its calls)."""
    return RecordingPolicy
