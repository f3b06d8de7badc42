"""Checkpoints: a folder of JSON and safetensors files (never pickle), every file written atomically.

Layout::

    CKPT/
      config.json                  what to rebuild and where it came from (see below)
      model.safetensors            the weights (the best by validation loss, when training)
      train_state/                 for ``drive train --resume`` only, written as ONE unit (built in a
                                   temporary folder, then renamed into place)
        model.safetensors          the latest weights (end of the last finished epoch)
        optimizer.safetensors      the optimiser's tensors; its hyper-parameters as JSON in the metadata
        state.json                 epoch, global step, losses so far, best validation loss, seed
        manifest.json              size and SHA-256 of the three files above, checked on ``--resume``

``config.json`` holds ``format``/``format_version``, ``code_version`` (``drive.__version__``), ``model``,
``policy`` (:attr:`DrivingPolicy.config`: model name, head config, controller config with its
wiring, normalisation, ``frame_period_s``, ``max_steer_rad``, image size) and whatever the caller adds
(training: ``data`` provenance, ``training`` config, ``metrics``).

:func:`load_policy` rebuilds the policy from ``config.json`` and refuses weights that do not fit it,
naming the file, the tensor, and the expected and found shapes. The ``policy`` section is checked first
(:func:`drive.policy.model.policy_from_config`): an unknown field, fields that contradict each other
(``state_size``, a wiring's ``units``, the model against its head and controller), sizes beyond
:mod:`drive.core.limits` (``ode_unfolds`` <= 1000, conv channels <= 1024, ...) and a ``max_steer_rad`` outside
(0, pi/2] are refused. Every problem with a file the user gave
(missing, not JSON or nested too deeply, wrong format, torn or truncated) is a one-line
:class:`~drive.errors.UserError` naming the file. A system error while writing (a full disk) is an
``OSError`` naming the file (:func:`naming_path`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

import drive
from drive.errors import UserError
from drive.io import atomic_dir, atomic_path, atomic_write_json, hash_file, read_json
from drive.policy.model import DrivingPolicy, policy_from_config

FORMAT = "drive-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAIN_STATE_DIR = "train_state"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"


@contextlib.contextmanager
def naming_path(path: str | Path) -> Iterator[None]:
    """Give a system error raised in the block (disk full, quota, I/O error) the path it concerns when it has
    none (a failed ``write`` names no file), so the command line can report it in one line."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def _save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None, shown_as: Path | None = None
) -> None:
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = save(tensors, metadata=metadata)  # serialised here, written by Python: a full disk is an OSError
    with naming_path(shown_as or path), atomic_path(path) as tmp:
        tmp.write_bytes(blob)


