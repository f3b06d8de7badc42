"""``--config FILE.yaml``: a verb's flags from a file; flags on the command line override it.

The file is a mapping of the verb's flag names (the argparse dest names, ``batch_size`` or ``batch-size``)
to values: a string, number or boolean for a flag that takes one value (``progress: false`` for
``--no-progress``, whose dest is ``progress``), a list for a repeatable flag (``checkpoint: [a, b]``) or one
of several values, a list or mapping for a flag whose value is a list (``levels: [0.01, 0.04]`` for
``--levels 0.01,0.04``, ``lr_controller: {ncp19: 5e-4}``). Every value goes through the flag's own
parser, so it is checked as on the command line. Required flags may come from the file. An unknown key or a
value of the wrong type is one line naming the file, the key and the value (exit status 2).

``drive train --config CHECKPOINT/config.json`` takes the checkpoint's ``training`` section (the
:class:`~drive.train.config.TrainConfig` it was trained with). Its paths were cut to their last component
when it was saved, so ``--data`` and ``--out`` must be given on the command line (and its ``logdir`` and
``cache_dir``, when set, are left out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from drive.errors import UserError

CHECKPOINT_PATH_FIELDS = ("data", "out", "logdir", "cache_dir")
"""Fields of a checkpoint's ``training`` section that are paths cut to their last component."""


def config_path(argv: list[str]) -> str | None:
    """The value of ``--config`` in ``argv`` (the last one given), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--config="):
            found = arg.partition("=")[2]
    return found


def is_checkpoint_config(data: Any) -> bool:
    """Whether ``data`` is a checkpoint's ``config.json`` (it has a ``training`` section and a ``policy``)."""
    return isinstance(data, dict) and isinstance(data.get("training"), dict) and "policy" in data


def read_config_file(path: str) -> Any:
    """The data of a YAML (or JSON) file, through the one strict YAML loader; bad content is a UserError."""
    from drive.world.scenario import read_yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config: {path}: " + ("is a folder, not a file" if p.is_dir() else "file not found"))
    return read_yaml(p)


def apply_config_file(parser: argparse.ArgumentParser, path: str, verb: str, argv: list[str]) -> None:
    """Set ``parser``'s defaults from the file at ``path`` (see the module); flags given in ``argv`` override."""
    data = read_config_file(path)
    if data is None:
        data = {}
    if verb == "train" and is_checkpoint_config(data):
        training = dict(data["training"])
        missing = [f"--{k}" for k in ("data", "out") if not any(a == f"--{k}" or a.startswith(f"--{k}=") for a in argv)]
        if missing:
            cut = ", ".join(f"{k}: {training.get(k)!r}" for k in ("data", "out"))
            raise UserError(
                f"--config {path}: a checkpoint's config.json keeps only the last component of its paths ({cut}); "
                f"give {' and '.join(missing)} on the command line"
            )
        data = {k: v for k, v in training.items() if k not in CHECKPOINT_PATH_FIELDS and k != "resume"}
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a mapping of flag names to values, got {_kind(data)}")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", argparse.SUPPRESS)}
    defaults = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise UserError(
                f"--config {path}: unknown key {key!r} (value {_show(value)}): drive {verb} has no such flag "
                f"(see drive {verb} --help)"
            )
        try:
            defaults[dest] = _convert(action, value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise UserError(f"--config {path}: key {key!r}: value {_show(value)}: {exc}") from None
        action.required = False
        if not action.option_strings and action.nargs == "+":  # a positional the file gave
            action.nargs = "*"
    parser.set_defaults(**defaults)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _convert(action: argparse.Action, value: Any) -> Any:
    """``value`` from the file as the flag's parsed value (its type, choices and arity checked)."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {_kind(value)}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
    if many:
        items = value if isinstance(value, list) else [value]
        if action.nargs == "+" and not items:
            raise ValueError("expected at least one value")
        return [_one(action, item) for item in items]
    return _one(action, value)


def _one(action: argparse.Action, value: Any) -> Any:
    """One value through the flag's ``type``, as argparse would parse its text, then its ``choices``."""
    if value is None:
        if action.default is None:
            return None
        raise TypeError("expected a value, got null")
    kind = action.type
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected a whole number, got {_kind(value)}")
        result: Any = value
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {_kind(value)}")
        result = float(value)
    else:
        text = _text(value)
        result = text if kind is None or kind is str else kind(text)
    if action.choices is not None and result not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return result


def _text(value: Any) -> str:
    """The command-line text of a value: a list as ``a,b``, a mapping as ``k=v,k=v``."""
    if isinstance(value, bool):
        raise TypeError("expected a value, got a boolean")
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in value.items())
    raise TypeError(f"expected a value, got {_kind(value)}")
