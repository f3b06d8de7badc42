"""The study's settings in one dataclass: which families and training seeds, how the training data is recorded,
the training budget, the noise levels, the evaluation's size and where everything goes.

The command line (:mod:`drive.commands.study`) fills a :class:`StudyConfig` from flags (or a YAML file); the
library never sees argv. The shipped checkpoints were made with these defaults (seed 0 of each family), so
the study reuses them instead of training them again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from drive.errors import UserError

MODELS = ("ncp19", "cnn", "lstm", "gru", "cfc", "ctrnn")
"""The families the NCP paper compares (Lechner et al., Nature MI 2020), in the order of its tables."""

PAPER_LEVELS = (0.01, 0.04, 0.09, 0.1, 0.2, 0.3)
"""Gaussian camera-noise variances σ² on images scaled to [0, 1]. Both readings of the NCP paper: standard
deviations σ = 0.1, 0.2, 0.3 (its replay scripts; σ² 0.01, 0.04, 0.09) and variances 0.1, 0.2, 0.3 (its text)."""

STAGES = ("record", "train", "stress", "suite", "explain", "report")
"""The study's stages, in order; each skips what is finished, so a rerun resumes."""

VARIANT = "noise"
"""Label of the noise-augmented variant (trained with ``augment_noise``), kept apart from the plain zoo."""


@dataclasses.dataclass
class RecordingConfig:
    """How the training data is recorded (``drive record`` of the randomized training worlds with DART noise)."""

    scenario: str = "train"
    """Scenario YAML (or shipped name) of the training worlds: training-split tracks only."""
    episodes: int = 120
    """Episodes to record (120 × 20 s: 40 minutes of driving in 120 drawn worlds; chosen on the closed-loop
    check by tools/check_data_levers.py, docs/guide/tune.md)."""
    duration_s: float = 20.0
    """Length of each recorded episode, s (shorter than the scenario's 60 s: more worlds per minute of driving)."""
    noise_injection: float = 0.25
    """DART: std of the noise added to the applied steering while recording, normalised units."""
    seed: int = 0
    """Seed of the recording (tracks, start poses, worlds, noise); a recording repeats byte for byte."""


TUNED_LR_CONTROLLER = {"ncp19": 5e-3, "lstm": 1.2e-2, "gru": 2e-3, "cfc": 5e-3, "ctrnn": 5e-3}
"""Each family's controller learning rate as ``drive tune`` chose it (checkpoints/tune/tune.md)."""
TUNED_LR_HEAD = {"cnn": 5e-4}
"""The CNN's one learning rate as ``drive tune`` chose it."""


@dataclasses.dataclass
class TrainingBudget:
    """The training recipe every zoo checkpoint shares, on top of :class:`~drive.train.config.TrainConfig`'s
    defaults. The defaults are the recipe ``drive tune`` and ``tools/check_data_levers.py`` chose (issue 22;
    docs/guide/tune.md); the shipped checkpoints are trained with it."""

    epochs: int = 4
    """Epochs per training: 4 epochs of the 120-episode recording are 600 optimizer steps for every family."""
    batch_size: int = 16
    """Batch, in sequences."""
    lr_controller: dict[str, float] = dataclasses.field(default_factory=lambda: dict(TUNED_LR_CONTROLLER))
    """Controller learning rate per family (family -> rate); a family not named keeps TrainConfig's default."""
    lr_head: dict[str, float] = dataclasses.field(default_factory=lambda: dict(TUNED_LR_HEAD))
    """Head learning rate per family (family -> rate): the CNN's one rate, which ``drive tune`` chooses."""
    family_epochs: dict[str, int] = dataclasses.field(default_factory=dict)
    """Epochs per family (family -> epochs) where tuning chose another budget than ``epochs``."""
    overrides: dict[str, Any] = dataclasses.field(default_factory=lambda: {"select_by": "closed_loop"})
    """Other TrainConfig fields for every training (field -> value), e.g. ``{"seq_len": 8, "device": "cuda"}``;
    by default the kept epoch is the one that drives best on the closed-loop check."""


