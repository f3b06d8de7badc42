"""`drive train`: learn steering from a dataset by imitation, read top to bottom (cleanrl style).

1. Data: decode the dataset once into the frame cache (:class:`drive.data.sequences.FrameCache`), split
   it by episode, cut windows of ``seq_len`` frames.
2. Model: :func:`drive.policy.build_policy`; AdamW with one learning rate for the conv head and one for
   the controller (:func:`make_optimizer`).
3. Loop: for each global batch of sequences, augment (seeded from seed, epoch and batch), then one
   :func:`train_step`: run the policy over the whole sequence from a zero state (backpropagation through
   time), loss = mean of exp(alpha*|y|) * (prediction - y)^2, clip the gradient, step. A progress bar
   shows loss and frames/s; TensorBoard gets train loss, frames/s and the learning rates (``lr/head``,
   ``lr/controller``) per step. Protocol options, all off by default: ``burn_in`` leaves
   the first frames of each window unscored (:func:`window_loss`), ``lr_schedule`` scales the rates per
   step (:func:`lr_factor`), ``ema_decay`` keeps an EMA of the weights (:func:`make_ema`) that is then
   validated and saved, ``augment_noise`` adds Gaussian pixel noise (:mod:`drive.train.augment`).
4. Each epoch: validate, plot predicted against label steering on a validation episode
   (``figures/validation-epoch-NNN.png``), keep the best weights as ``model.safetensors``: by validation
   loss (smoothed over epochs with ``val_smoothing``), or with ``select_by=closed_loop`` by how the policy
   drives held-out training-split tracks (:mod:`drive.train.selection`; every checked epoch's figure goes
   to ``config.json``); write ``config.json`` and the resumable ``train_state/`` (all atomically). Whenever
   the kept weights change, the epoch's figure is copied to ``figures/validation-best.png``. TensorBoard gets
   the validation loss and MSE, the checked epochs' closed-loop figures (``closed_loop/*``) and the figure as
   an image (``val/prediction``); at the end of the run the hyperparameters (:func:`hparams_of`).

Reliability: rank 0 holds ``OUT``'s lock (:func:`drive.io.output_lock`) for the whole run, so a second run
into the folder fails at once; the dataset's episodes and fingerprint are taken together under the dataset's
lock (:func:`drive.data.reader.snapshot`); several datasets (``--data A,B``) train as one
(:class:`drive.data.sequences.MultiFrameCache`), each snapshotted, cached and recorded on its own
(:func:`data_provenance`). Every save writes ``train_state/`` and then ``config.json`` last,
so a run that fails (a full disk: one line naming the file) leaves either a resumable folder or one a fresh
run may start over (:func:`_check_fresh_out`). ``--resume`` keeps the recorded options
(:data:`drive.train.config.RESUME_MAY_CHANGE`) and dataset. The first Ctrl-C stops after the step in
progress, saves the state of that step (``--resume`` goes on exactly) and raises KeyboardInterrupt.

Under ``torchrun --nproc-per-node N`` the same code runs DistributedDataParallel: every process draws the
same global batch order, takes its slice of ``batch_size / N`` sequences, gradients are averaged, and
only rank 0 writes. All randomness comes from (seed, epoch, batch), so a resumed run continues exactly
where the uninterrupted one would be.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from drive.data import layout
from drive.data.reader import check_same_format, snapshot
from drive.data.sequences import FrameCache, MultiFrameCache, Segment, SequenceDataset, open_frame_cache
from drive.errors import UserError
from drive.io import atomic_write_json, hash_file, output_lock
from drive.policy.checkpoint import (
    CONFIG_FILE,
    TRAIN_STATE_DIR,
    WEIGHTS_FILE,
    checkpoint_config,
    load_train_state,
    naming_path,
    read_config,
    save_train_state,
    save_weights,
)
from drive.policy.model import DrivingPolicy, build_policy
from drive.train.augment import Augmenter, batch_generator, slice_params
from drive.train.config import TrainConfig, check_resume
from drive.train.distributed import Distributed, init_distributed
from drive.train.figures import validation_figure
from drive.train.viewpoint import ViewpointAugmenter


def weighted_mse(prediction: torch.Tensor, label: torch.Tensor, alpha: float) -> torch.Tensor:
    """mean(exp(alpha * |label|) * (prediction - label)^2): sharp steering weighs more (NCP paper)."""
    weight = torch.exp(alpha * label.abs()) if alpha else torch.ones_like(label)
    return (weight * (prediction - label) ** 2).mean()


def scored(x: torch.Tensor, burn_in: int) -> torch.Tensor:
    """The frames of each window that count in the loss: all but the first ``burn_in`` (dim 1 is time)."""
    return x[:, burn_in:] if burn_in else x


def window_loss(prediction: torch.Tensor, label: torch.Tensor, alpha: float, burn_in: int = 0) -> torch.Tensor:
    """The training loss of a batch of windows (B, T): :func:`weighted_mse` over the scored frames only."""
    return weighted_mse(scored(prediction, burn_in), scored(label, burn_in), alpha)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rates for the step after ``step`` steps done: 1 for ``none``; for
    ``cosine``, 0.5 * (1 + cos(pi * step / total_steps)), from 1 at the first step towards 0 at the last."""
    if schedule == "none":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


