"""`drive explain`: VisualBackProp maps the size of the input in [0, 1] that point at what the convs respond to; SSIM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from drive.eval.explain import (
    activity_dimension,
    explain,
    hidden_activity,
    participation_ratio,
    pc1_share,
    saliency_maps,
    ssim,
    visual_backprop,
)
from drive.policy.model import build_policy


def box_filter_stack() -> nn.Sequential:
    """Two strided all-positive box filters: their response is strongest where the input is bright."""
    convs = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2, 3, 5, stride=2), nn.ReLU())
    with torch.no_grad():
        for m in convs:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    return convs


def test_visual_backprop_highlights_the_bright_patch_and_has_the_input_size():
    x = torch.zeros(2, 1, 41, 67)
    x[0, :, 8:16, 10:18] = 1.0
    x[1, :, 25:35, 45:60] = 1.0
    maps = visual_backprop(box_filter_stack(), x)
    assert maps.shape == (2, 41, 67)
    assert float(maps.min()) == 0.0 and float(maps.max()) == 1.0
    for b, (rows, cols) in enumerate([(slice(8, 16), slice(10, 18)), (slice(25, 35), slice(45, 60))]):
        inside = maps[b, rows, cols].mean()
        outside = maps[b].sum() - maps[b, rows, cols].sum()
        outside = outside / (maps[b].numel() - maps[b, rows, cols].numel())
        assert inside > 5 * outside
        r, c = np.unravel_index(int(maps[b].argmax()), maps[b].shape)
        assert rows.start - 2 <= r < rows.stop + 2 and cols.start - 2 <= c < cols.stop + 2


def test_a_flat_response_gives_an_all_zero_map():
    maps = visual_backprop(box_filter_stack(), torch.zeros(1, 1, 30, 30))
    assert maps.shape == (1, 30, 30) and float(maps.abs().max()) == 0.0


@pytest.mark.parametrize("model", ["ncp19", "cnn"])
def test_policy_saliency_maps_are_frame_sized_and_in_unit_range(model):
    torch.manual_seed(0)
    policy = build_policy(model)
    frames = np.random.default_rng(0).integers(0, 256, (3, 78, 200, 3), dtype=np.uint8)
    maps = saliency_maps(policy, frames)
    assert maps.shape == (3, 78, 200)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.max() == pytest.approx(1.0)


def test_ssim_of_a_map_with_itself_is_one_and_less_for_another():
    rng = np.random.default_rng(0)
    a, b = rng.random((78, 200)), rng.random((78, 200))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) < 0.5
    with pytest.raises(ValueError, match="shape"):
        ssim(a, b[:, :100])


def test_explain_writes_saliency_stability_traces_and_wiring(tmp_path, tiny_checkpoint, make_scenario):
    ckpt = tiny_checkpoint("ncp19")
    out = tmp_path / "explain"
    result = explain(str(ckpt), make_scenario(1.0), out, variances=(0.1, 0.3), images=2, ssim_frames=5)
    saved = json.loads((out / "explain.json").read_text())
    assert saved["mean_ssim"] == result["mean_ssim"] and set(saved["mean_ssim"]) == {"0.1", "0.3"}
    assert all(-1.0 <= v <= 1.0 for v in saved["mean_ssim"].values())
    assert saved["ssim_frames"] == 5
    assert len(list((out / "saliency").glob("frame_*.png"))) == 2
    for name in ("saliency.mp4", "neuron_traces.png", "wiring.png"):
        assert (out / name).stat().st_size > 0


def test_explain_works_for_the_pilotnet_cnn_without_wiring(tmp_path, tiny_checkpoint, make_scenario):
    out = tmp_path / "cnn"
    result = explain(
        str(tiny_checkpoint("cnn")), make_scenario(0.5), out, variances=(0.2,), images=1, ssim_frames=3, video=False
    )
    assert result["files"]["wiring"] is None and not (out / "wiring.png").exists()
    assert (out / "neuron_traces.png").is_file() and set(result["mean_ssim"]) == {"0.2"}


def test_pc1_share_and_participation_ratio_on_a_known_spectrum():
    rng = np.random.default_rng(4)
    variances = np.array([8.0, 1.0, 0.5, 0.5])
    activity = rng.normal(size=(200_000, 4)) * np.sqrt(variances)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]  # the measure does not depend on the neurons' basis
    activity = activity @ rotation.T
    assert pc1_share(activity) == pytest.approx(8 / 10, abs=0.01)
    assert participation_ratio(activity) == pytest.approx(100 / 66.5, rel=0.02)
    one = np.outer(np.sin(np.linspace(0, 20, 500)), [1.0, -2.0, 0.5])
    assert pc1_share(one) == pytest.approx(1.0) and participation_ratio(one) == pytest.approx(1.0)


def test_the_cnns_last_hidden_layer_is_its_neuron_activity():
    torch.manual_seed(0)
    policy = build_policy("cnn")
    frames = np.random.default_rng(0).integers(0, 256, (7, 78, 200, 3), dtype=np.uint8)
    activity = hidden_activity(policy, frames, batch=3)
    assert activity.shape == (7, policy.head.dense[-1].in_features)
    assert hidden_activity(build_policy("ncp19"), frames).shape == (7, 0)  # a conv head has no dense stack
    assert np.isnan(activity_dimension(np.zeros((7, 0)))["pc1_share"])


def test_explain_over_several_episodes_pools_the_ssim_and_measures_the_activity(
    tmp_path, tiny_checkpoint, make_scenario
):
    out = tmp_path / "three"
    result = explain(
        str(tiny_checkpoint("cnn")),
        make_scenario(0.5),
        out,
        seed=4,
        variances=(0.1, 0.3),
        images=0,
        ssim_frames=4,
        video=False,
        episodes=3,
    )
    assert result["episodes"] == 3 and result["seeds"] == [4, 5, 6] and result["ssim_frames"] == 12
    assert [e["seed"] for e in result["per_episode"]] == [4, 5, 6]
    assert result["activity_source"].startswith("last hidden layer") and result["neurons"] == 10
    assert 0 < result["pc1_share"] <= 1 and 1 <= result["participation_ratio"] <= result["neurons"]
    shares = [e["pc1_share"] for e in result["per_episode"]]
    assert result["pc1_share"] == pytest.approx(np.mean(shares))
    assert json.loads((out / "explain.json").read_text())["per_episode"] == result["per_episode"]
    with pytest.raises(Exception, match="--episodes"):
        explain(str(tiny_checkpoint("cnn")), None, tmp_path / "x", data=tmp_path, episodes=2)
