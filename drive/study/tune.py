"""Per-family tuning of the training recipe (issue "Drivers that keep their lane everywhere", item 5): the
controller learning rate and the epoch budget, chosen for each family on validation episodes and
training-split tracks only, with the same number of trials per family.

Successive halving, one training seed (the study's seed 0 protocol otherwise):

1. every family × every rate of ``rates`` trains ``short_epochs`` epochs with closed-loop selection
   (:mod:`drive.train.selection`: held-out training tracks, never a test track or the suite);
2. per family, the rate whose kept epoch drives best (fewest off-road events, then lowest mean |lateral|,
   then lowest validation loss) goes on to ``full_epochs`` (``--resume`` with more epochs: the same run);
3. the chosen budget is the epoch that run keeps.

Every training resumes where it stopped, so an interrupted tuning goes on with the same command. Results go
to ``<out>/tune.json`` and ``<out>/tune.md`` (the trials, the choice per family, the cost).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from drive.errors import UserError
from drive.io import atomic_write_json, atomic_write_text, holds_output_lock
from drive.study.config import MODELS
from drive.train.config import TrainConfig

DEFAULT_RATES = (2e-3, 5e-3, 1.2e-2)
"""Controller learning rates tried per family: the shipped 5e-3 and a factor of ~2.5 either side."""
DEFAULT_CNN_RATES = (2e-4, 5e-4, 1.2e-3)
"""PilotNet has no controller: its one learning rate (``lr_head``, shipped 5e-4) is tuned instead."""


def tuned_field(model: str) -> str:
    """The TrainConfig field a family's rate sets: ``lr_head`` for the CNN (no controller), else ``lr_controller``."""
    return "lr_head" if model == "cnn" else "lr_controller"


@dataclasses.dataclass
class TuneConfig:
    """Every knob of the tuning."""

    data: str = "data/train"
    """Training recordings (the study's)."""
    out: str = "checkpoints/tune"
    """Trials (``<family>-lr<rate>/``), ``tune.json`` and ``tune.md``."""
    models: tuple[str, ...] = MODELS
    """Families to tune."""
    rates: tuple[float, ...] = DEFAULT_RATES
    """Controller learning rates tried per recurrent family (at least 3)."""
    cnn_rates: tuple[float, ...] = DEFAULT_CNN_RATES
    """Learning rates tried for the CNN (its ``lr_head``; as many as ``rates``: the same number of trials)."""
    short_epochs: int = 4
    """Epochs of every trial in the first round."""
    full_epochs: int = 8
    """Epochs of each family's best rate in the second round (the budget's upper bound)."""
    batch_size: int = 16
    """Batch, in sequences (as the study)."""
    seed: int = 0
    """Training seed of every trial."""
    select_episodes: int = 6
    """Closed-loop check episodes per epoch."""
    select_duration_s: float = 15.0
    """Length of each check episode, s."""
    select_scenario: str = "train"
    """The check's scenarios (``TrainConfig.select_scenario``); the recorded tuning (checkpoints/tune) drove the
    randomized training worlds only."""
    progress: bool = True
    """Show progress bars."""

    def validate(self) -> None:
        if not self.models or not set(self.models) <= set(MODELS):
            raise UserError(f"tune: models {self.models!r}: choose from {MODELS}")
        for name, rates in (("rates", self.rates), ("cnn_rates", self.cnn_rates)):
            if len(rates) < 3 or len(set(rates)) != len(rates) or min(rates) <= 0:
                raise UserError(f"tune: {name} {rates!r}: give at least 3 distinct rates > 0")
        if len(self.cnn_rates) != len(self.rates):
            raise UserError(f"tune: cnn_rates {self.cnn_rates!r}: give as many as rates (the same trials per family)")
        if not 1 <= self.short_epochs <= self.full_epochs:
            raise UserError(f"tune: epochs {self.short_epochs}/{self.full_epochs}: need 1 <= short <= full")


def trial_name(model: str, rate: float) -> str:
    return f"{model}-lr{rate:g}"


def family_rates(cfg: TuneConfig, model: str) -> tuple[float, ...]:
    return cfg.cnn_rates if model == "cnn" else cfg.rates


def trial_config(cfg: TuneConfig, model: str, rate: float, epochs: int) -> TrainConfig:
    return TrainConfig(
        data=cfg.data,
        out=str(Path(cfg.out) / trial_name(model, rate)),
        model=model,
        epochs=epochs,
        batch_size=cfg.batch_size,
        **{tuned_field(model): rate},
        seed=cfg.seed,
        select_by="closed_loop",
        select_episodes=cfg.select_episodes,
        select_duration_s=cfg.select_duration_s,
        select_scenario=cfg.select_scenario,
        progress=cfg.progress,
    )


