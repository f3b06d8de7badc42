"""Check: does replay rank the shipped models and noise levels as the simulator does? (issue 25, closed loop)

On the same recorded test-track episodes (the expert on ``--tracks`` tracks of ``scenarios/default.yaml``'s
test split, ``--duration-s`` s each, kept in ``OUT/data-<duration>s`` and reused), for the six shipped
checkpoints (``checkpoints/<model>``) at Gaussian camera noise σ² ``--levels`` (default 0, 0.1, 0.2, 0.3),
``--seeds`` seeds each:

- **replay**: ``drive.eval.replay_sweep.replay`` on the recorded episodes (``OUT/replay``, resumable):
  interventions per km, PilotNet's rule (|offset from the recorded path| > 1 m or |heading error| > 10°,
  then back onto the path);
- **simulator**: the same models, noise and seeds closed loop in ``drive/Drive-v0`` on each recorded
  episode's track, from its recorded start (its ``reset_seed`` and ``track_seed``), for the same number of
  steps, counted with the same rule. The simulator's own figure (``off_road_events``) counts only exits past
  the road edge (|lateral from the road centre line| > half the road width: 1.75 m to the right of the
  right lane's centre on the plain road) and crashes, not offsets past 1 m; so the rule is applied by
  :class:`drive.replay.check.PathInterventions` (the car is put back on its lane centre where it is, as replay
  puts it back on the recorded path). Cells in ``OUT/sim/cells``, resumable (keyed like ``drive stress``'s);
- **passive**: ``drive evaluate``'s offline steering MSE of each model on the same recorded episodes at the
  same levels (``OUT/evaluate``, resumable).

Per (model, level): interventions per km pooled over episodes and seeds (total / total km), replay's and
the simulator's. Spearman ρ (``scipy.stats.spearmanr``) with a 95 % paired bootstrap interval over the pairs
(:func:`drive.eval.stats.rank_agreement`) of replay's against the simulator's, pooled over the 24
(model, level) pairs and per level (6 models), beside the passive test's ρ (offline MSE against the
simulator's interventions per km). Target (issue 25): pooled ρ ≥ 0.8, and per level above the passive
test's. Writes ``OUT/ranking.json`` and ``OUT/ranking.csv``; the last printed line is one JSON object.

    .venv/bin/python tools/check_replay_ranking.py [--tracks 10] [--seeds 3] [--duration-s 60] [--workers 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from drive.eval import metrics as M
from drive.eval.backends import run_cells
from drive.eval.perturb import CLEAN, Chain, make
from drive.eval.replay_sweep import data_fingerprint, replay
from drive.eval.rollout import make_env, run_episode
from drive.eval.stats import rank_agreement
from drive.eval.stress import Cell, make_models, plan_cells
from drive.eval.sweep import cached_driver, load_finished, resume_key
from drive.io import atomic_write_json
from drive.replay.check import record_test_episodes

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ncp19", "cnn", "lstm", "gru", "ctrnn", "cfc")
SIM_FORMAT = 1
SCENARIO = "default"


# ------------------------------------------------------------------------------------------ data


@dataclasses.dataclass(frozen=True)
class Episode:
    """A recorded episode as the simulator starts it."""

    index: int
    reset_seed: int
    track_seed: int
    steps: int
    """Control steps replay drives it for: its frames - 1."""


def recorded_episodes(data: Path, tracks: int) -> tuple[dict[str, Any], list[Episode]]:
    """The dataset's scenario and its first ``tracks`` episodes."""
    from drive.data.reader import DatasetReader

    reader = DatasetReader(data)
    episodes = []
    for e in reader.episodes[:tracks]:
        meta = reader.episode_meta(e)
        episodes.append(Episode(int(e), int(meta["reset_seed"]), int(meta["track_seed"]), reader.episode_length(e) - 1))
    return reader.info.scenario, episodes


# ------------------------------------------------------------------------------------- simulator


