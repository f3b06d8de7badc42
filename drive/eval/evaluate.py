"""`drive evaluate`: recorded video as a test bench (the NCP paper's *passive* test), under camera noise.

Each model is run open loop over whole episodes (or the held-out segments) of a dataset, carrying its
recurrent state from frame to frame, with the recorded frame times: the controller is told the time
since the last frame it saw (``dt_s`` from the ``timestamp`` column; the nominal ``1 / fps`` for the
first frame), as in closed loop. Its prediction at each frame is compared with the recorded label.

Perturbations are those of ``drive stress`` (:mod:`drive.eval.perturb`), applied as the closed loop
applies them: a :class:`~drive.eval.perturb.Chain` reset with ``(seed, episode)``, then for each frame
``camera`` and ``deliver``. The same seed gives the same frames out for the same frames in. ``drop``
holds the previous prediction on a lost frame (and the next frame is integrated over the true elapsed
time); ``latency`` shows the model the frame from k frames ago. Physical kinds (``push``,
``actuator``) act on a car, which a recording does not have: they are refused.

Default episodes: those the checkpoint held out for validation (``config.json`` ``data.val_segments``,
written by ``drive train``), when ``--data`` is the dataset it was trained on; otherwise (another
dataset, no provenance) every complete episode, with a printed note naming them.

Figures per model x kind x level x episode (:func:`steering_metrics`): MSE and MAE of the normalised
steering and in radians, the same on curves (|label| > ``curve_threshold``) and on straights, the bias
(mean signed error), the lag that best aligns prediction with label, and the weighted MSE of the
training loss (mean of exp(alpha |label|) (prediction - label)^2). Across episodes: the mean and a
bootstrap 95 % confidence interval (``scipy.stats.bootstrap``, BCa, resampling episodes).

Work is split into *units* (model, kind, level, episode) run in worker processes; each finished unit is
written to ``OUT/units/<unit>.json`` and reused on a rerun when its inputs are unchanged (checkpoint
weights, dataset files, seed, options).

Outputs in ``OUT``: ``metrics.json`` (everything), ``results.csv`` (model x kind x level: mean and CI of
each figure), ``episodes.csv`` (one row per unit), ``report.md``, ``error_<kind>.png`` (MSE and MAE
against level, one line per model, CI bands) and ``videos/<model>/episode_NNN.mp4`` (clean input: the
frame as the model saw it, recorded and predicted steering as a moving trace, neuron activity).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from drive.errors import UserError
from drive.eval.perturb import KINDS, Chain, make, parse_spec
from drive.io import atomic_path, atomic_write_json, atomic_write_text

CLEAN = "clean"
UNIT_FORMAT = 1
OPEN_LOOP_STAGES = ("camera", "timing")
DEFAULT_ALPHA = 2.0
DEFAULT_CURVE_THRESHOLD = 0.1
DEFAULT_MAX_LAG_S = 1.0
EXPERT = "expert"

DEFINITIONS = {
    "frames": "frames compared (prediction vs recorded label)",
    "mse": "mean (prediction - label)^2, normalised steering ([-1, 1] = +-max_steer_rad of the dataset)",
    "mae": "mean |prediction - label|, normalised steering",
    "mse_rad2": "mse in radians^2 of front-wheel angle (normalised x the dataset's max_steer_rad)",
    "mae_rad": "mae in radians of front-wheel angle",
    "weighted_mse": "mean exp(alpha |label|) (prediction - label)^2, normalised: the training loss (NCP paper), alpha in the config",
    "curve_mse": "mse over frames with |label| > curve_threshold (normalised); None when there are none",
    "curve_mae": "mae over those frames",
    "straight_mse": "mse over frames with |label| <= curve_threshold",
    "straight_mae": "mae over those frames",
    "curve_fraction": "share of the frames that are curves",
    "bias": "mean (prediction - label), normalised: > 0 steers too far left on average",
    "bias_rad": "bias in radians",
    "lag_frames": "k in [-max_lag, max_lag] minimising mean (prediction[t + k] - label[t])^2: > 0 = the prediction "
    "follows the label k frames late",
    "lag_s": "lag_frames x the median frame period, s",
    "nonfinite": "non-finite predictions (clamped as in closed loop: NaN -> 0, +-inf -> +-1)",
    "dropped_frames": "frames lost to the drop perturbation (previous prediction held)",
}
FIGURES = (
    "mse",
    "mae",
    "mse_rad2",
    "mae_rad",
    "weighted_mse",
    "curve_mse",
    "curve_mae",
    "straight_mse",
    "straight_mae",
    "bias",
    "bias_rad",
    "lag_frames",
    "lag_s",
)
REPORT_FIGURES = ("mse", "mae_rad", "weighted_mse", "curve_mae", "straight_mae", "bias", "lag_s")


# ------------------------------------------------------------------------------------ metrics


def best_lag(prediction: np.ndarray, label: np.ndarray, max_lag: int) -> int:
    """The shift k (|k| <= max_lag, overlap at least half the frames) minimising mean (p[t + k] - y[t])^2."""
    n = len(label)
    best, best_err = 0, math.inf
    for k in range(-max_lag, max_lag + 1):
        if n - abs(k) < max(1, n // 2):
            continue
        p, y = (prediction[k:], label[: n - k]) if k >= 0 else (prediction[: n + k], label[-k:])
        err = float(np.mean((p - y) ** 2))
        if err < best_err - 1e-15 or (abs(err - best_err) <= 1e-15 and abs(k) < abs(best)):
            best, best_err = k, err
    return best


def steering_metrics(
    prediction: np.ndarray,
    label: np.ndarray,
    max_steer_rad: float,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag: int = 20,
    period_s: float = 0.05,
) -> dict[str, Any]:
    """Open-loop figures of one episode (see ``DEFINITIONS``); ``prediction`` and ``label`` normalised."""
    p = np.asarray(prediction, np.float64)
    y = np.asarray(label, np.float64)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(
            f"steering_metrics: prediction {p.shape} and label {y.shape} must be the same non-empty 1-D shape"
        )
    e = p - y
    curve = np.abs(y) > curve_threshold

    def part(mask: np.ndarray, fn) -> float | None:
        return float(fn(e[mask])) if mask.any() else None

    lag = best_lag(p, y, max_lag)
    return {
        "frames": int(len(e)),
        "mse": float(np.mean(e**2)),
        "mae": float(np.mean(np.abs(e))),
        "mse_rad2": float(np.mean(e**2)) * max_steer_rad**2,
        "mae_rad": float(np.mean(np.abs(e))) * max_steer_rad,
        "weighted_mse": float(np.mean(np.exp(alpha * np.abs(y)) * e**2)),
        "curve_mse": part(curve, lambda x: np.mean(x**2)),
        "curve_mae": part(curve, lambda x: np.mean(np.abs(x))),
        "straight_mse": part(~curve, lambda x: np.mean(x**2)),
        "straight_mae": part(~curve, lambda x: np.mean(np.abs(x))),
        "curve_fraction": float(curve.mean()),
        "bias": float(np.mean(e)),
        "bias_rad": float(np.mean(e)) * max_steer_rad,
        "lag_frames": int(lag),
        "lag_s": float(lag * period_s),
    }


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_resamples: int = 2000) -> tuple[float | None, float | None]:
    """95 % bootstrap CI of the mean across episodes (scipy, BCa; percentile when BCa is undefined).

    None, None with fewer than two values; (v, v) when all values are equal.
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if len(x) < 2:
        return None, None
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (x,),
                np.mean,
                confidence_level=0.95,
                n_resamples=n_resamples,
                method=method,
                random_state=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return None, None


