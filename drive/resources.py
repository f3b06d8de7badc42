"""Files shipped with the package: the scenario YAML files and the default checkpoint.

In the repository they live at the top (``scenarios/``, ``checkpoints/ncp19/``); ``pyproject.toml`` maps
them into the installed package as ``drive.scenarios`` and ``drive.checkpoints`` (package data), so an
installed ``drive`` (``pip install .``, not only ``pip install -e .``) finds them from any working
directory. Lookup order:

1. a source checkout: the folder beside the imported ``drive`` package, when that package sits next to
   its ``pyproject.toml`` (so a worktree always reads its own files);
2. otherwise the installed package data, through :mod:`importlib.resources`.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from drive.errors import UserError

#: The checkpoint that ``drive simulate``, ``drive stress`` and ``drive explain`` drive by default.
DEFAULT_CHECKPOINT_NAME = "ncp19"
#: How the default checkpoint is written on the command line (``--checkpoint`` default).
DEFAULT_CHECKPOINT = f"checkpoints/{DEFAULT_CHECKPOINT_NAME}"


def _source_root() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _shipped(package: str, folder: str, name: str) -> Path | None:
    """``name`` inside the shipped ``folder`` of a source checkout, else inside the package data ``package``."""
    root = _source_root()
    if root is not None and (root / folder).is_dir():
        return root / folder / name
    try:
        files = importlib.resources.files(package)
    except ModuleNotFoundError:
        return None
    entry = files.joinpath(name)  # an installed package on disk gives a pathlib.Path
    return entry if isinstance(entry, Path) else Path(str(entry))


def shipped_scenarios() -> list[str]:
    """Names of the shipped scenarios (``default``, ``train``, ...)."""
    root = _source_root()
    if root is not None and (root / "scenarios").is_dir():
        entries = list((root / "scenarios").iterdir())
    else:
        try:
            entries = list(importlib.resources.files("drive.scenarios").iterdir())
        except ModuleNotFoundError:
            return []
    return sorted(Path(str(e)).stem for e in entries if str(e).endswith(".yaml"))


def scenario_path(name: str) -> Path | None:
    """The shipped scenario called ``name`` (``train`` or ``train.yaml``), or None if there is none."""
    if not name or Path(name).name != name:
        return None
    path = _shipped("drive.scenarios", "scenarios", name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return path if path is not None and path.is_file() else None


def suite_dir() -> Path:
    """The shipped generalization suite's folder (``scenarios/suite``: one YAML file per case)."""
    path = _shipped("drive.scenarios", "scenarios", "suite")
    if path is None or not path.is_dir():
        raise UserError("the generalization suite (scenarios/suite) is not shipped with this install")
    return path


def default_checkpoint() -> Path:
    """The shipped default checkpoint folder (``checkpoints/ncp19``); a UserError if this install lacks it."""
    path = _shipped("drive.checkpoints", "checkpoints", DEFAULT_CHECKPOINT_NAME)
    if path is None or not (path / "config.json").is_file():
        raise UserError(
            f"--checkpoint: the default {DEFAULT_CHECKPOINT} is not shipped with this install; "
            "train one with `drive train` and pass --checkpoint"
        )
    return path


def shipped_checkpoints() -> list[str]:
    """Names of the checkpoints shipped here: every ``checkpoints/<name>/config.json`` of a source checkout
    (``ncp19``, ``cnn``, ``lstm``, …); an installed package ships only the default."""
    root = _source_root()
    if root is not None and (root / "checkpoints").is_dir():
        return sorted(p.parent.name for p in (root / "checkpoints").glob("*/config.json"))
    return [DEFAULT_CHECKPOINT_NAME] if _shipped_checkpoint(DEFAULT_CHECKPOINT_NAME) is not None else []


def _shipped_checkpoint(name: str) -> Path | None:
    path = _shipped("drive.checkpoints", "checkpoints", name)
    return path if path is not None and (path / "config.json").is_file() else None


def resolve_checkpoint_arg(path: str | os.PathLike) -> Path:
    """``path`` as given when it exists; otherwise a shipped checkpoint named by it, from any directory:
    a bare name (``lstm``) or the shipped spelling (``checkpoints/lstm``)."""
    p = Path(path)
    if p.exists():
        return p
    text = os.fspath(path).rstrip("/")
    name = text[len("checkpoints/") :] if text.startswith("checkpoints/") else text
    if name and Path(name).name == name and name not in (".", ".."):
        if name == DEFAULT_CHECKPOINT_NAME and text in (name, DEFAULT_CHECKPOINT):
            return default_checkpoint()
        shipped = _shipped_checkpoint(name)
        if shipped is not None:
            return shipped
    return p