EMA_FILE = "ema.safetensors"
"""The EMA weights at the latest step (with ``--ema-decay``), beside ``train_state/``, for resuming."""


def make_ema(policy: DrivingPolicy, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``policy``'s weights and buffers (decay per update)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def controller_overrides(cfg: TrainConfig) -> dict[str, Any]:
    """Controller options given on the command line (only those set, so each controller keeps its defaults)."""
    out: dict[str, Any] = {}
    if cfg.solver:
        out["solver"] = cfg.solver
    if cfg.adjoint:
        out["adjoint"] = True
    return out


def planned_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """The optimiser steps the whole run takes: ``epochs`` x ``batches_per_epoch``, at most ``max_steps`` (the
    horizon of the learning-rate schedule)."""
    total = cfg.epochs * batches_per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps else total


def make_augmenter(cfg: TrainConfig) -> Augmenter | None:
    """The training augmentation of ``cfg``: the full one with ``augment``, Gaussian pixel noise alone with
    only ``augment_noise``, else none."""
    if cfg.augment:
        return Augmenter.from_config(cfg)
    return Augmenter.noise_only(cfg.augment_noise) if cfg.augment_noise else None


def make_optimizer(policy: DrivingPolicy, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over two parameter groups: the head's at ``cfg.lr_head`` and, when there is one, the
    controller's at ``cfg.lr_controller`` (in that order), with ``cfg.weight_decay``."""
    groups = [{"params": list(policy.head.parameters()), "lr": cfg.lr_head}]
    if policy.controller is not None:
        groups.append({"params": list(policy.controller.parameters()), "lr": cfg.lr_controller})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    step: int,
    total_steps: int,
    base_lrs: Sequence[float],
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    policy: torch.nn.Module | None = None,
) -> torch.Tensor:
    """One optimiser step on a batch of windows ``(frames, steering, dt)`` (already on the device), ``step``
    steps done before it; returns the batch's loss (detached).

    Forward from a zero state over whole windows (BPTT), :func:`window_loss` (``cfg.alpha``, ``cfg.burn_in``),
    backward, clip the gradient norm to ``cfg.grad_clip`` (0: no clipping), set the rates to ``base_lrs``
    times :func:`lr_factor` (``cfg.lr_schedule``), step, update ``ema``. ``model`` runs the forward (a
    DistributedDataParallel wrapper or the policy itself); ``policy`` (default ``model``) is what is clipped
    and averaged.
    """
    policy = model if policy is None else policy
    frames, steering, dt = batch
    prediction, _ = model(frames, None, dt)
    loss = window_loss(prediction, steering, cfg.alpha, cfg.burn_in)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
    if cfg.lr_schedule != "none":
        factor = lr_factor(cfg.lr_schedule, step, total_steps)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
    optimizer.step()
    if ema is not None:
        ema.update_parameters(policy)
    return loss.detach()


@contextlib.contextmanager
def single_threaded():
    """Run torch's CPU ops in the calling thread only for the block, then restore the thread count.

    For augmentation (:meth:`Augmenter.apply`): a loop of small element-wise ops, one sequence at a time.
    Each op split over an OpenMP team ends in a barrier; when other processes hold the cores, a barrier
    waits for a descheduled thread (a scheduler time slice, ~12 ms), so a batch took 2-3 s instead of
    ~0.1 s (tools/bench_train.py). The result is the same bytes (DataLoader workers already augment with
    one thread).
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class EpochBatches(torch.utils.data.Dataset):
    """Item k = this process's slice of global batch ``first + k`` of an epoch, augmented.

    A Dataset (not a generator) so that a DataLoader with workers can build batches in the background;
    each item depends only on (seed, epoch, batch), never on what was drawn before.
    """

    def __init__(
        self,
        data: SequenceDataset,
        order: np.ndarray,
        batch_size: int,
        first: int,
        rank: int,
        world_size: int,
        augmenter: Augmenter | None,
        seed: int,
        epoch: int,
        viewpoint: ViewpointAugmenter | None = None,
    ):
        self.data, self.order, self.batch_size, self.first = data, order, batch_size, first
        self.viewpoint = viewpoint
        self.local = batch_size // world_size
        self.lo = rank * self.local
        self.augmenter, self.seed, self.epoch = augmenter, seed, epoch
        self.count = len(order) // batch_size - first

    def __len__(self) -> int:
        return max(0, self.count)

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        b = self.first + k
        window = self.order[b * self.batch_size : (b + 1) * self.batch_size][self.lo : self.lo + self.local]
        frames, steering, dt = self.data.get_batch(window)
        if self.viewpoint is not None:  # first the geometry (recovery views), then the photometric changes
            rows = self.data.rows(window)
            frames, steering = self.viewpoint.augment_batch(
                frames, steering, rows, self.seed, self.epoch, b, self.batch_size, self.lo
            )
        if self.augmenter is not None:
            c = self.data.cache
            params = self.augmenter.sample(
                self.batch_size, c.info.image_height, c.info.image_width, batch_generator(self.seed, self.epoch, b)
            )
            with single_threaded():
                frames = self.augmenter.apply(frames, slice_params(params, self.lo, self.lo + self.local))
        return frames, steering, dt


@torch.no_grad()
def evaluate(policy: DrivingPolicy, data: SequenceDataset, cfg: TrainConfig, dist: Distributed) -> dict[str, float]:
    """Weighted loss and plain MSE over all validation windows (shared out between processes)."""
    policy.eval()
    mine = np.arange(dist.rank, len(data), dist.world_size)
    sums = [0.0, 0.0, 0.0]  # weighted squared error, squared error, sequences
    for i in range(0, len(mine), cfg.batch_size):
        frames, steering, dt = (t.to(dist.device) for t in data.get_batch(mine[i : i + cfg.batch_size]))
        pred, _ = policy(frames, None, dt)
        pred, steering = scored(pred, cfg.burn_in), scored(steering, cfg.burn_in)
        n = frames.shape[0]
        sums[0] += weighted_mse(pred, steering, cfg.alpha).item() * n
        sums[1] += torch.mean((pred - steering) ** 2).item() * n
        sums[2] += n
    total = dist.sum(sums)
    policy.train()
    if total[2] == 0:
        return {}
    return {"loss": total[0] / total[2], "mse": total[1] / total[2], "sequences": int(total[2])}


@torch.no_grad()
def predict_segment(
    policy: DrivingPolicy, cache: FrameCache, segment: Segment, device: torch.device, chunk: int = 256
) -> np.ndarray:
    """Steering predicted over a whole segment, state carried from frame to frame (as in closed loop)."""
    policy.eval()
    o = cache.offsets[segment.episode]
    state, out = None, []
    for s in range(segment.start, segment.stop, chunk):
        e = min(segment.stop, s + chunk)
        frames = torch.from_numpy(np.array(cache.frames[o + s : o + e]))[None].to(device)
        dt = torch.from_numpy(cache.dt_s[o + s : o + e])[None].to(device)
        pred, state = policy(frames, state, dt)
        out.append(pred[0].float().cpu().numpy())
    policy.train()
    return np.concatenate(out)


def dataset_fingerprint(root: str | os.PathLike) -> dict[str, Any]:
    """Where a checkpoint's data came from, without a machine path: the dataset folder's name and a SHA-256
    of its content (every file under it, by relative path, size and bytes; the frame cache ``cache/`` and
    hidden files such as the lock excluded)."""
    root = Path(root)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(
            part.startswith(".") or (i == 0 and part == "cache") for i, part in enumerate(p.relative_to(root).parts)
        )
    )
    for p in files:
        digest.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\0".encode())
        hash_file(digest, p)
    return {"name": root.resolve().name, "sha256": digest.hexdigest(), "files": len(files)}


#: TrainConfig fields that hold a path; a checkpoint records only their last component (no machine paths).
PATH_FIELDS = ("data", "out", "logdir", "cache_dir", "scenario")


def recorded_training_config(cfg: TrainConfig) -> dict[str, Any]:
    """The ``training`` section of config.json: the config, its paths cut to their last component (each
    dataset's, with several: ``A,B``)."""
    d = cfg.to_dict()
    for key in PATH_FIELDS:
        if d.get(key):
            d[key] = ",".join(Path(p).name for p in cfg.datasets()) if key == "data" else Path(d[key]).name
    return d


def data_provenance(
    cache: FrameCache | MultiFrameCache,
    fingerprints: list[dict[str, Any]],
    train_data: SequenceDataset,
    val_data: SequenceDataset,
) -> dict[str, Any] | list[dict[str, Any]]:
    """The ``data`` section of config.json: for each dataset its fingerprint (:func:`drive.data.reader.snapshot`:
    name, SHA-256, files), its episodes and frames, its training and validation segments ``[episode, start,
    stop]`` and windows, and its ``info.json``. One dataset: that object (as every checkpoint before several
    datasets); several: a list of them, in ``--data``'s order, each by the dataset's own episode indices."""

    def one(fingerprint, part, offset, train, val, rows):
        return {
            **fingerprint,
            "episodes": part.episodes,
            "frames": part.num_frames,
            "train_segments": [[s.episode - offset, s.start, s.stop] for s in train],
            "val_segments": [[s.episode - offset, s.start, s.stop] for s in val],
            "train_windows": int(np.count_nonzero((train_data.starts >= rows[0]) & (train_data.starts < rows[1]))),
            "val_windows": int(np.count_nonzero((val_data.starts >= rows[0]) & (val_data.starts < rows[1]))),
            "info": part.info.to_dict(),
        }

    if not isinstance(cache, MultiFrameCache):
        return one(fingerprints[0], cache, 0, train_data.segments, val_data.segments, (0, cache.num_frames))
    return [
        one(
            fingerprint,
            part,
            cache.bases[k],
            [s for s in train_data.segments if cache.locate(s.episode)[0] == k],
            [s for s in val_data.segments if cache.locate(s.episode)[0] == k],
            cache.rows[k],
        )
        for k, (fingerprint, part) in enumerate(zip(fingerprints, cache.caches))
    ]


def recorded_sections(out: Path) -> tuple[dict[str, Any], dict[str, Any] | list[dict[str, Any]]]:
    """The ``training`` and ``data`` sections of ``out``'s config.json (each checked to be an object; ``data``
    may be a list of objects, one per dataset: :func:`data_provenance`), for ``--resume``."""
    if not (out / CONFIG_FILE).exists() and out.is_dir():
        raise UserError(
            f"{out}: nothing to resume: no {CONFIG_FILE} (a run stopped before its first save leaves none); "
            "start again without --resume"
        )
    config = read_config(out)
    sections = []
    for key in ("training", "data"):
        value = config.get(key, {})
        if not (isinstance(value, dict) or key == "data" and isinstance(value, list) and value):
            raise UserError(f"{out / CONFIG_FILE}: field '{key}' is {type(value).__name__}, expected an object")
        for k, item in enumerate(value if isinstance(value, list) else []):
            if not isinstance(item, dict):
                raise UserError(f"{out / CONFIG_FILE}: field 'data[{k}]' is {type(item).__name__}, expected an object")
        sections.append(value)
    return sections[0], sections[1]


def is_finished(config: dict[str, Any]) -> bool:
    """Whether a checkpoint's config.json says its training ran to its last epoch (``metrics.finished``; for
    checkpoints written before that field: ``metrics.epochs_done`` >= ``training.epochs``)."""
    metrics, training = config.get("metrics"), config.get("training")
    if not isinstance(metrics, dict):
        return False
    if "finished" in metrics:
        return metrics["finished"] is True
    done, epochs = metrics.get("epochs_done"), training.get("epochs") if isinstance(training, dict) else None
    return isinstance(done, int) and isinstance(epochs, int) and done >= epochs


def _check_fresh_out(out: Path) -> None:
    """A run without ``--resume`` may start in ``out`` unless it holds a checkpoint worth keeping.

    The rule: ``config.json`` is written last at every save, after ``train_state/``. A folder whose
    ``config.json`` has a ``train_state/`` beside it can be resumed: refused (pass --resume). One without a
    ``train_state/`` is kept only if it is marked finished (:func:`is_finished`, e.g. a shipped checkpoint);
    otherwise it is what a failed run left (disk full before its first complete save) and a fresh run
    starts over it, overwriting its files.
    """
    if not (out / CONFIG_FILE).exists():
        return
    if (out / TRAIN_STATE_DIR).exists():
        raise UserError(
            f"--out {out}: already holds a checkpoint; pass --resume to continue it or choose another folder"
        )
    try:
        finished = is_finished(read_config(out))
    except UserError:
        finished = True  # a config.json we cannot read is not ours to overwrite
    if finished:
        raise UserError(f"--out {out}: already holds a finished checkpoint; choose another folder")


def check_out_and_data(out: str | os.PathLike, data: str | os.PathLike, dagger_aggregate_ok: bool = False) -> None:
    """Refuse an ``--out`` that is the dataset folder, inside it, or contains it (one line naming both): the
    checkpoint's files would be hashed as data, or training would write into the dataset. DAgger rounds
    train on ``OUT/dagger-data``, drive's own aggregate, with ``dagger_aggregate_ok``."""
    o, d = Path(out).resolve(), Path(data).resolve()
    if dagger_aggregate_ok and d.parent == o:
        return
    if o == d or d in o.parents or o in d.parents:
        how = "is" if o == d else ("is inside" if d in o.parents else "contains")
        raise UserError(f"--out {out}: {how} the dataset folder --data {data}; choose a folder outside it")


def _check_same_data(
    cfg: TrainConfig,
    fingerprints: list[dict[str, Any]],
    recorded: dict[str, Any] | list[dict[str, Any]],
    where: Path,
) -> None:
    """``--resume`` trains on the recorded datasets only, in their order: as many, and each with the same
    folder name and the same content. ``recorded`` is config.json's ``data`` (:func:`data_provenance`)."""
    records = recorded if isinstance(recorded, list) else [recorded]
    if recorded and len(records) != len(fingerprints):
        raise UserError(
            f"--resume: --data {cfg.data}: {len(fingerprints)} dataset(s), but {where} records "
            f"{len(records)} ({', '.join(str(r.get('name')) for r in records)}); resume on those, or train a new --out"
        )
    for path, fingerprint, record in zip(cfg.datasets(), fingerprints, records):
        for key, what in (("name", "folder name"), ("sha256", "content (SHA-256)")):
            if key in record and record[key] != fingerprint[key]:
                raise UserError(
                    f"--resume: --data {path}: its {what} {fingerprint[key]!r:.20} differs from the dataset "
                    f"recorded in {where} ({record[key]!r:.20}); resume on that dataset, or train a new --out"
                )


_HELD_OUTS: set[str] = set()
"""Output folders whose lock this process holds (so DAgger's rounds, inside the command's hold, re-enter)."""


@contextlib.contextmanager
def hold_out(out: str | os.PathLike):
    """Hold ``drive.io.output_lock(out)`` (no waiting: a second run into the folder fails at once, naming
    it) unless this process already holds it."""
    key = str(Path(out).resolve())
    if key in _HELD_OUTS:
        yield
        return
    with output_lock(out):
        _HELD_OUTS.add(key)
        try:
            yield
        finally:
            _HELD_OUTS.discard(key)


class _StopRequest:
    """Ctrl-C during the loop: the first SIGINT asks the loop to stop after the step in progress (its state
    is then saved, so ``--resume`` goes on from that step); a second one interrupts at once. Only in the
    main thread of a single process (under torchrun every rank must stop at the same step, so there a
    Ctrl-C interrupts at once and ``--resume`` goes on from the last saved epoch)."""

    def __init__(self, enabled: bool):
        self.requested = False
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.previous: Any = None

    def _handler(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C interrupts at once

    def __enter__(self) -> "_StopRequest":
        if self.enabled:
            self.previous = signal.getsignal(signal.SIGINT)
            if self.previous is None:
                self.previous = signal.default_int_handler
            signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous)


@dataclass
class TrainResult:
    """What :func:`train` returns: the progress record (as saved in ``train_state/state.json``: losses per
    step, per-epoch metrics, best validation loss) and the policy as it is at the end (the latest weights)."""

    progress: dict[str, Any]
    policy: DrivingPolicy


def train(cfg: TrainConfig, *, dagger_round: bool = False) -> TrainResult:
    """Train as configured (single process, or one rank under torchrun).

    Rank 0 holds ``OUT``'s lock (:func:`hold_out`) for the whole run. With ``--resume`` the options are
    checked against the recorded run (:func:`drive.train.config.check_resume`) and the dataset against the
    recorded provenance (name and SHA-256), except in a DAgger round (``dagger_round``: it trains on the
    aggregate ``OUT/dagger-data``, which grows every round). Ctrl-C stops after the step in progress with
    the state saved (:class:`_StopRequest`), then raises KeyboardInterrupt.
    """
    cfg.validate()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():  # before any work (the frame cache can take minutes)
        raise UserError(f"--out: {out}: exists and is not a folder")
    for data in cfg.datasets():
        check_out_and_data(cfg.out, data, dagger_aggregate_ok=dagger_round)
    dist = init_distributed(cfg.device)
    try:
        with hold_out(out) if dist.is_main else contextlib.nullcontext():
            return _train(cfg, dist, dagger_round)
    finally:
        dist.close()


def _train(cfg: TrainConfig, dist: Distributed, dagger_round: bool = False) -> TrainResult:
    out = Path(cfg.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if dist.device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    recorded_data: dict[str, Any] | list[dict[str, Any]] = {}
    if cfg.resume:
        recorded_training, recorded_data = recorded_sections(out)
        check_resume(cfg, recorded_training, str(out / CONFIG_FILE))
    elif dist.is_main:
        _check_fresh_out(out)
    show = cfg.progress and dist.is_main

    # ---- 1. data: each dataset's episodes and fingerprint under its lock (several: the same frame size, fps
    # and max_steer_rad first), then decode them once into its cache (rank 0 builds, the others wait and open)
    roots = cfg.datasets()
    if len(roots) > 1:
        check_same_format([(root, layout.read_info(root)) for root in roots])
    episodes, fingerprints = zip(*(snapshot(root) for root in roots))
    if cfg.resume and not dagger_round:
        _check_same_data(cfg, list(fingerprints), recorded_data, out / CONFIG_FILE)
    cache_dir = cfg.cache_dir or None
    if dist.is_main:
        cache = open_frame_cache(roots, episodes, cache_dir, progress=show)
    dist.barrier()
    if not dist.is_main:
        cache = open_frame_cache(roots, episodes, cache_dir, build=False, progress=False)
    info = cache.info
    train_segments, val_segments = cache.split(cfg.val_fraction, cfg.split_seed)
    train_data = SequenceDataset(cache, train_segments, cfg.seq_len, cfg.stride or cfg.seq_len)
    val_data = SequenceDataset(cache, val_segments, cfg.seq_len, cfg.seq_len)
    if len(train_data) < cfg.batch_size:
        raise UserError(
            f"--data {cfg.data}: {len(train_data)} training window(s) of {cfg.seq_len} frames, fewer than "
            f"--batch-size {cfg.batch_size}; use shorter --seq-len, a smaller --batch-size or more data"
        )
    if cfg.batch_size % dist.world_size:
        raise UserError(
            f"--batch-size {cfg.batch_size} must be a multiple of the number of processes ({dist.world_size})"
        )
    batches_per_epoch = len(train_data) // cfg.batch_size
    frames_per_batch = cfg.batch_size * cfg.seq_len
    viewpoint = ViewpointAugmenter.from_config(cfg, cache, [s.episode for s in train_segments])

    # ---- 2. model and optimiser (same seed on every process: same initial weights)
    torch.manual_seed(cfg.seed)
    try:
        policy = build_policy(
            cfg.model,
            frame_period_s=1.0 / info.fps,
            max_steer_rad=info.max_steer_rad,
            image_height=info.image_height,
            image_width=info.image_width,
            **controller_overrides(cfg),
        ).to(dist.device)
    except ValueError as exc:  # the dataset's frame size, rate or steering range does not make a policy
        raise UserError(f"--data {cfg.data}: {' '.join(str(exc).split())}") from None
    optimizer = make_optimizer(policy, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]  # before a resume loads the saved (scheduled) rates
    progress: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "frames": 0,
        "train_time_s": 0.0,
        "losses": [],
        "epochs": [],
        "epoch_loss_sum": 0.0,
        "best_val_loss": None,
        "best_epoch": None,
        "seed": cfg.seed,
        "rng": "all randomness is drawn from (seed, epoch, batch)",
    }
    if cfg.resume:
        progress = load_train_state(out, policy, optimizer)
    ema = make_ema(policy, cfg.ema_decay) if cfg.ema_decay else None
    if ema is not None and cfg.resume and (out / EMA_FILE).is_file():
        from drive.policy.checkpoint import load_weights_into

        load_weights_into(ema.module, out / EMA_FILE)
        ema.n_averaged.fill_(max(1, progress["step"]))
    # the policy whose weights are validated and saved: the EMA's when there is one
    judged = ema.module if ema is not None else policy
    total_steps = planned_steps(cfg, batches_per_epoch)
    model: torch.nn.Module = policy
    if dist.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            policy, device_ids=[dist.device] if dist.device.type == "cuda" else None
        )

    provenance = data_provenance(cache, list(fingerprints) if dist.is_main else [{}] * len(roots), train_data, val_data)
    check = None  # closed-loop selection: the held-out training tracks and reset seeds, fixed for the run
    if cfg.select_by == "closed_loop" and dist.is_main:
        from drive.train.selection import held_out_spec

        check = held_out_spec(
            roots, cfg.select_episodes, cfg.select_duration_s, seed=cfg.split_seed, scenario=cfg.select_scenario
        )
        for record in provenance if isinstance(provenance, list) else [provenance]:
            record["selection_check"] = {
                "tracks": list(check.tracks),
                "reset_seeds": list(check.reset_seeds),
                "duration_s": check.duration_s,
                "scenario": check.scenario,
            }
    writer = None
    if dist.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(Path(cfg.logdir) if cfg.logdir else out / "tensorboard"))
    augmenter = make_augmenter(cfg)

    # ---- 3. the loop
    def metrics_now(train_loss: float, val: dict[str, float]) -> dict[str, Any]:
        return {
            "best_val_loss": progress["best_val_loss"],
            "best_epoch": progress["best_epoch"],
            **(
                {
                    "best_closed_loop": progress.get("best_closed_loop"),
                    "closed_loop_by_epoch": [
                        {"epoch": r["epoch"], "val_loss": r.get("val_loss"), **r["closed_loop"]}
                        for r in progress["epochs"]
                        if "closed_loop" in r
                    ],
                }
                if cfg.select_by == "closed_loop"
                else {}
            ),
            "last_train_loss": train_loss,
            "last_val_loss": val.get("loss"),
            "last_val_mse": val.get("mse"),
            "epochs_done": progress["epoch"],
            "steps": progress["step"],
            "frames_seen": progress["frames"],
            "train_time_s": progress["train_time_s"],
            "finished": progress["epoch"] >= cfg.epochs,
            "weights": (
                "best closed-loop check (off-road events, then mean |lateral|)"
                if cfg.select_by == "closed_loop" and progress["best_epoch"] is not None
                else "best " + ("smoothed " if cfg.val_smoothing else "") + "validation loss"
                if progress["best_epoch"] is not None
                else "latest (no validation set)"
            )
            + (f", EMA of the weights (decay {cfg.ema_decay:g})" if ema is not None else ""),
            "world_size": dist.world_size,
        }

    def save_state(metrics: dict[str, Any]) -> None:
        """The resumable state, then config.json last: a config.json always has its train_state/ beside it
        (the rule of :func:`_check_fresh_out`)."""
        if ema is not None:  # before the state: a resumed run reloads the EMA of its last saved step
            save_weights(ema.module, out / EMA_FILE)
        save_train_state(out, policy, optimizer, progress)
        with naming_path(out / CONFIG_FILE):
            atomic_write_json(
                out / CONFIG_FILE,
                checkpoint_config(
                    policy, {"data": provenance, "training": recorded_training_config(cfg), "metrics": metrics}
                ),
            )

    stop = False
    try:
        with _StopRequest(enabled=not dist.enabled) as interrupt, naming_path(out):
            while progress["epoch"] < cfg.epochs and not stop:
                epoch = progress["epoch"]
                order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_data))
                batches = EpochBatches(
                    train_data,
                    order,
                    cfg.batch_size,
                    progress["batch"],
                    dist.rank,
                    dist.world_size,
                    augmenter,
                    cfg.seed,
                    epoch,
                    viewpoint,
                )
                loader = (
                    torch.utils.data.DataLoader(
                        batches, batch_size=None, num_workers=cfg.workers, worker_init_fn=_ignore_sigint
                    )
                    if cfg.workers
                    else batches
                )
                bar = tqdm(
                    total=batches_per_epoch,
                    initial=progress["batch"],
                    desc=f"epoch {epoch + 1}/{cfg.epochs}",
                    unit="batch",
                    disable=not show,
                    dynamic_ncols=True,
                )
                model.train()
                tick = time.perf_counter()
                for frames, steering, dt in loader:
                    batch = (frames.to(dist.device), steering.to(dist.device), dt.to(dist.device))
                    loss = train_step(
                        model, optimizer, batch, cfg, progress["step"], total_steps, base_lrs, ema=ema, policy=policy
                    )
                    batch_loss = dist.mean(loss.item())  # the global batch's loss, as one process computes it
                    now = time.perf_counter()
                    progress["train_time_s"] += now - tick
                    fps = frames_per_batch / max(now - tick, 1e-9)
                    tick = now
                    progress["step"] += 1
                    progress["batch"] += 1
                    progress["frames"] += frames_per_batch
                    progress["epoch_loss_sum"] += batch_loss
                    progress["losses"].append(batch_loss)
                    if writer is not None:
                        writer.add_scalar("train/loss", batch_loss, progress["step"])
                        writer.add_scalar("train/frames_per_s", fps, progress["step"])
                        log_learning_rates(writer, optimizer, progress["step"])
                    bar.set_postfix(loss=f"{batch_loss:.4f}", fps=f"{fps:.0f}")
                    bar.update(1)
                    if cfg.max_steps and progress["step"] >= cfg.max_steps:
                        stop = True
                        break
                    if interrupt.requested:
                        break
                bar.close()
                train_loss = progress["epoch_loss_sum"] / max(1, progress["batch"])
                if interrupt.requested:  # Ctrl-C: save the state of the last finished step, skip validation
                    if dist.is_main:
                        save_state(metrics_now(train_loss, {}))
                    raise KeyboardInterrupt
                epoch_done = progress["batch"] >= batches_per_epoch

                # ---- 4. validate, plot, save
                val = evaluate(judged, val_data, cfg, dist)
                record = {
                    "epoch": epoch + 1,
                    "complete": epoch_done,
                    "steps": progress["step"],
                    "train_loss": train_loss,
                    "val_loss": val.get("loss"),
                    "val_mse": val.get("mse"),
                }
                progress["epochs"].append(record)
                if epoch_done:
                    progress["epoch"] += 1
                    progress["batch"] = 0
                    progress["epoch_loss_sum"] = 0.0
                if dist.is_main:
                    if cfg.val_smoothing and val:  # the best epoch is chosen on the smoothed validation loss
                        last = progress.get("val_loss_smoothed")
                        progress["val_loss_smoothed"] = (
                            val["loss"]
                            if last is None
                            else (cfg.val_smoothing * last + (1 - cfg.val_smoothing) * val["loss"])
                        )
                        record["val_loss_smoothed"] = progress["val_loss_smoothed"]
                        improved = (
                            progress.get("best_val_loss_smoothed") is None
                            or progress["val_loss_smoothed"] < progress["best_val_loss_smoothed"]
                        )
                        if improved:
                            progress["best_val_loss_smoothed"] = progress["val_loss_smoothed"]
                    else:
                        improved = val and (
                            progress["best_val_loss"] is None or val["loss"] < progress["best_val_loss"]
                        )
                    if check is not None:  # closed-loop selection replaces the validation-loss rule
                        improved = False
                        if epoch_done and epoch + 1 >= cfg.select_from_epoch:
                            record["closed_loop"] = drive_check(judged, check)
                            best = progress.get("best_closed_loop")
                            improved = best is None or record["closed_loop"]["key"] < best["key"]
                            if improved:
                                progress["best_closed_loop"] = {"epoch": epoch + 1, **record["closed_loop"]}
                    if improved:
                        progress["best_val_loss"], progress["best_epoch"] = val.get("loss"), epoch + 1
                    kept = bool(improved or (not val and check is None))  # these weights are now the kept ones
                    if kept:
                        save_weights(judged, out / WEIGHTS_FILE)
                    shown = val_segments[0] if val_segments else train_segments[0]
                    lo, hi = cache.offsets[shown.episode] + shown.start, cache.offsets[shown.episode] + shown.stop
                    t = cache.timestamps_s[lo:hi]
                    figure = validation_figure(
                        t - t[0],
                        cache.steering[lo:hi],
                        predict_segment(judged, cache, shown, dist.device),
                        f"{cfg.model}, epoch {epoch + 1}: {'validation' if val_segments else 'training'} "
                        f"episode {shown.episode}" + (f", val loss {val['loss']:.4f}" if val else ""),
                        model=cfg.model,
                    )
                    write_validation_figure(figure, out, epoch + 1, kept, writer, progress["step"])
                    save_state(metrics_now(train_loss, val))
                    if writer is not None:
                        writer.add_scalar("train/epoch_loss", train_loss, progress["step"])
                        if val:
                            writer.add_scalar("val/loss", val["loss"], progress["step"])
                            writer.add_scalar("val/mse", val["mse"], progress["step"])
                        if "closed_loop" in record:
                            for key in ("off_road_events", "mean_abs_lateral_m"):
                                writer.add_scalar(f"closed_loop/{key}", record["closed_loop"][key], progress["step"])
                                for name, part in record["closed_loop"].get("by_scenario", {}).items():
                                    writer.add_scalar(f"closed_loop/{name}/{key}", part[key], progress["step"])
                        writer.flush()
                    if show:
                        cl = record.get("closed_loop")
                        tqdm.write(
                            f"epoch {epoch + 1}: train loss {train_loss:.4f}"
                            + (f", val loss {val['loss']:.4f}, val mse {val['mse']:.4f}" if val else "")
                            + (
                                f", closed loop {cl['off_road_events']} off-road, "
                                f"mean |lateral| {cl['mean_abs_lateral_m']:.3f} m"
                                if cl
                                else ""
                            )
                        )
                dist.barrier()
                if interrupt.requested:  # Ctrl-C during validation or the save: the epoch is saved; stop now
                    raise KeyboardInterrupt
            if writer is not None:
                log_hparams(writer, cfg, progress)
    finally:
        if writer is not None:
            writer.close()
    return TrainResult(progress, policy)


