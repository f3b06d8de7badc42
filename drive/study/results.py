"""The README's results for the shipped checkpoints: clean driving, Gaussian-noise stress, SSIM, passive against
active, and the generalization suite — :func:`make_results` with one :class:`ResultsConfig`.

Steps, each a call of the library (``drive results`` on the command line, :mod:`drive.commands.results`):

1. :func:`drive.eval.simulate.simulate` of each model on the default scenario (test-split tracks, never used
   for training) for ``episodes`` episodes, clean input: distance, off-road events, lateral error.
2. :func:`drive.eval.stress.stress` of all models with Gaussian noise at ``levels`` (variances σ² on images
   scaled to [0, 1]; both readings of the NCP paper, see :data:`drive.study.config.PAPER_LEVELS`; tables
   label both) over ``seeds`` seeds, one episode per seed and cell.
3. :func:`drive.eval.explain.explain` of each model: mean SSIM between VisualBackProp saliency maps of clean
   and noisy frames at the same variances.
4. Passive against active: :func:`drive.data.recorder.record` records ``passive_episodes`` expert episodes
   on the test-split tracks, :func:`drive.eval.evaluate.evaluate` gives each model's offline steering error
   on them (clean and at the same variances), and Spearman's rho (with a paired bootstrap 95 % interval,
   :func:`drive.eval.stats.rank_agreement`) states how well the offline error ranks the models like
   closed-loop off-road events per km, per level across models and pooled over models × levels.
   ``active_from`` (an earlier ``results.json``) reuses its closed-loop figures and runs this step only.
5. The generalization suite: :func:`drive.eval.suite.run_suite` of all models and the expert on every case
   of ``scenarios/suite/`` and every test track, clean input. ``suite_only`` runs this step alone.

Writes ``publish`` (default ``checkpoints/results``): ``results.md`` (the tables the README shows),
``results.json``, ``stress.csv``, ``suite.md``/``suite.csv``/``suite.png`` (the suite's tables, rows and
plot), ``stats.csv`` (per model and level, the mean with its 95 % bootstrap interval and the paired tests
against ncp19; see :mod:`drive.eval.stress`) and ``robustness_gaussian.png`` (copied from the stress run);
the working folders go to ``work`` (default ``runs/results``). Paths are relative to the working folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from drive.errors import UserError
from drive.io import atomic_write_json, atomic_write_text, holds_output_lock
from drive.study.config import PAPER_LEVELS, levels_ok

ORDER = ("ncp19", "cnn", "lstm", "gru", "ctrnn", "cfc", "feedforward")
"""Row order of the tables when every checkpoint is taken (others follow, by name)."""

PASSIVE_HEADING = "### Passive against active"

SCENARIO = "default"
"""The scenario of every closed-loop step and of the passive recording (test-split tracks)."""

EXPLAIN_DURATION_S = 20.0
"""Length of the episode the SSIM of saliency maps is taken on, s (``drive explain``'s default)."""
EXPLAIN_IMAGES = 2
"""Saliency PNGs written per model."""
EXPLAIN_SSIM_FRAMES = 40
"""Frames the SSIM is averaged over."""


class ResultsFailed(RuntimeError):
    """A step could not finish (stress cells failed); what is finished is kept in ``work`` and a rerun resumes."""


@dataclasses.dataclass
class ResultsConfig:
    """Every knob of the results pipeline. Paths are relative to the working folder (run it from the repository)."""

    models: tuple[str, ...] = ()
    """Checkpoint names under ``ckpt_root`` (empty: every folder there with a config.json, in ORDER)."""
    episodes: int = 10
    """Clean simulate episodes per model (10 = every test track)."""
    seeds: int = 5
    """Stress seeds (one episode each) per model and level."""
    workers: int = 2
    """Parallel stress, evaluate and suite workers."""
    work: str = "runs/results"
    """Working folders of every step (simulate, stress, explain, passive, suite); a rerun resumes from them."""
    publish: str = "checkpoints/results"
    """Where results.md, results.json, stress.csv, stats.csv, suite.* and robustness_gaussian.png go."""
    ckpt_root: str = "checkpoints"
    """Checkpoints: ``<ckpt_root>/<model>``; ``<ckpt_root>/summary.json`` gives the parameter counts."""
    levels: tuple[float, ...] = PAPER_LEVELS
    """Gaussian noise variances σ² of the stress sweep, the SSIM and the passive test (clean is always added)."""
    passive_episodes: int = 10
    """Test-split episodes recorded for the passive test."""
    passive_duration_s: float = 30.0
    """Length of each of those episodes, s."""
    active_from: str | None = None
    """results.json of an earlier run: reuse its closed-loop figures and run only the passive test and the suite."""
    suite_duration_s: float = 60.0
    """Length of each suite episode, s."""
    suite_tracks: int = 10
    """Test tracks per suite case (10 = all)."""
    suite_cases: tuple[str, ...] = ()
    """Only these suite cases (empty: all of scenarios/suite/)."""
    suite_only: bool = False
    """Run only the generalization suite (step 5)."""
    duration_s: float | None = None
    """Length of the simulate, stress and explain episodes, s (None: the scenario's own, 20 s for explain);
    set only for quick checks."""
    progress: bool = True
    """Show progress bars."""

    def validate(self) -> None:
        """Raise :class:`~drive.errors.UserError` naming the first bad field and its value."""

        def need(ok: bool, field: str, value: Any, what: str) -> None:
            if not ok:
                raise UserError(f"results: {field} {value!r}: {what}")

        def positive(value: Any) -> bool:
            return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

        need(len(set(self.models)) == len(self.models), "models", self.models, "are not distinct")
        for field in ("episodes", "seeds", "workers", "passive_episodes"):
            value = getattr(self, field)
            need(isinstance(value, int) and value >= 1, field, value, "must be a whole number >= 1")
        need(levels_ok(self.levels), "levels", self.levels, "must be distinct variances in (0, 1]")
        for field in ("passive_duration_s", "suite_duration_s"):
            need(positive(getattr(self, field)), field, getattr(self, field), "must be a number of seconds > 0")
        need(self.duration_s is None or positive(self.duration_s), "duration_s", self.duration_s, "must be > 0")
        need(1 <= self.suite_tracks <= 10, "suite_tracks", self.suite_tracks, "must be in 1..10")

    @property
    def spec(self) -> str:
        """The stress and evaluate perturbation: ``gaussian:0.01,0.04,…``."""
        return "gaussian:" + ",".join(map(str, self.levels))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------ formatting


def level_header(level: float) -> str:
    """A column header with both readings of a noise level: ``σ²=0.04 (σ=0.2)``."""
    return "σ²=0" if level == 0 else f"σ²={level:g} (σ={level**0.5:.2g})"


def _fmt(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def demote(lines: list[str]) -> list[str]:
    """A report's Markdown headings two levels down, to sit under results.md's ``###`` sections."""
    return ["##" + line if line.startswith("#") else line for line in lines]


def _rho(r: dict) -> str:
    if r["rho"] is None:
        return f"undefined (a constant side), n = {r['n']}"
    ci = "" if r["ci_low"] is None else f", 95 % CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    return f"rho = {r['rho']:+.2f}{ci} (p = {r['p_value']:.2g}, n = {r['n']})"


def _say(cfg: ResultsConfig, text: str) -> None:
    if cfg.progress:
        print(f"results: {text}", file=sys.stderr)


# ------------------------------------------------------------------------------------ the pipeline


def find_models(cfg: ResultsConfig) -> list[str]:
    """The models to compare: ``cfg.models``, or every checkpoint under ``ckpt_root`` in ORDER."""
    root = Path(cfg.ckpt_root)
    if not root.is_dir():
        raise UserError(f"results: ckpt_root {cfg.ckpt_root!r}: no such folder")
    found = [d.name for d in sorted(root.iterdir()) if (d / "config.json").exists()]
    models = list(cfg.models) or sorted(found, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))
    missing = [m for m in models if m not in found]
    if missing:
        raise UserError(f"results: no checkpoint for {missing} under {root}")
    if not models:
        raise UserError(f"results: no checkpoint (a folder with a config.json) under {root}")
    return models


@holds_output_lock("cfg.publish")
def make_results(cfg: ResultsConfig) -> dict[str, Any]:
    """Run the steps of ``cfg`` and publish their tables; returns what ``results.json`` holds.

    With ``suite_only``, runs the suite alone and returns ``{"suite": {...}}`` (results.md and results.json are
    left as they are). Raises :class:`ResultsFailed` when stress cells failed (a rerun resumes)."""
    cfg.validate()
    models = find_models(cfg)
    ckroot, publish = Path(cfg.ckpt_root), Path(cfg.publish)
    t0 = time.perf_counter()
    if cfg.suite_only:
        _, suite = suite_step(cfg, models)
        return {"suite": suite}
    if cfg.active_from:
        try:
            result = json.loads(Path(cfg.active_from).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"results: active_from {cfg.active_from!r}: cannot read it ({exc})") from None
        missing = [m for m in models if m not in result.get("models", {})]
        if missing:
            raise UserError(f"results: {cfg.active_from}: no closed-loop figures for {missing}")
        old = (publish / "results.md").read_text() if (publish / "results.md").exists() else ""
        lines = old.split(PASSIVE_HEADING)[0].rstrip("\n").splitlines() + [""]
        return _finish(cfg, models, result, lines, None, t0)

    summary_path = ckroot / "summary.json"
    summary = json.loads(summary_path.read_text()).get("models", {}) if summary_path.exists() else {}
    clean = clean_step(cfg, models)
    stress_out, rows = stress_step(cfg, models)
    ssim = explain_step(cfg, models)
    result, lines = closed_loop_tables(cfg, models, clean, rows, ssim, summary)
    if (stress_out / "stats.csv").exists():  # the checkpoints carry a family and a training seed
        import pandas as pd

        from drive.eval.stress import stats_markdown

        lines += demote(stats_markdown(pd.read_csv(stress_out / "stats.csv")))
    return _finish(cfg, models, result, lines, stress_out, t0)


def clean_step(cfg: ResultsConfig, models: list[str]) -> dict[str, dict]:
    """Step 1: each model's ``simulate`` metrics (the first model's also holds the expert's)."""
    from drive.eval.simulate import simulate

    clean = {}
    for m in models:
        _say(cfg, f"simulate {m}")
        checkpoint = str(Path(cfg.ckpt_root) / m)
        clean[m] = simulate(
            checkpoint,
            SCENARIO,
            episodes=cfg.episodes,
            out=Path(cfg.work) / "simulate" / m,
            video=False,
            expert_reference=m == models[0],
            duration_s=cfg.duration_s,
            progress=cfg.progress,
            checkpoint=checkpoint,
            runtime="onnx",  # as `drive simulate` (the faster at batch 1)
        )
    return clean


def stress_step(cfg: ResultsConfig, models: list[str]) -> tuple[Path, list[dict]]:
    """Step 2: the Gaussian sweep of every model and the expert; returns its folder and rows."""
    from drive.eval.stress import stress

    _say(cfg, f"stress {', '.join(models)}")
    out = Path(cfg.work) / "stress"
    out.mkdir(parents=True, exist_ok=True)
    result = stress(
        [str(Path(cfg.ckpt_root) / m) for m in models],
        [cfg.spec],
        out,
        scenario=SCENARIO,
        episodes=1,
        seeds=list(range(cfg.seeds)),
        workers=cfg.workers,
        duration_s=cfg.duration_s,
        progress=cfg.progress,
    )
    if result["failed"]:
        raise ResultsFailed(f"results: {len(result['failed'])} stress cell(s) failed (see {out / 'report.md'}); rerun")
    return out, result["rows"]


def explain_step(cfg: ResultsConfig, models: list[str]) -> dict[str, dict[str, float]]:
    """Step 3: each model's mean SSIM of saliency maps, clean against noisy, per level (``f"{level:g}"``)."""
    from drive.eval.explain import explain
    from drive.eval.simulate import resolve_scenario
    from drive.policy.load import resolve_checkpoint

    ssim = {}
    for m in models:
        _say(cfg, f"explain {m}")
        ssim[m] = explain(
            resolve_checkpoint(Path(cfg.ckpt_root) / m),
            resolve_scenario(SCENARIO),
            Path(cfg.work) / "explain" / m,
            variances=list(cfg.levels),
            images=EXPLAIN_IMAGES,
            ssim_frames=EXPLAIN_SSIM_FRAMES,
            duration_s=EXPLAIN_DURATION_S if cfg.duration_s is None else cfg.duration_s,
            video=False,
        )["mean_ssim"]
    return ssim


def closed_loop_tables(
    cfg: ResultsConfig,
    models: list[str],
    clean: dict[str, dict],
    rows: list[dict],
    ssim: dict[str, dict[str, float]],
    summary: dict[str, dict],
) -> tuple[dict[str, Any], list[str]]:
    """results.json's closed-loop figures and results.md's first two sections."""
    from drive.eval.simulate import resolve_scenario

    levels = tuple(cfg.levels)
    spec = cfg.spec

    def stress_figure(model: str, level: float, figure: str):
        for r in rows:
            if r["model"] == model and r["kind"] == "gaussian" and abs(float(r["level"]) - level) < 1e-9:
                return r.get(figure), r.get(f"{figure}_std")
        return None, None

    result: dict[str, Any] = {"models": {}, "episodes": cfg.episodes, "seeds": cfg.seeds, "levels": list(levels)}
    lines = [
        "### Clean input, test-split tracks (never used for training)",
        "",
        f"`drive simulate --episodes {cfg.episodes}` on `scenarios/default.yaml`: reset seed s drives test track "
        f"1000 + (s mod 10), so seeds 0–{cfg.episodes - 1} cover {min(cfg.episodes, 10)} of the 10 test tracks.",
        "",
        "| model | distance (km) | off-road events | off-road / km | mean abs lateral (m) | max abs lateral (m) | steering jerk (1/s²) |",
        "|---|---|---|---|---|---|---|",
    ]
    expert = clean[models[0]].get("expert", {}).get("aggregate")
    for m in models:
        a = clean[m]["policy"]["aggregate"]
        lines.append(
            f"| {m} | {a['distance_m'] / 1000:.2f} | {a['off_road_events']} | {_fmt(a['off_road_per_km'])} | "
            f"{_fmt(a['mean_abs_lateral_m'])} | {_fmt(a['max_abs_lateral_m'])} | {_fmt(a['steering_jerk'])} |"
        )
        result["models"][m] = {
            "clean": {
                k: a[k]
                for k in (
                    "distance_m",
                    "off_road_events",
                    "off_road_per_km",
                    "mean_abs_lateral_m",
                    "max_abs_lateral_m",
                    "steering_jerk",
                )
            }
        }
    if expert:
        lines.append(
            f"| expert | {expert['distance_m'] / 1000:.2f} | {expert['off_road_events']} | "
            f"{_fmt(expert['off_road_per_km'])} | {_fmt(expert['mean_abs_lateral_m'])} | "
            f"{_fmt(expert['max_abs_lateral_m'])} | {_fmt(expert['steering_jerk'])} |"
        )
    episode_s = resolve_scenario(SCENARIO, cfg.duration_s).duration_s
    lines += [
        "",
        "### Gaussian camera noise (the NCP paper's comparison)",
        "",
        f"`drive stress --perturb {spec} --seeds {cfg.seeds}`: off-road events per km, mean ± std "
        f"over {cfg.seeds} seeds (one {episode_s:g} s episode each, test-split tracks); level 0 is clean input. "
        "SSIM: mean structural similarity of VisualBackProp saliency maps, clean vs noisy frame (`drive explain`, "
        f"{EXPLAIN_SSIM_FRAMES} frames; 1 = attention unchanged by the noise).",
        "",
        "| model | parameters | off-road/km "
        + " | ".join(level_header(lv) for lv in (0.0, *levels))
        + f" | mean abs lateral (m) {level_header(levels[-1])} | "
        + " | ".join(f"SSIM {level_header(lv)}" for lv in levels)
        + " |",
        "|---|---|" + "---|" * (len(levels) + 2 + len(levels)),
    ]
    for m in models:
        cells = []
        for level in (0.0, *levels):
            mean, std = stress_figure(m, level, "off_road_per_km")
            cells.append("–" if mean is None else f"{mean:.2f} ± {std:.2f}")
            result["models"][m][f"off_road_per_km_gaussian_{level:g}"] = mean
        lat, _ = stress_figure(m, levels[-1], "mean_abs_lateral_m")
        result["models"][m][f"mean_abs_lateral_m_gaussian_{levels[-1]:g}"] = lat
        result["models"][m]["ssim"] = ssim[m]
        params = summary.get(m, {}).get("parameters")
        result["models"][m]["parameters"] = params
        lines.append(
            f"| {m} | {'–' if params is None else f'{params:,}'} | "
            + " | ".join(cells)
            + f" | {_fmt(lat)} | "
            + " | ".join(_fmt(ssim[m].get(f"{lv:g}"), ".2f") for lv in levels)
            + " |"
        )
    lines.append("")
    return result, lines


def _finish(
    cfg: ResultsConfig,
    models: list[str],
    result: dict[str, Any],
    lines: list[str],
    stress_out: Path | None,
    t0: float,
) -> dict[str, Any]:
    """Steps 4 and 5, then publish results.md, results.json and the stress run's files."""
    publish = Path(cfg.publish)
    t1 = time.perf_counter()
    result["passive"], passive_lines = passive_vs_active(cfg, models, result)
    lines += passive_lines
    suite_lines, _ = suite_step(cfg, models)
    lines += ["", *suite_lines]
    result["passive"]["elapsed_s"] = round(time.perf_counter() - t1, 1)
    if stress_out is not None:  # a full run; with active_from the closed-loop figures keep their own time
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)

    publish.mkdir(parents=True, exist_ok=True)
    atomic_write_text(publish / "results.md", "\n".join(lines))
    atomic_write_json(publish / "results.json", result)
    for name, dest in (
        ("results.csv", "stress.csv"),
        ("robustness_gaussian.png", "robustness_gaussian.png"),
        ("stats.csv", "stats.csv"),
    ):
        if stress_out is not None and (stress_out / name).exists():
            shutil.copyfile(stress_out / name, publish / dest)
    return result


