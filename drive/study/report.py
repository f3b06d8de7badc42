"""The study's report: ``study.md`` (README-ready markdown) from the stress statistics, the suite results and
the zoo's checkpoints. Pure functions of files on disk and the config: running it twice gives the same text."""

from __future__ import annotations

import math
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


SEED_FIGURES = (
    ("off_road_per_km", "Off-road events per km", True),
    ("mean_abs_lateral_m", "Mean |lateral offset| (m)", True),
)
"""The stress figures of the seed-level analysis: (column, title, lower is better)."""

SSIM_FIGURES = (("ssim", "SSIM of VisualBackProp maps, clean vs noisy", False),)
"""The saliency-stability figure of the seed-level analysis (higher is better)."""
ACTIVITY_FIGURES = (
    ("pc1_share", "Share of neuron-activity variance on PC1 (clean episodes)", False),
    ("participation_ratio", "Participation ratio (effective dimensions) of the same activity", False),
)
"""The interpretability figures of the seed-level analysis: PC1 share (the claim) and participation ratio."""

PC1_DEGENERATE = 0.9
"""A PC1 share above this for every family means the measure does not discriminate here (the report says so)."""


def stress_cells(cfg: StudyConfig):
    """``<out>/stress/cells.csv`` without the expert (one row per family, training seed, level and condition)."""
    import pandas as pd

    path = Path(cfg.out) / "stress" / "cells.csv"
    if not path.is_file():
        return pd.DataFrame()
    cells = pd.read_csv(path)
    return cells[cells["family"].notna() & cells["train_seed"].notna()].astype({"train_seed": int})


def explain_tables(cfg: StudyConfig, entries: list[ZooEntry]):
    """(SSIM rows: family, train_seed, kind, level, ssim; activity rows: family, train_seed, pc1_share,
    participation_ratio, neurons; names of the checkpoints without explain results)."""
    import json

    import pandas as pd

    ssim, activity, missing = [], [], []
    for e in entries:
        if e.variant:
            continue
        path = Path(cfg.out) / "explain" / suite_label(e) / "explain.json"
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            missing.append(suite_label(e))
            continue
        who = {"family": e.family, "train_seed": e.seed}
        ssim += [{**who, "kind": "gaussian", "level": float(k), "ssim": v} for k, v in result["mean_ssim"].items()]
        if result.get("pc1_share") is not None:
            activity.append(
                {
                    **who,
                    "pc1_share": result["pc1_share"],
                    "participation_ratio": result["participation_ratio"],
                    "neurons": result.get("neurons"),
                }
            )
    return pd.DataFrame(ssim), pd.DataFrame(activity), missing


def _ordered(table, models: tuple[str, ...]):
    """Rows of a seed-level table with the families in the study's order."""
    rank = {m: i for i, m in enumerate(models)}
    keys = [c for c in ("level",) if c in table.columns] + ["_rank"]
    ranked = table.assign(_rank=table["family"].map(lambda f: rank.get(f, len(rank))))
    return ranked.sort_values(keys, kind="stable").drop(columns="_rank")


