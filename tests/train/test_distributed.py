"""torchrun: two CPU processes (gloo) with the same global batch follow the single-process loss trajectory."""

import json
import os
import subprocess
import sys

import pytest

from drive.train.loop import train


@pytest.mark.slow
def test_two_processes_follow_the_single_process_losses(make_train_dataset, small_config, tmp_path):
    data = make_train_dataset(lengths=(48, 48, 48))
    # augmentation stays on: its parameters are drawn per global batch, so each rank applies its slice
    single = train(small_config(data, out="single", epochs=2, threads=1)).progress
    assert len(single["losses"]) == 6

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "drive.cli",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--seq-len",
        "8",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("drive train:") == 1  # only rank 0 reports
    state = json.loads((out / "train_state" / "state.json").read_text())
    assert len(state["losses"]) == len(single["losses"])
    assert state["losses"] == pytest.approx(single["losses"], rel=1e-3)
    assert [e["val_loss"] for e in state["epochs"]] == pytest.approx(
        [e["val_loss"] for e in single["epochs"]], rel=1e-3
    )
    config = json.loads((out / "config.json").read_text())
    assert config["metrics"]["world_size"] == 2
