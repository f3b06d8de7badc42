"""A checkpoint's config.json is checked before anything is built: sizes in bounds, no unknown or
contradicting fields, max_steer_rad a steering angle; every refusal is one UserError naming the file and field."""

from __future__ import annotations

import json
import math

import pytest

from drive.cli import main
from drive.errors import UserError
from drive.policy.checkpoint import load_policy, read_config, save_checkpoint
from drive.policy.model import build_policy


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """model -> a checkpoint folder of a fresh policy of that model."""
    root = tmp_path_factory.mktemp("ckpts")
    return {m: save_checkpoint(build_policy(m), root / m) for m in ("ncp19", "lstm", "cnn")}


def edited(saved, tmp_path, model: str, change) -> tuple:
    folder = tmp_path / model
    folder.mkdir()
    config = json.loads((saved[model] / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((saved[model] / "model.safetensors").read_bytes())
    return folder


def setter(path: str, value):
    def change(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return change


@pytest.mark.parametrize(
    "model, path, value, message",
    [
        ("ncp19", "policy.head.channels", [-24, 36, 48, 64, 8], "field 'head': channels[0]=-24 must be an integer"),
        ("cnn", "policy.head.kernels", [5, 5, 5, 3, 0], "field 'head': kernels[4]=0 must be an integer in [1, 31]"),
        ("ncp19", "policy.head.channels", 24, "field 'head': channels=24 must be a list"),
        ("ncp19", "policy.max_steer_rad", 1e9, "max_steer_rad=1000000000.0 must be a number in (0, pi/2]"),
        ("ncp19", "policy.max_steer_rad", -0.1, "max_steer_rad=-0.1 must be a number in (0, pi/2]"),
        ("ncp19", "policy.controller.ode_unfolds", 10**9, "ode_unfolds=1000000000 must be an integer in [1, 1000]"),
        ("ncp19", "policy.controller.rtol", 0.0, "rtol=0.0 must be a number in [1e-12, 1]"),
        ("lstm", "policy.controller.hidden", 10**7, "hidden=10000000 must be an integer in [1, 4096]"),
        ("ncp19", "policy.image_width", 10**6, "image_width=1000000 must be an integer in [1, 2048]"),
        ("ncp19", "policy.state_size", 7, "field 'state_size' is 7, but its controller has 19"),
        ("ncp19", "policy.units", 7, "unknown field 'units'"),
        ("ncp19", "policy.controller.wiring.units", 7, "wiring dict units=7 does not match its 19x19 adjacency"),
        ("ncp19", "policy.controller.wiring.neurons", 7, "wiring dict has unknown field 'neurons'"),
        ("ncp19", "policy.controller.name", "lstm", "field 'controller.name' is 'lstm', expected the model's 'ncp19'"),
        ("lstm", "policy.head.kind", "pilotnet", "field 'head.kind' is 'pilotnet', model 'lstm' has a 'conv_head'"),
        ("ncp19", "policy.normalisation", {"images": "none"}, "field 'normalisation' is"),
    ],
)
def test_bad_policy_config_is_one_line_naming_file_and_field(saved, tmp_path, model, path, value, message):
    folder = edited(saved, tmp_path, model, setter(path, value))
    with pytest.raises(UserError) as info:
        load_policy(folder)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{folder / 'config.json'}: ") and message in text, text


def test_the_bounds_admit_the_shipped_sizes_and_the_extremes(saved, tmp_path):
    folder = edited(saved, tmp_path, "ncp19", setter("policy.max_steer_rad", math.pi / 2))
    assert load_policy(folder).max_steer_rad == pytest.approx(math.pi / 2)
    (tmp_path / "u").mkdir()
    folder = edited(saved, tmp_path / "u", "ncp19", setter("policy.controller.ode_unfolds", 1000))
    assert load_policy(folder).controller.core.ode_unfolds == 1000


def test_deeply_nested_config_is_one_line_not_a_recursion_error(tmp_path, capsys):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(UserError, match=r"config\.json: invalid JSON: nested too deeply"):
        read_config(folder)
    code = main(["export", "--checkpoint", str(folder), "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nested too deeply" in err, err
