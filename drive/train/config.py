"""`TrainConfig`: every knob of `drive train`, one dataclass field each, with its docstring as the ``--help`` text.

The command-line flags are generated from the fields by :mod:`drive.commands.train` (``batch_size`` ->
``--batch-size``; booleans that default to true get a ``--no-...`` flag), so the dataclass is the single
place to read them. This module never sees argv.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drive.errors import UserError

LR_SCHEDULES = ("none", "cosine")


@dataclasses.dataclass
class TrainConfig:
    data: str = ""
    """Dataset folder (layout of drive.data.layout) to learn from."""
    model: str = "ncp19"
    """Model: ncp19, lstm, gru, ctrnn, cfc, feedforward (conv head + controller) or cnn (PilotNet)."""
    out: str = ""
    """Checkpoint folder to write (config.json, model.safetensors, train_state/, tensorboard/, figures/)."""
    epochs: int = 10
    """Number of passes over the training windows."""
    batch_size: int = 16
    """Global batch, in sequences; under torchrun each of N processes takes batch_size / N of them."""
    seq_len: int = 16
    """Frames per training sequence (16 in the NCP paper); gradients flow through all of them (BPTT)."""
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
    sharp steering counts more; 2.0 weights full lock 7.4 times a straight-ahead frame; 0 = plain MSE."""
    seed: int = 0
    """Training seed: initialisation, the window order and augmentation (not the split: see split_seed)."""
    split_seed: int = 0
    """Seed of the train/validation split by episode; kept fixed across training seeds, so every seed of a
    study validates on the same episodes."""
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
    solver: str = ""
    """Controller ODE solver passed to the controller (empty: the controller's default)."""
    adjoint: bool = False
    """Backpropagate through the ODE solver with the adjoint method (constant memory), if the controller can."""
    resume: bool = False
    """Continue from OUT/train_state (latest weights, optimiser, epoch and step)."""
    max_steps: int = 0
    """Stop after this many optimiser steps in all (0: no limit); for tests and quick checks."""
    workers: int = 0
    """Background processes that gather batches from the frame cache (0: in the training process)."""
    logdir: str = ""
    """TensorBoard folder (empty: OUT/tensorboard)."""
    cache_dir: str = ""
    """Frame cache folder (empty: DATA/cache)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto (CUDA when there is a GPU)."""
    threads: int = 0
    """torch CPU threads per process (0: torch's default)."""
    progress: bool = True
    """Show progress bars."""
    dagger_rounds: int = 0
    """DAgger rounds after the first training: the policy drives, the expert labels, the data grows, retrain."""
    scenario: str = ""
    """Scenario YAML to drive in for DAgger rounds."""
    dagger_episodes: int = 2
    """Episodes driven by the policy per DAgger round."""
    dagger_epochs: int = 2
    """Training epochs after each DAgger round."""
    dagger_duration_s: float = 0.0
    """Length of each DAgger episode, s (0: the scenario's own)."""

    def validate(self) -> None:
        """Raise :class:`~drive.errors.UserError` naming the first bad option (by its flag) and its value."""

        def need(ok: bool, flag: str, value: Any, what: str) -> None:
            if not ok:
                raise UserError(f"--{flag} {value!r}: {what}")

        need(bool(self.data), "data", self.data, "is required")
        need(bool(self.out), "out", self.out, "is required")
        need(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        need(self.batch_size >= 1, "batch-size", self.batch_size, "must be >= 1")
        need(self.seq_len >= 1, "seq-len", self.seq_len, "must be >= 1")
        need(self.stride >= 0, "stride", self.stride, "must be >= 0")
        need(self.lr_head > 0, "lr-head", self.lr_head, "must be > 0")
        need(self.lr_controller > 0, "lr-controller", self.lr_controller, "must be > 0")
        need(self.grad_clip >= 0, "grad-clip", self.grad_clip, "must be >= 0")
        need(self.alpha >= 0, "alpha", self.alpha, "must be >= 0")
        need(0 <= self.val_fraction < 1, "val-fraction", self.val_fraction, "must be in [0, 1)")
        need(self.augment_noise >= 0, "augment-noise", self.augment_noise, "must be >= 0")
        need(0 <= self.burn_in < self.seq_len, "burn-in", self.burn_in, f"must be in [0, --seq-len {self.seq_len})")
        need(
            self.lr_schedule in LR_SCHEDULES,
            "lr-schedule",
            self.lr_schedule,
            f"must be one of {', '.join(LR_SCHEDULES)}",
        )
        need(0 <= self.ema_decay < 1, "ema-decay", self.ema_decay, "must be in [0, 1)")
        need(0 <= self.val_smoothing < 1, "val-smoothing", self.val_smoothing, "must be in [0, 1)")
        need(self.max_steps >= 0, "max-steps", self.max_steps, "must be >= 0")
        need(self.workers >= 0, "workers", self.workers, "must be >= 0")
        need(self.threads >= 0, "threads", self.threads, "must be >= 0")
        need(0 <= self.hue <= 0.5, "hue", self.hue, "must be in [0, 0.5]")
        for flag in ("brightness", "contrast", "saturation"):
            need(0 <= getattr(self, flag) < 1, flag, getattr(self, flag), "must be in [0, 1)")
        need(0 <= self.shadow_prob <= 1, "shadow-prob", self.shadow_prob, "must be in [0, 1]")
        need(0 <= self.shadow_darkness < 0.9, "shadow-darkness", self.shadow_darkness, "must be in [0, 0.9)")
        need(self.dagger_rounds >= 0, "dagger-rounds", self.dagger_rounds, "must be >= 0")
        need(
            self.dagger_rounds == 0 or bool(self.scenario),
            "scenario",
            self.scenario,
            "is required with --dagger-rounds",
        )
        from drive.policy.perception import MODEL_NAMES

        need(self.model in MODEL_NAMES, "model", self.model, f"must be one of {', '.join(MODEL_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