def rank_agreement(x: Sequence[float], y: Sequence[float], seed: int = 0, n_resamples: int = 2000) -> dict[str, Any]:
    """How well ``x`` ranks like ``y`` (e.g. offline error against closed-loop off-road per km, one pair per model).

    Spearman's rho (``scipy.stats.spearmanr``) with its p-value, and a 95 % percentile interval from a paired
    ``scipy.stats.bootstrap`` over the pairs; resamples whose rho is undefined (a constant side) are left out of
    the interval, and their share is reported. rho is None when either side is constant.
    """
    from scipy import stats

    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out: dict[str, Any] = {
        "n": int(len(a)),
        "rho": None,
        "p_value": None,
        "ci_low": None,
        "ci_high": None,
        "undefined_resamples": None,
    }
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    res = stats.spearmanr(a, b)
    out["rho"], out["p_value"] = float(res.statistic), float(res.pvalue)

    def rho(u, v):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            return np.nan
        return stats.spearmanr(u, v).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = stats.bootstrap(
            (a, b),
            rho,
            paired=True,
            vectorized=False,
            n_resamples=n_resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    dist = np.asarray(boot.bootstrap_distribution, np.float64)
    ok = dist[np.isfinite(dist)]
    out["undefined_resamples"] = float(1.0 - len(ok) / len(dist))
    if len(ok):
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(ok, [2.5, 97.5]))
    return out


# ------------------------------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class EvalModel:
    """A driver under evaluation."""

    name: str
    """Label in tables and plots (the checkpoint folder's name, made unique)."""
    source: Any
    """Checkpoint folder (str), ``expert`` (the recorded labels replayed) or a driver object."""
    fingerprint: str
    """SHA-256 of the checkpoint's config.json and weights; ``expert``; or the object's model_name."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of work: a model on one episode segment under one perturbation level."""

    model: EvalModel
    kind: str
    """Perturbation kind, or ``clean``."""
    level: float
    episode: int
    start: int
    """First frame of the segment."""
    stop: int
    """One past its last frame."""

    @property
    def file_name(self) -> str:
        level = f"{self.level:g}".replace("-", "m")
        seg = f"ep{self.episode:03d}" + ("" if self.start == 0 else f"_{self.start}")
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.model.name}__{self.kind}_{level}__{seg}") + ".json"


def make_models(sources: Sequence[Any]) -> list[EvalModel]:
    """Models for checkpoint folders, ``expert`` and driver objects; names made unique."""
    from drive.eval.simulate import resolve_checkpoint
    from drive.eval.stress import fingerprint, unique_name

    models, used = [], set()
    for src in sources:
        if isinstance(src, (str, Path)) and str(src) == EXPERT:
            base, source, fp = EXPERT, EXPERT, EXPERT
        elif isinstance(src, (str, Path)):
            try:
                path = resolve_checkpoint(src)
            except (FileNotFoundError, UserError) as exc:
                raise UserError(f"--checkpoint: {exc}") from None
            base = re.sub(r"[^A-Za-z0-9._-]", "_", path.resolve().name) or "model"
            source, fp = str(path), fingerprint(path)
        else:
            base = re.sub(r"[^A-Za-z0-9._-]", "_", str(getattr(src, "model_name", type(src).__name__))) or "model"
            source, fp = src, f"object:{getattr(src, 'model_name', type(src).__name__)}"
        models.append(EvalModel(unique_name(base, used), source, fp))
    return models


