"""drive.io: atomic writes and the JSON reader whose errors name the file."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from drive.data.layout import read_info
from drive.errors import UserError
from drive.io import TMP_MARK, atomic_dir, atomic_write_json, read_json, sweep_stale_temporaries
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


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_files_and_folders_follow_the_umask(tmp_path, umask022):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    with atomic_dir(tmp_path / "d") as d:
        (d / "f.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    os.umask(0o027)
    atomic_write_json(tmp_path / "n.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "n.json").stat().st_mode) == 0o640


_KILLED_WRITER = """
import os, signal, sys
from drive.io import atomic_dir, atomic_path
folder = sys.argv[1]
with atomic_dir(os.path.join(folder, "sub")) as d:
    with atomic_path(os.path.join(folder, "out.json")) as tmp:
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temporaries_of_a_killed_writer_are_swept_by_the_next_write(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(name.startswith(".") for name in left)  # what SIGKILL leaves behind
    live = tmp_path / f".other.json{TMP_MARK}{os.getpid()}-abc.json"  # a live writer's temporary: kept
    live.write_text("in progress")
    atomic_write_json(tmp_path / "out.json", {"ok": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.json", live.name])
    assert sweep_stale_temporaries(tmp_path) == []


def test_hash_file_streams_the_same_digest_as_hashing_the_bytes(tmp_path):
    import hashlib

    from drive.io import hash_file

    data = bytes(range(256)) * 9000  # larger than one 1 MiB block
    (tmp_path / "f").write_bytes(data)
    assert hash_file(hashlib.sha256(), tmp_path / "f").hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_output_lock_re_enters_in_one_process_and_refuses_another(tmp_path):
    from drive.io import holds_output_lock, output_lock

    @holds_output_lock("out")
    def write(out, name):
        with output_lock(out):  # a library call that locks inside a command that already holds the lock
            (Path(out) / name).write_text("x")
        return name

    hold = "import sys, time\nfrom drive.io import output_lock\nwith output_lock(sys.argv[1]):\n"
    with output_lock(tmp_path):
        assert write(tmp_path, "a") == "a"
        other = subprocess.run([sys.executable, "-c", hold + "    pass", str(tmp_path)], capture_output=True, text=True)
        assert other.returncode != 0 and "another drive process is writing to this folder" in other.stderr
    assert write(out=tmp_path, name="b") == "b"  # released after the outer hold
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "    print('held', flush=True)\n    time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match="another drive process is writing to this folder"):
            write(tmp_path, "c")
        assert not (tmp_path / "c").exists()
    finally:
        holder.kill()
        holder.wait()
