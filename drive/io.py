"""Atomic file writes: write to a temporary path beside the target, then rename.

A reader never sees a half-written file, and an interrupted write leaves the old file (or
nothing) in place. :func:`read_json` is the matching reader, with errors that name the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

TMP_MARK = ".drive-tmp-"
"""Temporaries are named ``.NAME.drive-tmp-PID-XXXXXXXX``: hidden, and carrying the writer's process id."""
_TMP_RE = re.compile(r"^\..*\.drive-(?:tmp|old)-(\d+)-")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by writers that died (SIGKILL, power loss).

    A temporary is stale when the process id in its name is not running. Temporaries of live
    writers are left alone, so a sweep never races a write in progress. Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        m = _TMP_RE.match(entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _follow_umask(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the mode a plain open()/mkdir() would have."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` defaults to the target's suffix, so writers that pick a format from the
    extension (OpenCV, pandas) still work. The file gets the mode the umask gives (0644 under
    022). Stale temporaries of dead writers in the folder are swept first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent,
        prefix=f".{path.name}{TMP_MARK}{os.getpid()}-",
        suffix=suffix if suffix is not None else path.suffix,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _follow_umask(tmp_path, is_dir=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name and move it onto ``path`` only when complete.

    An existing folder at ``path`` is replaced only after the new one is finished. The folder gets
    the mode the umask gives (0755 under 022). Stale temporaries of dead writers beside it are swept first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}{TMP_MARK}{os.getpid()}-"))
    try:
        yield tmp
        _follow_umask(tmp, is_dir=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.drive-old-{os.getpid()}-"))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_HELD_LOCKS: dict[tuple[int, str], int] = {}
"""(thread, output folder) whose lock this thread holds, with the depth of nesting (the lock re-enters)."""


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, timeout_s: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder (``FOLDER/.drive.lock``, via filelock) while writing.

    A second writer waits up to ``timeout_s`` (``-1``: forever) and then fails with a one-line
    :class:`~drive.errors.UserError` naming the folder. The lock is released when the holder exits or
    dies (it is an OS-level lock), so a killed writer never blocks the next one. Within one thread the
    lock re-enters: a library call that locks its folder may run inside a command that already holds it;
    another thread of the same process waits like another process.
    """
    from filelock import FileLock, Timeout

    from drive.errors import UserError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    import threading

    key = (threading.get_ident(), str(folder.resolve()))
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield folder
        finally:
            _HELD_LOCKS[key] -= 1
        return
    lock = FileLock(str(folder / ".drive.lock"), mode=0o666 & ~_umask())
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise UserError(f"{folder}: another drive process is writing to this folder") from None
    _HELD_LOCKS[key] = 1
    try:
        yield folder
    finally:
        del _HELD_LOCKS[key]
        lock.release()


def holds_output_lock(param: str) -> Callable[[F], F]:
    """Decorate a function that writes into the folder given by its argument ``param`` (``"out"``, or a
    dotted path into an argument such as ``"cfg.out"``): it runs holding :func:`output_lock` on that folder,
    so a second writer into the same folder fails at once in one line instead of interleaving files."""
    import functools
    import inspect

    name, *attrs = param.split(".")

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            folder = signature.bind(*args, **kwargs).arguments.get(name, signature.parameters[name].default)
            for attr in attrs:
                folder = getattr(folder, attr)
            if folder is None:  # nothing is written
                return fn(*args, **kwargs)
            with output_lock(folder):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def hash_file(digest: Any, path: str | os.PathLike) -> Any:
    """Feed a file's bytes into a ``hashlib`` object in 1 MiB blocks; returns ``digest``."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest


def read_json(path: str | os.PathLike, what: str = "file", expect: type | None = None) -> Any:
    """Parse a UTF-8 JSON file; every failure is a one-line :class:`~drive.errors.UserError` naming the file.

    ``what`` says what was expected when the file is missing; ``expect`` (e.g. ``dict``) is the type the
    top-level value must have.
    """
    from drive.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})"
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if expect is not None and not isinstance(value, expect):
        names = {dict: "an object", list: "an array"}
        raise UserError(f"{path}: the top level is {_json_kind(value)}, expected {names.get(expect, expect.__name__)}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