def load_model_driver(model: EvalModel) -> Any:
    from drive.eval.simulate import load_driver

    return load_driver(model.source)


def checkpoint_config(model: EvalModel) -> dict[str, Any] | None:
    if not isinstance(model.source, str) or model.source == EXPERT:
        return None
    from drive.policy.checkpoint import read_config

    return read_config(model.source)


def check_fits(policy: Any, info: Any, data: Path, where: str) -> None:
    """The dataset's frame size and rate must be what the policy was built for; else a one-line UserError."""
    h, w = getattr(policy, "image_height", None), getattr(policy, "image_width", None)
    period = getattr(policy, "frame_period_s", None)
    if h is None and period is None:
        return
    size_ok = h is None or (h, w) == (info.image_height, info.image_width)
    rate_ok = period is None or abs(info.fps * period - 1.0) <= 0.02
    if size_ok and rate_ok:
        return
    want = f"{h}x{w} frames" if h is not None else "frames"
    want += f" at {1.0 / period:.4g} fps" if period is not None else ""
    raise UserError(
        f"--data {data}: {info.image_height}x{info.image_width} frames at {info.fps:.4g} fps "
        f"(meta/info.json) do not fit {where}, which takes {want}"
    )


# ----------------------------------------------------------------------------------- episodes


def _same_dataset(provenance: dict[str, Any], root: Path, reader: Any) -> bool:
    path = provenance.get("path")
    if path and Path(path).resolve() == root.resolve():
        return True
    info = provenance.get("info")
    return (
        info is not None
        and info == reader.info.to_dict()
        and provenance.get("episodes") == reader.episodes
        and provenance.get("frames") == sum(reader.episode_length(e) for e in reader.episodes)
    )


def parse_episodes(text: Any) -> str | list[int]:
    """``validation``, ``all`` or a list ``0,3,5`` (a string or a sequence of ints)."""
    if isinstance(text, str):
        t = text.strip()
        if t in ("validation", "all"):
            return t
        try:
            values = [int(p) for p in t.split(",") if p.strip()]
        except ValueError:
            raise UserError(f"--episodes: expected validation, all or a list like 0,3,5, got {text!r}") from None
    else:
        values = [int(v) for v in text]
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise UserError(f"--episodes: expected distinct episode indices >= 0, got {text!r}")
    return values


def select_segments(
    models: Sequence[EvalModel], root: Path, reader: Any, episodes: str | list[int]
) -> tuple[list[tuple[int, int, int]], str]:
    """The (episode, start, stop) segments to evaluate and a note saying which and why."""
    whole = {e: (e, 0, reader.episode_length(e)) for e in reader.episodes}
    if not whole:
        raise UserError(f"--data {root}: the dataset has no complete episode")
    if isinstance(episodes, list):
        missing = [e for e in episodes if e not in whole]
        if missing:
            raise UserError(
                f"--episodes: episode {missing[0]} is not a complete episode of {root} "
                f"(it has {reader.episodes[0]}..{reader.episodes[-1]}, {len(whole)} in all)"
            )
        segs = [whole[e] for e in sorted(episodes)]
        note = f"episodes {_names(segs)} (as asked)"
        leaked = _training_overlap(models, root, reader, segs)
        return segs, note + (f"; note: {leaked}" if leaked else "")
    if episodes == "all":
        segs = list(whole.values())
        leaked = _training_overlap(models, root, reader, segs)
        return segs, f"all {len(segs)} episodes" + (f"; note: {leaked}" if leaked else "")
    held: list[set] = []
    for m in models:
        cfg = checkpoint_config(m)
        prov = (cfg or {}).get("data") or {}
        if cfg is None:
            continue
        if not prov or "val_segments" not in prov:
            held = []
            reason = f"checkpoint {m.name} records no training split"
            break
        if not _same_dataset(prov, root, reader):
            held = []
            reason = f"{root} is not the dataset checkpoint {m.name} was trained on ({prov.get('path')})"
            break
        held.append({tuple(int(v) for v in s) for s in prov["val_segments"]})
    else:
        reason = "no checkpoint with a recorded training split" if not held else ""
    if held:
        common = sorted(set.intersection(*held))
        if not common:
            raise UserError(
                "--episodes validation: the checkpoints held out no common validation episode; "
                "give --episodes LIST or all"
            )
        return [tuple(s) for s in common], f"validation episodes held out by the checkpoint(s): {_names(common)}"
    segs = list(whole.values())
    return segs, f"{reason}: evaluating all {len(segs)} episodes ({_names(segs)})"


def _names(segs: Sequence[tuple[int, int, int]]) -> str:
    return ", ".join(str(e) if s == 0 else f"{e}[{s}:{t}]" for e, s, t in segs)


def _training_overlap(models: Sequence[EvalModel], root: Path, reader: Any, segs) -> str:
    out = []
    for m in models:
        prov = (checkpoint_config(m) or {}).get("data") or {}
        if prov and _same_dataset(prov, root, reader):
            trained = {int(s[0]) for s in prov.get("train_segments", [])}
            hit = sorted(e for e, _, _ in segs if e in trained)
            if hit:
                out.append(f"{m.name} was trained on episode(s) {', '.join(map(str, hit))}")
    return "; ".join(out)


