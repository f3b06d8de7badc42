"""`TrainConfig`: every knob of `drive train`, one dataclass field each, with its docstring as the ``--help`` text.

The command-line flags are generated from the fields by :mod:`drive.commands.train` (``batch_size`` ->
``--batch-size``; booleans that default to true get a ``--no-...`` flag), so the dataclass is the single
place to read them. This module never sees argv.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from drive.errors import UserError
from drive.eval.metrics import MAX_ALPHA

LR_SCHEDULES = ("none", "cosine")
SELECT_BY = ("val_loss", "closed_loop")

#: Bounds on the flags that set how much work a run does (generous, finite: a typo is refused, not run).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 4096
MAX_SEQ_LEN = 10_000
MAX_STEPS = 10**9
MAX_WORKERS = 64
MAX_THREADS = 1024
MAX_DAGGER_ROUNDS = 1000
MAX_DAGGER_EPISODES = 10_000
MAX_DAGGER_DURATION_S = 86_400.0
MAX_VIEWPOINT_OFFSET_M = 3.0
"""Largest starting offset of a recovery view, m (the replay world intervenes at 1 m)."""
MAX_VIEWPOINT_YAW_RAD = 0.35
"""Largest starting heading error of a recovery view, rad (~20 deg: past 10 deg the unfilled share grows fast)."""
MIN_VIEWPOINT_HORIZON_S, MAX_VIEWPOINT_HORIZON_S = 0.1, 10.0
"""Bounds on the recovery horizon, s."""
MAX_SEED = 2**32 - 1
"""As ``drive.commands.common.SEED_LIMIT`` (exclusive there): the seeds every verb takes."""

RESUME_MAY_CHANGE = (
    "epochs",
    "max_steps",
    "out",
    "resume",
    "progress",
    "threads",
    "workers",
    "device",
    "logdir",
    "cache_dir",
    "dagger_rounds",
    "scenario",
    "dagger_episodes",
    "dagger_epochs",
    "dagger_duration_s",
)
"""Options ``--resume`` lets differ from the recorded run: how long to go on (``epochs`` extends the training,
``max_steps``), where and how it runs (``threads``, ``workers``, ``device``: the same arithmetic up to float
rounding; ``progress``; ``logdir``; ``cache_dir``: the same frames, decoded elsewhere; ``out``: the folder may
have been moved) and the DAgger rounds to add after it. ``data`` must be the same datasets in the same order,
each by folder name and content (SHA-256). Every other option decides the batches, the model or the optimisation; a resumed run
takes it from ``config.json``, and a value given that differs is refused in one line naming it. With
``--lr-schedule cosine``, a larger ``--epochs`` stretches the schedule over the new total from the current step."""


@dataclasses.dataclass
class TrainConfig:
    data: str = ""
    """Dataset folder (layout of drive.data.layout) to learn from; several as one comma-separated value
    (--data A,B; so a folder name cannot hold a comma): they must share frame size, fps and max_steer_rad, and
    are split by episode across all of them (one frame cache per dataset)."""
    model: str = "ncp19"
    """Model: ncp19, lstm, gru, ctrnn, cfc, feedforward (conv head + controller) or cnn (PilotNet)."""
    out: str = ""
    """Checkpoint folder to write (config.json, model.safetensors, train_state/, tensorboard/, figures/)."""
    epochs: int = 10
    """Number of passes over the training windows (1 to 100,000)."""
    batch_size: int = 16
    """Global batch, in sequences (1 to 4096); under torchrun each of N processes takes batch_size / N of them."""
    seq_len: int = 16
    """Frames per training sequence (16 in the NCP paper; 1 to 10,000); gradients flow through all of them (BPTT)."""
    stride: int = 0
    """Frames between the starts of consecutive windows of an episode; 0 means seq_len (no overlap)."""
    lr_head: float = 5e-4
    """Learning rate of the perception head (AdamW)."""
    lr_controller: float = 5e-3
    """Learning rate of the controller (AdamW); the ODE parameters of the LTC like a larger one."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay, for both parameter groups."""
    grad_clip: float = 1.0
    """Largest global L2 norm of the gradient before a step; 0 disables clipping."""
    alpha: float = 2.0
    """Loss weighting: each sample's squared error is weighted by exp(alpha * |label|) (NCP paper), so rare
    sharp steering counts more; 2.0 weights full lock 7.4 times a straight-ahead frame; 0 = plain MSE (at most 10)."""
    seed: int = 0
    """Training seed, 0 <= seed < 2**32: initialisation, the window order and augmentation (not the split: see
    split_seed)."""
    split_seed: int = 0
    """Seed of the train/validation split by episode (0 <= seed < 2**32); kept fixed across training seeds, so
    every seed of a study validates on the same episodes."""
    val_fraction: float = 0.2
    """Share of the episodes kept for validation (one-episode datasets: share of its last frames)."""
    augment: bool = True
    """Photometric (brightness, contrast, saturation, hue) and shadow augmentation, the same for every
    frame of a sequence."""
    brightness: float = 0.3
    """Brightness factor drawn from [1 - brightness, 1 + brightness]."""
    contrast: float = 0.3
    """Contrast factor drawn from [1 - contrast, 1 + contrast]."""
    saturation: float = 0.3
    """Saturation factor drawn from [1 - saturation, 1 + saturation]."""
    hue: float = 0.0
    """Hue shift drawn from [-hue, hue], in turns of the colour wheel (at most 0.5). Off by default: torchvision's
    HSV round trip costs about 0.6 ms per 78x200 frame on CPU, over a tenth of a training step; 0.05 is a good value."""
    shadow_prob: float = 0.5
    """Probability that a sequence gets a shadow: a random dark quadrilateral spanning the image's height."""
    shadow_darkness: float = 0.6
    """Shadowed pixels are multiplied by a factor drawn from [1 - shadow_darkness, 0.9]."""
    augment_noise: float = 0.0
    """Gaussian pixel-noise augmentation: each sequence gets noise of a variance drawn from [0, augment_noise] on
    images scaled to [0, 1] (fresh noise every frame, after the photometric changes and the shadow), the same
    noise model as ``drive stress --perturb gaussian``; 0 = off (the default: the NCP paper trained without it)."""
    viewpoint_augment: bool = False
    """Recovery views (drive.train.viewpoint): a training window, with probability viewpoint_prob, is re-rendered
    from a car that starts off the recorded path (a lateral offset and a heading error drawn uniformly within
    --viewpoint-max-offset-m and --viewpoint-max-yaw-rad) and recovers along the window, labelled with the
    steering that brings it back (recorded steering plus a correction that settles offset and heading in about
    viewpoint_horizon_s). Needs the dataset's camera (drive record stores it; drive import --camera-height-m
    --camera-pitch-rad --fov-deg) and speed; only windows of such episodes are changed."""
    viewpoint_prob: float = 0.5
    """Recovery views: the probability that a training window is re-rendered from off the path (0 to 1)."""
    viewpoint_max_offset_m: float = 1.0
    """Recovery views: the starting lateral offset is drawn from [-this, this], m (0 to 3)."""
    viewpoint_max_yaw_rad: float = 0.0873
    """Recovery views: the starting heading error is drawn from [-this, this], rad (0 to 0.35; 0.0873 = 5 deg)."""
    viewpoint_horizon_s: float = 1.0
    """Recovery views: the time the corrected steering takes to settle offset and heading (critically damped over
    a lookahead of speed x this, at least 4 m), s (0.1 to 10)."""
    burn_in: int = 0
    """Unscored frames at the start of each window: the controller runs over them (its state warms up) but the
    loss counts only the later frames, so it learns to use its memory; 0 = every frame scored. Validation scores
    the same frames."""
    lr_schedule: str = "none"
    """Learning-rate schedule over all training steps: none (constant) or cosine (from the set rates down to 0
    at the last step of the last epoch)."""
    ema_decay: float = 0.0
    """Exponential moving average of the weights (torch.optim.swa_utils, decay per step): validation, the best
    checkpoint and the saved model use the averaged weights; 0 = off."""
    val_smoothing: float = 0.0
    """The best checkpoint is chosen on an exponentially smoothed validation loss,
    s_k = val_smoothing * s_(k-1) + (1 - val_smoothing) * val_k, so a lucky noisy epoch does not win; 0 = raw."""
    select_by: str = "val_loss"
    """How the kept epoch is chosen: val_loss (the lowest validation loss) or closed_loop (the policy that drives
    best on training-split tracks the dataset never recorded, in the randomized training worlds: fewest off-road
    events, then lowest mean |lateral offset|; drive.train.selection). Every epoch's figure goes to config.json."""
    select_episodes: int = 12
    """closed_loop selection: check episodes per epoch (one held-out training track and reset seed each), dealt
    round-robin over the check scenarios; 12 with two scenarios drives each lane position once in each."""
    select_scenario: str = "train,nominal"
    """closed_loop selection: the check's scenarios, comma-separated names or files whose tracks are the
    training split (train: the randomized worlds; nominal: the default camera and look in every lane position)."""
    select_duration_s: float = 15.0
    """closed_loop selection: length of each check episode, s."""
    select_from_epoch: int = 1
    """closed_loop selection: the first epoch (1-based) that is checked; earlier epochs are never kept."""
    solver: str = ""
    """Controller ODE solver passed to the controller (empty: the controller's default)."""
    adjoint: bool = False
    """Backpropagate through the ODE solver with the adjoint method (constant memory), if the controller can."""
    resume: bool = False
    """Continue from OUT/train_state (latest weights, optimiser, epoch and step). Options not given are the
    recorded ones; only --epochs, --max-steps, --progress, --threads, --workers, --device, --logdir, --cache-dir
    and the DAgger options may differ from them (any other is refused), and --data must be the recorded
    dataset(s), in order (folder name and content of each)."""
    max_steps: int = 0
    """Stop after this many optimiser steps in all (0: no limit; at most 10**9); for tests and quick checks."""
    workers: int = 0
    """Background processes that gather batches from the frame cache (0: in the training process; at most 64)."""
    logdir: str = ""
    """TensorBoard folder (empty: OUT/tensorboard)."""
    cache_dir: str = ""
    """Frame cache folder (empty: DATA/cache); with several datasets, one subfolder per dataset, CACHE_DIR/K-NAME
    (K its place in --data from 1, NAME its folder name)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto (CUDA when there is a GPU)."""
    threads: int = 0
    """torch CPU threads per process (0: torch's default; at most 1024)."""
    progress: bool = True
    """Show progress bars."""
    dagger_rounds: int = 0
    """DAgger rounds after the first training (at most 1000): the policy drives, the expert labels, the data
    grows, retrain."""
    scenario: str = ""
    """Scenario YAML to drive in for DAgger rounds."""
    dagger_episodes: int = 2
    """Episodes driven by the policy per DAgger round (1 to 10,000)."""
    dagger_epochs: int = 2
    """Training epochs after each DAgger round (1 to 100,000)."""
    dagger_duration_s: float = 0.0
    """Length of each DAgger episode, s (0: the scenario's own; at most 86,400)."""

    def validate(self) -> None:
        """Raise :class:`~drive.errors.UserError` naming the first bad option (by its flag) and its value."""

        def need(ok: bool, flag: str, value: Any, what: str) -> None:
            if not ok:
                raise UserError(f"--{flag} {value!r}: {what}")

        for f in dataclasses.fields(self):  # the types first, so the comparisons below cannot raise
            value, kind = getattr(self, f.name), _FIELD_TYPES[f.name]
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            need(
                ok, f.name.replace("_", "-"), value, f"must be {'a finite number' if kind is float else kind.__name__}"
            )

        def between(flag: str, value: Any, low: Any, high: Any) -> None:
            need(low <= value <= high, flag, value, f"must be in [{low}, {high}]")

        need(bool(self.data), "data", self.data, "is required")
        paths = self.datasets()
        need(all(paths), "data", self.data, "holds an empty folder name (several datasets: --data A,B)")
        named = [str(Path(p).resolve()) for p in paths]
        twice = next((p for p, r in zip(paths, named) if named.count(r) > 1), None)
        need(twice is None, "data", self.data, f"names the dataset {twice} twice")
        need(bool(self.out), "out", self.out, "is required")
        between("epochs", self.epochs, 1, MAX_EPOCHS)
        between("batch-size", self.batch_size, 1, MAX_BATCH_SIZE)
        between("seq-len", self.seq_len, 1, MAX_SEQ_LEN)
        between("stride", self.stride, 0, MAX_SEQ_LEN)
        between("seed", self.seed, 0, MAX_SEED)
        between("split-seed", self.split_seed, 0, MAX_SEED)
        need(self.lr_head > 0, "lr-head", self.lr_head, "must be > 0")
        need(self.lr_controller > 0, "lr-controller", self.lr_controller, "must be > 0")
        need(self.weight_decay >= 0, "weight-decay", self.weight_decay, "must be >= 0")
        need(self.grad_clip >= 0, "grad-clip", self.grad_clip, "must be >= 0")
        between("alpha", self.alpha, 0, MAX_ALPHA)
        need(0 <= self.val_fraction < 1, "val-fraction", self.val_fraction, "must be in [0, 1)")
        need(self.augment_noise >= 0, "augment-noise", self.augment_noise, "must be >= 0")
        need(0 <= self.viewpoint_prob <= 1, "viewpoint-prob", self.viewpoint_prob, "must be in [0, 1]")
        between("viewpoint-max-offset-m", self.viewpoint_max_offset_m, 0, MAX_VIEWPOINT_OFFSET_M)
        between("viewpoint-max-yaw-rad", self.viewpoint_max_yaw_rad, 0, MAX_VIEWPOINT_YAW_RAD)
        between("viewpoint-horizon-s", self.viewpoint_horizon_s, MIN_VIEWPOINT_HORIZON_S, MAX_VIEWPOINT_HORIZON_S)
        need(0 <= self.burn_in < self.seq_len, "burn-in", self.burn_in, f"must be in [0, --seq-len {self.seq_len})")
        need(
            self.lr_schedule in LR_SCHEDULES,
            "lr-schedule",
            self.lr_schedule,
            f"must be one of {', '.join(LR_SCHEDULES)}",
        )
        need(0 <= self.ema_decay < 1, "ema-decay", self.ema_decay, "must be in [0, 1)")
        need(0 <= self.val_smoothing < 1, "val-smoothing", self.val_smoothing, "must be in [0, 1)")
        need(self.select_by in SELECT_BY, "select-by", self.select_by, f"must be one of {', '.join(SELECT_BY)}")
        need(1 <= self.select_episodes <= 100, "select-episodes", self.select_episodes, "must be in 1..100")
        from drive.train.selection import split_names

        need(
            bool(split_names(self.select_scenario)),
            "select-scenario",
            self.select_scenario,
            "must name one or more scenarios",
        )
        need(
            math.isfinite(self.select_duration_s) and 0 < self.select_duration_s <= 600,
            "select-duration-s",
            self.select_duration_s,
            "must be in (0, 600] s",
        )
        need(
            1 <= self.select_from_epoch <= max(1, self.epochs),
            "select-from-epoch",
            self.select_from_epoch,
            f"must be in 1..--epochs {self.epochs}",
        )
        between("max-steps", self.max_steps, 0, MAX_STEPS)
        between("workers", self.workers, 0, MAX_WORKERS)
        between("threads", self.threads, 0, MAX_THREADS)
        need(0 <= self.hue <= 0.5, "hue", self.hue, "must be in [0, 0.5]")
        for flag in ("brightness", "contrast", "saturation"):
            need(0 <= getattr(self, flag) < 1, flag, getattr(self, flag), "must be in [0, 1)")
        need(0 <= self.shadow_prob <= 1, "shadow-prob", self.shadow_prob, "must be in [0, 1]")
        need(0 <= self.shadow_darkness < 0.9, "shadow-darkness", self.shadow_darkness, "must be in [0, 0.9)")
        between("dagger-rounds", self.dagger_rounds, 0, MAX_DAGGER_ROUNDS)
        between("dagger-episodes", self.dagger_episodes, 1, MAX_DAGGER_EPISODES)
        between("dagger-epochs", self.dagger_epochs, 1, MAX_EPOCHS)
        between("dagger-duration-s", self.dagger_duration_s, 0, MAX_DAGGER_DURATION_S)
        need(
            self.dagger_rounds == 0 or len(paths) == 1,
            "data",
            self.data,
            f"--dagger-rounds trains on one dataset, not {len(paths)}",
        )
        need(
            not self.viewpoint_augment or len(paths) == 1,
            "data",
            self.data,
            f"--viewpoint-augment takes one dataset, not {len(paths)}",
        )
        need(
            self.dagger_rounds == 0 or bool(self.scenario),
            "scenario",
            self.scenario,
            "is required with --dagger-rounds",
        )
        from drive.policy.perception import MODEL_NAMES

        need(self.model in MODEL_NAMES, "model", self.model, f"must be one of {', '.join(MODEL_NAMES)}")

    def datasets(self) -> list[str]:
        """The dataset folders of ``data``, in order (its comma-separated items, stripped)."""
        return [p.strip() for p in self.data.split(",")]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str, "bool": bool}[
        f.type if isinstance(f.type, str) else f.type.__name__
    ]
    for f in dataclasses.fields(TrainConfig)
}


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def recorded_value(recorded: dict[str, Any], key: str, where: str) -> Any:
    """``recorded[key]`` (the ``training`` section of a checkpoint's config.json), checked for its type."""
    value, kind = recorded[key], _FIELD_TYPES[key]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise UserError(f"{where}: field 'training.{key}' is {value!r}, expected {kind.__name__}")
    return value


