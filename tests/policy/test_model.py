"""The driving policy: shapes, time handling, step == forward frame by frame, and the fast bf16 path."""

import numpy as np
import pytest
import torch

from drive.policy.model import build_policy
from drive.policy.perception import MODEL_NAMES


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_forward_and_state_shapes(model, frames):
    torch.manual_seed(0)
    policy = build_policy(model)
    steering, state = policy(frames(2, 5), None, torch.full((2, 5), 0.1))
    assert steering.shape == (2, 5) and torch.isfinite(steering).all()
    assert state.shape == (2, policy.state_size)
    assert policy.initial_state(3).shape == (3, policy.state_size)
    assert (policy.state_size == 0) == (model == "cnn")
    activity = policy.neuron_activity(state)
    assert activity.shape[0] == 2 and activity.shape[1] == len(policy.neuron_labels)


@pytest.mark.parametrize("model", ["ncp19", "lstm", "cnn"])
def test_step_by_step_equals_whole_sequence(model, frames):
    torch.manual_seed(1)
    policy = build_policy(model, frame_period_s=0.05).eval()
    seq = frames(2, 6, seed=3)
    dt = torch.tensor([[0.05, 0.05, 0.1, 0.05, 0.02, 0.05]] * 2)
    with torch.no_grad():
        whole, final = policy(seq, None, dt)
    state, outs = None, []
    for t in range(6):
        y, state = policy.step(seq[:, t].numpy(), state, dt[:, t].numpy())
        assert isinstance(y, np.ndarray) and y.shape == (2,)
        outs.append(y)
    np.testing.assert_allclose(np.stack(outs, 1), whole.numpy(), atol=1e-5)
    torch.testing.assert_close(state, final, atol=1e-5, rtol=1e-5)


def test_time_steps_matter_for_the_ltc_and_default_to_one_frame(frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19", frame_period_s=0.05).eval()
    seq = frames(1, 8)
    with torch.no_grad():
        nominal, _ = policy(seq, None, torch.full((1, 8), 0.05))
        default, _ = policy(seq, None, None)
        slow, _ = policy(seq, None, torch.full((1, 8), 0.2))
    torch.testing.assert_close(nominal, default)
    assert (slow - nominal).abs().max() > 1e-4


def test_bfloat16_step_is_close_to_float32(frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19").eval()
    x = frames(4, seed=5).numpy()
    y32, s32 = policy.step(x, None, None)
    policy.set_inference_precision("bfloat16")
    y16, s16 = policy.step(x, None, None)
    assert np.abs(y16 - y32).max() < 2e-2
    # the bf16 copy follows weight updates
    with torch.no_grad():
        for p in policy.head.parameters():
            p.mul_(1.5)
    y16b, _ = policy.step(x, None, None)
    policy.set_inference_precision("float32")
    y32b, _ = policy.step(x, None, None)
    assert np.abs(y16b - y32b).max() < 2e-2 and np.abs(y32b - y32).max() > 1e-4
    with pytest.raises(ValueError, match="float16"):
        policy.set_inference_precision("float16")


def test_wrong_frame_size_is_a_clear_error(frames):
    policy = build_policy("cnn")
    with pytest.raises(ValueError, match=r"frames must be \(B, T, H, W, 3\) with H, W = 78, 200; got shape \(1, 2, 60, 200, 3\)"):
        policy(torch.zeros(1, 2, 60, 200, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown model"):
        build_policy("transformer")
    with pytest.raises(ValueError, match="no controller"):
        build_policy("cnn", solver="rk4")
