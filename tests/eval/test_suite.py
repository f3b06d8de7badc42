"""The generalization suite: case discovery, the table, report and plot, and a tiny real run."""

from __future__ import annotations

import pandas as pd
import pytest

from drive.errors import UserError
from drive.eval.suite import COLUMNS, run_suite, suite_cases, write_results


def test_suite_cases_and_unknown_case():
    cases = suite_cases()
    assert "plain" in cases and len(cases) >= 14
    assert suite_cases(["fog", "dusk"]) == ["dusk", "fog"]
    with pytest.raises(UserError, match="'rain'"):
        suite_cases(["rain"])


def test_write_results_table_report_and_plot(tmp_path):
    rows = []
    for case in ("plain", "fog"):
        for driver, events in (("ncp19", 3), ("expert", 0)):
            rows.append(
                {
                    "case": case,
                    "driver": driver,
                    "episodes": 2,
                    "distance_km": 1.5,
                    "off_road_events": events,
                    "off_road_per_km": events / 1.5,
                    "mean_abs_lateral_m": 0.2,
                    "max_abs_lateral_m": 1.1,
                    "mean_abs_heading_error_rad": 0.01,
                    "completed_fraction": 1.0,
                }
            )
    write_results(rows, tmp_path, ["ncp19", "expert"])
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df.columns) == list(COLUMNS) and len(df) == 4
    report = (tmp_path / "report.md").read_text()
    assert "| case | ncp19 | expert |" in report
    assert "| fog | 2.00 (3) | 0.00 (0) |" in report and "| **all cases** | 2.00 (6) | 0.00 (0) |" in report
    assert "| fog | 0.200 | 0.200 |" in report and "| fog | 1.10 | 1.10 |" in report
    assert "- ncp19: 0 of 2 cases meet the target" in report and "missed: plain, fog" in report
    assert (tmp_path / "suite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 test tracks per case, one episode each" in report
    write_results(rows, tmp_path, ["ncp19", "expert"], duration_s=20.0)
    assert "2 test tracks per case, one 20 s episode each" in (tmp_path / "report.md").read_text()


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--tracks"):
        run_suite([], tmp_path, tracks=11)
    with pytest.raises(UserError, match="--workers"):
        run_suite([], tmp_path, workers=0)


@pytest.mark.slow
def test_run_suite_expert_on_two_cases_in_workers(tmp_path):
    rows = run_suite([], tmp_path, tracks=2, workers=2, cases=["plain", "single_lane"], duration_s=2.0, progress=False)
    assert [(r["case"], r["driver"]) for r in rows] == [("plain", "expert"), ("single_lane", "expert")]
    for r in rows:
        assert r["episodes"] == 2 and r["off_road_events"] == 0 and r["distance_km"] > 0.02
        assert r["max_abs_lateral_m"] < 0.1
    assert (tmp_path / "results.csv").exists() and (tmp_path / "suite.png").exists()


def test_cli_suite_bad_out_is_one_line_exit_2(tmp_path, capsys):
    from drive.cli import main

    f = tmp_path / "file"
    f.write_text("x")
    assert main(["suite", "--out", str(f), "--no-expert"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(f) in err


def test_simulate_records_each_episodes_world():
    import dataclasses

    from drive.eval.simulate import simulate
    from drive.world.scenario import load_scenario

    sc = dataclasses.replace(load_scenario("train"), duration_s=0.5)
    result = simulate("expert", sc, episodes=2, seed=4, progress=False)
    worlds = [e["world"] for e in result["policy"]["episodes"]]
    assert [w["world_seed"] for w in worlds] == [4, 5] and worlds[0] != worlds[1]
    assert all(isinstance(v, (str, int, float, bool)) for w in worlds for v in w.values())


def test_two_checkpoints_with_one_folder_name_get_distinct_labels():
    from drive.eval.suite import driver_labels

    assert driver_labels(["a/ncp19", "b/ncp19", "expert", "c/ncp19"]) == ["ncp19", "ncp19-2", "expert", "ncp19-3"]


def test_ctrl_c_writes_the_finished_cases_and_stops_the_workers(tmp_path, monkeypatch):
    """Ctrl-C after the first case: results.csv and report.md hold it, the interrupt propagates, no plot."""
    from drive.eval import suite

    real = suite.cf.as_completed

    def first_then_ctrl_c(futures, *args, **kwargs):
        for fut in real(futures, *args, **kwargs):
            yield fut
            raise KeyboardInterrupt

    monkeypatch.setattr(suite.cf, "as_completed", first_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_suite([], tmp_path, tracks=1, workers=1, cases=["plain", "single_lane"], duration_s=1.0, progress=False)
    df = pd.read_csv(tmp_path / "results.csv")
    assert len(df) == 1 and df["case"].iloc[0] in ("plain", "single_lane")
    assert (tmp_path / "report.md").exists() and not (tmp_path / "suite.png").exists()