def data_fingerprint(root: Path, reader: Any, episode: int) -> dict[str, Any]:
    from drive.data import layout

    stamp = {}
    for name, p in (("table", layout.data_path(root, episode)), ("video", layout.video_path(root, episode))):
        st = p.stat()
        stamp[name] = [st.st_size, st.st_mtime_ns]
    return {"info": reader.info.to_dict(), "episode": episode, **stamp}


# ------------------------------------------------------------------------------------ one unit


@dataclasses.dataclass
class OpenLoopRun:
    """What a model did over one segment: per frame (index into the segment)."""

    prediction: np.ndarray
    """Normalised steering in the dataset's units, clamped (N,)."""
    label: np.ndarray
    """Recorded label (N,)."""
    t_s: np.ndarray
    """Timestamps, s (N,)."""
    seen: list[np.ndarray]
    """The frame the model last saw at each step (perturbed, maybe delayed or held)."""
    dropped: np.ndarray
    """True where no frame reached the model (N,)."""
    activity: np.ndarray
    """Neuron activity after each step (N, neurons)."""
    nonfinite: int


def segment_dt(t_s: np.ndarray, fps: float, where: str) -> np.ndarray:
    """Time since the previous frame, s; the nominal period for the first; UserError when time does not increase."""
    d = np.diff(np.asarray(t_s, np.float64))
    if len(d) and d.min() <= 0:
        k = int(np.argmin(d)) + 1
        raise UserError(f"{where}: column 'timestamp' does not increase at frame {k} ({t_s[k - 1]} then {t_s[k]})")
    return np.concatenate([[1.0 / fps], d])


def perturbed_frames(frames: Sequence[np.ndarray], kind: str, level: float, seed: int, episode: int):
    """Yield (seen frame or None when lost, index of the frame shown) per frame, as the closed loop perturbs.

    Same chain and seeding as :func:`drive.eval.rollout.run_episode`: ``Chain([make(kind, level)])``
    reset with ``(seed, episode)``; ``camera`` then ``deliver`` per frame.
    """
    chain = Chain([] if kind == CLEAN else [make(kind, level)])
    chain.reset((seed, episode), frames[0].shape)
    for i, frame in enumerate(frames):
        delivered = chain.deliver((chain.camera(frame), i))
        yield (None, None) if delivered is None else delivered


def run_open_loop(
    policy: Any,
    frames: np.ndarray,
    label: np.ndarray,
    t_s: np.ndarray,
    fps: float,
    data_max_steer_rad: float,
    kind: str = CLEAN,
    level: float = 0.0,
    seed: int = 0,
    episode: int = 0,
    where: str = "episode",
    activity: bool = True,
    batched: bool = True,
    chunk: int = 128,
) -> OpenLoopRun:
    """Run a driver over recorded frames, state carried, true elapsed time; see the module docstring.

    A :class:`~drive.policy.model.DrivingPolicy` under a camera perturbation (or none), when the neuron
    activity is not wanted (``activity=False``) and ``batched``, runs ``chunk`` frames per call of its
    ``forward`` (the conv head on the whole chunk, the controller over the sequence, the state carried):
    the same computation as one ``step`` per frame, several times faster. Otherwise one ``step`` per frame.
    """
    from drive.eval.rollout import clamp_steering, policy_step

    dt = segment_dt(t_s, fps, where)
    scale = (policy.max_steer_rad / data_max_steer_rad) if getattr(policy, "max_steer_rad", None) else 1.0
    if batched and not activity and (kind == CLEAN or KINDS[kind].cls.stage == "camera"):
        from drive.policy.model import DrivingPolicy

        if isinstance(policy, DrivingPolicy):
            return _run_batched(policy, frames, label, t_s, dt, scale, kind, level, seed, episode, chunk)
    state = policy.initial_state(1)
    n = len(frames)
    pred = np.zeros(n, np.float64)
    dropped = np.zeros(n, bool)
    seen, acts = [], []
    steering, last_seen, since = 0.0, frames[0], dt[0]
    nonfinite = 0
    for i, (frame, j) in enumerate(perturbed_frames(frames, kind, level, seed, episode)):
        if i > 0:
            since += dt[i]
        if frame is None:
            dropped[i] = True
        else:
            info = {"expert_steering": float(label[j]), "timestamp": float(t_s[j])}
            raw, state = policy_step(policy, frame, info, state, since)
            steering, bad = clamp_steering(raw * scale)
            nonfinite += int(bad)
            since = 0.0
            last_seen = frame
        pred[i] = steering
        seen.append(last_seen)
        acts.append(np.asarray(policy.neuron_activity(state))[0])
    activity = np.stack(acts) if acts and acts[0].size else np.zeros((n, 0), np.float32)
    return OpenLoopRun(
        pred, np.asarray(label, np.float64), np.asarray(t_s, np.float64), seen, dropped, activity, nonfinite
    )


