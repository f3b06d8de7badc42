"""The study's report: ``study.md`` (README-ready markdown) from the stress statistics, the suite results and
the zoo's checkpoints. Pure functions of files on disk and the config: running it twice gives the same text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drive.study.config import VARIANT, StudyConfig
from drive.study.zoo import ZooEntry, read_checkpoint_config, suite_label

TARGET_MAX_LEVEL = 0.1
"""Target check: at every σ² up to this, the reference's off-road rate is at most that of each TARGET_BASELINES."""
TARGET_BASELINES = ("cnn", "lstm")


def significance_lines(stats, reference: str) -> list[str]:
    """Plain sentences: which comparisons with the reference are significant after Holm (p < 0.05), which not."""
    from drive.eval.stress import level_label

    lines = []
    for _, r in stats[stats["p_holm"].notna()].iterrows():
        verdict = "significant" if r["p_holm"] < 0.05 else "not significant"
        better = reference if r["diff"] > 0 else (r["family"] if r["diff"] < 0 else "neither")
        lines.append(
            f"- {r['figure']} at {level_label(r['kind'], r['level'])}: {r['family']} − {reference} = "
            f"{r['diff']:+.3g} (lower is better: {better}); Holm-corrected p = {r['p_holm']:.2g}, {verdict}."
        )
    return lines


def target_lines(stats, reference: str = "ncp19") -> list[str]:
    """Per level up to TARGET_MAX_LEVEL: is the reference's mean off-road/km at most each baseline's? With the intervals."""
    from drive.eval.stats import FAMILY, LEVEL
    from drive.eval.stress import level_label

    off = stats[(stats["figure"] == "off_road_per_km") & (stats["kind"] == "gaussian")]
    off = off[off[LEVEL] <= TARGET_MAX_LEVEL + 1e-12].set_index([FAMILY, LEVEL])
    if reference not in off.index.get_level_values(0):
        return []
    lines, met_all = [], True
    for level in sorted(off.index.get_level_values(1).unique()):
        if (reference, level) not in off.index:
            continue
        ref = off.loc[(reference, level)]
        parts = []
        for base in TARGET_BASELINES:
            if (base, level) not in off.index:
                parts.append(f"{base} not evaluated")
                met_all = False
                continue
            b = off.loc[(base, level)]
            ok = ref["mean"] <= b["mean"]
            met_all &= bool(ok)
            outcome = "met" if ok else f"missed by {ref['mean'] - b['mean']:.3g}/km"
            parts.append(
                f"{base} {b['mean']:.3g} [{b['ci_low']:.3g}, {b['ci_high']:.3g}] → {outcome} "
                f"(difference p = {b['p_holm']:.2g}, Holm)"
            )
        lines.append(
            f"- {level_label('gaussian', level)}: {reference} {ref['mean']:.3g} [{ref['ci_low']:.3g}, "
            f"{ref['ci_high']:.3g}] off-road/km; " + "; ".join(parts) + "."
        )
    verdict = "met at every level" if met_all else "missed at one level or more"
    head = (
        f"Target: at every σ² ≤ {TARGET_MAX_LEVEL:g}, {reference}'s mean off-road/km is at most that of "
        f"{' and '.join(TARGET_BASELINES)} — **{verdict}** (means over training seeds, [95 % bootstrap CI]; "
        "a difference inside overlapping intervals is not evidence either way):"
    )
    return [head, "", *lines, ""]


def wide_table(table, row_key: str, figure: str | None, label=str) -> list[str]:
    """A markdown table with ``row_key`` down and families across; cells ``mean [ci_low, ci_high]``.

    ``table`` has one row per (row_key, family) with ``figure``, ``<figure>_ci_low`` and ``<figure>_ci_high``
    (the suite table), or, for ``figure=None``, ``mean``, ``ci_low`` and ``ci_high`` (one figure of stats.csv)."""
    from drive.eval.stats import FAMILY

    cols = ("mean", "ci_low", "ci_high") if figure is None else (figure, f"{figure}_ci_low", f"{figure}_ci_high")
    families = list(dict.fromkeys(table[FAMILY]))
    lines = [f"| {row_key} | " + " | ".join(families) + " |", "|---" * (len(families) + 1) + "|"]
    for key, sel in table.groupby(row_key, sort=False):
        by = sel.set_index(FAMILY)
        cells = []
        for family in families:
            if family not in by.index:
                cells.append("–")
                continue
            mean, low, high = (float(by.loc[family, c]) for c in cols)
            cells.append(f"{mean:.3g} [{low:.3g}, {high:.3g}]" if high > low else f"{mean:.3g}")
        lines.append(f"| {label(key)} | " + " | ".join(cells) + " |")
    return lines


def zoo_lines(entries: list[ZooEntry]) -> list[str]:
    """The zoo: per family the seeds trained, mean best validation loss and training time."""
    import numpy as np

    by: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        config = read_checkpoint_config(e.path)
        if config is None:
            continue
        by.setdefault(e.family, []).append({"seed": e.seed, **config.get("metrics", {})})
    lines = [
        "| family | training seeds | best validation loss (mean over seeds) | training time per model (min, mean over seeds) |",
        "|---|---|---|---|",
    ]
    for family, items in by.items():
        val = [m["best_val_loss"] for m in items if m.get("best_val_loss") is not None]
        minutes = [m["train_time_s"] / 60 for m in items if m.get("train_time_s") is not None]
        lines.append(
            f"| {family} | {','.join(str(m['seed']) for m in items)} | "
            f"{f'{np.mean(val):.4f}' if val else '–'} | {f'{np.mean(minutes):.3g}' if minutes else '–'} |"
        )
    return lines


