"""Perception: the convolutional front ends that turn camera frames into features (or steering).

* :class:`ConvHead` is the NCP paper's conv head (Lechner et al., Nature MI 2020): five convolutions
  (24@5x5/2, 36@5x5/2, 48@3x3/2, 64@3x3/1, 8@3x3/1, each followed by a ReLU, padded so each output is
  ceil(input / stride)), then one linear layer per feature map: each of the 8 maps is flattened and
  mapped by its own linear layer to 4 features, 32 features in all. At 78x200 the maps are 10x25 and
  the head has 79,420 parameters.
* :class:`PilotNet` is NVIDIA's PilotNet (Bojarski et al., 2016), the paper's feed-forward "CNN"
  baseline: five unpadded convolutions (24@5x5/2, 36@5x5/2, 48@5x5/2, 64@3x3, 64@3x3, ReLU) and dense
  layers 100-50-10-1 straight to steering, ELU between the dense layers (``dense_activation``). With ReLU
  there (the recipe of checkpoints written before the option; a config without the key still builds it)
  a training could kill every unit of the 10-wide layer in its first epoch and end as a constant
  predictor (zoo ``cnn`` seed 1); ELU passes a gradient at negative inputs, so a unit pushed below zero
  comes back (``tools/check_cnn_seeds.py``).

Both split into ``convs`` (an ``nn.Sequential`` whose ReLU outputs saliency code can hook) and
``tail(maps)``, the dense part. Both take images as float tensors (N, 3, H, W) of pixel values in [0, 255] (a channels-last view of
RGB uint8 frames is fine) and standardise each image by its own statistics first:
``(x - mean) / max(std, 1 / sqrt(3*H*W))`` over all its pixels and channels (as TensorFlow's
``per_image_standardization``), which removes global brightness and contrast changes.

Sizes are bounded (:mod:`drive.core.limits`: image sides <= 2048, at most 16 conv layers of <= 1024 channels,
kernels <= 31, strides <= 16), so a damaged checkpoint config is refused instead of built.

``MODEL_NAMES`` lists the models of the registry: the recurrent controllers of
:mod:`drive.core.controllers` behind a :class:`ConvHead`, and ``cnn`` = :class:`PilotNet` alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from drive.core.controllers import CONTROLLER_NAMES as CONTROLLER_MODELS  # the one list of controller names
from drive.core.limits import (
    MAX_CHANNELS,
    MAX_DENSE,
    MAX_FEATURES_PER_CHANNEL,
    MAX_IMAGE_SIDE,
    MAX_KERNEL,
    MAX_STRIDE,
    check_int,
    check_int_list,
)

DENSE_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU}
"""PilotNet's activations between its dense layers, by the name its config records."""

DENSE_ACTIVATION = "elu"
"""What a new PilotNet uses between its dense layers."""

LEGACY_DENSE_ACTIVATION = "relu"
"""What a saved PilotNet config without ``dense_activation`` (written before the key existed) was built with."""

MODEL_NAMES = CONTROLLER_MODELS + ("cnn",)
"""Every driving model: a conv head on each registry controller, and ``cnn`` (PilotNet, no controller)."""


def standardize_images(x: torch.Tensor) -> torch.Tensor:
    """Standardise each image of (N, C, H, W) by its own mean and std (floored at 1/sqrt(C*H*W))."""
    x = x.float()
    n = x.shape[1] * x.shape[2] * x.shape[3]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1.0 / math.sqrt(n))
    return (x - mean) / std


class ChannelwiseLinear(nn.Module):
    """One linear layer per channel: (N, C, L) -> (N, C, out), weight (C, L, out), bias (C, out)."""

    def __init__(self, channels: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(channels, out_features))
        bound = 1.0 / math.sqrt(in_features)  # as nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (C, N, L) @ (C, L, out) -> (C, N, out): one batched matrix product for all channels
        return torch.bmm(x.transpose(0, 1), self.weight).transpose(0, 1) + self.bias


