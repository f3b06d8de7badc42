"""Failed trainings, defined before the results (issue "robustness study at the seed level", item 3).

**The rule.** A training *failed* when its best validation loss (``metrics.best_val_loss`` of its
``config.json``: the loss of the weights it kept) is not below the validation loss of a *constant predictor*:
one that always outputs the mean steering label of the training frames. Both losses are the training loss
(:func:`drive.train.loop.window_loss`: exp(alpha·|y|)-weighted squared error, the checkpoint's ``alpha`` and
``burn_in``) over the same validation windows (``seq_len`` frames, stride ``seq_len``, as training
evaluates) of the split the checkpoint recorded (``data.train_segments`` / ``data.val_segments``; without
them, :meth:`drive.data.sequences.FrameCache.split`'s split from the recorded ``val_fraction`` and
``split_seed``). A run that did not beat the mean has learnt nothing the camera tells.

Failed runs stay in the primary analysis (a family's failure rate is part of what it does); the report
gives the analysis without them beside it. The constant predictor's loss needs the labels, so the training
data must be at hand (the same dataset by its sha256); otherwise a run's failure is unknown, and said so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

RULE = (
    "a training failed when its best validation loss is not below that of a constant predictor (the mean "
    "steering label of its training frames), both by the training loss (exp(alpha·|y|)-weighted squared error, "
    "the checkpoint's alpha and burn-in) on the validation windows of the split it recorded. Failed runs stay "
    "in the primary analysis; the analysis without them is given beside it."
)
"""The rule in one sentence, for the report."""


def constant_predictor_loss(
    labels: np.ndarray,
    offsets: dict[int, int],
    train_segments: Sequence[Any],
    val_segments: Sequence[Any],
    seq_len: int,
    alpha: float,
    burn_in: int = 0,
) -> float:
    """Validation loss of predicting the training frames' mean label everywhere.

    ``labels``: every frame's steering label, episode after episode (``offsets``: episode -> first row, as
    :class:`~drive.data.sequences.FrameCache`); segments are :class:`~drive.data.sequences.Segment`. NaN when
    no validation window fits."""
    import torch

    from drive.data.sequences import window_starts
    from drive.train.loop import window_loss

    train_rows = np.concatenate([np.arange(s.start, s.stop) + offsets[s.episode] for s in train_segments])
    mean = float(labels[train_rows].mean())
    starts = window_starts(list(val_segments), offsets, seq_len, seq_len)
    if not len(starts):
        return float("nan")
    windows = torch.from_numpy(labels[starts[:, None] + np.arange(seq_len)].astype(np.float32))
    return float(window_loss(torch.full_like(windows, mean), windows, alpha, burn_in))


class TrainingData:
    """A dataset's labels, read once, for the failure rule of every checkpoint trained on it."""

    def __init__(self, root: str | Path):
        from drive.data import layout
        from drive.data.reader import DatasetReader, snapshot

        self.root = Path(root)
        self.episodes, fingerprint = snapshot(self.root)
        self.sha256 = fingerprint["sha256"]
        self.reader = DatasetReader(self.root)
        table = self.reader.frames_table(self.episodes)
        self.labels = table[layout.STEERING_LABEL].to_numpy(dtype=np.float32)
        self.lengths = {e: self.reader.episode_length(e) for e in self.episodes}
        self.offsets, o = {}, 0
        for e in self.episodes:
            self.offsets[e] = o
            o += self.lengths[e]

    def split(self, val_fraction: float, split_seed: int) -> tuple[list[Any], list[Any]]:
        """The split training makes (:meth:`drive.data.sequences.FrameCache.split`), from the labels' metadata."""
        from drive.data.sequences import episode_strata, split_segments

        metas = {e: self.reader.episode_meta(e) for e in self.episodes}
        train_only = [e for e in self.episodes if metas[e].get("split") == "train"]
        strata = {e: episode_strata(metas[e]) for e in self.episodes}
        return split_segments(self.lengths, val_fraction, split_seed, train_only, strata)


def training_failure(config: dict[str, Any], data: TrainingData | None) -> dict[str, Any]:
    """The failure rule for one checkpoint's ``config.json``: ``best_val_loss``, ``constant_val_loss``,
    ``failed`` (True / False / None when it cannot be decided) and ``note`` (why not, when not)."""
    from drive.data.sequences import Segment
    from drive.train.config import TrainConfig

    metrics = config.get("metrics") or {}
    training = {**TrainConfig().to_dict(), **(config.get("training") or {})}  # an older checkpoint: the defaults
    recorded = config.get("data") or {}
    out: dict[str, Any] = {"best_val_loss": metrics.get("best_val_loss"), "constant_val_loss": None}
    if not isinstance(recorded, dict):  # trained on several datasets: the study trains on one
        return {**out, "failed": None, "note": "trained on several datasets; the rule reads one"}
    if out["best_val_loss"] is None:
        return {**out, "failed": None, "note": "no validation loss recorded"}
    if data is None or recorded.get("sha256") != data.sha256:
        return {**out, "failed": None, "note": f"training data {recorded.get('name', '?')!r} not at hand"}
    if recorded.get("val_segments") is not None and recorded.get("train_segments") is not None:
        train, val = ([Segment(*map(int, s)) for s in recorded[k]] for k in ("train_segments", "val_segments"))
    else:
        train, val = data.split(float(training["val_fraction"]), int(training["split_seed"]))
    constant = constant_predictor_loss(
        data.labels,
        data.offsets,
        train,
        val,
        int(training["seq_len"]),
        float(training["alpha"]),
        int(training["burn_in"]),
    )
    if not np.isfinite(constant):
        return {**out, "failed": None, "note": "no validation window"}
    return {**out, "constant_val_loss": constant, "failed": bool(out["best_val_loss"] >= constant), "note": ""}


def failure_table(entries: Sequence[Any], data_root: str | Path):
    """One row per zoo entry with a checkpoint: family, train_seed, name and :func:`training_failure`'s fields."""
    import pandas as pd

    from drive.errors import UserError
    from drive.study.zoo import read_checkpoint_config

    try:
        data = TrainingData(data_root) if (Path(data_root) / "meta" / "info.json").is_file() else None
    except (OSError, ValueError, UserError):
        data = None
    rows = []
    for e in entries:
        config = read_checkpoint_config(e.path)
        if config is not None:
            rows.append({"family": e.family, "train_seed": e.seed, "name": e.name, **training_failure(config, data)})
    return pd.DataFrame(
        rows, columns=["family", "train_seed", "name", "best_val_loss", "constant_val_loss", "failed", "note"]
    )