def _run_batched(policy: Any, frames, label, t_s, dt, scale, kind, level, seed, episode, chunk) -> OpenLoopRun:
    import torch

    from drive.eval.rollout import clamp_steering

    seen = [f for f, _ in perturbed_frames(frames, kind, level, seed, episode)]
    raw = []
    state = None
    with torch.inference_mode():
        for s in range(0, len(seen), chunk):
            x = torch.from_numpy(np.stack(seen[s : s + chunk]))[None]
            d = torch.from_numpy(np.asarray(dt[s : s + chunk], np.float32))[None]
            y, state = policy(x, state, d)
            raw.append(y[0].float().cpu().numpy().astype(np.float64))
    clamped = [clamp_steering(float(v) * scale) for v in np.concatenate(raw)]
    n = len(seen)
    return OpenLoopRun(
        np.array([c[0] for c in clamped]),
        np.asarray(label, np.float64),
        np.asarray(t_s, np.float64),
        seen,
        np.zeros(n, bool),
        np.zeros((n, 0), np.float32),
        int(sum(c[1] for c in clamped)),
    )


_DRIVERS: dict[str, Any] = {}
_EPISODES: dict[tuple, tuple] = {}


def _worker_driver(model: EvalModel) -> Any:
    if not isinstance(model.source, str):
        return model.source
    if model.source not in _DRIVERS:
        _DRIVERS[model.source] = load_model_driver(model)
    return _DRIVERS[model.source]


def load_segment(root: Path, episode: int, start: int, stop: int):
    """(frames, label, t_s, info) of a segment; the last two decoded episodes are kept per process."""
    from drive.data import layout
    from drive.data.reader import DatasetReader

    key = (str(root), episode)
    if key not in _EPISODES:
        reader = DatasetReader(root)
        table = reader.episode_table(episode)
        frames = reader.read_frames(episode)
        if len(_EPISODES) >= 2:
            _EPISODES.pop(next(iter(_EPISODES)))
        _EPISODES[key] = (
            frames,
            table[layout.STEERING_LABEL].to_numpy(np.float64),
            table[layout.TIMESTAMP].to_numpy(np.float64),
            reader.info,
        )
    frames, label, t_s, info = _EPISODES[key]
    return frames[start:stop], label[start:stop], t_s[start:stop], info


def unit_key(unit: Unit, options: dict[str, Any], data_stamp: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": UNIT_FORMAT,
        "model": unit.model.name,
        "fingerprint": unit.model.fingerprint,
        "kind": unit.kind,
        "level": unit.level,
        "segment": [unit.episode, unit.start, unit.stop],
        "options": options,
        "data": data_stamp,
    }


def run_unit(
    unit: Unit, root: str, options: dict[str, Any], key: dict[str, Any], path: str, video_path: str | None
) -> dict[str, Any]:
    """Compute one unit, write its video (if asked) and its JSON atomically; returns what was written."""
    start_time = time.perf_counter()
    policy = _worker_driver(unit.model)
    frames, label, t_s, info = load_segment(Path(root), unit.episode, unit.start, unit.stop)
    from drive.data import layout

    run = run_open_loop(
        policy,
        frames,
        label,
        t_s,
        info.fps,
        info.max_steer_rad,
        unit.kind,
        unit.level,
        options["seed"],
        unit.episode,
        where=str(layout.data_path(Path(root), unit.episode)),
        activity=bool(video_path),
    )
    period = float(np.median(np.diff(t_s))) if len(t_s) > 1 else 1.0 / info.fps
    figures = steering_metrics(
        run.prediction,
        run.label,
        info.max_steer_rad,
        options["alpha"],
        options["curve_threshold"],
        max(0, int(round(options["max_lag_s"] / period))),
        period,
    )
    figures.update(nonfinite=run.nonfinite, dropped_frames=int(run.dropped.sum()))
    if video_path:
        write_overlay_video(
            Path(video_path),
            run,
            info.fps,
            getattr(policy, "neuron_labels", []) or [],
            f"{unit.model.name}  episode {unit.episode}",
        )
    result = {
        "key": key,
        "model": unit.model.name,
        "kind": unit.kind,
        "level": unit.level,
        "episode": unit.episode,
        "start": unit.start,
        "stop": unit.stop,
        "metrics": figures,
        "video": video_path,
        "elapsed_s": time.perf_counter() - start_time,
    }
    atomic_write_json(path, result)
    return result


# -------------------------------------------------------------------------------------- video


