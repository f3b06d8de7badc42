"""`drive inspect` and the trainable-parameter count that respects the wiring masks."""

from __future__ import annotations

import json

import torch

from drive.cli import main
from drive.core.controllers import build_controller
from drive.core.inspect import controller_table, count_trainable_parameters


def test_ncp19_row_matches_the_paper_table():
    rows = {r["controller"]: r for r in controller_table(32)}
    ncp = rows["ncp19"]
    assert ncp["neurons"] == 19 and abs(ncp["synapses"] - 253) <= 2
    # 4 per-synapse parameters (w, sigma, mu, erev), 3 per neuron, affine input (2 x 32), affine output (2)
    assert ncp["trainable_parameters"] == 4 * ncp["synapses"] + 3 * 19 + 2 * 32 + 2
    assert ncp["trainable_parameters"] < min(rows[n]["trainable_parameters"] for n in ("lstm", "gru", "ctrnn", "cfc"))
    assert rows["ltc-random"]["synapses"] == ncp["synapses"]
    assert rows["ltc-fc"]["synapses"] == 19 * 19 + 32 * 19


def test_masked_entries_are_not_counted_but_plain_modules_count_in_full():
    c = build_controller("ncp19")
    dense = sum(p.numel() for p in c.parameters())
    assert count_trainable_parameters(c) < dense
    lstm = build_controller("lstm")
    assert count_trainable_parameters(lstm) == sum(p.numel() for p in lstm.parameters())
    lin = torch.nn.Linear(3, 2)
    lin.bias.requires_grad_(False)
    assert count_trainable_parameters(lin) == 6


def test_counted_entries_are_exactly_those_with_a_gradient():
    c = build_controller("ltc-random", seed=1)
    x = torch.randn(4, 6, 32)
    y, _ = c(x)
    y.square().sum().backward()
    with_grad = sum(int((p.grad != 0).sum()) for p in c.parameters())
    assert with_grad <= count_trainable_parameters(c)
    assert with_grad >= 0.9 * count_trainable_parameters(c)


def test_cli_prints_the_table(capsys, tmp_path):
    assert main(["inspect"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("ncp19"))
    assert line.split()[1:3] == ["19", "253"]
    for name in ("lstm", "gru", "ctrnn", "cfc", "feedforward"):
        assert name in out
    assert main(["inspect", "--json", "--in-features", "16", "--plot-wiring", str(tmp_path / "w.png")]) == 0
    rows = json.loads(capsys.readouterr().out.split("\nwiring drawn")[0])
    assert rows[0]["controller"] == "ncp19" and rows[0]["synapses"] == 16 * 6 + 61
    assert (tmp_path / "w.png").stat().st_size > 1000


def test_cli_bad_argument_is_one_clean_line(capsys):
    assert main(["inspect", "--in-features", "-2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "drive inspect: error: --in-features must be >= 1, got -2"
