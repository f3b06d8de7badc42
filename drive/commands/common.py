"""Helpers shared by the command modules: output folders checked before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

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
