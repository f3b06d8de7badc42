"""A checkpoint becomes a driver: the one place where a checkpoint is loaded to drive.

Every verb and library function that drives a checkpoint (``drive simulate``, ``stress`` and its
backends, ``suite``, ``explain``, ``evaluate``, ``export``'s closed-loop check, DAgger, the study)
goes through here:

- :func:`resolve_checkpoint`: a checkpoint folder as given, or the shipped default found through
  :mod:`drive.resources` from any directory; a one-line :class:`~drive.errors.UserError` when there
  is no checkpoint there;
- :func:`load_driver`: a :class:`~drive.policy.protocol.Driver` for a checkpoint on a runtime
  (``torch``: the :class:`~drive.policy.model.DrivingPolicy`; ``onnx``: an
  :class:`~drive.policy.export.OnnxPolicy` exported once into a cache), the word ``expert``, or a
  driver object (returned as is);
- :func:`check_compatible`: the driver must take the frames that a scenario's camera renders.

Nothing here imports torch until a torch driver is asked for (the ONNX path never does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drive import resources
from drive.errors import UserError
from drive.policy.protocol import Driver
from drive.policy.reference import ExpertPolicy

RUNTIMES = ("onnx", "torch")
#: The runtime ``drive simulate`` uses when none is asked for (the faster at batch 1, see the README).
DEFAULT_RUNTIME = "onnx"
#: The word that names the expert wherever a checkpoint is expected.
EXPERT = "expert"

__all__ = ["DEFAULT_RUNTIME", "EXPERT", "RUNTIMES", "check_compatible", "load_driver", "resolve_checkpoint"]


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder: as given, or a shipped one by name (``lstm``, ``checkpoints/lstm``) from any directory."""
    p = resources.resolve_checkpoint_arg(path)
    if not (p / "config.json").is_file():
        shipped = ", ".join(resources.shipped_checkpoints()) or "none"
        raise UserError(
            f"--checkpoint {p}: no checkpoint here (no config.json); give a checkpoint folder or a shipped name ({shipped}), "
            "or train one with `drive train`"
        )
    return p


def load_driver(checkpoint: Driver | str | os.PathLike, runtime: str = "torch") -> Driver:
    """A driver from a checkpoint path or shipped name (run by ``runtime``: ``torch`` or ``onnx``), the
    word ``expert``, or a driver object (returned as is).

    ``onnx`` exports the checkpoint once into a cache keyed by its content (see
    :func:`drive.policy.export.load_onnx_driver`)."""
    if not isinstance(checkpoint, (str, os.PathLike)):
        return checkpoint
    if str(checkpoint) == EXPERT:
        return ExpertPolicy()
    path = resolve_checkpoint(checkpoint)
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime: {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        from drive.policy.checkpoint import load_policy

        return load_policy(path)
    from drive.policy.export import load_onnx_driver

    return load_onnx_driver(path)


def check_compatible(policy: Driver, scenario: Any, where: str = "--checkpoint") -> None:
    """The policy must take frames of the scenario's camera size (``scenario``: a
    :class:`~drive.world.scenario.Scenario`, or anything with ``name`` and ``camera.height``/``camera.width``)."""
    h, w = getattr(policy, "image_height", None), getattr(policy, "image_width", None)
    if h is not None and (h, w) != (scenario.camera.height, scenario.camera.width):
        raise UserError(
            f"{where}: the policy takes {h}x{w} frames but scenario {scenario.name!r} renders "
            f"{scenario.camera.height}x{scenario.camera.width} (camera.height x camera.width)"
        )