def suite_table(cfg: StudyConfig, entries: list[ZooEntry]):
    """Per case, family and figure: mean over training seeds and its 95 % bootstrap interval over seeds."""
    import pandas as pd

    from drive.eval.stats import two_stage_bootstrap_ci
    from drive.eval.sweep import Model, model_identity

    frames = []
    for entry in [None, *entries]:
        path = Path(cfg.out) / "suite" / suite_label(entry) / "results.csv"
        if not path.is_file():
            continue
        df = pd.read_csv(path)
        if entry is None:
            family, seed = "expert", 0
        else:
            family, seed = model_identity(Model(entry.name, str(entry.path), "")) or (entry.model, entry.seed)
        frames.append(df.assign(family=family, train_seed=seed, condition=0))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    rows = []
    for (case, family), sel in table.groupby(["case", "family"], sort=False):
        row = {"case": case, "family": family, "n_seeds": sel["train_seed"].nunique()}
        for figure in ("mean_abs_lateral_m", "off_road_per_km"):
            mean, low, high = two_stage_bootstrap_ci(sel.astype({figure: float}), figure)
            row.update({figure: mean, f"{figure}_ci_low": low, f"{figure}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def demote(line: str) -> str:
    """An embedded report's ``##``/``###`` headings become ``####`` under the study's ``###`` sections."""
    for prefix in ("## ", "### "):
        if line.startswith(prefix):
            return "#### " + line[len(prefix) :]
    return line


def study_markdown(cfg: StudyConfig, entries: list[ZooEntry], suite) -> list[str]:
    """The lines of ``study.md``."""
    import pandas as pd

    from drive.eval.simulate import resolve_scenario
    from drive.eval.stress import PRIMARY_FIGURE, level_label, stats_markdown

    out = Path(cfg.out)
    episode_s = cfg.duration_s if cfg.duration_s is not None else resolve_scenario("default").duration_s
    sigmas = ", ".join(f"σ²={lv:g} ↔ σ={lv**0.5:.2g}" for lv in cfg.levels)
    lines = [
        "## Robustness study",
        "",
        f"Generated by `drive study` ({len(cfg.models)} model families × training seeds "
        f"{','.join(map(str, cfg.seeds))}; Gaussian camera noise on {cfg.tracks} test track(s) × "
        f"{cfg.noise_seeds} noise seed(s) per level; episodes of {episode_s:g} s; levels {sigmas}). "
        "Primary figure: mean |lateral offset| (m) "
        f"(`{PRIMARY_FIGURE}`); off-road events per km beside it.",
        "",
        "### The zoo",
        "",
        *zoo_lines(entries),
        "",
    ]
    for variant in [""] + ([VARIANT] if cfg.noise_augment is not None else []):
        folder = out / ("stress" if not variant else f"stress-{variant}-augmented")
        if not (folder / "stats.csv").is_file():
            continue
        stats = pd.read_csv(folder / "stats.csv")
        reference = "ncp19" + (f"+{variant}" if variant else "")
        title = "Gaussian camera noise" + (
            f" — noise-augmented variant (--augment-noise {cfg.noise_augment:g})" if variant else ""
        )
        tables = [demote(line) for line in stats_markdown(stats, reference)]
        prefix = f"{variant}-" if variant else ""
        glance = []
        for figure, name in (
            ("off_road_per_km", "Off-road events per km"),
            (PRIMARY_FIGURE, "Mean |lateral offset| (m)"),
        ):
            sel = stats[(stats["figure"] == figure) & (stats["kind"] == "gaussian")]
            if len(sel):
                glance += [
                    f"{name}, mean over training seeds [95 % bootstrap CI]; levels down, families across:",
                    "",
                    *wide_table(sel, "level", None, lambda lv: level_label("gaussian", lv)),
                    "",
                ]
        lines += [f"### {title}", "", *glance] + tables[2:]
        lines += target_lines(stats, reference) if not variant else []
        lines += ["What is significant (paired permutation test over conditions, Holm-corrected per level):", ""]
        lines += significance_lines(stats, reference) or ["- no comparison could be tested"]
        lines += ["", f"![robustness to Gaussian noise]({prefix}robustness_gaussian.png)", ""]
    if len(suite):
        lines += [
            "### Generalization suite (clean input)",
            "",
            f"{cfg.suite_tracks} test track(s) per case; mean over training seeds [95 % bootstrap interval over "
            "seeds; the tracks of a case pooled within each seed].",
            "",
            "Mean |lateral offset| (m):",
            "",
            *wide_table(suite, "case", "mean_abs_lateral_m"),
            "",
            "Off-road events per km:",
            "",
            *wide_table(suite, "case", "off_road_per_km"),
            "",
        ]
    return lines