def _num(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "–"


def _p(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else "–"


def _get(row, key: str) -> float:
    """A number of a seed-level table row; NaN where the row has none (the reference, an untested pair)."""
    value = row.get(key)
    return float("nan") if value is None else float(value)


def _difference(row) -> str:
    """``+d [low, high]``: family − reference with Welch's 95 % interval."""
    return f"{_get(row, 'diff'):+.3g} [{_num(_get(row, 'diff_low'))}, {_num(_get(row, 'diff_high'))}]"


def comparison_lines(table, reference: str, label) -> list[str]:
    """Every family against the reference: seeds, difference [Welch 95 %], Welch p, exact permutation p, Holm p,
    and the smallest difference detectable with 80 % power."""
    lines = [
        f"| level | family | seeds | family − {reference} [Welch 95 %] | Welch p | permutation p | Holm p "
        "| detectable (80 %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table[table["family"] != reference].iterrows():
        where = label(r["level"]) if "level" in r else "clean episodes"
        lines.append(
            f"| {where} | {r['family']} | {int(r['n_seeds'])} | {_difference(r)} | {_p(_get(r, 'p_welch'))} "
            f"| {_p(_get(r, 'p_perm'))} | {_p(_get(r, 'p_holm'))} | {_num(_get(r, 'detectable'))} |"
        )
    return lines


def seed_level_lines(table, figures, models: tuple[str, ...], reference: str, label) -> list[str]:
    """Per figure: the means over seeds [studentized bootstrap 95 %] (levels down, families across) and the
    comparisons with the reference."""
    if table.empty or "figure" not in table.columns:  # no run left (e.g. every run of the test failed)
        return ["No run is left to compare.", ""]
    lines = []
    for figure, title, _ in figures:
        sel = _ordered(table[table["figure"] == figure], models)
        if not len(sel):
            continue
        row_key = "level" if "level" in sel.columns else "figure"
        lines += [
            f"{title}: mean over training seeds [studentized bootstrap 95 % over seeds]:",
            "",
            *wide_table(sel, row_key, None, label if row_key == "level" else (lambda _: "clean episodes")),
            "",
            *comparison_lines(sel, reference, label),
            "",
        ]
    return lines


def _failure_rate(runs) -> tuple[int, str]:
    """(failed, "failed/decided") of one family's rows of the failure table; "–" when none is decided."""
    known = runs[runs["failed"].notna()]
    failed = int((known["failed"] == True).sum())  # noqa: E712
    return failed, f"{failed}/{len(known)}" if len(known) else "–"


def failure_lines(failures, models: tuple[str, ...]) -> list[str]:
    """The failure rule, the rate per family and the failed runs."""
    from drive.study import failures as rule

    if not len(failures):
        return ["No checkpoint to judge.", ""]
    lines = [
        f"Rule (fixed before the results): {rule.RULE}",
        "",
        "| family | runs | failed | not decidable | failure rate |",
        "|---|---|---|---|---|",
    ]
    for family in [m for m in models if m in set(failures["family"])]:
        sel = failures[failures["family"] == family]
        failed, rate = _failure_rate(sel)
        lines.append(f"| {family} | {len(sel)} | {failed} | {int(sel['failed'].isna().sum())} | {rate} |")
    lines.append("")
    for _, r in failures[failures["failed"] == True].iterrows():  # noqa: E712
        lines.append(
            f"- {r['name']} failed: best validation loss {r['best_val_loss']:.4g} ≥ the constant predictor's "
            f"{r['constant_val_loss']:.4g}."
        )
    notes = sorted(set(failures.loc[failures["failed"].isna(), "note"]))
    if notes:
        lines.append(f"- Not decidable for {int(failures['failed'].isna().sum())} run(s): {'; '.join(notes)}.")
    return lines + [""]


GLANCE_LEVELS = (0.1, 0.2, 0.3)
"""The levels of the report's at-a-glance tables: the paper's σ² (its text's 0.1 / 0.2 / 0.3)."""


def _cell(table, figure: str, family: str, level: float | None) -> str:
    """``mean [ci_low, ci_high]`` of one family's seed means (a bare mean without an interval); "–" if absent."""
    if not len(table):
        return "–"
    sel = table[(table["figure"] == figure) & (table["family"] == family)]
    if level is not None and "level" in sel.columns:
        sel = sel[(sel["level"] - level).abs() < 1e-9]
    if not len(sel):
        return "–"
    r = sel.iloc[0]
    mean, low, high = float(r["mean"]), float(r["ci_low"]), float(r["ci_high"])
    return f"{mean:.3g} [{_num(low)}, {_num(high)}]" if high > low else f"{mean:.3g}"


def glance_lines(stress, ssim, activity, failures, models: tuple[str, ...]) -> list[str]:
    """Two compact tables, one row per family, of the seed means [studentized bootstrap 95 % over seeds] at the
    paper's levels: crashes and lateral offset under noise (with the failed runs), then saliency stability and
    the activity's PC1 share and participation ratio."""
    failed = {family: _failure_rate(sel)[1] for family, sel in failures.groupby("family")} if len(failures) else {}
    levels = [f"σ²={lv:g}" for lv in GLANCE_LEVELS]
    noise = [
        "| family | seeds | failed runs | "
        + " | ".join(f"off-road per km, {lv}" for lv in levels)
        + " | "
        + " | ".join(f"mean \\|lateral\\| (m), {lv}" for lv in levels)
        + " |",
        "|---" * (3 + 2 * len(levels)) + "|",
    ]
    explain = [
        "| family | " + " | ".join(f"SSIM, {lv}" for lv in levels) + " | PC1 share | participation ratio |",
        "|---" * (3 + len(levels)) + "|",
    ]
    for family in models:
        seeds = stress[stress["family"] == family]["n_seeds"] if len(stress) else []
        n = str(int(min(seeds))) if len(seeds) else "–"
        noise.append(
            f"| {family} | {n} | {failed.get(family, '–')} | "
            + " | ".join(_cell(stress, "off_road_per_km", family, lv) for lv in GLANCE_LEVELS)
            + " | "
            + " | ".join(_cell(stress, "mean_abs_lateral_m", family, lv) for lv in GLANCE_LEVELS)
            + " |"
        )
        explain.append(
            f"| {family} | "
            + " | ".join(_cell(ssim, "ssim", family, lv) for lv in GLANCE_LEVELS)
            + f" | {_cell(activity, 'pc1_share', family, None)} | {_cell(activity, 'participation_ratio', family, None)} |"
        )
    return [
        "Mean over training seeds [studentized bootstrap 95 % over seeds], at the paper's levels; every level and "
        "every test: the seed-level sections of `checkpoints/study/study.md`.",
        "",
        *noise,
        "",
        *explain,
        "",
    ]


def claims_lines(stress, ssim, activity, models: tuple[str, ...], reference: str, label) -> list[str]:
    """The paper's three claims: per level and family, the seed-level result and a verdict by VERDICT_RULE."""
    from drive.study.inference import VERDICT_RULE, verdict

    claims = [
        ("Crashes under noise: fewer off-road events per km than the other families", stress, "off_road_per_km", True),
        ("Saliency stability: a higher SSIM of VisualBackProp maps, clean vs noisy", ssim, "ssim", False),
        ("Interpretability: a higher share of neuron-activity variance on PC1", activity, "pc1_share", False),
    ]
    others = [m for m in models if m != reference]
    lines = [
        f"Verdict rule: {VERDICT_RULE}. Each cell: verdict — {reference} vs the family (family − {reference}, "
        "Welch 95 % interval), Holm p; 'detectable' is the smallest difference a Welch test on these seeds finds "
        "with 80 % power (before Holm) from the observed seed spread.",
        "",
        "| claim | level | " + " | ".join(f"vs {m}" for m in others) + " | seeds |",
        "|---|---|" + "---|" * len(others) + "---|",
    ]
    summary = []
    for claim, table, figure, lower in claims:
        sel = table[table["figure"] == figure] if len(table) else table
        if len(sel) and "level" in sel.columns:
            sel = sel[sel["level"] > 0]  # the claims are about noise
        if not len(sel):
            lines.append(f"| {claim} | – | " + " | ".join("not measured" for _ in others) + " | – |")
            summary.append(f"- {claim}: **not measured** (no results).")
            continue
        counts = {"reproduced": 0, "contradicted": 0, "inconclusive": 0}
        groups = sel.groupby("level", sort=True) if "level" in sel.columns else [(None, sel)]
        for level, block in groups:
            by = block.set_index("family")
            cells = []
            for m in others:
                if m not in by.index or reference not in by.index:
                    cells.append("–")
                    continue
                r = by.loc[m]
                v = verdict(r.to_dict(), lower_is_better=lower)
                counts[v] += 1
                cells.append(
                    f"{v} — {_difference(r)}, p {_p(_get(r, 'p_holm'))}, detectable {_num(_get(r, 'detectable'))}"
                )
            n = int(block["n_seeds"].min())
            where = label(level) if level is not None else "clean episodes"
            lines.append(f"| {claim} | {where} | " + " | ".join(cells) + f" | n = {n} |")
        n_all = int(sel["n_seeds"].min())
        summary.append(
            f"- {claim}: reproduced in {counts['reproduced']}, contradicted in {counts['contradicted']}, "
            f"inconclusive at n = {n_all} seeds in {counts['inconclusive']} of "
            f"{sum(counts.values())} comparisons."
        )
    lines += ["", *summary]
    pc1 = activity[activity["figure"] == "pc1_share"] if len(activity) else activity
    if len(pc1) and (pc1["mean"] > PC1_DEGENERATE).all():
        lines.append(
            f"- Every family's PC1 share is above {PC1_DEGENERATE:g}: here the measure does not discriminate "
            "between the architectures (see the participation ratio)."
        )
    return lines + [""]


def seed_tables(cells, ssim_rows, activity_rows, reference: str):
    """The seed-level tables (:func:`drive.study.inference.seed_level_table`) of the stress figures, SSIM and
    the activity figures; an empty frame where there are no rows."""
    import pandas as pd

    from drive.study.inference import seed_level_table

    def table(rows, figures):
        return seed_level_table(rows, [f for f, _, _ in figures], reference) if len(rows) else pd.DataFrame()

    return table(cells, SEED_FIGURES), table(ssim_rows, SSIM_FIGURES), table(activity_rows, ACTIVITY_FIGURES)


def seed_level_markdown(cfg: StudyConfig, entries: list[ZooEntry], failures) -> list[str]:
    """The seed-level sections: the analysis plan, the stress figures (with and without failed runs), the
    failure rates, SSIM and PC1 / participation ratio per family, and the claims table."""
    from drive.eval.stress import level_label

    reference = "ncp19"
    label = lambda lv: level_label("gaussian", lv)  # noqa: E731
    cells = stress_cells(cfg)
    ssim_rows, activity_rows, missing = explain_tables(cfg, entries)
    stress, ssim, activity = seed_tables(cells, ssim_rows, activity_rows, reference)
    seeds = len(cfg.seeds)
    lines = [
        "### Seed-level analysis (the architectures)",
        "",
        "Plan, fixed before the results: the unit of inference is the training seed. Each checkpoint's figure is "
        "its mean over the evaluation conditions (test tracks × noise seeds); per family the mean over seeds with "
        "a studentized bootstrap 95 % interval (coverage ≥ 93 % at n = 10 in simulation); against ncp19 the "
        "difference of seed means with Welch's interval and p and the exact permutation p on the seed means, "
        "Holm-corrected over the families per figure and level. Primary figures: off-road events per km and mean "
        "|lateral offset|; levels: every σ² of the study. Failed trainings stay in; the analysis without them is "
        f"given beside. With {seeds} seeds per family, an exact two-sided permutation test cannot go below "
        f"p = {2 / math.comb(2 * seeds, seeds):.2g}."
        + (
            f" With {seeds} seeds the studentized bootstrap interval is unstable (a resample that repeats one seed "
            "has almost no spread, so its t explodes): intervals with huge or negative bounds mean 'no usable "
            "interval at this n', not a measured range; the plan's n is 10."
            if seeds < 5
            else ""
        ),
        "",
        "#### Training failures",
        "",
        *failure_lines(failures, cfg.models),
        "#### Gaussian camera noise, per training seed",
        "",
    ]
    lines += (
        seed_level_lines(stress, SEED_FIGURES, cfg.models, reference, label)
        if len(stress)
        else [
            f"No stress cells ({Path(cfg.out) / 'stress' / 'cells.csv'} missing): run the stress stage.",
            "",
        ]
    )
    lines += ["#### Saliency stability and interpretability (drive explain), per training seed", ""]
    if missing:
        lines += [
            f"No explain results for {len(missing)} checkpoint(s) ({', '.join(missing)}): run the explain stage "
            f"(`--stages explain,report`); until then the claims below that need them are not measured.",
            "",
        ]
    lines += seed_level_lines(ssim, SSIM_FIGURES, cfg.models, reference, label) if len(ssim) else []
    lines += seed_level_lines(activity, ACTIVITY_FIGURES, cfg.models, reference, label) if len(activity) else []
    lines += [
        "#### At a glance",
        "",
        *glance_lines(stress, ssim, activity, failures, cfg.models),
        "#### The paper's three claims",
        "",
        *claims_lines(stress, ssim, activity, cfg.models, reference, label),
    ]
    return lines + without_failed_lines(cells, ssim_rows, activity_rows, failures, cfg.models, reference, label)


def _without(rows, drop: set):
    """``rows`` (one per family and training seed, or finer) without those of the (family, seed) pairs ``drop``."""
    if not len(rows):
        return rows
    return rows[[(f, s) not in drop for f, s in zip(rows["family"], rows["train_seed"])]]


def without_failed_lines(cells, ssim_rows, activity_rows, failures, models: tuple[str, ...], reference: str, label):
    """The analysis beside the primary one: every seed-level figure and the claims table without the failed runs."""
    failed = failures[failures["failed"] == True] if len(failures) else failures  # noqa: E712
    if len(failures) and failures["failed"].isna().any() and not len(failed):
        return ["Without failed runs: not computed, since the failure rule could not be decided for every run.", ""]
    if not len(failed):
        return ["No run failed: the analysis without failed runs is the one above.", ""]
    drop = set(zip(failed["family"], failed["train_seed"]))
    stress, ssim, activity = seed_tables(
        _without(cells, drop), _without(ssim_rows, drop), _without(activity_rows, drop), reference
    )
    lines = [
        f"#### The same without the {len(failed)} failed run(s) ({', '.join(failed['name'])})",
        "",
        *(seed_level_lines(stress, SEED_FIGURES, models, reference, label) if len(cells) else []),
        *(seed_level_lines(ssim, SSIM_FIGURES, models, reference, label) if len(ssim) else []),
        *(seed_level_lines(activity, ACTIVITY_FIGURES[:1], models, reference, label) if len(activity) else []),
        "#### The paper's three claims without the failed runs",
        "",
        *claims_lines(stress, ssim, activity, models, reference, label),
    ]
    return lines


def study_markdown(cfg: StudyConfig, entries: list[ZooEntry], suite, failures=None) -> list[str]:
    """The lines of ``study.md``: the zoo, the seed-level analysis (the architectures), then the condition-level
    figures of these checkpoints and the suite. ``failures``: :func:`drive.study.failures.failure_table`."""
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
        *seed_level_markdown(cfg, entries, pd.DataFrame() if failures is None else failures),
    ]
    for variant in [""] + ([VARIANT] if cfg.noise_augment is not None else []):
        folder = out / ("stress" if not variant else f"stress-{variant}-augmented")
        if not (folder / "stats.csv").is_file():
            continue
        stats = pd.read_csv(folder / "stats.csv")
        reference = "ncp19" + (f"+{variant}" if variant else "")
        title = "These checkpoints: Gaussian camera noise, condition level" + (
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
        lines += [
            f"### {title}",
            "",
            "These figures and tests describe *these* checkpoints: the paired test pairs the conditions after "
            "averaging over the training seeds, so it asks whether these trained models differ, not whether the "
            "architectures do (for that, see the seed-level analysis above).",
            "",
            *glance,
        ] + tables[2:]
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
