"""Reproducible runs: the run record every verb writes, and the one ``--out`` rule.

**The run record.** :func:`drive.cli.main` opens a :class:`Run` before the verb runs (:func:`begin`) and
closes it after (:func:`finish`). The record is JSON: the command line, the resolved config (the parsed
flags; a verb that resolves more, such as ``train --resume``, records its resolved values with
:func:`set_config`), the seeds, the code version (``drive.__version__``, and the git commit when run from
a checkout), the versions of the installed packages that drive imports, the start and end time (UTC) and
the exit status. It holds no machine paths: a path inside the working folder is written relative to it,
one outside it as its last component only (:func:`portable`).

Where it goes: ``OUT/run.json`` (the latest run into that folder), written when the verb claims its
output folder (:func:`claim_out`, status ``running``: a run that is killed leaves that) and rewritten
when the verb ends. A dataset folder (``drive record``, ``drive import``) is fingerprinted and its files
are checked against its layout, so there the record goes to ``meta/runs/<UTC time>-<verb>.json``, one
file per run, never overwritten, written when the verb ends and only if the folder then holds a dataset
(:data:`drive.data.layout` counts ``meta/runs/*.json`` as its own; the fingerprint does not read them).
``drive inspect`` writes no folder and no record.

**The ``--out`` rule** (:class:`OutRule`, one per verb): a verb whose work is resumable (``stress``,
``evaluate``, ``study``, ``results``, ``train --resume``) goes on in a folder that holds its earlier work; a
dataset is appended to (``record``, ``import``). Any other verb refuses a folder that holds anything
(``simulate``, ``suite``, ``explain``, ``export``), so stale files never sit beside new results, unless
``--overwrite`` is given: it deletes what the verb itself writes (:attr:`OutRule.own`) and refuses, naming
them, files that the verb does not write. The folder's lock (:func:`drive.io.output_lock`) is held from the
check to the end of the verb, so a second writer fails at once and nothing is deleted under it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import fnmatch
import functools
import importlib.metadata
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from drive.errors import UserError

RUN_FILE = "run.json"
"""The run record in a verb's output folder."""
DATASET_RUNS = "meta/runs"
"""Where a dataset folder keeps its run records, one file per run."""
FORMAT_VERSION = 1
DATASET_VERBS = ("record", "import")
"""Verbs whose ``--out`` is a dataset, appended to: their record goes to ``meta/runs/``."""

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "gymnasium",
    "highway-env",
    "onnx",
    "onnxruntime",
    "opencv-python",
    "opencv-python-headless",
    "av",
    "safetensors",
    "numba",
    "torchdiffeq",
    "scipy",
    "pandas",
    "pyarrow",
    "matplotlib",
    "scikit-image",
    "PyYAML",
    "filelock",
    "tensorboard",
    "tqdm",
    "ray",
)
"""Packages whose version a run record lists, those installed."""

_LOCK_OR_TEMPORARY = re.compile(r"^(?:\.drive\.lock|\..*\.drive-(?:tmp|old)-\d+-.*)$")
"""drive's lock and temporaries (:mod:`drive.io`), in any folder."""


# ------------------------------------------------------------------------------------ portable values


def portable_path(text: str) -> str:
    """``text`` as a path without the machine in it: relative to the working folder when inside it, else its
    last component."""
    p = Path(os.path.expanduser(text))
    try:
        full = Path(os.path.abspath(p))
        rel = full.relative_to(Path.cwd())
    except ValueError:
        return full.name or text
    return rel.as_posix() if rel.parts else "."


def _looks_like_path(text: str) -> bool:
    return ("/" in text and "://" not in text) or text.startswith("~") or text in (".", "..")


def portable(value: Any) -> Any:
    """``value`` as JSON data with no machine path in it (see :func:`portable_path`): mappings, sequences,
    dataclasses and paths are converted; a string that names a path (it has a ``/``) is made portable;
    a number that is not finite becomes its text; any other object becomes its ``str``."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, os.PathLike):
        return portable_path(os.fspath(value))
    if isinstance(value, str):
        if value.startswith("--") and "=" in value:  # --flag=VALUE on a command line
            flag, _, rest = value.partition("=")
            return f"{flag}={portable(rest)}"
        return portable_path(value) if _looks_like_path(value) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return portable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [portable(v) for v in value]
    return str(value)


def args_config(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed flags as JSON data (the argparse dest names), without the verb and ``--config`` and
    without flags left at a bare sentinel default (``drive train``'s "not given")."""
    return {
        k: portable(v)
        for k, v in vars(args).items()
        if k not in ("command", "config") and type(v) is not object  # noqa: E721 (a bare sentinel)
    }


