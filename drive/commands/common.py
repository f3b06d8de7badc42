"""Helpers shared by the command modules.

* :func:`prepare_out_dir` — every verb that writes calls it on its ``--out`` before any work starts, so
  an existing file, an unwritable place or an uncreatable folder costs nothing and is one line
  (:class:`~drive.errors.UserError`, exit status 2) instead of a traceback after the work.
* :func:`add_dataclass_arguments` / :func:`dataclass_from_args` — one flag per field of a config
  dataclass, its docstring as the help text (``batch_size`` -> ``--batch-size``; booleans that default to
  true get a ``--no-...`` flag), so the dataclass stays the one place where an option is described.
* :func:`add_perturb_arguments` — the repeatable ``--perturb KIND:LEVEL,…`` flag of ``simulate``, ``stress``
  and ``evaluate``, parsed by the library's own parser (:func:`drive.eval.perturb.parse_spec`) as the flag's
  type, so a bad value is one argparse line before any work and the command checks nothing itself.
* :func:`add_backend_arguments` — ``--backend`` and ``--address`` of ``stress`` and ``study``; their
  combination is checked by the library (:func:`drive.eval.backends.check_backend`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import textwrap
from pathlib import Path
from typing import Any

from drive.errors import UserError


def prepare_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Make sure ``path`` is (or can become) a writable folder, and create it; else a one-line UserError.

    Called by every verb before it does any work, so a bad ``--out`` costs nothing.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag}: {out}: exists and is not a folder")
    existing = out
    while not existing.exists():  # the nearest existing ancestor decides whether we may create it
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{flag}: {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag}: {out}: {existing} is not writable")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag}: {out}: cannot create the folder ({exc.strerror})") from None
    return out


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field (read from the source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = ()) -> None:
    """One flag per field of the dataclass ``cls``, help text from the field's docstring."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "").replace("%", "%%")
        if f.type in ("bool", bool):
            if f.default:
                parser.add_argument(
                    "--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=f"do not: {help_text}"
                )
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        kind = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        parser.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=f.default,
            required=f.name in required,
            help=f"{help_text} (default: {f.default!r})",
        )


def dataclass_from_args(args: argparse.Namespace, cls: type) -> Any:
    """An instance of ``cls`` from the parsed flags of :func:`add_dataclass_arguments`."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


SEED_LIMIT = 2**32
"""Seeds are whole numbers in ``[0, 2**32)``: what every generator the verbs seed accepts (NumPy's
``SeedSequence`` and Gymnasium refuse negative seeds; 32 bits fit the legacy ``RandomState`` and torch)."""


def seed_type(text: str) -> int:
    """argparse ``type=`` for a ``--seed`` flag: a whole number ``0 <= seed < 2**32``, else a one-line error
    (``drive VERB: error: argument --seed: ...``, exit status 2) before any work."""
    try:
        seed = int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a whole number 0 <= seed < 2**32, got {text!r}") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number 0 <= seed < 2**32, got {text!r}")
    return seed


def _flag_type(parse, flag: str):
    """An argparse ``type=`` from a library parser: its :class:`UserError` becomes the flag's one-line error."""

    def convert(text: str):
        try:
            return parse(text)
        except UserError as exc:
            message = str(exc)
            for prefix in (f"{flag}: ", f"{flag} "):
                message = message.removeprefix(prefix)
            raise argparse.ArgumentTypeError(message) from None

    convert.__name__ = parse.__name__
    return convert


def add_perturb_arguments(parser: argparse.ArgumentParser, single: bool = False, help: str | None = None) -> None:
    """The repeatable ``--perturb`` flag. ``single``: ``KIND:LEVEL``, one perturbation each
    (:func:`drive.eval.perturb.parse_single`, values are :class:`~drive.eval.perturb.Perturbation`);
    else ``KIND:LEVEL,LEVEL…`` (:func:`drive.eval.perturb.parse_spec`, values are ``(kind, levels)``)."""
    from drive.eval.perturb import parse_single, parse_spec

    parser.add_argument(
        "--perturb",
        action="append",
        default=[],
        type=_flag_type(parse_single if single else parse_spec, "--perturb"),
        metavar="KIND:LEVEL" if single else "KIND:LEVEL,LEVEL…",
        help=help or "perturbation kind and levels, e.g. gaussian:0.1,0.2,0.3 (repeatable)",
    )


def add_backend_arguments(parser: argparse.ArgumentParser, default: str = "local") -> None:
    """``--backend`` (where the work runs: local processes or a Ray cluster) and ``--address`` (the Ray
    cluster to join), as given: the library checks both, and the pair, in one place
    (:func:`drive.eval.backends.check_backend`)."""
    from drive.eval.backends import BACKENDS

    parser.add_argument(
        "--backend",
        default=default,
        metavar="{" + ",".join(BACKENDS) + "}",
        help=f"where the work runs: {' or '.join(BACKENDS)} (local processes or a Ray cluster; default: {default})",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --backend ray: the cluster to join (auto = the running one; default: start a local one)",
    )


def add_checkpoints_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """The repeatable ``--checkpoint`` of the verbs that compare several drivers (a folder or a shipped name)."""
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="DIR",
        help=help or "checkpoint folder or shipped name (repeatable; default: checkpoints/ncp19)",
    )
