"""Suite-wide: exported ONNX policies (``drive simulate --runtime onnx``) are cached in a temporary folder, not ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache_in_tmp(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("DRIVE_CACHE_DIR", str(tmp_path_factory.mktemp("drive-cache")))
    yield
    mp.undo()