@dataclasses.dataclass
class StudyConfig:
    """Every knob of ``drive study``. Paths are relative to the working folder (run it from the repository)."""

    models: tuple[str, ...] = MODELS
    """Families to train and compare."""
    seeds: tuple[int, ...] = tuple(range(10))
    """Training seeds per family (the plan's ten); seed 0 is the shipped ``<ckpt_root>/<model>``, seed k
    ``zoo/<model>-s<k>``."""
    levels: tuple[float, ...] = PAPER_LEVELS
    """Gaussian noise variances σ² of the stress sweep (clean input is always added)."""
    noise_seeds: int = 3
    """Noise seeds per test track: stress seeds 10·k + t for noise seed k and track t."""
    tracks: int = 10
    """Test tracks the stress sweep drives (1..10; fewer only for quick checks)."""
    out: str = "checkpoints/study"
    """Study outputs: tables, plots, the stress cells and the suite folders."""
    ckpt_root: str = "checkpoints"
    """Checkpoints: ``<ckpt_root>/<model>`` (seed 0) and ``<ckpt_root>/zoo/``."""
    data: str = "data/train"
    """Training recordings, recorded there when missing."""
    recording: RecordingConfig = dataclasses.field(default_factory=RecordingConfig)
    """How the training data is recorded."""
    budget: TrainingBudget = dataclasses.field(default_factory=TrainingBudget)
    """The training recipe."""
    noise_augment: float | None = None
    """Also train and evaluate the noise-augmented variant (``augment_noise`` = this σ²); None = off."""
    retrain_stale: bool = False
    """Delete and retrain checkpoints trained on other data or with other options (else the study stops)."""
    backend: str = "local"
    """local (this machine) or ray (trainings and stress cells as Ray tasks)."""
    address: str | None = None
    """With backend ray: the cluster to join (auto = the running one; None starts a local Ray)."""
    cpus_per_task: float = 1.0
    """With backend ray: CPUs each training declares."""
    gpus_per_task: float | None = None
    """With backend ray: GPUs each training declares (None: 1 when the cluster has a GPU)."""
    workers: int = 2
    """Parallel stress and suite workers."""
    duration_s: float | None = None
    """Length of the evaluation episodes, s (None: the scenario's own)."""
    suite_tracks: int = 10
    """Test tracks per suite case."""
    suite_cases: tuple[str, ...] = ()
    """Only these suite cases (empty: all of scenarios/suite/)."""
    explain_episodes: int = 3
    """Clean episodes per checkpoint of the explain stage (reset seeds 0, 1, …: test tracks 1000, 1001, …)."""
    explain_frames: int = 40
    """Frames per episode the saliency SSIM is averaged over (explain stage)."""
    stages: tuple[str, ...] = STAGES
    """Stages to run, in STAGES order."""
    progress: bool = True
    """Show progress bars."""

    def validate(self) -> None:
        """Raise :class:`~drive.errors.UserError` naming the first bad field and its value."""

        def need(ok: bool, field: str, value: Any, what: str) -> None:
            if not ok:
                raise UserError(f"study: {field} {value!r}: {what}")

        need(len(self.models) > 0 and set(self.models) <= set(MODELS), "models", self.models, f"choose from {MODELS}")
        need(len(set(self.models)) == len(self.models), "models", self.models, "are not distinct")
        need(
            len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
            "seeds",
            self.seeds,
            "must be distinct whole numbers >= 0",
        )
        need(levels_ok(self.levels), "levels", self.levels, "must be distinct variances in (0, 1]")
        need(self.noise_seeds >= 1, "noise_seeds", self.noise_seeds, "must be >= 1")
        need(1 <= self.tracks <= 10, "tracks", self.tracks, "must be in 1..10")
        need(1 <= self.suite_tracks <= 10, "suite_tracks", self.suite_tracks, "must be in 1..10")
        need(self.explain_episodes >= 1, "explain_episodes", self.explain_episodes, "must be >= 1")
        need(self.explain_frames >= 1, "explain_frames", self.explain_frames, "must be >= 1")
        need(self.recording.episodes >= 1, "recording.episodes", self.recording.episodes, "must be >= 1")
        need(self.budget.epochs >= 1, "budget.epochs", self.budget.epochs, "must be >= 1")
        need(self.budget.batch_size >= 1, "budget.batch_size", self.budget.batch_size, "must be >= 1")
        for name in ("lr_controller", "lr_head"):
            for model, rate in getattr(self.budget, name).items():
                need(model in MODELS, f"budget.{name}", model, f"is not a family of {MODELS}")
                need(math.isfinite(rate) and rate > 0, f"budget.{name}.{model}", rate, "must be > 0")
        for model, epochs in self.budget.family_epochs.items():
            need(model in MODELS, "budget.family_epochs", model, f"is not a family of {MODELS}")
            need(isinstance(epochs, int) and epochs >= 1, f"budget.family_epochs.{model}", epochs, "must be >= 1")
        need(self.workers >= 1, "workers", self.workers, "must be >= 1")
        need(self.backend in ("local", "ray"), "backend", self.backend, "must be local or ray")
        need(
            self.noise_augment is None or (math.isfinite(self.noise_augment) and self.noise_augment > 0),
            "noise_augment",
            self.noise_augment,
            "must be a variance > 0",
        )
        need(
            len(self.stages) > 0 and all(s in STAGES for s in self.stages),
            "stages",
            self.stages,
            f"choose from {STAGES}",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def levels_ok(levels: tuple[float, ...]) -> bool:
    """Noise variances σ² a study or results run may sweep: at least one, distinct, each in (0, 1]."""
    return len(levels) > 0 and len(set(levels)) == len(levels) and all(math.isfinite(v) and 0 < v <= 1 for v in levels)


def stress_seeds(tracks: int, noise_seeds: int) -> list[int]:
    """Stress seed 10·k + t drives test track 1000 + t with noise seed k (one episode per cell)."""
    return [10 * k + t for k in range(noise_seeds) for t in range(tracks)]
