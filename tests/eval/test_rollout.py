"""The one rollout: simulate, stress, explain and DAgger all drive through it; the commands check --out first."""

from __future__ import annotations

import pytest

from drive.cli import main
from drive.eval import rollout
from drive.policy.reference import ConstantPolicy


@pytest.fixture
def counted_steps(monkeypatch):
    """Counts the driver calls made by :func:`drive.eval.rollout.run_episode`, whoever calls it."""
    calls = []
    real = rollout.policy_step

    def counting(driver, frame, info, state, dt_s):
        calls.append(driver.model_name)
        return real(driver, frame, info, state, dt_s)

    monkeypatch.setattr(rollout, "policy_step", counting)
    return calls


def test_simulate_stress_explain_and_dagger_all_drive_through_the_rollout(
    tmp_path, counted_steps, tiny_checkpoint, make_scenario
):
    from drive.eval.explain import explain
    from drive.eval.simulate import simulate
    from drive.eval.stress import Cell, run_cell
    from drive.eval.sweep import Model
    from drive.train.dagger import drive_episode

    ckpt = str(tiny_checkpoint("ncp19"))
    sc = make_scenario(0.5)  # 10 control steps
    simulate(ckpt, sc, expert_reference=False, progress=False)
    assert counted_steps == ["ncp19"] * 10
    counted_steps.clear()
    run_cell(Cell(Model("m", ckpt, "x"), "gaussian", 0.1, 0), sc.to_dict(), 1, "recover", str(tmp_path / "cell.json"))
    assert counted_steps == ["ncp19"] * 10
    counted_steps.clear()
    explain(ckpt, sc, tmp_path / "explain", variances=(0.1,), images=0, ssim_frames=1, video=False)
    assert counted_steps == ["ncp19"] * 10
    counted_steps.clear()
    env = rollout.make_env(sc)
    try:
        drive_episode(ConstantPolicy(0.1), env, 0, dataset_max_steer_rad=sc.max_steer_rad)
    finally:
        env.close()
    assert counted_steps == ["constant(0.1)"] * 10


def test_the_steering_scale_is_the_ratio_of_the_drivers_and_the_scenarios_max_steer(make_scenario):
    sc = make_scenario(0.5)
    driver = ConstantPolicy(0.2)
    assert rollout.steering_scale(driver, sc) == 1.0  # None: already the env's units
    driver.max_steer_rad = 0.7
    assert rollout.steering_scale(driver, sc) == pytest.approx(0.7 / sc.max_steer_rad)
    env = rollout.make_env(sc, render_camera=False)
    steps = []
    try:
        rollout.run_episode(driver, env, 0, observers=[steps.append])
    finally:
        env.close()
    assert [s.steering for s in steps] == pytest.approx([0.2 * 0.7 / sc.max_steer_rad] * len(steps))
    assert all(s.clean_info["expert_steering"] == s.expert_steering for s in steps)


def test_simulate_makes_its_output_folder_before_driving(tmp_path, tiny_checkpoint, monkeypatch, make_scenario):
    from drive.eval import simulate as sim

    out = tmp_path / "deep" / "run"
    seen = []

    def fake_drive_episodes(*args, **kwargs):
        seen.append(out.is_dir())
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "drive_episodes", fake_drive_episodes)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(str(tiny_checkpoint()), make_scenario(0.5), out=out, progress=False)
    assert seen == [True]


@pytest.mark.parametrize("verb", ["simulate", "stress", "explain"])
def test_an_out_that_is_a_file_fails_in_one_line_before_any_driving(
    verb, tmp_path, tiny_checkpoint, counted_steps, scenario_file, capsys
):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code = main(
        [verb, "--checkpoint", str(tiny_checkpoint()), "--scenario", str(scenario_file(0.5)), "--out", str(target)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--out" in err and str(target) in err and "not a folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert counted_steps == []  # nothing was driven
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["simulate", "--episodes", "0"], "--episodes 0"),
        (["simulate", "--perturb", "gaussian:nope"], "--perturb"),
        (["stress", "--seeds", "0,0"], "--seeds"),
        (["stress", "--workers", "-1"], "--workers -1"),
        (["explain", "--images", "-1"], "--images -1"),
    ],
)
def test_bad_flag_values_are_one_line_and_leave_no_output_folder(argv, match, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "never"
    try:
        code = main(argv + ["--checkpoint", str(tiny_checkpoint()), "--out", str(out)])
    except SystemExit as exc:  # a flag's type refused the value: argparse's one line, exit status 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_checkpoint_leaves_no_output_folder(tmp_path, capsys):
    for verb in ("simulate", "stress", "explain"):
        out = tmp_path / f"never-{verb}"
        assert main([verb, "--checkpoint", str(tmp_path / "nope"), "--out", str(out)]) == 2
        assert "nope" in capsys.readouterr().err
        assert not out.exists()


def test_simulate_command_records_the_checkpoint_it_was_given(tmp_path, tiny_checkpoint, scenario_file):
    import json

    ckpt = str(tiny_checkpoint())
    out = tmp_path / "run"
    assert (
        main(
            [
                "simulate",
                "--checkpoint",
                ckpt,
                "--scenario",
                str(scenario_file(0.5)),
                "--no-video",
                "--no-expert",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "metrics.json").read_text())
    assert result["checkpoint"] == ckpt and result["model"] == "ncp19" and "expert" not in result
    assert result["policy"]["aggregate"]["distance_m"] > 0
