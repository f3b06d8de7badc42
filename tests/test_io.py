"""drive.io: atomic writes and the JSON reader whose errors name the file."""

from __future__ import annotations

import pytest

from drive.data.layout import read_info
from drive.errors import UserError
from drive.io import atomic_write_json, read_json
from drive.policy.checkpoint import read_config


def test_read_json_round_trip_and_errors_name_the_file(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert read_json(tmp_path / "a.json") == {"x": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind
    with pytest.raises(UserError, match=r"missing\.json: file not found"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bad\.json: invalid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(UserError, match=r"latin1\.json: not UTF-8 text"):
        read_json(tmp_path / "latin1.json")
    with pytest.raises(UserError, match=r"a\.json: the top level is an object, expected an array"):
        read_json(tmp_path / "a.json", expect=list)


def test_broken_checkpoint_config_and_dataset_info_name_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config\.json: invalid JSON"):
        read_config(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("[")
    with pytest.raises(ValueError, match=r"info\.json: invalid JSON"):
        read_info(tmp_path)