@dataclasses.dataclass(frozen=True)
class SimJob:
    """Simulator cells on the recorded episodes' starts, under replay's intervention rule (picklable)."""

    scenario: dict[str, Any]
    episodes: tuple[Episode, ...]
    fingerprint: str

    def key(self, cell: Cell) -> dict[str, Any]:
        from drive.replay.env import MAX_HEADING_RAD, MAX_OFFSET_M

        return resume_key(
            SIM_FORMAT,
            cell.model,
            cell.kind,
            cell.level,
            seed=cell.seed,
            scenario=self.scenario,
            episodes=[dataclasses.asdict(e) for e in self.episodes],
            data_fingerprint=self.fingerprint,
            max_offset_m=MAX_OFFSET_M,
            max_heading_rad=MAX_HEADING_RAD,
        )

    def __call__(self, cell: Cell) -> dict[str, Any]:
        from drive.replay.check import PathInterventions
        from drive.world.scenario import Scenario

        start = time.perf_counter()
        policy = cached_driver(cell.model)
        chain = Chain([] if cell.kind == CLEAN else [make(cell.kind, cell.level)])
        base = Scenario.from_dict(self.scenario)
        n = len(self.episodes)
        per_episode = []
        for i, ep in enumerate(self.episodes):
            sc = dataclasses.replace(base, duration_s=ep.steps / base.control_hz)
            env = PathInterventions(make_env(sc, off_road="recover"), start=(ep.reset_seed, ep.track_seed))
            log = run_episode(policy, env, cell.seed * n + i, chain, episode=i)  # the seeds replay's cell uses
            env.close()
            figures = M.episode_metrics(log)
            per_episode.append(
                {
                    "episode": ep.index,
                    **figures,
                    "interventions": figures["off_road_events"],
                    "interventions_per_km": M.per_km(figures["off_road_events"], figures["distance_m"]),
                }
            )
        return {
            "key": self.key(cell),
            "model": cell.model.name,
            "kind": cell.kind,
            "level": cell.level,
            "seed": cell.seed,
            "episodes": per_episode,
            "elapsed_s": time.perf_counter() - start,
        }


def run_simulator(job: SimJob, cells: list[Cell], out: Path, workers: int) -> list[dict[str, Any]]:
    cell_dir = out / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    done, todo = [], []
    for cell in cells:
        stored = load_finished(cell_dir / cell.file_name, job.key(cell))
        (done.append(stored) if stored is not None else todo.append(cell))
    if done:
        print(f"simulator: {len(done)} of {len(cells)} cell(s) already done", file=sys.stderr)

    def keep(cell: Cell, result: dict[str, Any]) -> None:
        atomic_write_json(cell_dir / cell.file_name, result)
        done.append(result)

    failed = run_cells(todo, job, keep, backend="local", workers=workers)
    if failed:
        raise SystemExit(f"simulator: {len(failed)} cell(s) failed; first: {failed[0].error}")
    return done


# ------------------------------------------------------------------------------------------- replay


def replay_cells(out: Path, data: Path, cells: list[Cell], episodes: list[int]) -> list[dict[str, Any]]:
    """The stored replay cells of this plan (the sweep's folder may hold others from other flags)."""
    want = {(c.model.name, c.kind, float(c.level), c.seed) for c in cells}
    found = []
    for path in sorted((out / "cells").glob("*.json")):
        r = json.loads(path.read_text())
        k = r.get("key", {})
        if (r["model"], r["kind"], float(r["level"]), r["seed"]) in want and k.get("episodes") == episodes:
            if Path(k.get("data", "")).resolve() == data.resolve():
                found.append(r)
    return found


# ------------------------------------------------------------------------------------------ ranking


def per_km_table(cells: list[dict[str, Any]]) -> dict[tuple[str, float], float | None]:
    """(model, level) -> interventions per km pooled over the cells' episodes (total / total km)."""
    sums: dict[tuple[str, float], list[float]] = {}
    for c in cells:
        key = (c["model"], float(c["level"]))
        s = sums.setdefault(key, [0.0, 0.0])
        for e in c["episodes"]:
            s[0] += e["off_road_events"]
            s[1] += e["distance_m"]
    return {k: M.per_km(n, d) for k, (n, d) in sums.items()}


def passive_table(rows: list[dict[str, Any]], models: list[str], levels: list[float]) -> dict:
    """(model, level) -> ``drive evaluate``'s offline MSE (clean rows stand for level 0)."""
    out = {}
    for m in models:
        for lv in levels:
            hits = [
                r
                for r in rows
                if r["model"] == m
                and ((lv == 0 and r["kind"] == CLEAN) or (r["kind"] == "gaussian" and abs(r["level"] - lv) < 1e-9))
            ]
            out[(m, lv)] = hits[0]["mse"] if hits else None
    return out


