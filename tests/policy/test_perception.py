"""Perception heads: the NCP paper's conv head (shape, ~79k parameters, per-image standardisation) and PilotNet."""

import pytest
import torch
from torch import nn

from drive.policy.perception import MODEL_NAMES, ConvHead, PilotNet, build_head, head_from_config, standardize_images


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_conv_head_matches_the_paper_layout():
    head = ConvHead()
    convs = [m for m in head.convs if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (24, 5, 2),
        (36, 5, 2),
        (48, 3, 2),
        (64, 3, 1),
        (8, 3, 1),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in head.convs) == 5
    assert head.map_size == (10, 25)
    assert head.out_features == 32
    # 71,388 conv + 8 x (250*4 + 4) per-channel linear = 79,420
    assert n_params(head) == 79_420
    assert head(torch.zeros(3, 3, 78, 200)).shape == (3, 32)


def test_each_feature_map_feeds_only_its_own_four_features():
    torch.manual_seed(0)
    head = ConvHead()
    maps = torch.randn(2, 8, 10, 25)
    base = head.tail(maps)
    bumped = maps.clone()
    bumped[:, 3] += 1.0  # change feature map 3 only
    changed = (head.tail(bumped) - base).abs().amax(0) > 0
    assert changed.tolist() == [3 * 4 <= i < 4 * 4 for i in range(32)]


def test_per_image_standardisation_removes_brightness_and_contrast():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 78, 200) * 100 + 50
    z = standardize_images(x)
    assert torch.allclose(z.mean((1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(z.std((1, 2, 3), unbiased=False), torch.ones(4), atol=1e-4)
    head = ConvHead()
    assert torch.allclose(head(x), head(0.5 * x + 20), atol=1e-4)
    # a flat image does not divide by zero
    assert torch.isfinite(standardize_images(torch.full((1, 3, 78, 200), 7.0))).all()


def test_pilotnet_outputs_steering():
    net = PilotNet()
    assert net(torch.zeros(2, 3, 78, 200)).shape == (2, 1)
    assert [m.out_channels for m in net.convs if isinstance(m, nn.Conv2d)] == [24, 36, 48, 64, 64]
    assert 400_000 < n_params(net) < 600_000


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_registry_and_config_round_trip(model):
    head = build_head(model)
    assert isinstance(head, PilotNet if model == "cnn" else ConvHead)
    again = head_from_config(head.config)
    assert type(again) is type(head) and again.config == head.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in head.parameters()]


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_head("resnet")
    with pytest.raises(ValueError, match="too small"):
        PilotNet(image_height=20, image_width=40)
    with pytest.raises(ValueError, match="unknown kind"):
        head_from_config({"kind": "vit"})


def test_pilotnet_dense_activation_is_recorded_and_old_configs_keep_relu():
    net = PilotNet()
    assert net.config["dense_activation"] == "elu"
    assert [type(m) for m in net.dense if not isinstance(m, nn.Linear)] == [nn.ELU] * 3
    assert all(isinstance(m, nn.ReLU) for m in net.convs if not isinstance(m, nn.Conv2d))  # convs unchanged
    old = {k: v for k, v in net.config.items() if k != "dense_activation"}  # a config saved before the key
    rebuilt = head_from_config(old)
    assert rebuilt.config["dense_activation"] == "relu"
    assert [type(m) for m in rebuilt.dense if not isinstance(m, nn.Linear)] == [nn.ReLU] * 3
    assert head_from_config(net.config).config == net.config
    with pytest.raises(ValueError, match="dense_activation 'tanh' is not one of relu, elu"):
        head_from_config({**net.config, "dense_activation": "tanh"})
