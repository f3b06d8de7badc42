"""`drive explain`: where a driver looks, whether that survives noise, and what its neurons do.

- **VisualBackProp** (Bojarski et al., "VisualBackProp: efficient visualization of CNNs for
  autonomous driving", ICRA 2018; used by Lechner et al., Nature MI 2020, Fig. 4): the feature maps of
  each conv layer are averaged over channels; starting from the deepest layer, the averaged map is
  scaled up to the previous layer's size by a deconvolution with that layer's kernel size and
  stride and all-ones weights, and multiplied pointwise with the previous layer's averaged map;
  the last product is scaled up to the input size and normalised to [0, 1].
- **Attention stability**: the SSIM (scikit-image ``structural_similarity``) between the saliency
  map of a clean frame and that of the same frame with Gaussian noise of variance σ²; the paper
  reports it for σ² = 0.1, 0.2, 0.3. 1 means the driver looks at the same place regardless of noise.
- Neuron traces of the controller over a closed-loop episode, and the wiring diagram (LTC models).

Outputs in ``DIR``: ``saliency/frame_XXXX.png`` (camera | map | overlay), ``saliency.mp4`` (overlay
for every step), ``explain.json`` (mean SSIM per noise level and more), ``neuron_traces.png``,
``wiring.png`` (when the controller has a wiring). The episode is driven by the rollout
(:func:`drive.eval.rollout.run_episode`); the command line is :mod:`drive.commands.explain`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn
from torch.nn import functional as F

from drive.errors import UserError
from drive.io import atomic_path, atomic_write_json, holds_output_lock


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_feature_maps(convs: nn.Sequential, x: torch.Tensor) -> list[tuple[nn.Conv2d, torch.Tensor]]:
    """Run ``convs`` on ``x``; for each Conv2d, its output after the layers that follow it (e.g. ReLU)."""
    maps: list[tuple[nn.Conv2d, torch.Tensor]] = []
    for module in convs:
        x = module(x)
        if isinstance(module, nn.Conv2d):
            maps.append((module, x))
        elif maps:
            maps[-1] = (maps[-1][0], x)
    if not maps:
        raise ValueError("VisualBackProp: the conv stack has no Conv2d layer")
    return maps


def _deconv_to(m: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """Scale a (B, 1, h, w) map up through ``conv``'s geometry (all-ones transposed conv) to ``size``."""
    if _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str) and conv.padding != "valid":
        if isinstance(conv.padding, str) and conv.padding == "same" and _pair(conv.stride) == (1, 1):
            return F.interpolate(m, size=size, mode="bilinear", align_corners=False) if m.shape[-2:] != size else m
        raise ValueError(f"VisualBackProp: unsupported conv geometry dilation={conv.dilation} padding={conv.padding!r}")
    k, s = _pair(conv.kernel_size), _pair(conv.stride)
    p = (0, 0) if isinstance(conv.padding, str) else _pair(conv.padding)
    natural = [(m.shape[-2 + i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(2)]
    extra = [size[i] - natural[i] for i in range(2)]
    if all(0 <= e < s[i] for i, e in enumerate(extra)):
        weight = torch.ones(1, 1, *k, dtype=m.dtype, device=m.device)
        return F.conv_transpose2d(m, weight, stride=s, padding=p, output_padding=tuple(extra))
    # geometry that a transposed conv cannot reproduce exactly (e.g. odd padding): resize instead
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


def _normalise(m: torch.Tensor) -> torch.Tensor:
    """Scale each (H, W) map of a (B, H, W) tensor to [0, 1]; a flat map becomes all zeros."""
    flat = m.flatten(1)
    lo, hi = flat.min(dim=1).values[:, None, None], flat.max(dim=1).values[:, None, None]
    span = hi - lo
    return torch.where(span > 1e-12, (m - lo) / span.clamp_min(1e-12), torch.zeros_like(m))


@torch.no_grad()
def visual_backprop(convs: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """VisualBackProp saliency of a conv stack for inputs ``x`` (B, C, H, W): (B, H, W) in [0, 1]."""
    if x.ndim != 4:
        raise ValueError(f"VisualBackProp: input must be (B, C, H, W), got shape {tuple(x.shape)}")
    maps = _conv_feature_maps(convs, x)
    sizes = [tuple(x.shape[-2:])] + [tuple(fm.shape[-2:]) for _, fm in maps[:-1]]
    averaged = [fm.mean(dim=1, keepdim=True) for _, fm in maps]
    m = averaged[-1]
    for i in range(len(maps) - 1, -1, -1):
        m = _deconv_to(m, maps[i][0], sizes[i])
        if i > 0:
            m = m * averaged[i - 1]
    return _normalise(m[:, 0])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two saliency maps in [0, 1] (scikit-image, data range 1)."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM: maps differ in shape: {a.shape} vs {b.shape}")
    return float(structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=1.0))


def overlay(frame: np.ndarray, saliency: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The saliency map (JET colour map) blended over an RGB uint8 frame."""
    heat = cv2.applyColorMap(np.rint(np.clip(saliency, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(frame, 1.0 - alpha, heat, alpha, 0.0)


# --------------------------------------------------------------------------- policy saliency


def saliency_maps(policy: Any, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """VisualBackProp maps (N, H, W) in [0, 1] of a policy's conv stack for RGB uint8 frames (N, H, W, 3).

    Frames are prepared as the policy's head prepares them (per-image standardisation).
    """
    from drive.policy.perception import standardize_images

    convs = getattr(getattr(policy, "head", None), "convs", None)
    if not isinstance(convs, nn.Sequential):
        raise ValueError(f"explain: model {getattr(policy, 'model_name', '?')!r} has no conv head (policy.head.convs)")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"explain: frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    device = next(policy.parameters()).device
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch])).permute(0, 3, 1, 2).to(device)
        out.append(visual_backprop(convs, standardize_images(x)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *frames.shape[1:3]), np.float32)


def attention_stability(
    policy: Any, frames: np.ndarray, variances: Sequence[float], seed: int = 0, clean_maps: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Mean (and std, min) SSIM between saliency maps of clean frames and of the same frames with
    Gaussian noise of each variance σ² (images on [0, 1]). Keys are the variances as text."""
    from drive.eval.perturb import Gaussian

    clean = saliency_maps(policy, frames) if clean_maps is None else clean_maps
    result = {}
    for level in variances:
        noise = Gaussian(level)
        noise.reset(np.random.default_rng(np.random.SeedSequence([seed, int(round(level * 1e6))])))
        noisy = np.stack([noise.camera(f) for f in frames])
        maps = saliency_maps(policy, noisy)
        scores = np.array([ssim(a, b) for a, b in zip(clean, maps)])
        result[f"{level:g}"] = {"mean": float(scores.mean()), "std": float(scores.std()), "min": float(scores.min())}
    return result


# ------------------------------------------------------------------------------------ figures


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
    cv2.rectangle(img, (0, 0), (w + 6, h + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (3, h + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def saliency_panel(
    policy: Any, frame: np.ndarray, clean_map: np.ndarray, variances: Sequence[float], seed: int, scale: int = 2
) -> np.ndarray:
    """Rows: clean, then each noise level; columns: camera, saliency map, overlay (RGB uint8)."""
    from drive.eval.perturb import Gaussian

    def row(f: np.ndarray, m: np.ndarray, name: str) -> np.ndarray:
        heat = cv2.cvtColor(np.rint(m * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        cells = [_label(f, name), _label(heat, "VisualBackProp"), _label(overlay(f, m), "overlay")]
        big = [cv2.resize(c, (c.shape[1] * scale, c.shape[0] * scale), interpolation=cv2.INTER_NEAREST) for c in cells]
        return np.concatenate(big, axis=1)

    rows = [row(frame, clean_map, "clean")]
    for level in variances:
        noise = Gaussian(level)
        noise.reset(np.random.default_rng(np.random.SeedSequence([seed, int(round(level * 1e6))])))
        noisy = noise.camera(frame)
        m = saliency_maps(policy, noisy[None])[0]
        rows.append(row(noisy, m, f"noise var {level:g}  SSIM {ssim(clean_map, m):.2f}"))
    return np.concatenate(rows, axis=0)


def plot_neuron_traces(
    t_s: np.ndarray,
    activity: np.ndarray,
    labels: Sequence[str],
    steering: np.ndarray,
    expert: np.ndarray,
    path: Path,
    title: str = "",
) -> None:
    """Steering (policy and expert) on top, then each neuron's trace, stacked, against time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = activity.shape[1] if activity.ndim == 2 else 0
    fig, axes = plt.subplots(
        2, 1, figsize=(10, 3 + 0.35 * max(n, 4)), sharex=True, gridspec_kw={"height_ratios": [1, max(1, n / 5)]}
    )
    axes[0].plot(t_s, steering, label="policy", color="tab:orange")
    axes[0].plot(t_s, expert, label="expert", color="tab:green", alpha=0.8)
    axes[0].set_ylabel("steering\n(normalised)")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].grid(alpha=0.3)
    ax = axes[1]
    if n:
        a = activity
        lo, hi = a.min(axis=0), a.max(axis=0)
        scaled = (a - lo) / np.where(hi - lo > 1e-9, hi - lo, 1.0)
        for i in range(n):
            ax.plot(t_s, scaled[:, i] * 0.8 + (n - 1 - i), lw=0.9)
        ax.set_yticks(np.arange(n)[::-1] + 0.4)
        ax.set_yticklabels(list(labels)[:n], fontsize=7)
        ax.set_ylabel("neuron (each scaled to its range)")
    else:
        ax.text(0.5, 0.5, "feed-forward model: no neurons", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("time (s)")
    fig.suptitle(title or "neuron traces")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An RGB uint8 image as PNG, atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"{path}: OpenCV could not write the PNG")


def write_wiring(policy: Any, path: Path) -> bool:
    """Draw the controller's wiring (LTC models) to ``path``; False when the model has none."""
    config = getattr(getattr(policy, "controller", None), "config", None) or {}
    if "wiring" not in config:
        return False
    from drive.core.wirings import Wiring, plot_wiring

    plot_wiring(Wiring.from_dict(config["wiring"]), path, title=f"{getattr(policy, 'model_name', '')} wiring")
    return True


# ------------------------------------------------------------------------------------ explain


class _Collector:
    """Keeps each step's clean camera frame, commands and neuron activity (an observer of ``run_episode``)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.t_s: list[float] = []
        self.steering: list[float] = []
        self.expert: list[float] = []
        self.activity: list[np.ndarray] = []

    def __call__(self, step) -> None:
        self.frames.append(step.clean_frame)
        self.t_s.append(step.t_s)
        self.steering.append(step.steering)
        self.expert.append(step.expert_steering)
        self.activity.append(step.activity)


@holds_output_lock("out")
def explain(
    checkpoint: Any,
    scenario: Any,
    out: str | Path,
    seed: int = 0,
    variances: Sequence[float] = (0.1, 0.2, 0.3),
    images: int = 6,
    ssim_frames: int = 40,
    duration_s: float | None = None,
    video: bool = True,
    data: str | Path | None = None,
    episode: int | None = None,
) -> dict[str, Any]:
    """Drive one clean episode and write saliency images and video, attention stability, neuron traces and wiring.

    With ``data`` (a dataset folder), the frames are those of a recorded ``episode`` (default: the first)
    instead, run open loop (:func:`drive.eval.open_loop.recorded_trace`); the traces show the recorded label.
    """
    from drive.eval.rollout import make_env, run_episode
    from drive.eval.simulate import resolve_scenario
    from drive.eval.video import video_writer
    from drive.policy.load import check_compatible, load_driver

    for v in variances:
        if not (math.isfinite(v) and 0 < v <= 1):
            raise UserError(f"--noise: each Gaussian variance must be in (0, 1], got {v!r}")
    if images < 0 or ssim_frames < 1:
        raise UserError(f"--images must be >= 0 and --ssim-frames >= 1, got {images!r} and {ssim_frames!r}")
    policy = load_driver(checkpoint)
    if data is not None:  # recorded frames, open loop
        from drive.eval.open_loop import recorded_trace

        collector = recorded_trace(policy, data, episode, duration_s)
        fps, source, log = collector.fps, collector.name, None
    else:
        sc = resolve_scenario(scenario, duration_s)
        check_compatible(policy, sc)
        fps, source = sc.control_hz, f"scenario {sc.name}, seed {seed}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    if data is None:
        env = make_env(sc, "recover")
        collector = _Collector()
        try:
            log = run_episode(policy, env, seed, observers=[collector])
        finally:
            env.close()
    frames = np.stack(collector.frames)
    maps = saliency_maps(policy, frames)

    pick = np.unique(np.linspace(0, len(frames) - 1, min(ssim_frames, len(frames))).round().astype(int))
    stability = attention_stability(policy, frames[pick], variances, seed, clean_maps=maps[pick])

    written = []
    for i in np.unique(np.linspace(0, len(frames) - 1, images).round().astype(int)) if images else []:
        path = out / "saliency" / f"frame_{i:04d}.png"
        write_png(path, saliency_panel(policy, frames[i], maps[i], variances, seed))
        written.append(str(path))
    if video:
        h, w = frames.shape[1:3]
        with video_writer(out / "saliency.mp4", fps, (2 * h, 2 * w)) as vw:
            for f, m in zip(frames, maps):
                vw.write(cv2.resize(overlay(f, m), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST))
    activity = np.stack(collector.activity) if collector.activity else np.zeros((0, 0))
    name = policy.model_name
    plot_neuron_traces(
        np.asarray(collector.t_s),
        activity,
        policy.neuron_labels,
        np.asarray(collector.steering),
        np.asarray(collector.expert),
        out / "neuron_traces.png",
        title=f"{name}: neuron traces, {source}",
    )
    has_wiring = write_wiring(policy, out / "wiring.png")

    result = {
        "checkpoint": str(checkpoint) if isinstance(checkpoint, (str, Path)) else None,
        "model": name,
        "scenario": None if data is not None else sc.name,
        "source": source,
        "seed": seed,
        "steps": len(frames),
        "method": "VisualBackProp (Bojarski et al. 2018) on policy.head.convs; SSIM (scikit-image) between maps of "
        "clean frames and the same frames with Gaussian noise of variance sigma^2 on [0, 1] images",
        "ssim_frames": int(len(pick)),
        "mean_ssim": {k: v["mean"] for k, v in stability.items()},
        "ssim": stability,
        "off_road_events": None if log is None else log.off_road_events,
        "files": {
            "saliency_images": written,
            "saliency_video": str(out / "saliency.mp4") if video else None,
            "neuron_traces": str(out / "neuron_traces.png"),
            "wiring": str(out / "wiring.png") if has_wiring else None,
        },
    }
    atomic_write_json(out / "explain.json", result)
    return result
