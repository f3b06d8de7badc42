"""Reproduce the README's results for the shipped checkpoints: clean driving, Gaussian-noise stress, SSIM.

    python tools/make_results.py                          # every model in checkpoints/ with a config.json
    python tools/make_results.py --models ncp19 lstm      # a subset
    python tools/make_results.py --seeds 3 --episodes 10  # a different budget

Steps, all through the ``drive`` CLI:

1. ``drive simulate`` of each model on the default scenario (test-split tracks, never used for
   training) for ``--episodes`` episodes, clean input: distance, off-road events, lateral error.
2. ``drive stress`` of all models with ``gaussian:0.01,0.04,0.09,0.1,0.2,0.3`` (variances σ² on images
   scaled to [0, 1]; both readings of the NCP paper: standard deviations σ 0.1, 0.2, 0.3 as in its replay
   scripts, and variances 0.1, 0.2, 0.3 as in its text; tables label both) over ``--seeds`` seeds, one
   episode per seed and cell.
3. ``drive explain`` of each model: mean SSIM between VisualBackProp saliency maps of clean and
   noisy frames at the same variances.
4. Passive against active: ``drive record --scenario default`` records ``--passive-episodes`` expert
   episodes on the test-split tracks, ``drive evaluate`` gives each model's offline steering error on
   them (clean and at the same variances), and the tool states how well the offline error ranks the
   models like closed-loop off-road events per km: Spearman's rho (scipy.stats) with a paired
   bootstrap 95 % interval, per level across models and pooled over models x levels.
   ``--active-from checkpoints/results/results.json`` takes the closed-loop figures of an earlier run
   and runs this step only.
5. The generalization suite: ``drive suite`` of all models and the expert on every case of
   ``scenarios/suite/`` and every test track, clean input (``--suite-duration-s`` per episode).
   ``--suite-only`` runs this step alone.

Writes ``checkpoints/results/``: ``results.md`` (the tables the README shows), ``results.json``,
``stress.csv``, ``suite.md``/``suite.csv``/``suite.png`` (the suite's tables, rows and plot), ``stats.csv`` (per model and level, the mean with its 95 % bootstrap interval and the paired
tests against ncp19; see ``drive stress``) and ``robustness_gaussian.png`` (copied from the stress run); the working folders go to
``--work`` (default ``runs/results``). The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drive.cli import main as drive  # noqa: E402
from drive.io import atomic_write_json, atomic_write_text  # noqa: E402

ORDER = ("ncp19", "cnn", "lstm", "gru", "ctrnn", "cfc", "feedforward")
LEVELS = (0.01, 0.04, 0.09, 0.1, 0.2, 0.3)
"""Gaussian noise variances σ²; σ = 0.1, 0.2, 0.3, 0.32, 0.45, 0.55."""
SPEC = "gaussian:" + ",".join(map(str, LEVELS))


def level_header(level: float) -> str:
    """A column header with both readings of a noise level: ``σ²=0.04 (σ=0.2)``."""
    return "σ²=0" if level == 0 else f"σ²={level:g} (σ={level**0.5:.2g})"


def _fmt(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None, help="checkpoint names under checkpoints/ (default: all)")
    p.add_argument("--episodes", type=int, default=10, help="clean simulate episodes per model (10 = every test track)")
    p.add_argument("--seeds", type=int, default=5, help="stress seeds (one episode each) per model and level")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default=str(ROOT / "runs" / "results"))
    p.add_argument("--publish", default=str(ROOT / "checkpoints" / "results"))
    p.add_argument("--passive-episodes", type=int, default=10, help="test-split episodes recorded for the passive test")
    p.add_argument("--passive-duration-s", type=float, default=30.0, help="length of each of those episodes, s")
    p.add_argument(
        "--active-from",
        default=None,
        help="results.json of an earlier run: reuse its closed-loop figures and run only the passive test",
    )
    p.add_argument("--suite-duration-s", type=float, default=60.0, help="length of each suite episode, s")
    p.add_argument("--suite-tracks", type=int, default=10, help="test tracks per suite case (10 = all)")
    p.add_argument("--suite-only", action="store_true", help="run only the generalization suite (step 5)")
    args = p.parse_args()

    ckroot, work, publish = ROOT / "checkpoints", Path(args.work), Path(args.publish)
    found = [d.name for d in sorted(ckroot.iterdir()) if (d / "config.json").exists()]
    models = args.models or sorted(found, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))
    missing = [m for m in models if m not in found]
    if missing:
        raise SystemExit(f"no checkpoint for {missing} under {ckroot}")
    summary = (
        json.loads((ckroot / "summary.json").read_text()).get("models", {})
        if (ckroot / "summary.json").exists()
        else {}
    )
    t0 = time.perf_counter()
    if args.suite_only:
        return 0 if suite_step(models, ckroot, work, publish, args) is not None else 1
    if args.active_from:
        result = json.loads(Path(args.active_from).read_text())
        missing = [m for m in models if m not in result.get("models", {})]
        if missing:
            raise SystemExit(f"{args.active_from}: no closed-loop figures for {missing}")
        old = (publish / "results.md").read_text() if (publish / "results.md").exists() else ""
        lines = old.split(PASSIVE_HEADING)[0].rstrip("\n").splitlines() + [""]
        return _finish(args, models, ckroot, work, publish, result, lines, None, t0)

    clean = {}
    for m in models:
        out = work / "simulate" / m
        rc = drive(
            [
                "simulate",
                "--checkpoint",
                str(ckroot / m),
                "--episodes",
                str(args.episodes),
                "--out",
                str(out),
                "--no-video",
            ]
            + (["--no-expert"] if m != models[0] else [])
        )
        if rc:
            return rc
        clean[m] = json.loads((out / "metrics.json").read_text())

    stress_out = work / "stress"
    rc = drive(
        [
            "stress",
            *sum((["--checkpoint", str(ckroot / m)] for m in models), []),
            "--perturb",
            SPEC,
            "--seeds",
            str(args.seeds),
            "--episodes",
            "1",
            "--workers",
            str(args.workers),
            "--out",
            str(stress_out),
        ]
    )
    if rc:
        return rc
    rows = json.loads((stress_out / "results.json").read_text())["rows"]

    ssim = {}
    for m in models:
        out = work / "explain" / m
        rc = drive(
            [
                "explain",
                "--checkpoint",
                str(ckroot / m),
                "--out",
                str(out),
                "--no-video",
                "--images",
                "2",
                "--noise",
                ",".join(map(str, LEVELS)),
            ]
        )
        if rc:
            return rc
        ssim[m] = json.loads((out / "explain.json").read_text())["mean_ssim"]

    def stress_figure(model: str, level: float, figure: str):
        for r in rows:
            if r["model"] == model and r["kind"] == "gaussian" and abs(float(r["level"]) - level) < 1e-9:
                return r.get(figure), r.get(f"{figure}_std")
        return None, None

    result = {"models": {}, "episodes": args.episodes, "seeds": args.seeds, "levels": list(LEVELS)}
    lines = [
        "### Clean input, test-split tracks (never used for training)",
        "",
        f"`drive simulate --episodes {args.episodes}` on `scenarios/default.yaml`: reset seed s drives test track "
        f"1000 + (s mod 10), so seeds 0–{args.episodes - 1} cover {min(args.episodes, 10)} of the 10 test tracks.",
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
    lines += [
        "",
        "### Gaussian camera noise (the NCP paper's comparison)",
        "",
        f"`drive stress --perturb {SPEC} --seeds {args.seeds}`: off-road events per km, mean ± std "
        f"over {args.seeds} seeds (one 60 s episode each, test-split tracks); level 0 is clean input. SSIM: mean "
        "structural similarity of VisualBackProp saliency maps, clean vs noisy frame (`drive explain`, 40 frames; "
        "1 = attention unchanged by the noise).",
        "",
        "| model | parameters | off-road/km "
        + " | ".join(level_header(lv) for lv in (0.0, *LEVELS))
        + f" | mean abs lateral (m) {level_header(LEVELS[-1])} | "
        + " | ".join(f"SSIM {level_header(lv)}" for lv in LEVELS)
        + " |",
        "|---|---|" + "---|" * (len(LEVELS) + 2 + len(LEVELS)),
    ]
    for m in models:
        cells = []
        for level in (0.0, *LEVELS):
            mean, std = stress_figure(m, level, "off_road_per_km")
            cells.append("–" if mean is None else f"{mean:.2f} ± {std:.2f}")
            result["models"][m][f"off_road_per_km_gaussian_{level:g}"] = mean
        lat, lat_std = stress_figure(m, LEVELS[-1], "mean_abs_lateral_m")
        result["models"][m][f"mean_abs_lateral_m_gaussian_{LEVELS[-1]:g}"] = lat
        result["models"][m]["ssim"] = ssim[m]
        params = summary.get(m, {}).get("parameters")
        result["models"][m]["parameters"] = params
        lines.append(
            f"| {m} | {'–' if params is None else f'{params:,}'} | "
            + " | ".join(cells)
            + f" | {_fmt(lat)} | "
            + " | ".join(_fmt(ssim[m].get(f"{lv:g}"), ".2f") for lv in LEVELS)
            + " |"
        )
    lines.append("")
    if (stress_out / "stats.csv").exists():  # the checkpoints carry a family and a training seed
        import pandas as pd

        from drive.eval.stress import stats_markdown

        lines += demote(stats_markdown(pd.read_csv(stress_out / "stats.csv")))
    return _finish(args, models, ckroot, work, publish, result, lines, stress_out, t0)


def _finish(
    args,
    models,
    ckroot: Path,
    work: Path,
    publish: Path,
    result: dict,
    lines: list[str],
    stress_out: Path | None,
    t0: float,
) -> int:
    t1 = time.perf_counter()
    passive = passive_vs_active(models, ckroot, work, args, result)
    if passive is None:
        return 1
    result["passive"], passive_lines = passive
    lines += passive_lines
    suite_lines = suite_step(models, ckroot, work, publish, args)
    if suite_lines is None:
        return 1
    lines += ["", *suite_lines]
    result["passive"]["elapsed_s"] = round(time.perf_counter() - t1, 1)
    if stress_out is not None:  # a full run; with --active-from the closed-loop figures keep their own time
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
    print("\n".join(lines))
    print(json.dumps(result))
    return 0


def demote(lines: list[str]) -> list[str]:
    """A report's Markdown headings two levels down, to sit under results.md's ``###`` sections."""
    return ["##" + line if line.startswith("#") else line for line in lines]