def check_resume(cfg: TrainConfig, recorded: dict[str, Any], where: str) -> None:
    """Refuse, in one line naming the flag, both values and the file, an option that differs from the run
    recorded in ``where`` (its ``training`` section) and is not one of :data:`RESUME_MAY_CHANGE`.

    ``data`` is not compared here (the checkpoint records only its folder name): :func:`drive.train.loop.train`
    compares the dataset's name and SHA-256 with the recorded provenance.
    """
    for key in _FIELD_TYPES:
        if key in RESUME_MAY_CHANGE or key == "data" or key not in recorded:
            continue
        value = recorded_value(recorded, key, where)
        if value != getattr(cfg, key):
            raise UserError(
                f"--resume: {_flag(key)} {getattr(cfg, key)!r} differs from {where}'s {value!r} "
                f"(only {', '.join(_flag(k) for k in RESUME_MAY_CHANGE if k not in ('out', 'resume'))} may change)"
            )


def resumed_config(given: dict[str, Any], recorded: dict[str, Any], where: str) -> TrainConfig:
    """The config of a resumed run: the options ``given`` on the command line, and for every other option
    the value recorded in ``where`` (so ``--resume`` repeats the recorded run without repeating its flags).
    A given option that differs from the recorded one is refused by :func:`check_resume`."""
    values = dict(given)
    for key in _FIELD_TYPES:
        if key not in values and key in recorded and key not in RESUME_MAY_CHANGE and key != "data":
            values[key] = recorded_value(recorded, key, where)
    cfg = TrainConfig(**values)
    check_resume(cfg, recorded, where)
    return cfg
