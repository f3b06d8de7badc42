"""Bounds on the sizes that set how much work a model does, wherever they come from (a flag, a checkpoint's
``config.json``, a call): generous (tens to hundreds of times the shipped models' values) but finite, so a
typo or a damaged file is refused in one line instead of hanging torch or exhausting memory.

=====================  =========  ==========================================================================
size                   bound      where it is used
=====================  =========  ==========================================================================
``ode_unfolds``        1..1000    LTC fused / fixed-grid solver steps per frame, CT-RNN Euler steps (6)
``hidden``             1..4096    LSTM, GRU, CT-RNN, CfC, feedforward hidden units (64)
``backbone_units``     1..4096    CfC backbone width (64)
``units``              1..1024    neurons of an LTC wiring (19)
``in_features``        1..4096    controller inputs (32)
``out_features``       1..64      controller outputs (1)
conv ``channels``      1..1024    per conv layer of a head (24, 36, 48, 64, 8)
conv ``kernels``       1..31      kernel size per conv layer (5, 5, 3, 3, 3)
conv ``strides``       1..16      stride per conv layer (2, 2, 2, 1, 1)
conv layers            1..16      number of conv layers (5)
``dense``              1..8192    PilotNet dense widths (100, 50, 10), at most 16 layers
``features_per_channel``  1..256  conv head features per feature map (4)
image height, width    1..2048    pixels (78 x 200)
``rtol``, ``atol``     1e-12..1   adaptive ODE solver tolerances (1e-6, 1e-8)
=====================  =========  ==========================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_ODE_UNFOLDS = 1000
MAX_HIDDEN = 4096
MAX_UNITS = 1024
MAX_IN_FEATURES = 4096
MAX_OUT_FEATURES = 64
MAX_CHANNELS = 1024
MAX_KERNEL = 31
MAX_STRIDE = 16
MAX_LAYERS = 16
MAX_DENSE = 8192
MAX_FEATURES_PER_CHANNEL = 256
MAX_IMAGE_SIDE = 2048
MIN_TOLERANCE = 1e-12


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; else a ``ValueError`` naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ValueError(f"{name}={value!r} must be an integer in [{low}, {high}]")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float in [low, high]; else a ``ValueError`` naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} must be a number in [{low:g}, {high:g}]")
    if not (math.isfinite(float(value)) and low <= float(value) <= high):
        raise ValueError(f"{name}={value!r} must be a number in [{low:g}, {high:g}]")
    return float(value)


def check_int_list(name: str, values: Any, low: int, high: int, max_len: int = MAX_LAYERS) -> tuple[int, ...]:
    """A non-empty list of at most ``max_len`` ints, each in [low, high]."""
    if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= max_len:
        raise ValueError(f"{name}={values!r:.80} must be a list of 1 to {max_len} integers")
    return tuple(check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values))