def _check_convs(
    what: str, image_height: Any, image_width: Any, channels: Any, kernels: Any, strides: Any
) -> tuple[int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The image size and conv stack of a head, within the bounds of :mod:`drive.core.limits`."""
    image_height = check_int("image_height", image_height, 1, MAX_IMAGE_SIDE)
    image_width = check_int("image_width", image_width, 1, MAX_IMAGE_SIDE)
    channels = check_int_list("channels", channels, 1, MAX_CHANNELS)
    kernels = check_int_list("kernels", kernels, 1, MAX_KERNEL)
    strides = check_int_list("strides", strides, 1, MAX_STRIDE)
    if not (len(channels) == len(kernels) == len(strides)):
        raise ValueError(f"{what}: channels, kernels and strides differ in length: {channels}, {kernels}, {strides}")
    return image_height, image_width, channels, kernels, strides


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvHead(nn.Module):
    """The NCP paper's conv head: image (N, 3, H, W) in [0, 255] -> features (N, channels[-1] * features_per_channel)."""

    def __init__(
        self,
        image_height: int = 78,
        image_width: int = 200,
        channels: tuple[int, ...] = (24, 36, 48, 64, 8),
        kernels: tuple[int, ...] = (5, 5, 3, 3, 3),
        strides: tuple[int, ...] = (2, 2, 2, 1, 1),
        features_per_channel: int = 4,
    ):
        super().__init__()
        image_height, image_width, channels, kernels, strides = _check_convs(
            "ConvHead", image_height, image_width, channels, kernels, strides
        )
        features_per_channel = check_int("features_per_channel", features_per_channel, 1, MAX_FEATURES_PER_CHANNEL)
        layers: list[nn.Module] = []
        c_in, h, w = 3, image_height, image_width
        for c, k, s in zip(channels, kernels, strides):
            layers += [nn.Conv2d(c_in, c, k, stride=s, padding=k // 2), nn.ReLU()]
            c_in, h, w = c, _conv_out(h, k, s, k // 2), _conv_out(w, k, s, k // 2)
        if h < 1 or w < 1:
            raise ValueError(f"ConvHead: image {image_height}x{image_width} is too small for the conv stack")
        self.convs = nn.Sequential(*layers)
        self.map_size = (h, w)
        self.linear = ChannelwiseLinear(c_in, h * w, features_per_channel)
        self.out_features = c_in * features_per_channel
        self.config: dict[str, Any] = {
            "kind": "conv_head",
            "image_height": image_height,
            "image_width": image_width,
            "channels": list(channels),
            "kernels": list(kernels),
            "strides": list(strides),
            "features_per_channel": features_per_channel,
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.convs(standardize_images(images)))

    def tail(self, maps: torch.Tensor) -> torch.Tensor:
        """Feature maps (N, C, h, w) -> features (N, C * features_per_channel)."""
        return self.linear(maps.flatten(2)).flatten(1)


class PilotNet(nn.Module):
    """NVIDIA's PilotNet: image (N, 3, H, W) in [0, 255] -> steering (N, 1)."""

    def __init__(
        self,
        image_height: int = 78,
        image_width: int = 200,
        channels: tuple[int, ...] = (24, 36, 48, 64, 64),
        kernels: tuple[int, ...] = (5, 5, 5, 3, 3),
        strides: tuple[int, ...] = (2, 2, 2, 1, 1),
        dense: tuple[int, ...] = (100, 50, 10),
        dense_activation: str = DENSE_ACTIVATION,
    ):
        super().__init__()
        image_height, image_width, channels, kernels, strides = _check_convs(
            "PilotNet", image_height, image_width, channels, kernels, strides
        )
        dense = check_int_list("dense", dense, 1, MAX_DENSE) if dense else ()
        if not isinstance(dense_activation, str) or dense_activation not in DENSE_ACTIVATIONS:
            raise ValueError(
                f"PilotNet: dense_activation {dense_activation!r:.60} is not one of {', '.join(DENSE_ACTIVATIONS)}"
            )
        layers: list[nn.Module] = []
        c_in, h, w = 3, image_height, image_width
        for c, k, s in zip(channels, kernels, strides):
            layers += [nn.Conv2d(c_in, c, k, stride=s), nn.ReLU()]
            c_in, h, w = c, _conv_out(h, k, s, 0), _conv_out(w, k, s, 0)
        if h < 1 or w < 1:
            raise ValueError(f"PilotNet: image {image_height}x{image_width} is too small for the conv stack")
        self.convs = nn.Sequential(*layers)
        fc: list[nn.Module] = []
        n_in = c_in * h * w
        for n in dense:
            fc += [nn.Linear(n_in, n), DENSE_ACTIVATIONS[dense_activation]()]
            n_in = n
        fc.append(nn.Linear(n_in, 1))
        self.dense = nn.Sequential(*fc)
        self.out_features = 1
        self.config: dict[str, Any] = {
            "kind": "pilotnet",
            "image_height": image_height,
            "image_width": image_width,
            "channels": list(channels),
            "kernels": list(kernels),
            "strides": list(strides),
            "dense": list(dense),
            "dense_activation": dense_activation,
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.convs(standardize_images(images)))

    def tail(self, maps: torch.Tensor) -> torch.Tensor:
        """Feature maps (N, C, h, w) -> steering (N, 1)."""
        return self.dense(maps.flatten(1))


HEADS = {"conv_head": ConvHead, "pilotnet": PilotNet}


def head_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a head from its ``config`` dict (as saved in a checkpoint)."""
    if not isinstance(config, dict):
        raise ValueError(f"head config must be an object, got {type(config).__name__}")
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in HEADS:
        raise ValueError(f"head config: unknown kind {kind!r} (known: {sorted(HEADS)})")
    for key in ("channels", "kernels", "strides", "dense"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    if kind == "pilotnet":  # saved before the key existed: built with ReLU, and rebuilt so
        config.setdefault("dense_activation", LEGACY_DENSE_ACTIVATION)
    try:
        return HEADS[kind](**config)
    except TypeError as exc:
        raise ValueError(f"head config for {kind!r}: {exc}") from exc


def build_head(model: str, image_height: int = 78, image_width: int = 200, **overrides) -> nn.Module:
    """The perception of a registry model: :class:`PilotNet` for ``cnn``, :class:`ConvHead` for the others."""
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r} (choose from {', '.join(MODEL_NAMES)})")
    cls = PilotNet if model == "cnn" else ConvHead
    return cls(image_height=image_height, image_width=image_width, **overrides)