# ------------------------------------------------------------------------------------ what ran


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"drive": __version__, "git_commit": SHA or None, "git_dirty": bool or None}``: the commit when the
    package runs from a git checkout (nothing else about the checkout is written)."""
    import drive

    version: dict[str, Any] = {"drive": drive.__version__, "git_commit": None, "git_dirty": None}
    root = Path(drive.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return version
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "drive"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return version
    if re.fullmatch(r"[0-9a-f]{40,64}", sha):
        version["git_commit"] = sha
        version["git_dirty"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    return version


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """The installed versions of :data:`PACKAGES` (those not installed are left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ the run


@dataclasses.dataclass
class Run:
    """One verb's run, from :func:`begin` to :func:`finish`."""

    verb: str
    argv: list[str]
    config: dict[str, Any]
    started: _dt.datetime = dataclasses.field(default_factory=_now)
    records: list[Path] = dataclasses.field(default_factory=list)
    """Where the record is (re)written: ``OUT/run.json`` files."""
    dataset_records: dict[Path, Any] = dataclasses.field(default_factory=dict)
    """Dataset folders that get a ``meta/runs/`` record when the verb ends, with their size before the run."""
    locks: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)
    out: Path | None = None
    """A verb without an :class:`OutRule`: its ``--out``, where the record goes at the end if the folder is there."""
    claimed: bool = False
    """Whether the verb claimed (or tried to claim) its output folder."""

    def record(self, status: str, exit_status: int | None, ended: _dt.datetime | None) -> dict[str, Any]:
        return {
            "format": "drive-run",
            "format_version": FORMAT_VERSION,
            "verb": self.verb,
            "command_line": ["drive", *(portable(a) for a in self.argv)],
            "config": self.config,
            "seeds": {k: v for k, v in self.config.items() if "seed" in k},
            "code_version": dict(code_version()),
            "python": platform.python_version(),
            "packages": dict(package_versions()),
            "started": _iso(self.started),
            "ended": _iso(ended) if ended is not None else None,
            "status": status,
            "exit_status": exit_status,
        }


_CURRENT: Run | None = None


def begin(verb: str, argv: list[str], args: argparse.Namespace, has_rule: bool = True) -> Run:
    """Open the run of ``verb`` (called by :func:`drive.cli.main` before the verb runs). ``has_rule``: the
    verb claims its folder (:func:`claim_out`); one that does not gets ``OUT/run.json`` when it ends."""
    global _CURRENT
    out = getattr(args, "out", None)
    fallback = Path(out) if isinstance(out, str) and not has_rule and verb not in DATASET_VERBS else None
    _CURRENT = Run(verb, list(argv), args_config(args), out=fallback)
    if verb in DATASET_VERBS and isinstance(getattr(args, "out", None), str):
        root = Path(args.out)
        _CURRENT.dataset_records[root] = _dataset_size(root)
    return _CURRENT


def current() -> Run | None:
    return _CURRENT


def set_config(config: dict[str, Any]) -> None:
    """Record ``config`` (made portable) as the run's resolved config, e.g. the options a resumed training
    took from its checkpoint; rewrites the records already written."""
    run = _CURRENT
    if run is None:
        return
    run.config = portable(config)
    for path in run.records:
        _write(path, run.record("running", None, None))


def finish(exit_status: int) -> None:
    """Close the run: write its records with the end time and exit status, release the folder locks."""
    global _CURRENT
    run, _CURRENT = _CURRENT, None
    if run is None:
        return
    status = {0: "finished", 130: "interrupted"}.get(exit_status, "failed")
    ended = _now()
    try:
        record = run.record(status, exit_status, ended)
        if not run.claimed and run.out is not None:  # a verb with no OutRule
            run.records.append(run.out / RUN_FILE)
        for path in run.records:
            if path.parent.is_dir():
                _write(path, record)
        for root, before in run.dataset_records.items():
            if exit_status == 0 or _dataset_size(root) != before:  # a refused run that changed nothing: no record
                _write_dataset_record(root, run.verb, run.started, record)
    except OSError as exc:  # the verb's work is done; a record that cannot be written is a warning
        print(f"drive {run.verb}: warning: the run record was not written: {exc}", file=sys.stderr)
    finally:
        run.locks.close()


def _write(path: Path, record: dict[str, Any]) -> None:
    from drive.io import atomic_write_json

    atomic_write_json(path, record)


