"""Neurons, synapses and trainable parameters of every controller (NCP paper, Table 2).

Counting rules:

* **neurons**: LTC variants, the wiring's units (motor included); other controllers, their
  hidden units plus the ``out_features`` read-out neurons.
* **synapses**: LTC variants, the wiring's synapses (sensory + internal); other controllers,
  the entries of their weight matrices (every connection of a dense layer, biases excluded).
* **trainable parameters**: parameter entries that can affect the output
  (:func:`count_trainable_parameters`): for an LTC, the per-synapse parameters of synapses the
  mask removes, and the input map of features without a sensory synapse, do not count.

The ``drive inspect`` command (:mod:`drive.commands.inspect`) prints :func:`controller_table`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_trainable_parameters(module: nn.Module) -> int:
    """Number of trainable parameter entries of ``module`` that can affect its output.

    Submodules that define ``parameter_masks() -> {parameter name: bool tensor}`` (the LTC) have
    only the True entries counted for the named parameters; every other parameter with
    ``requires_grad`` counts in full. Shared parameters count once.
    """
    counted: set[int] = set()
    total = 0
    for mod in module.modules():
        masks: dict[str, torch.Tensor] = mod.parameter_masks() if hasattr(mod, "parameter_masks") else {}
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in counted:
                continue
            counted.add(id(p))
            total += int(masks[name].sum()) if name in masks else p.numel()
    return total


def _weight_entries(module: nn.Module) -> int:
    return sum(p.numel() for name, p in module.named_parameters() if p.dim() >= 2 and p.requires_grad)


def controller_row(controller: nn.Module) -> dict[str, Any]:
    """One table row: name, neurons, synapses, trainable parameters, state size."""
    from drive.core.controllers import LTCController

    if isinstance(controller, LTCController):
        neurons = controller.wiring.units
        synapses = controller.wiring.total_synapse_count
    else:
        neurons = controller.hidden + controller.out_features
        synapses = _weight_entries(controller)
    return {
        "controller": controller.name,
        "neurons": int(neurons),
        "synapses": int(synapses),
        "trainable_parameters": count_trainable_parameters(controller),
        "state_size": int(controller.state_size),
    }


def controller_table(in_features: int = 32, out_features: int = 1, names: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of :func:`controller_row` for each registered controller built for ``in_features``."""
    from drive.core.controllers import ALL_CONTROLLER_NAMES, build_controller

    return [controller_row(build_controller(n, in_features, out_features)) for n in (names or ALL_CONTROLLER_NAMES)]


def format_table(rows: list[dict]) -> str:
    headers = ["controller", "neurons", "synapses", "trainable_parameters", "state_size"]
    titles = ["controller", "neurons", "synapses", "trainable parameters", "state size"]
    widths = [
        max(len(t), *(len(f"{r[h]:,}" if isinstance(r[h], int) else str(r[h])) for r in rows))
        for h, t in zip(headers, titles)
    ]
    lines = ["  ".join(t.ljust(w) if i == 0 else t.rjust(w) for i, (t, w) in enumerate(zip(titles, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        cells = [str(r[h]) if i == 0 else f"{r[h]:,}" for i, h in enumerate(headers)]
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(lines)
