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
- :func:`check_compatible`: the driver must take the frames that a scenario's camera renders (else a
  one-line :class:`~drive.errors.UserError`), and is warned about, in one line naming both values, when
  the scenario runs at another frame rate or renders with another camera than the checkpoint was trained
  on (it can drive, but off its training data); :func:`check_checkpoint_compatible` does the same from a
  checkpoint's ``config.json`` alone, without loading it;
- :func:`trained_camera` and :func:`with_trained_camera`: the camera a checkpoint's dataset was recorded
  with (where the dataset recorded it), and a scenario that renders with it (``--camera-from-checkpoint``).

Nothing here imports torch until a torch driver is asked for (the ONNX path never does).
"""

from __future__ import annotations

import json
import math
import os
import warnings
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

#: The camera mount's fields compared between a checkpoint's training data and a scenario (``yaw_rad``: 0 if absent).
CAMERA_FIELDS = ("height_m", "pitch_rad", "yaw_rad", "fov_deg")

__all__ = [
    "CAMERA_FIELDS",
    "DEFAULT_RUNTIME",
    "EXPERT",
    "RUNTIMES",
    "check_checkpoint_compatible",
    "check_compatible",
    "load_driver",
    "resolve_checkpoint",
    "trained_camera",
    "with_trained_camera",
]


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


def check_compatible(
    policy: Driver, scenario: Any, where: str = "--checkpoint", checkpoint: Any = None, warn: bool = True
) -> list[str]:
    """The policy must take frames of the scenario's camera size, else a one-line :class:`UserError`.

    The frame rate (the policy's ``frame_period_s`` against the scenario's ``control_hz``) and, where the
    checkpoint's ``config.json`` records it (``checkpoint``: its folder, or the config as a dict), the camera
    its dataset was recorded with (against the scenario's ``camera``) are checked too: a difference is a
    warning, one line naming both values (``warn``), and returned. ``scenario``: a
    :class:`~drive.world.scenario.Scenario`, or anything with ``name`` and ``camera.height``/``camera.width``
    (``control_hz`` and the camera's mount fields are checked where present). The expert takes any frame."""
    h, w = getattr(policy, "image_height", None), getattr(policy, "image_width", None)
    if h is not None and (h, w) != (scenario.camera.height, scenario.camera.width):
        raise UserError(
            f"{where}: the policy takes {h}x{w} frames but scenario {scenario.name!r} renders "
            f"{scenario.camera.height}x{scenario.camera.width} (camera.height x camera.width)"
        )
    notes = []
    period, hz = getattr(policy, "frame_period_s", None), getattr(scenario, "control_hz", None)
    if period and hz and not math.isclose(1.0 / period, float(hz), rel_tol=1e-6):
        notes.append(
            f"{where}: the policy was trained on {1.0 / period:g} Hz frames but scenario {scenario.name!r} runs at "
            f"{float(hz):g} Hz (control_hz); it can drive (its time is scaled), but off its training rate"
        )
    config = checkpoint
    if isinstance(checkpoint, (str, os.PathLike)) and str(checkpoint) != EXPERT:
        from drive.policy.checkpoint import read_config

        folder = resources.resolve_checkpoint_arg(checkpoint)
        config = read_config(folder) if (folder / "config.json").is_file() else None
    trained = trained_camera(config) if isinstance(config, dict) else None
    if trained is not None and all(hasattr(scenario.camera, f) for f in CAMERA_FIELDS):
        spec, source = trained
        off = [f for f in CAMERA_FIELDS if not _within(_extremes(getattr(scenario.camera, f)), _extremes(spec[f]))]
        if off:
            trained_text = ", ".join(f"{f} {_spec_text(spec[f])}" for f in off)
            scenario_text = ", ".join(f"{f} {_spec_text(getattr(scenario.camera, f))}" for f in off)
            notes.append(
                f"{where}: the policy was trained on camera {trained_text} ({source}) but scenario "
                f"{scenario.name!r} renders camera {scenario_text}; it can drive, but off its training camera"
            )
    if warn:
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
    return notes


def check_checkpoint_compatible(
    checkpoint: str | os.PathLike, scenario: Any, where: str | None = None, warn: bool = True
) -> list[str]:
    """:func:`check_compatible` from a checkpoint's ``config.json`` alone (its ``policy`` section), without
    loading the weights: for a verb that drives the checkpoint in worker processes, to check (and warn) once,
    up front. ``expert`` passes."""
    if str(checkpoint) == EXPERT:
        return []
    from types import SimpleNamespace

    from drive.policy.checkpoint import read_config

    config = read_config(resolve_checkpoint(checkpoint))
    p = config["policy"]
    policy = SimpleNamespace(
        image_height=p.get("image_height"), image_width=p.get("image_width"), frame_period_s=p.get("frame_period_s")
    )
    return check_compatible(policy, scenario, where or f"--checkpoint {checkpoint}", config, warn)


def trained_camera(config: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The camera mount a checkpoint's training data was recorded with, from its ``config.json`` (as a dict),
    and where it was found; None where it is not recorded.

    Looked for, in order, in the data provenance (``data``; a list of them: one camera for every dataset,
    else None): ``camera`` (``height_m``, ``pitch_rad``, ``fov_deg``, optional ``yaw_rad``), ``info.camera``
    (``drive import``'s camera flags), ``info.scenario.camera`` (``drive record``: the scenario's specs, fixed
    values or ranges drawn per episode), and the dataset's own ``meta/info.json`` ``camera`` at ``path``,
    where it is still there. Each field is a number, a range ``[lo, hi]`` or a list of choices."""
    data = config.get("data")
    provenances = data if isinstance(data, list) else [data]
    found = [_provenance_camera(p) for p in provenances if isinstance(p, dict)]
    if not found or any(f is None for f in found):
        return None
    if len(found) == 1:
        return found[0]
    spec = {}
    for f in CAMERA_FIELDS:
        values = [v for camera, _ in found for v in _extremes(camera[f])]
        spec[f] = [min(values), max(values)] if min(values) != max(values) else values[0]
    return spec, "; ".join(dict.fromkeys(source for _, source in found))


def with_trained_camera(scenario: Any, checkpoint: str | os.PathLike, where: str = "--camera-from-checkpoint") -> Any:
    """``scenario`` (a :class:`~drive.world.scenario.Scenario`) rendered with the camera mount the checkpoint's
    dataset was recorded with (:func:`trained_camera`; the frame size stays the scenario's); a one-line
    :class:`UserError` when the checkpoint does not record one."""
    from drive.policy.checkpoint import read_config
    from drive.world.scenario import Scenario

    path = resolve_checkpoint(checkpoint)
    found = trained_camera(read_config(path))
    if found is None:
        raise UserError(
            f"{where}: checkpoint {path} records no camera for its training data (config.json 'data': no "
            "'camera', 'info.camera' or 'info.scenario.camera'); give a scenario with that camera instead"
        )
    spec, source = found
    d = scenario.to_dict()
    d["camera"] = {**d["camera"], **{f: spec[f] for f in CAMERA_FIELDS}}
    return Scenario.from_dict(d, source=f"{scenario.name} with the camera of {path} ({source})")


def _provenance_camera(prov: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    info = prov.get("info") if isinstance(prov.get("info"), dict) else {}
    scenario = info.get("scenario") if isinstance(info.get("scenario"), dict) else {}
    candidates = [
        (prov.get("camera"), "config.json data.camera"),
        (info.get("camera"), "config.json data.info.camera"),
        (scenario.get("camera"), "config.json data.info.scenario.camera"),
    ]
    if prov.get("path"):
        from drive.data import layout

        file = layout.info_path(Path(prov["path"]))
        try:
            candidates.append((json.loads(file.read_text()).get("camera"), str(file)))
        except (OSError, ValueError, AttributeError):
            pass
    for camera, source in candidates:
        if isinstance(camera, dict) and all(_is_spec(camera.get(f)) for f in ("height_m", "pitch_rad", "fov_deg")):
            yaw = camera.get("yaw_rad")
            return {
                **{f: camera[f] for f in CAMERA_FIELDS if f != "yaw_rad"},
                "yaw_rad": 0.0 if yaw is None else yaw,
            }, source
    return None


def _is_spec(v: Any) -> bool:
    try:
        return len(_extremes(v)) > 0
    except (TypeError, ValueError):
        return False


def _extremes(spec: Any) -> list[float]:
    """The values a spec (a number, a range ``[lo, hi]``, a list or mapping of choices) can take at its extremes."""
    values = list(spec) if isinstance(spec, (list, tuple, dict)) else [spec]
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(spec)
    return out


def _within(inner: list[float], outer: list[float]) -> bool:
    tol = 1e-6 * max(1.0, *(abs(v) for v in outer))
    return min(inner) >= min(outer) - tol and max(inner) <= max(outer) + tol


def _spec_text(spec: Any) -> str:
    values = _extremes(spec)
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