def _dataset_size(root: Path) -> tuple[int, int] | None:
    """``(episodes, frames)`` of the dataset in ``root``, or None where there is none."""
    from drive.data import layout

    try:
        info = layout.read_info(root)
    except UserError:
        return None
    return int(info.total_episodes), int(info.total_frames)


def _write_dataset_record(root: Path, verb: str, started: _dt.datetime, record: dict[str, Any]) -> None:
    """``ROOT/meta/runs/<UTC start>-<verb>.json``, a new file (never one that exists), if ROOT holds a dataset."""
    from drive.data import layout
    from drive.io import atomic_write_json

    if not root.is_dir() or not layout.is_dataset(root):
        return
    folder = root / DATASET_RUNS
    stem = f"{started.strftime('%Y%m%dT%H%M%S.%fZ')}-{verb}"
    path, n = folder / f"{stem}.json", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}.json", n + 1
    atomic_write_json(path, record)


# ------------------------------------------------------------------------------------ the --out rule


@dataclasses.dataclass(frozen=True)
class OutRule:
    """What a verb does with an output folder that holds files (see the module)."""

    own: tuple[str, ...] = ()
    """What the verb writes, as patterns of paths relative to the folder (``fnmatch``: ``*`` spans ``/``)."""
    resumable: bool = False
    """The verb goes on with the work it finds (no refusal of a non-empty folder)."""
    dataset: bool = False
    """The folder is a dataset, appended to (the record goes to ``meta/runs/``; the verb checks the folder)."""
    overwrite: bool = True
    """The verb has ``--overwrite``."""


def add_out_arguments(parser: argparse.ArgumentParser, rule: OutRule, flag: str = "--out") -> None:
    """``--overwrite`` for a verb whose rule has one."""
    if not rule.overwrite:
        return
    what = "start afresh" if rule.resumable else "write into a folder that holds an earlier run"
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"{what}: delete what this verb wrote in {flag} first (refused if {flag} holds other files)",
    )


def own_entries(out: Path, rule: OutRule) -> tuple[list[str], list[str]]:
    """The files in ``out`` (relative posix paths, sorted), split into the verb's own and the others; drive's
    lock, temporaries and the run record are left out of both."""
    own, foreign = [], []
    for dirpath, dirnames, filenames in os.walk(out):
        rel = Path(dirpath).relative_to(out)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            path = (rel / name).as_posix()
            if _LOCK_OR_TEMPORARY.match(name) or path == RUN_FILE:
                continue
            (own if any(fnmatch.fnmatchcase(path, p) for p in rule.own) else foreign).append(path)
    return sorted(own), sorted(foreign)


def _listing(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def claim_out(path: str | os.PathLike, rule: OutRule, overwrite: bool = False, flag: str = "--out") -> Path:
    """Check and make ``path`` the verb's output folder by ``rule`` (see the module), before any work; hold its
    lock to the end of the run; write the run record (status ``running``). Returns the folder.

    Every failure is one line (:class:`~drive.errors.UserError`) and changes nothing.
    """
    from drive.commands.common import prepare_out_dir
    from drive.io import output_lock

    run = _CURRENT
    verb = f"drive {run.verb}" if run is not None else "this verb"
    if run is not None:
        run.claimed = True
    out = prepare_out_dir(path, flag)
    if rule.dataset:
        if run is not None and out not in run.dataset_records:
            run.dataset_records[out] = _dataset_size(out)
        return out
    if run is not None:
        run.locks.enter_context(output_lock(out))
    own, foreign = own_entries(out, rule)
    if overwrite:
        if foreign:
            raise UserError(
                f"--overwrite: {out} holds {len(foreign)} file(s) that {verb} does not write "
                f"({_listing(foreign)}); move them away or choose another {flag}"
            )
        for rel in own:
            (out / rel).unlink(missing_ok=True)
        _remove_empty_folders(out)
    elif own + foreign and not rule.resumable:
        found = own + foreign
        raise UserError(
            f"{flag} {out}: not empty ({len(found)} file(s): {_listing(found)}); add --overwrite to replace "
            f"what {verb} wrote there, or choose another folder"
        )
    if run is not None:
        record = out / RUN_FILE
        if record not in run.records:
            run.records.append(record)
        _write(record, run.record("running", None, None))
    return out


def _remove_empty_folders(out: Path) -> None:
    for folder, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
        if Path(folder) != out and not os.listdir(folder) and not os.path.islink(folder):
            shutil.rmtree(folder, ignore_errors=True)
