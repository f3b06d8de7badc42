"""Execution backends of `drive stress`: local workers that die with their parent, and Ray tasks on a real
local cluster (same results as local, a killed worker costs no cell, an interrupted sweep resumes)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drive.cli import main
from drive.errors import UserError
from drive.eval.stress import stress
from drive.world.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
PERTURB = ["gaussian:0.1,0.3", "drop:0.5"]


def _env() -> dict[str, str]:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    return env


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(root: int) -> set[int]:
    parents = {pid: _ppid(pid) for pid in _pids()}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cells(folder: Path) -> list[Path]:
    """The finished cell files in ``folder``: not the hidden temporaries (``.NAME.drive-tmp-PID-….json``) that a
    worker killed mid-write leaves until the next write into the folder sweeps them."""
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def _wait_for(predicate, timeout_s: float, every_s: float = 0.05):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return predicate()


# ------------------------------------------------------------------------------------------ local


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_workers_die_with_their_parent_on_sigkill(tmp_path, tiny_checkpoint, scenario_file):
    """Issue 8: after kill -9 of `drive stress --workers 2`, no spawned worker outlives the parent."""
    cmd = [
        sys.executable,
        "-m",
        "drive.cli",
        "stress",
        "--checkpoint",
        str(tiny_checkpoint()),
        "--perturb",
        "gaussian:0.1,0.2,0.3,0.4",
        "--seeds",
        "4",
        "--workers",
        "2",
        "--scenario",
        str(scenario_file(3.0)),
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def two_workers() -> bool:
            return len([p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)]) >= 2

        workers = _wait_for(two_workers, timeout_s=120)
        assert workers, "the sweep never started its two workers"
        assert proc.poll() is None, "the sweep ended before it could be killed"
        everyone = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    survivors = _wait_for(lambda: not [p for p in everyone if _alive(p)], timeout_s=10)
    assert survivors, f"still alive after the parent's SIGKILL: {[(p, _cmdline(p)) for p in everyone if _alive(p)]}"


def test_pool_workers_ignore_ctrl_c_from_their_first_instruction():
    """A worker inherits SIGINT ignored (no initializer needed), so a Ctrl-C during its start-up imports
    prints no traceback; the parent's own handler is back once the worker is started."""
    from drive.eval.sweep import WorkerPool, _QuietSpawnContext

    before = signal.getsignal(signal.SIGINT)
    with WorkerPool(1, mp_context=_QuietSpawnContext()) as pool:
        in_worker = pool.submit(signal.getsignal, signal.SIGINT).result(timeout=60)
        assert signal.getsignal(signal.SIGINT) is before
    assert in_worker == signal.SIG_IGN