def trace_panel(
    label: np.ndarray, prediction: np.ndarray, i: int, height: int, width: int, window: int = 200
) -> np.ndarray:
    """Recorded (green) and predicted (orange) steering over the last ``window`` frames, newest on the right."""
    import cv2

    from drive.eval.video import BACKGROUND, EXPERT_RGB, GREY, POLICY_RGB

    panel = np.full((height, width, 3), BACKGROUND, np.uint8)
    lo = max(0, i + 1 - window)
    mid, half = height // 2, (height - 30) / 2
    cv2.line(panel, (0, mid), (width - 1, mid), (60, 60, 60), 1)
    for y_val in (-1, 1):
        y = int(round(mid - y_val * half))
        cv2.line(panel, (0, y), (width - 1, y), (45, 45, 45), 1)
    xs = width - 1 - (i - np.arange(lo, i + 1)) * (width - 1) / max(1, window - 1)
    for values, color in ((label, EXPERT_RGB), (prediction, POLICY_RGB)):
        ys = mid - np.clip(values[lo : i + 1], -1.2, 1.2) * half
        pts = np.stack([xs, ys], axis=1).round().astype(np.int32)[None]
        cv2.polylines(panel, pts, False, color, 1, cv2.LINE_AA)
    cv2.putText(panel, "recorded", (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, EXPERT_RGB, 1, cv2.LINE_AA)
    cv2.putText(panel, "predicted", (90, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, POLICY_RGB, 1, cv2.LINE_AA)
    cv2.putText(panel, f"steering, last {window} frames", (6, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, GREY, 1, cv2.LINE_AA)
    return panel


def write_overlay_video(path: Path, run: OpenLoopRun, fps: float, neuron_labels: Sequence[str], title: str) -> None:
    """One picture per frame through :mod:`drive.eval.video`: seen frame, steering bars and trace, neurons."""
    from drive.eval.video import Compositor, video_writer

    h, w = run.seen[0].shape[:2]
    comp = Compositor((h, w), neuron_labels)
    map_h = comp.cam_h + comp.steer_h
    path.parent.mkdir(parents=True, exist_ok=True)
    with video_writer(path, fps, (comp.height, comp.width)) as vw:
        for i in range(len(run.seen)):
            err = run.prediction[i] - run.label[i]
            lines = [title, f"t {run.t_s[i]:6.2f} s   error {err:+.3f}"]
            panel = trace_panel(run.label, run.prediction, i, map_h, comp.map_w)
            activity = run.activity[i] if run.activity.shape[1] else None
            picture = comp.compose(
                run.seen[i],
                run.prediction[i],
                run.label[i],
                panel,
                activity,
                [],
                "frame dropped" if run.dropped[i] else None,
            )
            import cv2

            for k, line in enumerate(lines):
                cv2.putText(
                    picture,
                    line,
                    (comp.cam_w + 6, 14 + 14 * k + 16),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.38,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
            vw.write(picture)


# ------------------------------------------------------------------------------------ results


def summary_rows(
    units: Sequence[dict[str, Any]],
    models: Sequence[EvalModel],
    sweeps: Sequence[tuple[str, Sequence[float]]],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per model x kind x level (level 0 = the clean units): mean over episodes, CI, pooled MSE."""
    by: dict[tuple, list] = {}
    for u in units:
        by.setdefault((u["model"], u["kind"], float(u["level"])), []).append(u)
    kinds = [(k, sorted({0.0, *map(float, lv)})) for k, lv in sweeps] or [(CLEAN, [0.0])]
    rows = []
    for m in models:
        for kind, levels in kinds:
            for level in levels:
                found = by.get((m.name, CLEAN, 0.0) if level == 0 else (m.name, kind, level), [])
                if not found:
                    continue
                found = sorted(found, key=lambda u: (u["episode"], u["start"]))
                frames = np.array([u["metrics"]["frames"] for u in found], float)
                row = {
                    "model": m.name,
                    "kind": kind,
                    "level": level,
                    "episodes": len(found),
                    "frames": int(frames.sum()),
                    "pooled_mse": float(
                        np.sum([u["metrics"]["mse"] * u["metrics"]["frames"] for u in found]) / frames.sum()
                    ),
                }
                for f in FIGURES:
                    vals = [u["metrics"][f] for u in found if u["metrics"].get(f) is not None]
                    row[f] = float(np.mean(vals)) if vals else None
                    row[f"{f}_ci_low"], row[f"{f}_ci_high"] = bootstrap_ci(vals, seed)
                row["nonfinite"] = int(sum(u["metrics"]["nonfinite"] for u in found))
                row["dropped_frames"] = int(sum(u["metrics"]["dropped_frames"] for u in found))
                rows.append(row)
    return rows


def plot_error(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """``error_<kind>.png``: MSE (normalised) and MAE (rad) against level, one line per model, 95 % CI bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind in sorted({r["kind"] for r in rows if r["kind"] != CLEAN}):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for model in dict.fromkeys(r["model"] for r in rows):
            sel = sorted((r for r in rows if r["kind"] == kind and r["model"] == model), key=lambda r: r["level"])
            for ax, f in zip(axes, ("mse", "mae_rad")):
                x = np.array([r["level"] for r in sel])
                y = np.array([r[f] for r in sel], float)
                (line,) = ax.plot(x, y, marker="o", label=model)
                lo = np.array([np.nan if r[f"{f}_ci_low"] is None else r[f"{f}_ci_low"] for r in sel], float)
                hi = np.array([np.nan if r[f"{f}_ci_high"] is None else r[f"{f}_ci_high"] for r in sel], float)
                if np.isfinite(lo).any():
                    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        for ax, ylabel in zip(axes, ("steering MSE (normalised)", "steering MAE (rad)")):
            ax.set_xlabel(f"{kind}: {KINDS[kind].axis}")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Open-loop steering error under {kind} (bands: 95 % bootstrap CI over episodes)")
        fig.tight_layout()
        path = out_dir / f"error_{kind}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


def report_markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    from drive.eval.metrics import format_table

    table = []
    for r in rows:
        row = {"model": r["model"], "kind": r["kind"], "level": f"{r['level']:g}", "episodes": r["episodes"]}
        for f in REPORT_FIGURES:
            v, lo, hi = r.get(f), r.get(f"{f}_ci_low"), r.get(f"{f}_ci_high")
            row[f] = "–" if v is None else (f"{v:.3g}" + ("" if lo is None else f" [{lo:.3g}, {hi:.3g}]"))
        table.append(row)
    lines = (
        [
            "# Open-loop evaluation on recorded data",
            "",
            f"Dataset `{config['data']}` ({config['fps']:g} fps, max steering {config['max_steer_rad']:g} rad); "
            f"{config['episode_note']}.",
            f"Perturbation seed {config['seed']}; weighted MSE with alpha = {config['alpha']:g}; curves: "
            f"|label| > {config['curve_threshold']:g}. Figures: mean over episodes [95 % bootstrap CI]. Level 0 is "
            "clean input.",
            "",
            format_table(table, ("model", "kind", "level", "episodes", *REPORT_FIGURES)),
            "",
        ]
        + (
            [
                f"**Interrupted**: {config['finished']} of {config['units']} unit(s) finished; the table shows "
                "those (a rerun computes the rest).",
                "",
            ]
            if config.get("interrupted")
            else []
        )
        + [
            "Definitions:",
            "",
        ]
        + [f"- `{k}`: {v}" for k, v in DEFINITIONS.items()]
        + [""]
    )
    if config.get("plots"):
        lines += ["## Error against level", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in config["plots"]] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- evaluate


def check_options(
    workers: int = 1,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
) -> None:
    """The numeric options of :func:`evaluate`, each a one-line :class:`UserError` naming the flag and value.

    ``alpha`` is bounded as the training loss's (``drive.train.config.MAX_ALPHA``): the weight
    exp(alpha |label|) of full lock then stays finite, and far from overflowing, in float32 and float64."""
    from drive.train.config import MAX_ALPHA

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise UserError(f"--workers: must be a whole number >= 0, got {workers!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise UserError(f"--seed: must be a whole number 0 <= seed < 2**32, got {seed!r}")
    for name, value in (("--alpha", alpha), ("--curve-threshold", curve_threshold), ("--max-lag-s", max_lag_s)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise UserError(f"{name}: must be a number >= 0, got {value!r}")
    if alpha > MAX_ALPHA:
        raise UserError(
            f"--alpha: must be between 0 and {MAX_ALPHA:g} (the training loss's bound: the weight exp(alpha |label|) "
            f"overflows past it), got {alpha!r}"
        )


def evaluate(
    models: Sequence[Any],
    data: str | Path,
    out: str | Path,
    perturb: Sequence[str | tuple[str, Sequence[float]]] = (),
    episodes: str | Sequence[int] = "validation",
    workers: int = 1,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    curve_threshold: float = DEFAULT_CURVE_THRESHOLD,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    video: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate (or resume) and write the results; see the module docstring.

    ``models``: checkpoint folders, ``expert`` (the recorded labels replayed through the same pipeline) or
    driver objects (in-process only, ``workers <= 1`` unless picklable). Returns ``{"rows", "units",
    "episodes", "note", "computed", "reused"}``.
    """
    from tqdm.auto import tqdm

    from drive.data.reader import DatasetReader
    from drive.io import output_lock

    if not models:
        raise UserError("--checkpoint: give at least one checkpoint")
    check_options(workers, seed, alpha, curve_threshold, max_lag_s)
    sweeps = []
    for p in perturb:
        kind, levels = parse_spec(p) if isinstance(p, str) else (p[0], [KINDS[p[0]].check(v) for v in p[1]])
        if KINDS[kind].cls.stage not in OPEN_LOOP_STAGES:
            raise UserError(
                f"--perturb {kind}: acts on the car ({KINDS[kind].cls.stage}), which a recording does not "
                f"have; open loop takes {', '.join(k for k, v in KINDS.items() if v.cls.stage in OPEN_LOOP_STAGES)}"
            )
        sweeps.append((kind, levels))
    root = Path(data)
    try:
        reader = DatasetReader(root)
    except (FileNotFoundError, UserError) as exc:
        raise UserError(f"--data: {exc}") from None
    episode_spec = parse_episodes(episodes)
    eval_models = make_models(models)
    for m in eval_models:  # check before any work: the dataset must fit every checkpoint
        check_fits(
            load_model_driver(m) if isinstance(m.source, str) else m.source,
            reader.info,
            root,
            f"--checkpoint {m.source if isinstance(m.source, str) else m.name}",
        )
    segments, note = select_segments(eval_models, root, reader, episode_spec)
    options = {
        "seed": int(seed),
        "alpha": float(alpha),
        "curve_threshold": float(curve_threshold),
        "max_lag_s": float(max_lag_s),
        "video": bool(video),
    }
    out_dir = Path(out)
    unit_dir = out_dir / "units"
    with output_lock(out_dir):
        unit_dir.mkdir(parents=True, exist_ok=True)
        stamps = {e: data_fingerprint(root, reader, e) for e, _, _ in segments}
        levels = [(CLEAN, 0.0)] + list(dict.fromkeys((k, float(lv)) for k, lvs in sweeps for lv in lvs if lv != 0))
        plan = [Unit(m, k, lv, e, s, t) for m in eval_models for e, s, t in segments for k, lv in levels]
        done, todo = [], []
        for u in plan:
            key = unit_key(u, options, stamps[u.episode])
            stored = _load_finished(unit_dir / u.file_name, key)
            (done.append(stored) if stored is not None else todo.append((u, key)))
        reused = len(done)

        def args(u: Unit, key: dict) -> tuple:
            vpath = (
                str(out_dir / "videos" / u.model.name / f"episode_{u.episode:03d}.mp4")
                if video and u.kind == CLEAN
                else None
            )
            return (u, str(root), options, key, str(unit_dir / u.file_name), vpath)

        def write(interrupted: bool = False) -> list[dict[str, Any]]:
            """results.csv, episodes.csv, metrics.json and report.md first, then the plots (not on Ctrl-C)."""
            import pandas as pd

            order = {u.file_name: i for i, u in enumerate(plan)}
            done.sort(key=lambda r: order.get(_file_of(r, eval_models), 0))
            rows = summary_rows(done, eval_models, sweeps, seed)
            config = {
                "data": str(root),
                "fps": reader.info.fps,
                "max_steer_rad": reader.info.max_steer_rad,
                "models": [
                    {
                        "name": m.name,
                        "checkpoint": m.source if isinstance(m.source, str) else None,
                        "fingerprint": m.fingerprint,
                    }
                    for m in eval_models
                ],
                "perturbations": [[k, list(v)] for k, v in sweeps],
                "episodes": [list(s) for s in segments],
                "episode_note": note,
                **options,
                "units": len(plan),
                "finished": len(done),
                "computed": len(done) - reused,
                "reused": reused,
                "interrupted": interrupted,
                "plots": [],
            }
            episode_rows = [
                {
                    "model": u["model"],
                    "kind": u["kind"],
                    "level": u["level"],
                    "episode": u["episode"],
                    "start": u["start"],
                    "stop": u["stop"],
                    **u["metrics"],
                }
                for u in done
            ]
            metrics = {
                "config": config,
                "definitions": DEFINITIONS,
                "rows": rows,
                "episodes": episode_rows,
                "videos": [u["video"] for u in done if u.get("video")],
            }
            with atomic_path(out_dir / "results.csv") as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
            with atomic_path(out_dir / "episodes.csv") as tmp:
                pd.DataFrame(episode_rows).to_csv(tmp, index=False)
            atomic_write_json(out_dir / "metrics.json", metrics)
            atomic_write_text(out_dir / "report.md", report_markdown(rows, config))
            if not interrupted:  # the plots last: they cannot cost the tables
                config["plots"] = plot_error(rows, out_dir)
                atomic_write_json(out_dir / "metrics.json", metrics)
                atomic_write_text(out_dir / "report.md", report_markdown(rows, config))
            return rows

        bar = tqdm(total=len(plan), initial=reused, desc="evaluate", unit="unit", disable=not progress)
        try:
            if workers <= 1 or len(todo) <= 1:
                for u, key in todo:
                    done.append(run_unit(*args(u, key)))
                    bar.update()
            else:
                from drive.eval.backends import worker_pool

                with worker_pool(workers) as pool:  # leaving it by Ctrl-C stops the workers at once
                    futures = [pool.submit(run_unit, *args(u, key)) for u, key in todo]
                    for fut in cf.as_completed(futures):
                        done.append(fut.result())
                        bar.update()
        except KeyboardInterrupt:  # the finished units are on disk for a rerun; summarise them, then stop
            bar.close()
            write(interrupted=True)
            raise
        finally:
            bar.close()
        rows = write()
    return {"rows": rows, "units": done, "episodes": segments, "note": note, "computed": len(todo), "reused": reused}


def _file_of(record: dict[str, Any], models: Sequence[EvalModel]) -> str:
    m = next((m for m in models if m.name == record["model"]), None)
    if m is None:
        return ""
    return Unit(m, record["kind"], float(record["level"]), record["episode"], record["start"], record["stop"]).file_name


def _load_finished(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if stored.get("key") != json.loads(json.dumps(key)):
        return None
    if stored.get("video") and not Path(stored["video"]).is_file():
        return None
    return stored


# ------------------------------------------------------------------------ explain --data frames


@dataclasses.dataclass
class RecordedTrace:
    """Frames of a recorded episode and a driver's open-loop run over them (for ``drive explain --data``)."""

    frames: np.ndarray
    """Clean recorded frames, RGB uint8 (N, H, W, 3)."""
    t_s: list[float]
    steering: list[float]
    """The driver's prediction per frame (normalised, dataset units)."""
    expert: list[float]
    """The recorded label per frame."""
    activity: list[np.ndarray]
    fps: float
    name: str
    """``DATA episode E``, for titles."""


def recorded_trace(
    policy: Any, data: str | Path, episode: int | None = None, duration_s: float | None = None
) -> RecordedTrace:
    """Frames of one episode of a dataset (default: its first) and the driver's open-loop run over them.

    ``duration_s`` keeps only the first seconds. The dataset must fit the policy (size and frame rate).
    """
    from drive.data.reader import DatasetReader

    root = Path(data)
    try:
        reader = DatasetReader(root)
    except (FileNotFoundError, UserError) as exc:
        raise UserError(f"--data: {exc}") from None
    if not reader.episodes:
        raise UserError(f"--data {root}: the dataset has no complete episode")
    episode = reader.episodes[0] if episode is None else int(episode)
    if episode not in reader.episodes:
        raise UserError(
            f"--episode: {episode} is not a complete episode of {root} ({len(reader.episodes)} episodes, "
            f"{reader.episodes[0]}..{reader.episodes[-1]})"
        )
    check_fits(policy, reader.info, root, "--checkpoint")
    n = reader.episode_length(episode)
    if duration_s is not None:
        n = max(1, min(n, int(round(duration_s * reader.info.fps))))
    frames, label, t_s, info = load_segment(root, episode, 0, n)
    run = run_open_loop(policy, frames, label, t_s, info.fps, info.max_steer_rad, episode=episode)
    return RecordedTrace(
        np.asarray(frames),
        list(t_s - t_s[0]),
        list(run.prediction),
        list(run.label),
        list(run.activity),
        info.fps,
        f"{root.name} episode {episode}",
    )
