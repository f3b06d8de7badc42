"""drive.eval.plots: one palette in every figure, count axes from 0, headroom, the expert visible, the suite's pass line.

The figures are inspected through their Axes (colours, limits, artists), not their pixels."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from drive.eval import plots
from drive.eval.evaluate import error_figure
from drive.eval.stress import curves_figure
from drive.eval.suite import TARGET_MEAN_ABS_LATERAL_M, suite_figure

matplotlib.use("Agg")

DRIVERS = ["ncp19", "cnn", "lstm", "gru", "ctrnn", "cfc", "expert"]
LEVELS = [0.0, 0.1, 0.2, 0.3]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def suite_rows(off_road: float = 0.0) -> pd.DataFrame:
    rows = []
    for case in ("plain", "fog"):
        for k, d in enumerate(DRIVERS):
            expert = d == "expert"
            rows.append(
                dict(
                    case=case,
                    driver=d,
                    off_road_per_km=0.0 if expert else off_road,
                    mean_abs_lateral_m=0.004 if expert else 0.1 + 0.05 * k,
                    max_abs_lateral_m=0.01 if expert else 0.5 + 0.1 * k,
                )
            )
    return pd.DataFrame(rows)


def stress_rows(off_road: float = 0.0) -> list[dict]:
    rows = []
    for d in DRIVERS:
        for i, level in enumerate(LEVELS):
            value = 0.0 if d == "expert" else off_road * i
            rows.append(
                dict(
                    model=d,
                    kind="clean" if level == 0 else "gaussian",
                    level=level,
                    off_road_per_km=value,
                    off_road_per_km_std=0.0,
                    mean_abs_lateral_m=0.003 if d == "expert" else 0.1 * (i + 1),
                    mean_abs_lateral_m_std=0.01,
                )
            )
    return rows


def evaluate_rows() -> list[dict]:
    rows = []
    for d in ("ncp19", "lstm", "expert"):
        for i, level in enumerate(LEVELS):
            row = dict(model=d, kind="clean" if level == 0 else "gaussian", level=level)
            for f in ("mse", "mae_rad"):
                v = 0.0 if d == "expert" else 0.02 * (i + 1)
                row.update({f: v, f"{f}_ci_low": v * 0.8, f"{f}_ci_high": v * 1.5})
            rows.append(row)
    return rows


def line_colours(ax) -> dict[str, str]:
    """Legend label -> colour of the lines on ``ax`` (plain lines and error-bar lines alike)."""
    out = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        line = handle.lines[0] if hasattr(handle, "lines") else handle
        if hasattr(line, "get_color"):
            out[label] = to_hex(line.get_color())
    return out


def bar_colours(ax) -> dict[str, str]:
    return {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in ax.containers}


def test_a_family_has_one_colour_in_every_figure():
    palette = {name: plots.PALETTE[name] for name in DRIVERS}
    assert len(set(palette.values())) == len(palette)  # one colour per family, no two alike
    suite = suite_figure(suite_rows(0.5), DRIVERS)
    stress = curves_figure(stress_rows(1.0), "gaussian")
    evaluate = error_figure(evaluate_rows(), "gaussian")
    for ax in suite.axes:
        assert bar_colours(ax) == palette
    for ax in stress.axes[:2]:
        assert line_colours(ax) == palette
    for ax in evaluate.axes[:2]:
        assert line_colours(ax) == {"ncp19": palette["ncp19"], "lstm": palette["lstm"], "recorded": palette["expert"]}


def test_the_palette_is_found_from_every_label_of_a_family_and_shared_with_the_videos_and_training_figures():
    from drive.eval import video

    for name in ("ncp19", "checkpoints/ncp19", "zoo/ncp19-s1", "ncp19-noise-s2", "ncp19+noise", "ncp19-2"):
        assert plots.family_of(name) == "ncp19" and plots.colour(name) == plots.PALETTE["ncp19"]
    assert plots.colour("recorded") == plots.colour("expert")
    assert plots.style("ncp19+noise") == {"color": plots.PALETTE["ncp19"], "linestyle": "--"}
    assert plots.family_of("mine") is None and plots.colour("mine") == plots.colour("mine")
    assert plots.colour("mine") not in plots.PALETTE.values()
    assert video.EXPERT_RGB == plots.rgb("expert")


def test_count_axes_start_at_zero_and_show_0_to_1_when_every_count_is_0():
    suite = suite_figure(suite_rows(0.0), DRIVERS)
    assert suite.axes[0].get_xlim() == (0.0, 1.0)
    stress = curves_figure(stress_rows(0.0), "gaussian")
    assert stress.axes[0].get_ylim() == (0.0, 1.0)
    some = curves_figure(stress_rows(2.0), "gaussian")
    low, high = some.axes[0].get_ylim()
    assert low == 0.0 and high > 2.0 * 3  # the largest rate, with room above it


def test_headroom_above_the_highest_band():
    fig = error_figure(evaluate_rows(), "gaussian")
    for ax in fig.axes[:2]:
        low, high = ax.get_ylim()
        assert low == 0.0 and high > 0.02 * 4 * 1.5  # above the top of the widest confidence band


def test_the_expert_is_visible_where_its_bars_are_0_and_its_value_is_written():
    fig = suite_figure(suite_rows(0.5), DRIVERS)
    off_road = fig.axes[0]
    markers = [
        line
        for line in off_road.get_lines()
        if line.get_marker() == "D" and to_hex(line.get_color()) == plots.PALETTE["expert"]
    ]
    assert len(markers) == 2 and all(line.get_xdata()[0] == 0.0 for line in markers)  # one per case
    assert [t.get_text() for t in off_road.texts] == ["0", "0"]
    stress = curves_figure(stress_rows(1.0), "gaussian")
    handles, labels = stress.axes[0].get_legend_handles_labels()
    expert = handles[labels.index("expert")].lines[0]
    assert not expert.get_clip_on()  # drawn over the axis line, not hidden under it


def test_the_suite_draws_the_pass_line_on_the_mean_lateral_panel():
    fig = suite_figure(suite_rows(0.0), DRIVERS)
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "pass_line"]
    assert len(lines) == 1 and lines[0].axes is fig.axes[1]
    assert list(lines[0].get_xdata()) == [TARGET_MEAN_ABS_LATERAL_M] * 2
    assert "0.35" in lines[0].get_label()


def test_recorded_data_is_called_recorded(tmp_path):
    fig = error_figure(evaluate_rows(), "gaussian")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "recorded" in labels and "expert" not in labels


def test_the_band_label_says_how_many_training_seeds_it_resamples():
    rows = stress_rows(1.0)

    def stats(n_seeds: int) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"kind": "gaussian", "family": "ncp19", "figure": f, "level": level, "mean": 1.0, "ci_low": 0.5}
                | {"ci_high": 1.5, "n_seeds": n_seeds}
                for f in ("off_road_per_km", "mean_abs_lateral_m")
                for level in (0.1, 0.2)
            ]
        )

    one = curves_figure(rows, "gaussian", stats(1), ["ncp19"]).axes[0].get_xlabel()
    ten = curves_figure(rows, "gaussian", stats(10), ["ncp19"]).axes[0].get_xlabel()
    assert "over conditions, one training seed" in one and "training seeds and" not in one
    assert "over 10 training seeds and conditions" in ten
