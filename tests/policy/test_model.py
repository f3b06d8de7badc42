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
    with pytest.raises(
        ValueError, match=r"frames must be \(B, T, H, W, 3\) with H, W = 78, 200; got shape \(1, 2, 60, 200, 3\)"
    ):
        policy(torch.zeros(1, 2, 60, 200, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown model"):
        build_policy("transformer")
    with pytest.raises(ValueError, match="no controller"):
        build_policy("cnn", solver="rk4")


# ------------------------------------------------------------------ the Driver protocol and the input contract


def test_every_driver_implements_the_protocol_and_steps(frames):
    from drive.policy.protocol import Driver
    from drive.policy.reference import ConstantPolicy, ExpertPolicy

    torch.manual_seed(0)
    x = frames(2, seed=1).numpy()
    infos = [{"expert_steering": 0.25}, {"expert_steering": -0.5}]
    for driver, expected in [
        (build_policy("ncp19").eval(), None),
        (build_policy("cnn").eval(), None),
        (ExpertPolicy(), [0.25, -0.5]),
        (ConstantPolicy(0.3), [0.3, 0.3]),
    ]:
        assert isinstance(driver, Driver), type(driver).__name__
        state = driver.initial_state(2)
        steering, state = driver.step(x, state, np.array([0.05, 0.05]), infos=infos)
        steering = np.asarray(steering)
        assert steering.shape == (2,) and np.isfinite(steering).all()
        if expected is not None:
            np.testing.assert_allclose(steering, expected)
        activity = driver.neuron_activity(state)
        assert activity.shape == (2, len(driver.neuron_labels))
        assert isinstance(driver.model_name, str) and driver.model_name
    assert not isinstance(object(), Driver)


def test_step_takes_float32_pixels_on_the_uint8_scale(frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19").eval()
    x = frames(2, seed=2).numpy()
    y8, s8 = policy.step(x, None, 0.1)
    yf, sf = policy.step(x.astype(np.float32), None, 0.1)
    np.testing.assert_allclose(yf, y8, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sf, s8, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.float32("nan"), r"frames: float frames must be finite, got nan"),
        (np.float32("inf"), r"frames: float frames must be finite, got inf"),
        (np.float32(300.0), r"frames: float32 pixel values must be in \[0, 255\]"),
    ],
)
def test_step_refuses_non_finite_and_out_of_range_float_frames(frames, bad, match):
    policy = build_policy("ncp19").eval()
    x = frames(2, seed=2).numpy().astype(np.float32)
    x[1, 10, 20, 0] = bad
    with pytest.raises(ValueError, match=match):
        policy.step(x, None, 0.1)


@pytest.mark.parametrize("dtype", [np.int16, np.bool_, np.float64, np.float16])
def test_step_refuses_frame_dtypes_outside_the_contract(frames, dtype):
    policy = build_policy("cnn").eval()
    x = frames(1).numpy().astype(dtype)
    with pytest.raises(ValueError, match=rf"frames: dtype {np.dtype(dtype).name} is not supported; give RGB uint8"):
        policy.step(x, None, None)
    with pytest.raises(ValueError, match="frames: dtype"):
        policy.step(torch.from_numpy(x), None, None)


def test_step_accepts_a_numpy_state_and_names_a_wrong_one(frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19").eval()
    x = frames(2, seed=4).numpy()
    _, state = policy.step(x, None, 0.05)
    y_torch, s_torch = policy.step(x, state, 0.05)
    y_numpy, s_numpy = policy.step(x, state.numpy(), 0.05)
    np.testing.assert_allclose(y_numpy, y_torch, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s_numpy, s_torch)
    with pytest.raises(ValueError, match=r"state: expected shape \(2, 19\) .*got \(2, 5\)"):
        policy.step(x, np.zeros((2, 5), np.float32), 0.05)
    with pytest.raises(ValueError, match=r"state: expected a torch tensor .* got list"):
        policy.step(x, [[0.0] * 19] * 2, 0.05)


def test_scalar_dt_is_broadcast_to_the_batch_and_bad_dt_names_dt_s(frames):
    torch.manual_seed(0)
    policy = build_policy("ncp19", frame_period_s=0.05).eval()
    x = frames(2, seed=6).numpy()
    y_scalar, s_scalar = policy.step(x, None, 0.1)
    y_array, s_array = policy.step(x, None, np.array([0.1, 0.1], np.float32))
    np.testing.assert_allclose(y_scalar, y_array, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s_scalar, s_array)
    y_default, _ = policy.step(x, None, None)
    y_nominal, _ = policy.step(x, None, 0.05)
    np.testing.assert_allclose(y_default, y_nominal, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"dt_s: expected a scalar or shape \(2,\) .* got shape \(3,\)"):
        policy.step(x, None, np.array([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"dt_s: must be finite and > 0 seconds, got nan"):
        policy.step(x, None, float("nan"))
    with pytest.raises(ValueError, match=r"dt_s: must be finite and > 0 seconds, got -0.1"):
        policy.step(x, None, np.array([0.1, -0.1]))
