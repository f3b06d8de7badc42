"""Fixture factories for the policy tests: random frames and small policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def frames():
    """frames(batch, time=None, seed=0) -> uint8 tensor (B, T, 78, 200, 3), or (B, 78, 200, 3) without time."""

    def factory(batch: int, time: int | None = None, seed: int = 0) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        shape = (batch, 78, 200, 3) if time is None else (batch, time, 78, 200, 3)
        return torch.from_numpy(rng.integers(0, 256, size=shape, dtype=np.uint8))

    return factory
