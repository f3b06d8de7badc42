"""Benchmark training throughput: end-to-end ``drive train`` steps against the conv head alone.

What it measures (all on CPU unless ``--device`` says otherwise, frames = images seen by the model):

- ``frames_per_s``: end-to-end training of ``ncp19`` on cached data, built from the pieces that
  ``drive.train.loop._train`` itself uses, with its defaults (:class:`~drive.train.config.TrainConfig`):
  the frame cache (:class:`~drive.data.sequences.FrameCache`, built once before timing, so no video
  is decoded in the timed part), the split and windows, :class:`~drive.train.loop.EpochBatches`
  (window gather from the memory map + augmentation seeded from (seed, epoch, batch)),
  :func:`~drive.policy.model.build_policy`, :func:`~drive.train.loop.make_optimizer` (AdamW with the head
  and controller learning rates) and the loop's own step, :func:`~drive.train.loop.train_step`: forward
  over 16 sequences x 16 frames from a zero state, :func:`~drive.train.loop.window_loss` (with
  ``burn_in``), backward (BPTT), ``clip_grad_norm_``, the learning-rate schedule, the optimiser step and
  the EMA update (those two protocol options as the config sets them), then ``loss.item()``. Not
  included: the progress bar and the two TensorBoard scalars per step (see ``cli_*`` below for those).
- ``conv_only_frames_per_s``: the same conv head (``build_head("ncp19")``, the NCP paper's head of
  :mod:`drive.policy.perception`) alone: forward + backward + AdamW step on one pre-made random uint8
  batch of ``batch x seq_len`` = 256 frames (NHWC memory viewed as NCHW, exactly as
  ``DrivingPolicy.features`` feeds it), loss = mean of the squared features. No controller, no data
  loading, no augmentation.
- ``conv_only_channels_last_frames_per_s``: the same conv-only step with the head in channels_last
  memory (timed in the same rounds); ``conv_head_speedup_channels_last`` its ratio to the plain head
  (issue 10's target for a faster head: >= 1.5).
- ``overhead_ratio`` = conv_only_frames_per_s / frames_per_s: what loading, augmentation, the LTC
  controller, the loss and clipping add over the conv head itself. Target: <= 1.25.

Method: one temporary dataset is recorded with ``drive record``'s recorder on ``scenarios/train.yaml``
(nothing downloaded), its frame cache built, both models built and warmed up (``--warmup`` untimed
steps each). Then ``--steps`` end-to-end and ``--steps`` conv-only steps are timed one by one
(``time.perf_counter``), interleaved step by step in an ABBA order (e2e, conv, conv, e2e, e2e, ...),
so load from other processes and CPU frequency drift fall on both alike. Rates are total frames /
total time over all timed steps; ``overhead_ratio`` is their quotient. Two noise-robust variants
are reported beside it: the ratio of median step times and the median of the per-pair ratios.
Both kinds run under the settings ``_train`` applies (``torch.use_deterministic_algorithms(True,
warn_only=True)``, the same torch thread count).

``--profile-steps N`` then times the sections of N end-to-end steps (gather, augmentation, head
forward, controller forward, loss, backward, clip, optimiser step with the schedule, EMA update; plus
the controller's own forward+backward on detached features, to split the backward). These steps repeat
:func:`~drive.train.loop.train_step`'s arithmetic section by section (the one place that does). ``--cli-steps N`` runs the real
``drive train --max-steps N`` on the same data as a cross-check and reads its per-step frames/s
(the loop's own timer, TensorBoard scalar ``train/frames_per_s``), first step dropped.

The machine's load average (start, end) and every step's time (``step_ms``) are reported. On a shared
machine (e.g. another training job running) absolute rates drop, and the end-to-end step suffers
more than the conv head: each small multi-threaded op ends in an OpenMP barrier that may wait a
scheduler time slice for a descheduled thread. That is why ``EpochBatches`` augments single-threaded
(``drive.train.loop.single_threaded``); ``--threads 1`` shows the numbers without any such barrier.
Usage::

    .venv/bin/python tools/bench_train.py             # ~2-4 min on 2 cores
    .venv/bin/python tools/bench_train.py --quick     # ~1 min: small dataset, 6 steps, no profile/CLI check
    .venv/bin/python tools/bench_train.py --threads 1 --torch-profile   # op-level tables too

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from drive.data.sequences import FrameCache, SequenceDataset  # noqa: E402
from drive.policy.model import build_policy  # noqa: E402
from drive.policy.perception import build_head  # noqa: E402
from drive.train import loop  # noqa: E402
from drive.train.augment import batch_generator, slice_params  # noqa: E402
from drive.train.config import TrainConfig  # noqa: E402
from drive.train.loop import (  # noqa: E402
    EpochBatches,
    controller_overrides,
    lr_factor,
    make_augmenter,
    make_ema,
    make_optimizer,
    planned_steps,
    train_step,
    window_loss,
)

TARGET_RATIO = 1.25


def make_dataset(root: Path, episodes: int, duration_s: float) -> Path:
    """Record expert episodes of scenarios/train.yaml into ``root`` (as ``drive record`` does)."""
    from drive.data.recorder import record

    return record(str(ROOT / "scenarios" / "train.yaml"), episodes, root, seed=0, duration_s=duration_s, progress=False)


class EndToEnd:
    """The training step of ``drive.train.loop._train`` (single process, workers=0), from its own pieces."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.cache = FrameCache(cfg.data, cfg.cache_dir or None, progress=False)  # decodes video once, untimed
        info = self.cache.info
        train_segments, _ = self.cache.split(cfg.val_fraction, cfg.split_seed)
        self.data = SequenceDataset(self.cache, train_segments, cfg.seq_len, cfg.stride or cfg.seq_len)
        if len(self.data) < cfg.batch_size:
            raise SystemExit(f"dataset too small: {len(self.data)} windows < batch {cfg.batch_size}")
        torch.manual_seed(cfg.seed)
        self.policy = build_policy(
            cfg.model,
            frame_period_s=1.0 / info.fps,
            max_steer_rad=info.max_steer_rad,
            image_height=info.image_height,
            image_width=info.image_width,
            **controller_overrides(cfg),
        ).to(device)
        self.optimizer = make_optimizer(self.policy, cfg)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.ema = make_ema(self.policy, cfg.ema_decay) if cfg.ema_decay else None
        self.total_steps = planned_steps(cfg, len(self.data) // cfg.batch_size)
        self.steps_done = 0
        self.augmenter = make_augmenter(cfg)
        self.policy.train()
        self.epoch = -1
        self._next_epoch()

    def _next_epoch(self) -> None:
        self.epoch += 1
        order = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(len(self.data))
        self.batches = EpochBatches(
            self.data, order, self.cfg.batch_size, 0, 0, 1, self.augmenter, self.cfg.seed, self.epoch
        )
        self.k = 0

    def step(self) -> float:
        if self.k >= len(self.batches):
            self._next_epoch()
        frames, steering, dt = self.batches[self.k]
        self.k += 1
        # --- below: the body of the loop in drive.train.loop._train (single process: no DDP wrapper)
        batch = (frames.to(self.device), steering.to(self.device), dt.to(self.device))
        loss = train_step(
            self.policy, self.optimizer, batch, self.cfg, self.steps_done, self.total_steps, self.base_lrs, self.ema
        )
        self.steps_done += 1
        return loss.item()

    def profiled_step(self, sync) -> dict[str, float]:
        """One step, same arithmetic, with each section timed (seconds)."""
        cfg, p = self.cfg, self.policy
        if self.k >= len(self.batches):
            self._next_epoch()
        b = self.k
        self.k += 1
        out: dict[str, float] = {}
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            sync()
            now = time.perf_counter()
            out[name] = now - t
            t = now

        eb = self.batches
        window = eb.order[b * eb.batch_size : (b + 1) * eb.batch_size]
        frames, steering, dt = self.data.get_batch(window)
        lap("gather")
        if self.augmenter is not None:
            c = self.cache.info
            params = self.augmenter.sample(
                eb.batch_size, c.image_height, c.image_width, batch_generator(eb.seed, eb.epoch, eb.first + b)
            )
            with getattr(loop, "single_threaded", contextlib.nullcontext)():  # as EpochBatches does
                frames = self.augmenter.apply(frames, slice_params(params, 0, eb.batch_size))
        lap("augment")
        frames, steering, dt = frames.to(self.device), steering.to(self.device), dt.to(self.device)
        bsz, tlen = frames.shape[:2]
        feats = p.features(frames.reshape(bsz * tlen, *frames.shape[2:]))
        lap("head_forward")
        timespans = dt.to(feats.device, feats.dtype) / p.frame_period_s
        y, _ = p.controller(feats.view(bsz, tlen, -1), None, timespans)
        prediction = y[..., 0]
        lap("controller_forward")
        loss = window_loss(prediction, steering, cfg.alpha, cfg.burn_in)
        self.optimizer.zero_grad(set_to_none=True)
        lap("loss")
        loss.backward()
        lap("backward")
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(p.parameters(), cfg.grad_clip)
        lap("clip")
        if cfg.lr_schedule != "none":
            factor = lr_factor(cfg.lr_schedule, self.steps_done, self.total_steps)
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * factor
        self.optimizer.step()
        self.steps_done += 1
        loss.item()
        lap("optimizer_step")
        if self.ema is not None:
            self.ema.update_parameters(p)
        lap("ema")
        # the controller alone, forward + backward on detached features: its share of "backward"
        f = feats.detach().requires_grad_(True)
        y2, _ = p.controller(f.view(bsz, tlen, -1), None, timespans)
        lap("controller_forward_again")
        window_loss(y2[..., 0], steering, cfg.alpha, cfg.burn_in).backward()
        lap("controller_backward")
        p.controller.zero_grad(set_to_none=True)
        return out


class ConvOnly:
    """The conv head alone: forward + backward + AdamW step on one fixed random uint8 batch."""

    def __init__(self, cfg: TrainConfig, height: int, width: int, device: torch.device, channels_last: bool = False):
        torch.manual_seed(cfg.seed)
        self.head = build_head(cfg.model, image_height=height, image_width=width).to(device)
        if channels_last:  # the candidate faster layout: weights (and so activations) in NHWC memory
            self.head = self.head.to(memory_format=torch.channels_last)
        self.head.train()
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=cfg.lr_head, weight_decay=cfg.weight_decay)
        g = torch.Generator().manual_seed(cfg.seed)
        n = cfg.batch_size * cfg.seq_len
        self.frames = torch.randint(0, 256, (n, height, width, 3), dtype=torch.uint8, generator=g).to(device)

    def step(self) -> float:
        feats = self.head(self.frames.permute(0, 3, 1, 2))  # as DrivingPolicy.features: NCHW view of NHWC
        loss = feats.square().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def profiled_step(self, sync) -> dict[str, float]:
        out: dict[str, float] = {}
        t = time.perf_counter()
        feats = self.head(self.frames.permute(0, 3, 1, 2))
        loss = feats.square().mean()
        sync()
        out["forward"] = time.perf_counter() - t
        t = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        out["backward"] = time.perf_counter() - t
        t = time.perf_counter()
        self.optimizer.step()
        loss.item()
        out["optimizer_step"] = time.perf_counter() - t
        return out


