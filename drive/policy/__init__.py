"""Driving policies: perception heads, the policy module (frames -> steering) and its checkpoints.

A checkpoint becomes a driver in :mod:`drive.policy.load` (``load_driver``, for the torch or ONNX runtime).
The names below are imported on first use (PEP 562), so that importing a light submodule
(``drive.policy.protocol``, ``.reference``, ``.load``, ``.export``) does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_driver": "drive.policy.load",
    "load_policy": "drive.policy.checkpoint",
    "save_checkpoint": "drive.policy.checkpoint",
    "DrivingPolicy": "drive.policy.model",
    "build_policy": "drive.policy.model",
    "MODEL_NAMES": "drive.policy.perception",
}

__all__ = ["DrivingPolicy", "MODEL_NAMES", "build_policy", "load_driver", "load_policy", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'drive.policy' has no attribute {name!r}")