BEST_FIGURE = "validation-best.png"
"""``figures/``'s copy of the validation figure of the kept weights' epoch (``model.safetensors``)."""

LR_TAGS = ("lr/head", "lr/controller")
"""TensorBoard tags of the learning rates, in :func:`make_optimizer`'s parameter-group order."""


def log_learning_rates(writer: Any, optimizer: torch.optim.Optimizer, step: int) -> None:
    """The learning rate of each parameter group at ``step`` (after :func:`lr_factor`), one scalar each."""
    for tag, group in zip(LR_TAGS, optimizer.param_groups):
        writer.add_scalar(tag, group["lr"], step)


def write_validation_figure(figure: Any, out: Path, epoch: int, kept: bool, writer: Any, step: int) -> Path:
    """Write an epoch's validation figure (an open matplotlib figure, closed here) to
    ``figures/validation-epoch-NNN.png``, copy it to ``figures/`` :data:`BEST_FIGURE` when the epoch's weights
    are the kept ones (``kept``), and give it to TensorBoard (``writer``, tag ``val/prediction``) as an image."""
    from drive.eval.plots import save_figure
    from drive.io import atomic_write_bytes

    path = out / "figures" / f"validation-epoch-{epoch:03d}.png"
    if writer is not None:
        writer.add_figure("val/prediction", figure, step, close=False)
    with naming_path(path):
        save_figure(figure, path, dpi=100)
    if kept:
        best = out / "figures" / BEST_FIGURE
        with naming_path(best):
            atomic_write_bytes(best, path.read_bytes())
    return path


