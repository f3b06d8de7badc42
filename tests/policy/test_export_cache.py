"""The ONNX cache of `--runtime onnx`: a cached file is used only if it matches the digest stored with it;
a changed, truncated or unloadable one is exported again with a one-line warning; a failed or interrupted
export leaves nothing in the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from drive.policy import export as E
from drive.policy.checkpoint import load_policy, save_checkpoint
from drive.policy.model import build_policy


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("DRIVE_CACHE_DIR", str(root))
    return root


def _checkpoint(tmp_path, name, seed):
    torch.manual_seed(seed)
    return save_checkpoint(build_policy("cnn"), tmp_path / name)


def _steer(driver, frames):
    out, _ = driver.step(frames, driver.initial_state(len(frames)), np.full(len(frames), 0.05))
    return np.asarray(out, dtype=np.float64)


def test_a_poisoned_cache_entry_is_exported_again_with_a_warning(tmp_path, cache_root, frames, capsys):
    a, b = _checkpoint(tmp_path, "a", 0), _checkpoint(tmp_path, "b", 1)
    f = frames(2, seed=3).numpy()
    E.load_onnx_driver(a)
    E.load_onnx_driver(b)
    cache_a, cache_b = E._cache_folder(Path(a)), E._cache_folder(Path(b))
    assert capsys.readouterr().err == ""  # first exports: nothing to warn about
    (cache_a / E.ONNX_FILE).write_bytes((cache_b / E.ONNX_FILE).read_bytes())  # B's export under A's key

    driver = E.load_onnx_driver(a)
    np.testing.assert_allclose(_steer(driver, f), _steer(load_policy(a), f), atol=1e-5)  # A's figures, not B's
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "warning" in err and str(cache_a) in err and "SHA-256 mismatch" in err
    E.load_onnx_driver(a)  # the repaired entry is used again silently
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["truncate", "digest"])
def test_a_broken_cache_entry_is_exported_again_with_a_warning(tmp_path, cache_root, frames, capsys, damage):
    a = _checkpoint(tmp_path, "a", 0)
    E.load_onnx_driver(a)
    cache = E._cache_folder(Path(a))
    if damage == "truncate":
        data = (cache / E.ONNX_FILE).read_bytes()
        (cache / E.ONNX_FILE).write_bytes(data[: len(data) // 3])
    else:
        (cache / E.DIGEST_FILE).unlink()  # e.g. an entry written by older code
    capsys.readouterr()
    driver = E.load_onnx_driver(a)
    f = frames(1, seed=2).numpy()
    np.testing.assert_allclose(_steer(driver, f), _steer(load_policy(a), f), atol=1e-5)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("drive: warning: ONNX cache") and str(cache) in err


@pytest.mark.parametrize("error", [RuntimeError("exporter failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_export_leaves_nothing_in_the_cache(tmp_path, cache_root, monkeypatch, error):
    a = _checkpoint(tmp_path, "a", 0)

    def broken(*args, **kwargs):
        Path(args[2]).write_bytes(b"half an onnx file")
        raise error

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(type(error)):
        E.load_onnx_driver(a)
    left = [p.name for p in (cache_root / "onnx").iterdir()] if (cache_root / "onnx").exists() else []
    assert [n for n in left if not n.endswith(".lock")] == []


def test_a_killed_exporters_temporary_folder_is_swept_by_the_next_export(tmp_path, cache_root):
    a = _checkpoint(tmp_path, "a", 0)
    cache = E._cache_folder(Path(a))
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = cache.parent / f".{cache.name}.drive-tmp-{dead}-abcd1234"
    stale.mkdir(parents=True)
    (stale / E.ONNX_FILE).write_bytes(b"half")
    E.load_onnx_driver(a)
    assert not stale.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([E.ONNX_FILE, E.CONFIG_FILE, E.DIGEST_FILE])
    assert oct((cache / E.ONNX_FILE).stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