def _metrics(path: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("metrics") if isinstance(config, dict) else None


def run_trial(train_cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume, or skip when done) one trial; its kept epoch's figures."""
    from drive.train.loop import train

    out = Path(train_cfg.out)
    metrics = _metrics(out)
    t0 = time.perf_counter()
    if metrics is None or (metrics.get("epochs_done") or 0) < train_cfg.epochs:
        resume = (out / "config.json").is_file() and (out / "train_state").is_dir()
        if (out / "config.json").is_file() and not resume:  # a trial of ours, kept without its state (git): redo
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        train(dataclasses.replace(train_cfg, resume=resume))
        metrics = _metrics(out) or {}
    best = metrics.get("best_closed_loop") or {}
    return {
        "epochs_done": metrics.get("epochs_done"),
        "best_epoch": metrics.get("best_epoch"),
        "off_road_events": best.get("off_road_events"),
        "mean_abs_lateral_m": best.get("mean_abs_lateral_m"),
        "val_loss": metrics.get("best_val_loss"),
        "train_time_s": metrics.get("train_time_s"),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def trial_key(result: dict[str, Any]) -> tuple[float, float, float]:
    """Lower is better: off-road events, mean |lateral|, validation loss (a missing figure ranks last)."""
    inf = float("inf")

    def num(x: Any) -> float:
        return inf if x is None else float(x)

    return (num(result["off_road_events"]), num(result["mean_abs_lateral_m"]), num(result["val_loss"]))


@holds_output_lock("cfg.out")
def tune(cfg: TuneConfig) -> dict[str, Any]:
    """Run (or resume) the tuning; returns and writes the trials and the choice per family."""
    cfg.validate()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    trials: dict[str, dict[str, Any]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for model in cfg.models:  # round 1: every rate, short
        for rate in family_rates(cfg, model):
            trials[trial_name(model, rate)] = {
                "model": model,
                "rate": rate,
                "round": 1,
                **run_trial(trial_config(cfg, model, rate, cfg.short_epochs)),
            }
            write_results(cfg, trials, chosen)
    for model in cfg.models:  # round 2: the best rate of each family, to the full budget
        round1 = [t for t in trials.values() if t["model"] == model]
        best = min(round1, key=trial_key)
        result = run_trial(trial_config(cfg, model, best["rate"], cfg.full_epochs))
        trials[trial_name(model, best["rate"])].update({"round": 2, **result})
        chosen[model] = {"field": tuned_field(model), "rate": best["rate"], "epochs": result["best_epoch"], **result}
        write_results(cfg, trials, chosen)
    return {"trials": trials, "chosen": chosen}


def write_results(cfg: TuneConfig, trials: dict[str, dict[str, Any]], chosen: dict[str, dict[str, Any]]) -> None:
    out = Path(cfg.out)
    atomic_write_json(out / "tune.json", {"config": dataclasses.asdict(cfg), "trials": trials, "chosen": chosen})
    lines = [
        "## Per-family tuning",
        "",
        f"Successive halving on `{Path(cfg.data).name}`, training seed {cfg.seed}: every family × controller "
        f"learning rate {', '.join(f'{r:g}' for r in cfg.rates)} (the CNN, which has no controller: its learning "
        f"rate {', '.join(f'{r:g}' for r in cfg.cnn_rates)}) trains {cfg.short_epochs} epochs; each family's "
        f"best rate goes on to {cfg.full_epochs}. Judged by the closed-loop check on {cfg.select_episodes} held-out "
        f"training-split tracks × {cfg.select_duration_s:g} s (off-road events, then mean |lateral|), then the "
        "validation loss; never the test tracks or the suite.",
        "",
        "| trial | round | epochs | kept epoch | off-road | mean abs lateral (m) | val loss | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in trials.items():
        lines.append(
            f"| {name} | {t['round']} | {t['epochs_done']} | {t['best_epoch']} | {t['off_road_events']} | "
            f"{_fmt(t['mean_abs_lateral_m'])} | {_fmt(t['val_loss'])} | {_fmt(t['train_time_s'], '.0f')} |"
        )
    if chosen:
        lines += ["", "| family | rate | of | epochs |", "|---|---|---|---|"]
        lines += [f"| {m} | {c['rate']:g} | {c['field']} | {c['epochs']} |" for m, c in chosen.items()]
        cost = sum(t["train_time_s"] or 0 for t in trials.values())
        lines += ["", f"Cost: {len(trials)} trials, {cost / 60:.0f} min of training in all."]
    atomic_write_text(out / "tune.md", "\n".join(lines) + "\n")


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)