def hparams_of(cfg: TrainConfig, progress: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """TensorBoard's hyperparameters and final metrics of a run: the recorded config's scalar fields (paths cut
    to their last component; a list of scalars joined by commas; None left out) and the best validation loss
    and epoch, with ``select_by=closed_loop`` also the kept epoch's closed-loop figures (``hparam/`` tags)."""
    params: dict[str, Any] = {}
    for key, value in recorded_training_config(cfg).items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            value = ",".join(str(v) for v in value)
        if isinstance(value, (bool, int, float, str)):
            params[key] = value
    metrics = {"hparam/best_val_loss": progress.get("best_val_loss"), "hparam/best_epoch": progress.get("best_epoch")}
    best = progress.get("best_closed_loop") or {}
    for key in ("off_road_events", "mean_abs_lateral_m"):
        if cfg.select_by == "closed_loop":
            metrics[f"hparam/closed_loop_{key}"] = best.get(key)
    return params, {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def log_hparams(writer: Any, cfg: TrainConfig, progress: dict[str, Any]) -> None:
    """:func:`hparams_of` into the run's own event file (``add_hparams`` would open a sub-run folder per call)."""
    from torch.utils.tensorboard.summary import hparams

    params, metrics = hparams_of(cfg, progress)
    file_writer = writer._get_file_writer()
    for summary in hparams(params, metrics):
        file_writer.add_summary(summary)
    for key, value in metrics.items():
        writer.add_scalar(key, value, progress["step"])
    writer.flush()


def drive_check(policy: DrivingPolicy, spec) -> dict[str, Any]:
    """The closed-loop check of :mod:`drive.train.selection` on the policy as it is now (eval mode for the
    drive, training mode restored)."""
    from drive.train.selection import closed_loop_check

    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            return closed_loop_check(policy, spec)
    finally:
        policy.train(was_training)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the training process, which stops after the step in progress."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
