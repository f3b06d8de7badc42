"""ONNX export: the exported policy equals the torch policy in closed loop, its state round-trips,
and `drive export` refuses a bad checkpoint with one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from drive.eval.compare import closed_loop_compare
from drive.policy.checkpoint import load_policy, save_checkpoint
from drive.policy.export import OnnxPolicy, export_onnx
from drive.policy.load import load_driver
from drive.policy.model import build_policy
from drive.policy.protocol import Driver

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "ncp19"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(SHIPPED, out)
    return out


def test_exported_policy_equals_torch_on_a_closed_loop_run(exported):
    result = closed_loop_compare(SHIPPED, exported, steps=60)
    assert result["max_abs_steering_diff"] <= 1e-4
    assert result["max_abs_state_diff"] <= 1e-4


def test_closed_loop_comparison_drives_the_rollout_over_several_episodes(exported, monkeypatch):
    from drive.eval import compare
    from drive.eval.simulate import resolve_scenario

    episodes = []  # (reset seed, steps driven) of each rollout episode

    def run_episode(driver, env, seed, *args, **kwargs):
        log = real(driver, env, seed, *args, **kwargs)
        episodes.append((seed, len(log.steering)))
        return log

    real = compare.run_episode
    monkeypatch.setattr(compare, "run_episode", run_episode)
    result = closed_loop_compare(SHIPPED, exported, steps=50, seed=3, scenario=resolve_scenario("default", 1.0))
    assert episodes == [(3, 20), (4, 20), (5, 10)]  # 1 s episodes at 20 Hz, the last one cut short
    assert result["steps"] == 50 and result["max_abs_steering_diff"] <= 1e-4


def test_state_round_trips_between_runtimes_with_irregular_dt(exported, frames):
    torch_policy, onnx_policy = load_policy(SHIPPED), OnnxPolicy(exported)
    assert isinstance(onnx_policy, Driver)
    assert onnx_policy.neuron_labels == torch_policy.neuron_labels
    f = frames(3, seed=4).numpy()
    dt = np.array([0.1, 0.03, 0.27])
    _, s_torch = torch_policy.step(f, None, dt)
    # torch's state into ONNX, and ONNX's state back into torch: both continue as either would alone
    a_onnx, s_onnx = onnx_policy.step(f, s_torch.numpy(), dt)
    a_torch, s_torch2 = torch_policy.step(f, s_torch, dt)
    np.testing.assert_allclose(a_onnx, a_torch, atol=1e-5, rtol=0)
    np.testing.assert_allclose(s_onnx, s_torch2.numpy(), atol=1e-5, rtol=0)
    a_back, _ = torch_policy.step(f, torch.from_numpy(s_onnx), dt)
    a_ref, _ = onnx_policy.step(f, s_onnx, dt)
    np.testing.assert_allclose(a_back, a_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_policy.neuron_activity(s_onnx), torch_policy.neuron_activity(s_torch2), atol=1e-5)


@pytest.mark.parametrize("model", ["lstm", "cnn"])
def test_other_models_export_too(model, tmp_path, frames, monkeypatch):
    monkeypatch.setenv("DRIVE_CACHE_DIR", str(tmp_path / "cache"))
    policy = build_policy(model)
    save_checkpoint(policy, tmp_path / "ckpt")
    driver = load_driver(tmp_path / "ckpt", "onnx")
    f = frames(2, seed=1).numpy()
    a, s = driver.step(f, driver.initial_state(2), np.array([0.1, 0.2]))
    b, t = load_policy(tmp_path / "ckpt").step(f, None, np.array([0.1, 0.2]))
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(s, t.numpy(), atol=1e-5, rtol=0)
    assert driver.model_name == model


def test_export_command_on_a_bad_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    from drive.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    rc = main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and str(bad / "config.json") in err
    assert not (tmp_path / "out").exists()


def test_export_command_writes_onnx_and_config(tmp_path, capsys):
    from drive.cli import main

    policy = build_policy("ncp19")
    save_checkpoint(policy, tmp_path / "ckpt")
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "policy.onnx").stat().st_size > 0
    assert OnnxPolicy(tmp_path / "out").model_name == "ncp19"


def test_onnx_runtime_reaches_its_first_step_without_importing_torch(tmp_path, monkeypatch):
    # a fresh process: with the export already cached, the simulate path (its imports, the cached
    # ONNX driver, the env, one driven step) never imports torch (it costs seconds at start-up)
    import os
    import subprocess
    import sys

    monkeypatch.setenv("DRIVE_CACHE_DIR", str(tmp_path / "cache"))
    load_driver(SHIPPED, "onnx")  # exports into the cache (needs torch: in this process)
    env = dict(os.environ, PYTHONPATH=str(SHIPPED.parents[1]))
    script = f"""
import sys
from pathlib import Path
import numpy as np
from drive.eval.simulate import make_env, resolve_scenario
from drive.policy.export import OnnxPolicy
from drive.policy.load import load_driver
policy = load_driver(Path({str(SHIPPED)!r}), "onnx")
assert isinstance(policy, OnnxPolicy), type(policy)
env = make_env(resolve_scenario("default"))
obs, info = env.reset(seed=0)
steering, state = policy.step(obs[None], policy.initial_state(1), np.array([0.05]))
env.step(np.array([float(steering[0])], np.float32))
print("torch imported:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("torch imported: False"), out.stdout