def timed_block(step, n: int, sync) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def cli_check(data: Path, work: Path, steps: int, threads: int, device: str) -> dict | None:
    """``drive train --max-steps`` on the same data; per-step frames/s from its TensorBoard scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from drive.cli import main as drive

    logdir = work / "tb"
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(work / "ckpt"),
        "--model",
        "ncp19",
        "--max-steps",
        str(steps),
        "--epochs",
        "1000",
        "--no-progress",
        "--logdir",
        str(logdir),
        "--device",
        device,
    ]
    if threads:
        argv += ["--threads", str(threads)]
    t0 = time.perf_counter()
    rc = drive(argv)
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"cli check: drive train exited {rc}")
        return None
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    fps = [e.value for e in sorted(acc.Scalars("train/frames_per_s"), key=lambda e: e.step)]
    if len(fps) < 2:
        return None
    return {"steps": len(fps), "fps_per_step": fps[1:], "wall_s": wall}  # the first step carries the warm-up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small dataset, fewer steps, no profile and no CLI check")
    p.add_argument("--episodes", type=int, default=None, help="episodes to record (default 4; quick 2)")
    p.add_argument("--duration-s", type=float, default=None, help="episode length, s (default 60; quick 30)")
    p.add_argument("--steps", type=int, default=None, help="timed steps of each kind (default 24; quick 6)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps of each kind (default 2; quick 1)")
    p.add_argument(
        "--profile-steps", type=int, default=None, help="section-timed end-to-end steps (default 3; quick 0)"
    )
    p.add_argument(
        "--cli-steps",
        type=int,
        default=None,
        help="steps of the real `drive train --max-steps` cross-check (default 6; quick 0)",
    )
    p.add_argument(
        "--torch-profile",
        action="store_true",
        help="also print torch.profiler's top operators for one end-to-end and one conv-only step",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--seq-len", type=int, default=TrainConfig.seq_len)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="end-to-end without augmentation")
    p.add_argument("--data", default="", help="use this dataset instead of recording one (its cache may be built)")
    args = p.parse_args()
    q = args.quick
    episodes = args.episodes or (2 if q else 4)
    duration_s = args.duration_s or (30.0 if q else 60.0)
    steps = args.steps or (6 if q else 24)
    warmup = args.warmup if args.warmup is not None else (1 if q else 2)
    profile_steps = args.profile_steps if args.profile_steps is not None else (0 if q else 3)
    cli_steps = args.cli_steps if args.cli_steps is not None else (0 if q else 6)

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as _train does
    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.data:
            data = Path(args.data)
        else:
            data = make_dataset(tmp / "data", episodes, duration_s)
        t_record = time.perf_counter() - t0
        cfg = TrainConfig(
            data=str(data),
            out=str(tmp / "unused"),
            model="ncp19",
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            augment=args.augment,
            device=args.device,
        )
        t0 = time.perf_counter()
        e2e = EndToEnd(cfg, device)
        t_cache = time.perf_counter() - t0
        info = e2e.cache.info
        conv = ConvOnly(cfg, info.image_height, info.image_width, device)
        conv_cl = ConvOnly(cfg, info.image_height, info.image_width, device, channels_last=True)
        frames_per_step = cfg.batch_size * cfg.seq_len
        print(
            f"dataset: {e2e.cache.num_frames} frames in {len(e2e.cache.episodes)} episodes "
            f"({'given' if args.data else f'recorded in {t_record:.1f} s'}), cache ready in {t_cache:.1f} s, "
            f"{len(e2e.data)} training windows of {cfg.seq_len}"
        )
        print(
            f"torch {torch.__version__}, {threads} thread(s), device {device}, batch {cfg.batch_size} x "
            f"{cfg.seq_len} = {frames_per_step} frames/step, augment {'on' if cfg.augment else 'off'}, "
            f"load average {load_start:.2f}"
        )

        for _ in range(warmup):  # first steps allocate and pick kernels: untimed
            e2e.step()
            conv.step()
            conv_cl.step()
        sync()

        # timed: alternate single steps in an ABBA pattern (e2e, conv, conv, e2e, e2e, conv, ...), so load
        # from other processes, which changes on the scale of seconds, falls on both kinds alike
        e2e_times: list[float] = []
        conv_times: list[float] = []
        cl_times: list[float] = []
        pair_ratios: list[float] = []
        report_every, last = max(1, steps // 6), 0
        for i in range(steps):
            if i % 2 == 0:
                a = timed_block(e2e.step, 1, sync)[0]
                b = timed_block(conv.step, 1, sync)[0]
            else:
                b = timed_block(conv.step, 1, sync)[0]
                a = timed_block(e2e.step, 1, sync)[0]
            cl_times.append(timed_block(conv_cl.step, 1, sync)[0])
            e2e_times.append(a)
            conv_times.append(b)
            pair_ratios.append(a / b)
            if i + 1 - last == report_every or i + 1 == steps:
                ea, cb, n = sum(e2e_times[last:]), sum(conv_times[last:]), i + 1 - last
                print(
                    f"steps {last + 1:3d}-{i + 1:3d}: end-to-end {frames_per_step * n / ea:7.1f} frames/s, "
                    f"conv only {frames_per_step * n / cb:7.1f} frames/s, ratio {ea / cb:.3f}"
                )
                last = i + 1

        fps = frames_per_step * len(e2e_times) / sum(e2e_times)
        conv_fps = frames_per_step * len(conv_times) / sum(conv_times)
        ratio = conv_fps / fps
        cl_fps = frames_per_step * len(cl_times) / sum(cl_times)
        print(
            f"conv only, channels_last: {cl_fps:.1f} frames/s = {cl_fps / conv_fps:.2f}x the plain head (target >= 1.5)"
        )
        median_ratio = statistics.median(e2e_times) / statistics.median(conv_times)
        pair_median = statistics.median(pair_ratios)
        print(
            f"end-to-end: {fps:.1f} frames/s ({1e3 * statistics.median(e2e_times):.0f} ms/step median); "
            f"conv only: {conv_fps:.1f} frames/s ({1e3 * statistics.median(conv_times):.0f} ms/step median)"
        )
        print(
            f"overhead ratio {ratio:.3f} (of median step times {median_ratio:.3f}; median of paired steps "
            f"{pair_median:.3f}); target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}"
        )

        profile: dict[str, float] = {}
        if profile_steps:
            sections: dict[str, list[float]] = {}
            conv_sections: dict[str, list[float]] = {}
            for _ in range(profile_steps):
                for k, v in e2e.profiled_step(sync).items():
                    sections.setdefault(k, []).append(v)
                for k, v in conv.profiled_step(sync).items():
                    conv_sections.setdefault(k, []).append(v)
            profile = {k: round(1e3 * statistics.median(v), 1) for k, v in sections.items()}
            conv_profile = {k: round(1e3 * statistics.median(v), 1) for k, v in conv_sections.items()}
            main_keys = [
                "gather",
                "augment",
                "head_forward",
                "controller_forward",
                "loss",
                "backward",
                "clip",
                "optimizer_step",
                "ema",
            ]
            total = sum(profile[k] for k in main_keys)
            print(f"profile, end-to-end step (median of {profile_steps}, ms):")
            for k in main_keys:
                print(f"  {k:20s} {profile[k]:8.1f}  {100 * profile[k] / total:5.1f}%")
            print(f"  {'total':20s} {total:8.1f}")
            print(
                f"  controller alone: forward {profile['controller_forward_again']:.1f} ms, "
                f"backward {profile['controller_backward']:.1f} ms (part of 'backward' above)"
            )
            print("profile, conv-only step (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in conv_profile.items()))
            profile = {"end_to_end_ms": profile, "conv_only_ms": conv_profile}

        if args.torch_profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            for name, step in (("end-to-end", e2e.step), ("conv only", conv.step)):
                with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                    step()
                print(f"torch.profiler, one {name} step, top operators by self CPU time:")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))

        cli = None
        if cli_steps:
            res = cli_check(data, tmp / "cli", cli_steps, args.threads, args.device)
            if res:
                per = [frames_per_step / f for f in res["fps_per_step"]]  # seconds per step
                cli = {
                    "cli_frames_per_s": round(frames_per_step * len(per) / sum(per), 1),
                    "cli_steps_timed": len(per),
                    "cli_wall_s": round(res["wall_s"], 1),
                }
                print(
                    f"cross-check, `drive train --max-steps {cli_steps}` (its own per-step timer, first step "
                    f"dropped): {cli['cli_frames_per_s']:.1f} frames/s (not interleaved with the conv-only runs)"
                )

    load_end = os.getloadavg()[0]
    result = {
        "frames_per_s": round(fps, 1),
        "conv_only_frames_per_s": round(conv_fps, 1),
        "overhead_ratio": round(ratio, 3),
        "conv_only_channels_last_frames_per_s": round(cl_fps, 1),
        "conv_head_speedup_channels_last": round(cl_fps / conv_fps, 2),
        "overhead_ratio_of_medians": round(median_ratio, 3),
        "overhead_ratio_median_of_pairs": round(pair_median, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": bool(ratio <= TARGET_RATIO),
        "torch_threads": threads,
        "batch": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "frames_per_step": frames_per_step,
        "steps_timed": len(e2e_times),
        "step_ms": {
            "end_to_end": [round(1e3 * x) for x in e2e_times],
            "conv_only": [round(1e3 * x) for x in conv_times],
        },
        "conv_steps_timed": len(conv_times),
        "warmup_steps": warmup,
        "model": cfg.model,
        "augment": cfg.augment,
        "device": str(device),
        "dataset_frames": e2e.cache.num_frames,
        "load_avg_1m": [round(load_start, 2), round(load_end, 2)],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": q,
    }
    if profile:
        result["profile"] = profile
    if cli:
        result.update(cli)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