def suite_step(cfg: ResultsConfig, models: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Step 5: the suite of every model and the expert; publishes suite.md, suite.csv and suite.png.
    Returns suite.md's lines and a summary (rows, cases, elapsed_s)."""
    from drive.eval.suite import run_suite

    _say(cfg, f"suite {', '.join(models)} and the expert")
    out, publish = Path(cfg.work) / "suite", Path(cfg.publish)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows = run_suite(
        [str(Path(cfg.ckpt_root) / m) for m in models],
        out,
        tracks=cfg.suite_tracks,
        workers=cfg.workers,
        cases=list(cfg.suite_cases) or None,
        duration_s=cfg.suite_duration_s,
        progress=cfg.progress,
    )
    elapsed = time.perf_counter() - t0
    publish.mkdir(parents=True, exist_ok=True)
    lines = demote((out / "report.md").read_text().splitlines())
    report = "\n".join([*lines, f"Clean input; {elapsed:.0f} s to run.", ""])
    atomic_write_text(publish / "suite.md", report)
    for name, dest in (("results.csv", "suite.csv"), ("suite.png", "suite.png")):
        shutil.copyfile(out / name, publish / dest)
    summary = {"rows": len(rows), "cases": sorted({r["case"] for r in rows}), "elapsed_s": round(elapsed, 1)}
    return report.splitlines(), summary


def record_passive_data(cfg: ResultsConfig) -> Path:
    """The expert's test-split recording of step 4, ``work/passive/data``; only missing episodes are recorded."""
    from drive.data.layout import complete_episodes
    from drive.data.recorder import record

    data = Path(cfg.work) / "passive" / "data"
    have = len(complete_episodes(data)) if (data / "meta" / "info.json").exists() else 0
    if have < cfg.passive_episodes:
        _say(cfg, f"record {cfg.passive_episodes - have} test-split episode(s)")
        data.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # recording the test split is the point: evaluation data, not training
            warnings.filterwarnings("ignore", message=".*drives the test-split tracks.*")
            record(
                SCENARIO,
                cfg.passive_episodes - have,
                data,
                duration_s=cfg.passive_duration_s,
                progress=False,
            )
    return data


def passive_vs_active(
    cfg: ResultsConfig, models: list[str], result: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Step 4: offline error on recorded test-split data beside closed-loop off-road per km, and their rank
    agreement. Returns results.json's ``passive`` and results.md's section."""
    from drive.eval.evaluate import evaluate
    from drive.eval.stats import rank_agreement

    data = record_passive_data(cfg)
    out = Path(cfg.work) / "passive" / "evaluate"
    out.mkdir(parents=True, exist_ok=True)
    _say(cfg, f"evaluate {', '.join(models)} open loop")
    rows = evaluate(
        [str(Path(cfg.ckpt_root) / m) for m in models],
        data,
        out,
        perturb=[cfg.spec],
        episodes="all",
        workers=cfg.workers,
        video=False,
        progress=cfg.progress,
    )["rows"]
    levels = (0.0, *cfg.levels)

    def offline(model: str, level: float) -> dict:
        return next(
            r for r in rows if r["model"] == model and r["kind"] == "gaussian" and abs(r["level"] - level) < 1e-9
        )

    table = {
        m: {
            f"{lv:g}": {
                "mse": offline(m, lv)["mse"],
                "mse_ci": [offline(m, lv)["mse_ci_low"], offline(m, lv)["mse_ci_high"]],
                "mae_rad": offline(m, lv)["mae_rad"],
                "off_road_per_km": result["models"][m].get(f"off_road_per_km_gaussian_{lv:g}"),
            }
            for lv in levels
        }
        for m in models
    }
    agreement = {}
    for lv in levels:
        x = [table[m][f"{lv:g}"]["mse"] for m in models]
        y = [table[m][f"{lv:g}"]["off_road_per_km"] for m in models]
        agreement[f"{lv:g}"] = rank_agreement(x, y)
    pairs = [(table[m][f"{lv:g}"]["mse"], table[m][f"{lv:g}"]["off_road_per_km"]) for m in models for lv in levels]
    agreement["pooled"] = rank_agreement([p[0] for p in pairs], [p[1] for p in pairs])
    lateral = [result["models"][m]["clean"]["mean_abs_lateral_m"] for m in models]
    agreement["clean_mse_vs_clean_lateral"] = rank_agreement([table[m]["0"]["mse"] for m in models], lateral)
    info = json.loads((data / "meta" / "info.json").read_text())
    lines = [
        PASSIVE_HEADING,
        "",
        f"`drive record --scenario default --episodes {cfg.passive_episodes} --duration-s {cfg.passive_duration_s:g}` "
        f"records the expert on the test-split tracks ({info['total_frames']} frames at {info['fps']:g} Hz); "
        f"`drive evaluate --episodes all --perturb {cfg.spec}` runs each model open loop over it. "
        "Offline: steering MSE (normalised, mean over episodes, 95 % bootstrap CI over episodes). Active: "
        "closed-loop off-road events per km from the stress table above.",
        "",
        "| model | offline MSE "
        + " | ".join(level_header(lv) for lv in levels)
        + " | off-road/km "
        + " | ".join(level_header(lv) for lv in levels)
        + " |",
        "|---|" + "---|" * (2 * len(levels)),
    ]
    for m in models:
        cells = []
        for lv in levels:
            c = table[m][f"{lv:g}"]
            lo, hi = c["mse_ci"]
            cells.append(f"{c['mse']:.4f}" + ("" if lo is None else f" [{lo:.4f}, {hi:.4f}]"))
        cells += [_fmt(table[m][f"{lv:g}"]["off_road_per_km"], ".2f") for lv in levels]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "How well the offline error predicts the closed-loop ranking (Spearman's rank correlation of "
        "offline MSE with off-road events per km across models; interval: paired bootstrap over models):",
        "",
    ]
    for lv in levels:
        lines.append(f"- {level_header(lv)}: {_rho(agreement[f'{lv:g}'])}")
    lines.append(f"- pooled over models × levels: {_rho(agreement['pooled'])}")
    lines.append(
        f"- clean offline MSE against clean closed-loop mean |lateral| (m): "
        f"{_rho(agreement['clean_mse_vs_clean_lateral'])}"
    )
    lines.append("")
    passive = {
        "data": {
            "episodes": cfg.passive_episodes,
            "duration_s": cfg.passive_duration_s,
            "frames": info["total_frames"],
            "scenario": SCENARIO,
        },
        "models": table,
        "spearman": agreement,
    }
    return passive, lines