def suite_step(models, ckroot: Path, work: Path, publish: Path, args) -> list[str] | None:
    """``drive suite`` of every model and the expert; publishes suite.md, suite.csv and suite.png."""
    out = work / "suite"
    t0 = time.perf_counter()
    rc = drive(
        [
            "suite",
            *sum((["--checkpoint", str(ckroot / m)] for m in models), []),
            "--tracks",
            str(args.suite_tracks),
            "--duration-s",
            str(args.suite_duration_s),
            "--workers",
            str(args.workers),
            "--out",
            str(out),
        ]
    )
    if rc:
        return None
    publish.mkdir(parents=True, exist_ok=True)
    lines = demote((out / "report.md").read_text().splitlines())
    report = "\n".join([*lines, f"Clean input; {time.perf_counter() - t0:.0f} s to run.", ""])
    atomic_write_text(publish / "suite.md", report)
    for name, dest in (("results.csv", "suite.csv"), ("suite.png", "suite.png")):
        shutil.copyfile(out / name, publish / dest)
    print(report)
    return report.splitlines()


PASSIVE_HEADING = "### Passive against active"


def _rho(r: dict) -> str:
    if r["rho"] is None:
        return f"undefined (a constant side), n = {r['n']}"
    ci = "" if r["ci_low"] is None else f", 95 % CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    return f"rho = {r['rho']:+.2f}{ci} (p = {r['p_value']:.2g}, n = {r['n']})"


