"""Reliability of `drive train`: --resume repeats the recorded run or refuses a change, one run per --out at a
time, a full disk or Ctrl-C leaves a folder the next run can use, bounded flags, --out apart from --data."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from safetensors import safe_open

from drive.cli import main
from drive.errors import UserError
from drive.train import loop as loop_module
from drive.train.loop import train

FAST = ["--batch-size", "4", "--seq-len", "8", "--no-progress", "--no-augment"]


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(["train", *argv])
    except SystemExit as exc:  # argparse's own errors (a flag's type)
        code = exc.code
    return code, capsys.readouterr().err


def optimizer_lrs(out: Path) -> list[float]:
    with safe_open(str(out / "train_state" / "optimizer.safetensors"), "pt") as fh:
        meta = json.loads(fh.metadata()["optimizer"])
    return [g["lr"] for g in meta["param_groups"]]


def test_resume_takes_the_recorded_flags_and_refuses_a_changed_one(make_train_dataset, tmp_path, capsys):
    data, out = make_train_dataset(lengths=(40, 40)), tmp_path / "ck"
    args = ["--data", str(data), "--out", str(out), *FAST]
    code, err = run_cli(capsys, *args, "--epochs", "1", "--max-steps", "1", "--lr-head", "0.001", "--alpha", "1.5")
    assert code == 0, err
    # a changed rate is refused in one line naming the flag, and nothing is trained or rewritten
    before = (out / "config.json").read_bytes()
    code, err = run_cli(capsys, *args, "--resume", "--epochs", "2", "--lr-head", "0.01")
    assert code == 2 and err.count("\n") == 1 and "--lr-head 0.01 differs from" in err and "0.001" in err, err
    assert (out / "config.json").read_bytes() == before
    code, err = run_cli(capsys, *args, "--resume", "--epochs", "2", "--no-augment", "--alpha", "2.0")
    assert code == 2 and "--alpha 2.0 differs" in err, err
    # not repeating the flags: the recorded ones are used (rates in the optimiser and in config.json)
    code, err = run_cli(capsys, "--data", str(data), "--out", str(out), "--resume", "--epochs", "2", "--max-steps", "2")
    assert code == 0, err
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["lr_head"] == pytest.approx(1e-3) and training["alpha"] == pytest.approx(1.5)
    assert training["epochs"] == 2 and training["augment"] is False and training["batch_size"] == 4
    assert optimizer_lrs(out)[0] == pytest.approx(1e-3)


def test_library_resume_refuses_a_changed_learning_rate(make_train_dataset, small_config):
    data = make_train_dataset(lengths=(40, 40))
    train(small_config(data, epochs=2, max_steps=1))
    with pytest.raises(UserError, match=r"--resume: --lr-controller 0\.05 differs from .*config\.json's 0\.005"):
        train(small_config(data, epochs=2, resume=True, lr_controller=0.05))


def test_resume_refuses_another_dataset_by_name_and_by_content(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset(lengths=(40, 40))
    train(small_config(data, epochs=2, max_steps=1))
    other = make_train_dataset(lengths=(40, 40, 40), name="other")
    with pytest.raises(UserError, match=r"--resume: --data .*other: its folder name 'other'"):
        train(small_config(other, epochs=2, resume=True))
    same_name = tmp_path / "elsewhere" / "data"  # the same folder name, other content
    shutil.copytree(other, same_name, ignore=shutil.ignore_patterns("cache", ".*"))
    with pytest.raises(UserError, match=r"--data .*elsewhere/data: its content \(SHA-256\)"):
        train(small_config(same_name, epochs=2, resume=True))
    moved = tmp_path / "moved" / "data"  # the same dataset moved elsewhere: allowed
    shutil.copytree(data, moved, ignore=shutil.ignore_patterns("cache", ".*"))
    assert train(small_config(moved, epochs=2, resume=True)).progress["epoch"] == 2


def test_a_second_run_into_a_locked_out_fails_at_once_and_the_lock_is_released(
    make_train_dataset, small_config, tmp_path
):
    data = make_train_dataset(lengths=(40, 40))
    cfg = small_config(data, max_steps=1)
    out = Path(cfg.out)
    out.mkdir()
    other = FileLock(str(out / ".drive.lock"))  # another writer (its own lock file descriptor) holds it
    other.acquire()
    try:
        t0 = time.perf_counter()
        with pytest.raises(UserError, match=f"{out}: another drive process is writing to this folder"):
            train(cfg)
        assert time.perf_counter() - t0 < 5.0  # at once, before the frame cache
        assert not (data / "cache").exists()
    finally:
        other.release()
    train(cfg)
    other.acquire(timeout=0)  # released when the run ended
    other.release()


def test_two_cli_runs_into_one_out_the_second_fails_in_one_line(make_train_dataset, tmp_path):
    data, out = make_train_dataset(lengths=(40, 40)), tmp_path / "ck"
    out.mkdir()
    holder = subprocess.Popen(
        [
            os.sys.executable,
            "-c",
            "import sys, time; from drive.io import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [os.sys.executable, "-m", "drive.cli", "train", "--data", str(data), "--out", str(out), *FAST],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{out}: another drive process is writing to this folder" in done.stderr


def _fail_writes(monkeypatch, match: str, after: int = 0) -> list[str]:
    """Make the (after+1)-th and later writes whose path contains ``match`` fail as a full disk does: an
    OSError with errno ENOSPC and no file name."""
    seen: list[str] = []
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if match in str(self):
            seen.append(str(self))
            if len(seen) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    return seen


def test_disk_full_is_one_line_naming_the_file_and_never_blocks_the_next_run(
    make_train_dataset, tmp_path, capsys, monkeypatch
):
    data, out = make_train_dataset(lengths=(40, 40)), tmp_path / "ck"
    args = ["--data", str(data), "--out", str(out), "--epochs", "2", *FAST]
    # the disk fills during the first save: one line naming the file, exit status 1, no temporaries
    with monkeypatch.context() as m:
        _fail_writes(m, "optimizer.safetensors")
        code, err = run_cli(capsys, *args)
    assert code == 1 and err.count("\n") == 1, err
    assert f"{out / 'train_state' / 'optimizer.safetensors'}: No space left on device" in err
    assert not [p for p in out.iterdir() if ".drive-tmp-" in p.name or ".drive-old-" in p.name]
    # nothing to resume, said in one line; a fresh run starts over what the failed one left
    code, err = run_cli(capsys, *args, "--resume")
    assert code == 2 and "nothing to resume" in err and "without --resume" in err, err
    # the disk fills during the second epoch's save: the first epoch stays resumable
    with monkeypatch.context() as m:
        _fail_writes(m, "optimizer.safetensors", after=1)
        code, err = run_cli(capsys, *args)
    assert code == 1 and "No space left on device" in err, err
    assert json.loads((out / "config.json").read_text())["metrics"]["epochs_done"] == 1
    code, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    assert metrics["epochs_done"] == 2 and metrics["finished"] is True


def test_disk_full_on_a_real_small_filesystem(make_train_dataset, tmp_path, capsys):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        data, out = make_train_dataset(lengths=(40, 40)), mnt / "ck"
        args = ["--data", str(data), "--out", str(out), "--epochs", "1", *FAST]
        code, err = run_cli(capsys, *args)  # 600 kB: the weights fit, the training state does not
        assert code == 1 and err.count("\n") == 1 and f"{out}" in err and "No space left on device" in err, err
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        code, err = run_cli(capsys, *args)  # room again: a fresh run is not blocked
        assert code == 0, err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_ctrl_c_saves_the_last_step_and_resume_goes_on_exactly(make_train_dataset, small_config, capsys, monkeypatch):
    data = make_train_dataset(lengths=(40, 40, 40))
    straight = train(small_config(data, out="straight", epochs=2)).progress["losses"]
    real = loop_module.window_loss
    calls = []

    def interrupt_at_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the terminal
        return real(*args, **kwargs)

    cfg = small_config(data, out="stopped", epochs=2)
    with monkeypatch.context() as m:
        m.setattr(loop_module, "window_loss", interrupt_at_third_step)
        code = main(
            ["train", "--data", str(data), "--out", cfg.out, "--epochs", "2", "--batch-size", "4", "--seq-len", "8"]
            + ["--no-progress"]
        )
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err, err
    state = json.loads((Path(cfg.out) / "train_state" / "state.json").read_text())
    assert (state["step"], state["epoch"], state["batch"]) == (3, 1, 1)  # the step in progress finished, then saved
    FileLock(str(Path(cfg.out) / ".drive.lock")).acquire(timeout=0)  # the lock is released
    resumed = train(small_config(data, out="stopped", epochs=2, resume=True)).progress["losses"]
    np.testing.assert_allclose(resumed, straight, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--epochs", "1000000000", "--epochs 1000000000: must be in [1, 100000]"),
        ("--batch-size", "100000000", "--batch-size 100000000: must be in [1, 4096]"),
        ("--seq-len", "99999999", "--seq-len 99999999: must be in [1, 10000]"),
        ("--workers", "100000", "--workers 100000: must be in [0, 64]"),
        ("--lr-head", "inf", "--lr-head inf: must be a finite number"),
        ("--alpha", "1000", "--alpha 1000.0: must be in [0, 10.0]"),
        ("--dagger-episodes", "0", "--dagger-episodes 0: must be in [1, 10000]"),
        ("--seed", "-1", "argument --seed"),
        ("--seed", "4294967296", "argument --seed"),
        ("--split-seed", "x", "argument --split-seed"),
    ],
)
def test_flags_out_of_bounds_are_one_line_before_any_work(flag, value, message, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    code, err = run_cli(capsys, "--data", str(data), "--out", str(tmp_path / "o"), flag, value)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_out_must_be_apart_from_the_dataset(make_train_dataset, tmp_path, capsys):
    data = make_train_dataset(lengths=(40, 40))
    for out, how in ((data, "is the dataset"), (data / "ck", "is inside the dataset"), (tmp_path, "contains")):
        code, err = run_cli(capsys, "--data", str(data), "--out", str(out), *FAST)
        assert code == 2 and err.count("\n") == 1 and how in err and f"--out {out}" in err, err
    assert not (data / "ck").exists() and not (data / "cache").exists()