def rho_text(r: dict[str, Any]) -> str:
    if r["rho"] is None:
        return "undefined (a constant side)"
    lo, hi = r["ci_low"], r["ci_high"]
    interval = "" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]"
    return f"{r['rho']:+.2f}{interval} (n {r['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/check-replay-ranking"))
    ap.add_argument("--tracks", type=int, default=10, help="recorded test-track episodes (default 10: every track)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per model and level (default 3)")
    ap.add_argument("--duration-s", type=float, default=60.0, help="length of each recorded episode, s (default 60)")
    ap.add_argument("--levels", default="0,0.1,0.2,0.3", help="Gaussian noise variances (default 0,0.1,0.2,0.3)")
    ap.add_argument("--models", default=",".join(MODELS), help="checkpoints/<model> names (default the six)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    args = ap.parse_args()
    if args.tracks < 1 or args.seeds < 1 or not args.duration_s > 0:
        raise SystemExit("--tracks and --seeds must be >= 1 and --duration-s > 0")
    start = time.perf_counter()
    levels = sorted({float(v) for v in args.levels.split(",")})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    checkpoints = [str(REPO_ROOT / "checkpoints" / m) for m in models]
    seeds = list(range(args.seeds))
    sweeps = [("gaussian", [lv for lv in levels if lv != 0])] if any(levels) else []
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"data-{args.duration_s:g}s"
    timings = {}

    t = time.perf_counter()
    if record_test_episodes(SCENARIO, data, args.tracks, args.duration_s):  # episode e: track e of a permutation
        print(f"recorded test-track episodes into {data}", file=sys.stderr)
    scenario, episodes = recorded_episodes(data, args.tracks)
    chosen = [e.index for e in episodes]
    timings["record_s"] = time.perf_counter() - t

    t = time.perf_counter()
    replay(
        checkpoints,
        data,
        out / "replay",
        perturb=sweeps,
        seeds=seeds,
        episodes=chosen,
        workers=args.workers,
        with_expert=False,
    )
    timings["replay_s"] = time.perf_counter() - t

    cells = plan_cells(make_models(checkpoints, with_expert=False), sweeps, seeds)
    t = time.perf_counter()
    job = SimJob(scenario, tuple(episodes), data_fingerprint(data, chosen))
    sim = run_simulator(job, cells, out / "sim", args.workers)
    timings["simulator_s"] = time.perf_counter() - t

    t = time.perf_counter()
    from drive.eval.evaluate import evaluate

    passive_rows = evaluate(
        checkpoints,
        data,
        out / "evaluate",
        perturb=[("gaussian", levels)],
        episodes=chosen,
        workers=args.workers,
        video=False,
    )["rows"]
    timings["evaluate_s"] = time.perf_counter() - t

    rep = per_km_table(replay_cells(out / "replay", data, cells, chosen))
    act = per_km_table(sim)
    mse = passive_table(passive_rows, models, levels)
    table = [
        {
            "model": m,
            "level": lv,
            "replay_interventions_per_km": rep.get((m, lv)),
            "sim_interventions_per_km": act.get((m, lv)),
            "offline_mse": mse.get((m, lv)),
        }
        for lv in levels
        for m in models
    ]
    missing = [r for r in table if any(v is None for v in r.values())]
    if missing:
        raise SystemExit(f"no figure for {missing[0]}: a stage gave no result (see its folder under {out})")

    def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
        sim_ipk = [r["sim_interventions_per_km"] for r in rows]
        return {
            "replay": rank_agreement([r["replay_interventions_per_km"] for r in rows], sim_ipk),
            "passive": rank_agreement([r["offline_mse"] for r in rows], sim_ipk),
        }

    spearman = {"pooled": agreement(table)}
    for lv in levels:
        spearman[f"{lv:g}"] = agreement([r for r in table if r["level"] == lv])

    print(f"\n{'model':<7} {'σ²':>4} {'replay int/km':>14} {'sim int/km':>11} {'offline MSE':>12}")
    for r in table:
        print(
            f"{r['model']:<7} {r['level']:>4g} {r['replay_interventions_per_km']:>14.2f} "
            f"{r['sim_interventions_per_km']:>11.2f} {r['offline_mse']:>12.4f}"
        )
    print("\nSpearman ρ against the simulator's interventions per km [95 % paired bootstrap interval]:")
    for name, a in spearman.items():
        label = "pooled (models × levels)" if name == "pooled" else f"σ² {name}"
        print(f"  {label:<25} replay {rho_text(a['replay']):<32} passive (offline MSE) {rho_text(a['passive'])}")
    pooled = spearman["pooled"]["replay"]["rho"]
    per_level_above = {
        k: (
            a["replay"]["rho"] is not None and (a["passive"]["rho"] is None or a["replay"]["rho"] > a["passive"]["rho"])
        )
        for k, a in spearman.items()
        if k != "pooled"
    }
    summary = {
        "check": "replay_ranking",
        "tracks": args.tracks,
        "seeds": args.seeds,
        "duration_s": args.duration_s,
        "levels": levels,
        "models": models,
        "spearman_pooled_replay": pooled,
        "spearman_pooled_passive": spearman["pooled"]["passive"]["rho"],
        "spearman_per_level_replay": {k: a["replay"]["rho"] for k, a in spearman.items() if k != "pooled"},
        "spearman_per_level_passive": {k: a["passive"]["rho"] for k, a in spearman.items() if k != "pooled"},
        "target_pooled_met": pooled is not None and pooled >= 0.8,
        "target_per_level_met": all(per_level_above.values()),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out / "ranking.json", {**summary, "table": table, "spearman": spearman})
    import pandas as pd

    pd.DataFrame(table).to_csv(out / "ranking.csv", index=False)
    print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