def passive_vs_active(models, ckroot: Path, work: Path, args, result: dict) -> tuple[dict, list[str]] | None:
    """Offline error on recorded test-split data beside closed-loop off-road per km, and their rank agreement."""
    from drive.data.layout import complete_episodes
    from drive.eval.evaluate import rank_agreement

    data = work / "passive" / "data"
    have = len(complete_episodes(data)) if (data / "meta" / "info.json").exists() else 0
    if have < args.passive_episodes:
        rc = drive(
            [
                "record",
                "--scenario",
                "default",
                "--episodes",
                str(args.passive_episodes - have),
                "--duration-s",
                str(args.passive_duration_s),
                "--out",
                str(data),
                "--no-progress",
            ]
        )
        if rc:
            return None
    out = work / "passive" / "evaluate"
    rc = drive(
        [
            "evaluate",
            *sum((["--checkpoint", str(ckroot / m)] for m in models), []),
            "--data",
            str(data),
            "--perturb",
            SPEC,
            "--episodes",
            "all",
            "--workers",
            str(args.workers),
            "--no-video",
            "--out",
            str(out),
        ]
    )
    if rc:
        return None
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    levels = (0.0, *LEVELS)

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
        f"`drive record --scenario default --episodes {args.passive_episodes} --duration-s {args.passive_duration_s:g}` "
        f"records the expert on the test-split tracks ({info['total_frames']} frames at {info['fps']:g} Hz); "
        f"`drive evaluate --episodes all --perturb {SPEC}` runs each model open loop over it. "
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
            "episodes": args.passive_episodes,
            "duration_s": args.passive_duration_s,
            "frames": info["total_frames"],
            "scenario": "default",
        },
        "models": table,
        "spearman": agreement,
    }
    return passive, lines


if __name__ == "__main__":
    raise SystemExit(main())