def test_leaving_the_pool_by_an_exception_stops_running_tasks_at_once():
    from drive.eval.sweep import worker_pool

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(1) as pool:
            task = pool.submit(time.sleep, 120)
            assert _wait_for(lambda: task.running() and pool._processes, timeout_s=60)
            workers = list(pool._processes.values())
            raise KeyboardInterrupt
    assert time.monotonic() - start < 60  # did not wait for the two-minute task
    assert not any(w.is_alive() for w in workers)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_of_a_parallel_sweep_is_one_line_and_prompt(tmp_path, tiny_checkpoint, scenario_file):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the workers start: no worker
    traceback, no wait for the running cells, one line and exit status 130, the finished results written."""
    cmd = [sys.executable, "-m", "drive.cli", "stress", "--checkpoint", str(tiny_checkpoint()), "--no-expert"]
    cmd += ["--seeds", "6", "--workers", "2", "--scenario", str(scenario_file(30.0)), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        workers = _wait_for(lambda: [p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)], 120, 0.01)
        assert workers, "the sweep never started its workers"
        time.sleep(0.5)  # the parent is past starting them; they are still importing (torch: seconds)
        os.killpg(proc.pid, signal.SIGINT)
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "stress cells" not in line]
    assert proc.returncode == 130 and lines == ["drive stress: interrupted; what was finished is written"], err
    assert took < 20  # a cell drives 30 s of simulation: the sweep did not wait for the running ones
    assert (tmp_path / "out" / "results.csv").exists()
    assert _wait_for(lambda: not [p for p in workers if _alive(p)], timeout_s=10)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_local_worker_killed_mid_sweep_costs_no_cell(tmp_path, tiny_checkpoint):
    """The pool broken by a dead worker is restarted for the unfinished cells."""
    ckpt = tiny_checkpoint("ncp19")
    out = tmp_path / "local"
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:  # kill a worker once the first cell is written (the others are mid-sweep)
        while not stop.is_set() and not killed:
            workers = [p for p in _descendants(os.getpid()) if "spawn_main" in _cmdline(p)]
            if workers and _cells(out / "cells"):
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = _sweep(tmp_path, ckpt, "local", "local")
    finally:
        stop.set()
        thread.join()
    assert killed, "no worker was killed"
    assert result["computed"] == result["cells"] == 8 and result["failed"] == []
    assert len(_cells(out / "cells")) == 8


def test_a_checkpoint_that_cannot_take_the_frames_is_refused_before_any_cell(tmp_path, tiny_checkpoint):
    ckpt = tiny_checkpoint("cnn")
    base = Scenario(name="eval-test")
    wrong = dataclasses.replace(
        base, duration_s=1.0, camera=dataclasses.replace(base.camera, width=base.camera.width + 8)
    )
    with pytest.raises(UserError, match="takes 78x200 frames but scenario 'eval-test' renders 78x208"):
        stress([str(ckpt)], ["gaussian:0.2"], tmp_path / "s", scenario=wrong, seeds=[0], workers=0, progress=False)
    assert not (tmp_path / "s" / "cells").exists()  # no work started


def test_a_failing_cell_is_reported_and_the_sweep_goes_on(tmp_path, tiny_checkpoint, monkeypatch):
    import drive.eval.simulate as simulate_module
    from drive.policy.reference import ExpertPolicy

    real = simulate_module.drive_episodes

    def failing_for_the_cnn(policy, *args, **kwargs):  # a real error inside the cell, not a refusal up front
        if not isinstance(policy, ExpertPolicy):
            raise RuntimeError("the cnn's cell broke")
        return real(policy, *args, **kwargs)

    monkeypatch.setattr(simulate_module, "drive_episodes", failing_for_the_cnn)
    ckpt = tiny_checkpoint("cnn")
    scenario = dataclasses.replace(Scenario(name="eval-test"), duration_s=1.0)
    result = stress(
        [str(ckpt)], ["gaussian:0.2"], tmp_path / "s", scenario=scenario, seeds=[0], workers=0, progress=False
    )
    # the cnn's cells fail; the expert's cells still run
    assert result["cells"] == 4 and result["computed"] == 2
    assert sorted((f["model"], f["kind"]) for f in result["failed"]) == [("cnn", "clean"), ("cnn", "gaussian")]
    assert all("RuntimeError" in f["error"] and "broke" in f["error"] for f in result["failed"])
    report = (tmp_path / "s" / "report.md").read_text()
    assert "## Failed cells" in report and "`cnn` gaussian 0.2 seed 0: RuntimeError" in report
    assert len(_cells(tmp_path / "s" / "cells")) == 2  # a failed cell leaves no resume file


def test_backend_ray_without_ray_names_the_extra(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = main(["stress", "--checkpoint", str(tiny_checkpoint()), "--backend", "ray", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'drive-ncp[ray]'" in err
    assert not (tmp_path / "o" / "cells").exists()  # no work started


def test_address_needs_the_ray_backend(tmp_path, tiny_checkpoint, capsys):
    code = main(["stress", "--checkpoint", str(tiny_checkpoint()), "--address", "auto", "--out", str(tmp_path / "o")])
    assert code == 2 and "--address" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- ray


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray instance with 2 CPUs and a small object store, for this module's tests."""
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]  # the workers import this checkout's `drive`
    try:
        ray.init(
            address="local",
            num_cpus=2,
            object_store_memory=100 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="warning",
        )
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    yield ray
    ray.shutdown()