def _load_tensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise UserError(f"{file}: {what} not found")
    try:
        return load_file(str(file))
    except Exception as exc:  # safetensors raises its own error type for a corrupt or truncated file
        raise UserError(f"{file}: unreadable safetensors file: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def save_weights(policy: torch.nn.Module, path: str | Path, shown_as: str | Path | None = None) -> None:
    """Write a module's state dict as safetensors, atomically; a system error names ``shown_as`` (default:
    ``path``)."""
    _save_tensors(Path(path), dict(policy.state_dict()), shown_as=Path(shown_as) if shown_as else None)


def checkpoint_config(policy: DrivingPolicy, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "code_version": drive.__version__,
        "model": policy.model_name,
        "policy": policy.config,
    }
    for key, value in (extra or {}).items():
        if key in ("format", "format_version", "policy"):
            raise ValueError(f"save_checkpoint: extra key {key!r} is reserved")
        config[key] = value
    return config


def save_checkpoint(policy: DrivingPolicy, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` then ``config.json`` into the folder ``path`` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = checkpoint_config(policy, extra)
    save_weights(policy, path / WEIGHTS_FILE)
    with naming_path(path / CONFIG_FILE):
        atomic_write_json(path / CONFIG_FILE, config)
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder, checked for its format."""
    file = Path(path) / CONFIG_FILE
    try:
        config = read_json(file, f"not a checkpoint: {CONFIG_FILE}", expect=dict)
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise UserError(f"{file}: invalid JSON: nested too deeply for a checkpoint config") from None
    if config.get("format") != FORMAT:
        raise UserError(f"{file}: field 'format' is {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{file}: field 'format_version' is {config.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    if not isinstance(config.get("policy"), dict):
        raise UserError(
            f"{file}: field 'policy' is "
            + ("missing" if "policy" not in config else f"{type(config['policy']).__name__}, expected an object")
        )
    return config


def load_weights_into(module: torch.nn.Module, file: str | Path, config_file: str | Path | None = None) -> None:
    """Load safetensors weights into ``module``, refusing missing or unexpected tensors and shape mismatches."""
    file = Path(file)
    tensors = _load_tensors(file, "weights")
    expected = module.state_dict()
    where = f"the config {config_file}" if config_file else "the model"
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise UserError(
            f"{file}: missing tensor {missing[0]!r} that {where} expects, shape "
            f"{tuple(expected[missing[0]].shape)} ({len(missing)} missing in all)"
        )
    unexpected = [k for k in tensors if k not in expected]
    if unexpected:
        raise UserError(
            f"{file}: unexpected tensor {unexpected[0]!r}, shape {tuple(tensors[unexpected[0]].shape)}, "
            f"that {where} does not have ({len(unexpected)} unexpected in all)"
        )
    for name, value in expected.items():
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise UserError(
                f"{file}: tensor {name!r} has shape {tuple(tensors[name].shape)} but {where} "
                f"expects {tuple(value.shape)}"
            )
    module.load_state_dict(tensors, strict=True)


def load_policy(
    path: str | Path, weights: str | Path | None = None, map_location: str | torch.device = "cpu"
) -> DrivingPolicy:
    """Rebuild the policy of a checkpoint folder and load its weights (``model.safetensors`` by default)."""
    path = Path(path)
    config = read_config(path)
    try:
        policy = policy_from_config(config["policy"])
    except (TypeError, KeyError, AttributeError) as exc:
        raise UserError(f"{path / CONFIG_FILE}: field 'policy' cannot be built: {exc}") from exc
    except ValueError as exc:
        raise UserError(f"{path / CONFIG_FILE}: {exc}") from exc
    load_weights_into(policy, path / WEIGHTS_FILE if weights is None else weights, path / CONFIG_FILE)
    return policy.to(map_location).eval()


# ------------------------------------------------------------------------------------------ train state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimiser's state into tensors ``state.{param}.{key}`` and a JSON-able description."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: str
) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise UserError(
            f"{where}: optimiser parameter groups {[len(g['params']) for g in groups]} do not match "
            f"the model's {[len(g['params']) for g in current]}"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _file_digest(file: Path) -> dict[str, Any]:
    return {"bytes": file.stat().st_size, "sha256": hash_file(hashlib.sha256(), file).hexdigest()}


def save_train_state(
    path: str | Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Write ``train_state/`` (latest weights, optimiser, progress, manifest) as one unit.

    The folder is built under a temporary name and renamed into place when complete, so a kill at any
    moment leaves either the previous state or the new one, never a mix; ``manifest.json`` (size and
    SHA-256 of each file) lets :func:`load_train_state` refuse a state damaged afterwards.
    """
    final = Path(path) / TRAIN_STATE_DIR  # what a system error names (not the temporary folder)
    with naming_path(final), atomic_dir(final) as tmp:
        save_weights(policy, tmp / WEIGHTS_FILE, shown_as=final / WEIGHTS_FILE)
        tensors, meta = optimizer_tensors(optimizer)
        _save_tensors(
            tmp / OPTIMIZER_FILE, tensors, metadata={"optimizer": json.dumps(meta)}, shown_as=final / OPTIMIZER_FILE
        )
        with naming_path(final / STATE_FILE):
            atomic_write_json(tmp / STATE_FILE, state)
        with naming_path(final / MANIFEST_FILE):
            atomic_write_json(
                tmp / MANIFEST_FILE,
                {
                    "format": "drive-train-state",
                    "files": {name: _file_digest(tmp / name) for name in (WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE)},
                },
            )


def check_train_state(folder: str | Path) -> None:
    """Refuse a torn or corrupt ``train_state/`` with a one-line UserError naming the file.

    Every file listed in ``manifest.json`` must exist with the recorded size and SHA-256. A state written
    before manifests existed (no ``manifest.json``) is accepted; its files are still checked as they load.
    """
    folder = Path(folder)
    if not folder.is_dir():
        left = sorted(folder.parent.glob(f".{folder.name}.old-*"))  # a save killed between its two renames
        hint = (
            (
                f" (an interrupted save left the previous state in {left[-1].name}; rename it to {folder.name} "
                "to resume from there)"
            )
            if left
            else ""
        )
        raise UserError(f"{folder}: nothing to resume: training state not found{hint}")
    manifest_file = folder / MANIFEST_FILE
    if not manifest_file.exists():
        return
    files = read_json(manifest_file, expect=dict).get("files")
    if not isinstance(files, dict) or not files:
        raise UserError(f"{manifest_file}: field 'files' is missing or empty")
    for name, expected in files.items():
        file = folder / name
        if not file.is_file():
            raise UserError(f"{file}: missing from the training state (listed in {MANIFEST_FILE})")
        found = _file_digest(file)
        if not isinstance(expected, dict) or found["bytes"] != expected.get("bytes"):
            raise UserError(
                f"{file}: torn or truncated training state: {found['bytes']} bytes, "
                f"{MANIFEST_FILE} records {expected.get('bytes') if isinstance(expected, dict) else None}"
            )
        if found["sha256"] != expected.get("sha256"):
            raise UserError(f"{file}: corrupt training state: SHA-256 differs from the one in {MANIFEST_FILE}")


def load_train_state(path: str | Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the latest weights and optimiser from ``train_state/``; returns the progress dict.

    A torn, truncated or corrupt state is refused (:func:`check_train_state`) before anything is loaded.
    """
    folder = Path(path) / TRAIN_STATE_DIR
    check_train_state(folder)
    state = read_json(folder / STATE_FILE, "nothing to resume: training state", expect=dict)
    load_weights_into(policy, folder / WEIGHTS_FILE, Path(path) / CONFIG_FILE)
    opt_file = folder / OPTIMIZER_FILE
    tensors = _load_tensors(opt_file, "optimiser state")
    try:
        with safe_open(str(opt_file), "pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("optimizer", "null") or "null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{opt_file}: metadata 'optimizer' is not valid JSON: {_one_line(exc)}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("param_groups"), list):
        raise UserError(f"{opt_file}: no 'optimizer' metadata with 'param_groups'")
    try:
        load_optimizer_tensors(optimizer, tensors, meta, str(opt_file))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{opt_file}: optimiser state does not fit the model: {_one_line(exc)}") from exc
    return state