def _sweep(tmp_path, ckpt, out, backend, workers=2, seeds="0,", duration_s=1.0):
    sc = dataclasses.replace(Scenario(name="eval-test"), duration_s=duration_s)
    return stress(
        [str(ckpt)],
        PERTURB,
        tmp_path / out,
        scenario=sc,
        episodes=1,
        seeds=seeds,
        workers=workers,
        backend=backend,
        progress=False,
    )


@pytest.mark.slow
def test_ray_gives_the_same_results_as_local(tmp_path, tiny_checkpoint, ray_cluster):
    ckpt = tiny_checkpoint("ncp19")
    local = _sweep(tmp_path, ckpt, "local", "local")
    remote = _sweep(tmp_path, ckpt, "ray", "ray")
    assert local["computed"] == remote["computed"] == 8 and not local["failed"] and not remote["failed"]
    assert (tmp_path / "ray" / "results.csv").read_bytes() == (tmp_path / "local" / "results.csv").read_bytes()
    for cell in _cells(tmp_path / "local" / "cells"):
        a = json.loads(cell.read_text())
        b = json.loads((tmp_path / "ray" / "cells" / cell.name).read_text())
        assert a == {**b, "elapsed_s": a["elapsed_s"]}  # all but the timing, bit for bit


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ray_worker_killed_mid_cell_costs_no_cell(tmp_path, tiny_checkpoint, ray_cluster):
    ckpt = tiny_checkpoint("ncp19")
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:  # kill the first worker seen running a cell (Ray titles it ray::ray_cell)
        while not stop.is_set() and not killed:
            for pid in _pids():
                if _cmdline(pid).startswith("ray::ray_cell"):
                    time.sleep(0.2)  # well inside the cell
                    if _cmdline(pid).startswith("ray::ray_cell"):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    break
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = _sweep(tmp_path, ckpt, "ray", "ray", duration_s=8.0)  # cells long enough for the killer to see one
    finally:
        stop.set()
        thread.join()
    assert killed, "no worker was seen running a cell"
    assert not _alive(killed[0])
    assert result["computed"] == result["cells"] == 8 and result["failed"] == []
    assert len(_cells(tmp_path / "ray" / "cells")) == 8


@pytest.mark.slow
def test_an_interrupted_ray_sweep_resumes_with_only_the_missing_cells(
    tmp_path, tiny_checkpoint, scenario_file, ray_cluster
):
    ckpt = tiny_checkpoint("ncp19")
    scenario = scenario_file(1.0)
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "drive.cli",
        "stress",
        "--backend",
        "ray",
        "--workers",
        "1",
        "--checkpoint",
        str(ckpt),
        "--perturb",
        PERTURB[0],
        "--perturb",
        PERTURB[1],
        "--seeds",
        "0,",
        "--scenario",
        str(scenario),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: _cells(out / "cells"), timeout_s=180, every_s=0.02), "no cell finished"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err.decode(errors="replace")[-2000:]
    finished = {p.name for p in _cells(out / "cells")}
    assert 1 <= len(finished) < 8
    stamps = {name: (out / "cells" / name).stat().st_mtime_ns for name in finished}

    result = stress(
        [str(ckpt)], PERTURB, out, scenario=str(scenario), episodes=1, seeds="0,", backend="ray", progress=False
    )
    assert result["reused"] == len(finished) and result["computed"] == 8 - len(finished)
    assert {name: (out / "cells" / name).stat().st_mtime_ns for name in finished} == stamps
    assert len(_cells(out / "cells")) == 8
