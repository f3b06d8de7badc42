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
- **Interpretability** (Lechner et al., Nature MI 2020: the share of the neuron-activity variance on the
  first principal component; NCP 92 %, CNN 83 %, CT-RNN 60 %, LSTM 51 % there): :func:`pc1_share` of the
  activity over each clean closed-loop episode, with the participation ratio (Σλ)²/Σλ² beside it
  (:func:`participation_ratio`: the effective number of dimensions). The activity is the recurrent
  state (``Driver.neuron_activity``) for the recurrent families and the last hidden layer of the dense
  stack for the feed-forward CNN (:func:`hidden_activity`), as in the paper. A share near 1 for every
  model means the measure does not discriminate.
- Neuron traces of the controller over a closed-loop episode, and the wiring diagram (LTC models).

Outputs in ``DIR``: ``saliency/frame_XXXX.png`` (camera | map | overlay), ``saliency.mp4`` (overlay
for every step), ``explain.json`` (mean SSIM per noise level, PC1 share and participation ratio, and
more), ``neuron_traces.png``, ``wiring.png`` (when the controller has a wiring). With ``episodes`` > 1
the SSIM pools ``ssim_frames`` frames of each of the episodes (reset seeds ``seed``, ``seed + 1``, …) and
the PC1 share and participation ratio are the means of the per-episode values; the images, video and
traces show the first episode. Episodes are driven by the rollout (:func:`drive.eval.rollout.run_episode`);
the command line is :mod:`drive.commands.explain`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

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


def saliency_maps(
    policy: Any, frames: np.ndarray, batch: int = 64, on_frames: Callable[[int], Any] | None = None
) -> np.ndarray:
    """VisualBackProp maps (N, H, W) in [0, 1] of a policy's conv stack for RGB uint8 frames (N, H, W, 3).

    Frames are prepared as the policy's head prepares them (per-image standardisation). ``on_frames(n)`` is
    called after each batch of ``n`` frames (a progress bar).
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
        if on_frames is not None:
            on_frames(len(x))
    return np.concatenate(out) if out else np.zeros((0, *frames.shape[1:3]), np.float32)


def seeded_noise(level: float, seed: int) -> Any:
    """Gaussian camera noise of variance ``level``, reset from (``seed``, ``level``): the same draw every time."""
    from drive.eval.perturb import Gaussian

    noise = Gaussian(level)
    noise.reset(np.random.default_rng(np.random.SeedSequence([seed, int(round(level * 1e6))])))
    return noise


def ssim_scores(
    policy: Any,
    frames: np.ndarray,
    level: float,
    seed: int = 0,
    clean_maps: np.ndarray | None = None,
    on_frames: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Per-frame SSIM between the saliency maps of clean ``frames`` and of the same frames with Gaussian noise
    of variance ``level`` (images on [0, 1]); the noise is seeded by (``seed``, ``level``). ``on_frames``: as
    :func:`saliency_maps`'s (the noisy frames' maps; the clean ones' too when they are computed here)."""
    clean = saliency_maps(policy, frames, on_frames=on_frames) if clean_maps is None else clean_maps
    noise = seeded_noise(level, seed)
    noisy = np.stack([noise.camera(f) for f in frames])
    return np.array([ssim(a, b) for a, b in zip(clean, saliency_maps(policy, noisy, on_frames=on_frames))])


def _score_summary(scores: np.ndarray) -> dict[str, float]:
    return {"mean": float(scores.mean()), "std": float(scores.std()), "min": float(scores.min())}


def attention_stability(
    policy: Any, frames: np.ndarray, variances: Sequence[float], seed: int = 0, clean_maps: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Mean (and std, min) SSIM between saliency maps of clean frames and of the same frames with
    Gaussian noise of each variance σ² (images on [0, 1]). Keys are the variances as text."""
    clean = saliency_maps(policy, frames) if clean_maps is None else clean_maps
    return {f"{lv:g}": _score_summary(ssim_scores(policy, frames, lv, seed, clean)) for lv in variances}


# ----------------------------------------------------------------------------- interpretability


def pc1_share(activity: np.ndarray) -> float:
    """Share of the variance of ``activity`` (time × neurons) on its first principal component."""
    eig = _covariance_spectrum(activity)
    return float(eig[0] / eig.sum()) if eig.sum() > 0 else float("nan")


def participation_ratio(activity: np.ndarray) -> float:
    """(Σλ)² / Σλ² of the covariance spectrum: 1 when one component carries all variance, N when N share it."""
    eig = _covariance_spectrum(activity)
    return float(eig.sum() ** 2 / (eig**2).sum()) if eig.sum() > 0 else float("nan")


def _covariance_spectrum(activity: np.ndarray) -> np.ndarray:
    a = np.asarray(activity, dtype=float)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"activity must be (time >= 2, neurons), got shape {a.shape}")
    eig = np.linalg.eigvalsh(np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1]))
    return np.clip(eig[::-1], 0, None)


def activity_dimension(activity: np.ndarray) -> dict[str, float]:
    """PC1 share and participation ratio of (time × neurons) activity; NaN without neurons or variance."""
    a = np.asarray(activity, dtype=float)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] == 0:
        return {"pc1_share": float("nan"), "participation_ratio": float("nan")}
    return {"pc1_share": pc1_share(a), "participation_ratio": participation_ratio(a)}


def _last_hidden_layer(policy: Any) -> nn.Module | None:
    """The activation after the last hidden Linear of a feed-forward head's dense stack (PilotNet), or None."""
    dense = getattr(getattr(policy, "head", None), "dense", None)
    return dense[-2] if isinstance(dense, nn.Sequential) and len(dense) >= 3 else None


@torch.no_grad()
def hidden_activity(policy: Any, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, units): the last hidden layer of a feed-forward driver (the CNN) for RGB uint8 frames (N, H, W, 3);
    (N, 0) when the head has no dense hidden layer."""
    layer = _last_hidden_layer(policy)
    if layer is None:
        return np.zeros((len(frames), 0), np.float32)
    device = next(policy.parameters()).device
    out: list[np.ndarray] = []
    handle = layer.register_forward_hook(lambda _m, _i, o: out.append(o.float().cpu().numpy()))
    try:
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch])).permute(0, 3, 1, 2).to(device)
            policy.head(x)
    finally:
        handle.remove()
    return np.concatenate(out)


def activity_source(policy: Any) -> str:
    """What :func:`neuron_activity_of` measures for this driver, in words."""
    if getattr(policy, "neuron_labels", None):
        return "recurrent state (Driver.neuron_activity)"
    layer = _last_hidden_layer(policy)
    return "last hidden layer of the dense stack" if layer is not None else "none (no neurons)"


def neuron_activity_of(policy: Any, frames: np.ndarray, recorded: Sequence[np.ndarray]) -> np.ndarray:
    """(steps, neurons): the recorded recurrent state where the driver has neurons, else the last hidden layer
    of its dense stack over the episode's (clean) frames."""
    if getattr(policy, "neuron_labels", None) and len(recorded):
        return np.stack(recorded)
    return hidden_activity(policy, frames)


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

    def row(f: np.ndarray, m: np.ndarray, name: str) -> np.ndarray:
        heat = cv2.cvtColor(np.rint(m * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        cells = [_label(f, name), _label(heat, "VisualBackProp"), _label(overlay(f, m), "overlay")]
        big = [cv2.resize(c, (c.shape[1] * scale, c.shape[0] * scale), interpolation=cv2.INTER_NEAREST) for c in cells]
        return np.concatenate(big, axis=1)

    rows = [row(frame, clean_map, "clean")]
    for level in variances:
        noisy = seeded_noise(level, seed).camera(frame)
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
    policy_label: str = "policy",
    reference_label: str = "expert",
) -> None:
    """Steering (the policy, named ``policy_label`` and drawn in its family's colour, and the reference:
    ``expert``, or ``recorded`` for a dataset's labels) on top, then each neuron's trace, stacked, against time (PNG)."""
    from drive.eval import plots

    n = activity.shape[1] if activity.ndim == 2 else 0
    fig, axes = plots.subplots(
        2, 1, figsize=(10, 3 + 0.35 * max(n, 4)), sharex=True, gridspec_kw={"height_ratios": [1, max(1, n / 5)]}
    )
    axes[0].plot(t_s, expert, label=reference_label, color=plots.colour(plots.EXPERT), linewidth=1.4)
    axes[0].plot(t_s, steering, label=policy_label, color=plots.colour(policy_label))
    axes[0].set_ylabel("steering\n(normalised)")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].grid(alpha=0.3)
    ax = axes[1]
    if n:
        a = activity
        lo, hi = a.min(axis=0), a.max(axis=0)
        scaled = (a - lo) / np.where(hi - lo > 1e-9, hi - lo, 1.0)
        for i in range(n):
            ax.plot(t_s, scaled[:, i] * 0.8 + (n - 1 - i), lw=0.9, color=plots.colour(policy_label))
        ax.set_yticks(np.arange(n)[::-1] + 0.4)
        ax.set_yticklabels(list(labels)[:n], fontsize=7)
        ax.set_ylabel("neuron (each scaled to its range)")
    else:
        ax.text(0.5, 0.5, "feed-forward model: no neurons", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("time (s)")
    fig.suptitle(title or "neuron traces")
    fig.tight_layout()
    plots.save_figure(fig, path)


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


def _drive_clean(
    policy: Any, sc: Any, seed: int, observers: Sequence[Callable[[Any], Any]] = ()
) -> tuple[_Collector, Any]:
    """One clean closed-loop episode with reset seed ``seed``: what the driver saw and did, and the log
    (``observers``: more observers of the rollout, e.g. a progress bar's)."""
    from drive.eval.rollout import make_env, run_episode

    env = make_env(sc, "recover")
    collector = _Collector()
    try:
        log = run_episode(policy, env, seed, observers=[collector, *observers])
    finally:
        env.close()
    return collector, log


def _or_none(x: float) -> float | None:
    """JSON has no NaN: a missing measure is null."""
    return float(x) if math.isfinite(x) else None


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int)) if k and n else np.zeros(0, int)


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
    episodes: int = 1,
    camera_from_checkpoint: bool = False,
    label: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Drive ``episodes`` clean episodes (reset seeds ``seed``, ``seed + 1``, …) and write attention stability
    (SSIM over ``ssim_frames`` frames of each episode), the PC1 share and participation ratio of the neuron
    activity (mean over episodes), and for the first episode saliency images and video, neuron traces and wiring.

    With ``data`` (a dataset folder), the frames are those of a recorded ``episode`` (default: the first)
    instead, run open loop (:func:`drive.eval.open_loop.recorded_trace`); the traces show the recorded label.
    The checkpoint is checked against the scenario (frame size: an error; frame rate and camera: a warning);
    ``camera_from_checkpoint`` renders with the camera its dataset was recorded with. ``label`` names the
    driver in the titles and ``explain.json`` (default: :func:`drive.eval.sweep.driver_label`, the folder name).
    ``progress``: a bar per stage on stderr (driving in steps, then the saliency maps and the video in frames).
    """
    from drive.eval.progress import progress_bar
    from drive.eval.simulate import resolve_scenario, step_bar
    from drive.eval.video import video_writer
    from drive.policy.load import check_compatible, load_driver

    for v in variances:
        if not (math.isfinite(v) and 0 < v <= 1):
            raise UserError(f"--noise: each Gaussian variance must be in (0, 1], got {v!r}")
    if images < 0 or ssim_frames < 1:
        raise UserError(f"--images must be >= 0 and --ssim-frames >= 1, got {images!r} and {ssim_frames!r}")
    if episodes < 1 or (data is not None and episodes != 1):
        raise UserError(f"--episodes {episodes!r}: must be >= 1, and 1 with --data (one recorded episode)")
    policy = load_driver(checkpoint)
    if data is not None:  # recorded frames, open loop
        from drive.eval.open_loop import recorded_trace

        runs = [(recorded_trace(policy, data, episode, duration_s, progress=progress), None)]
        fps, source, seeds = runs[0][0].fps, runs[0][0].name, [seed]
    else:
        sc = resolve_scenario(scenario, duration_s)
        if camera_from_checkpoint:  # render with the camera the checkpoint's dataset was recorded with
            from drive.policy.load import with_trained_camera

            sc = with_trained_camera(sc, checkpoint)
        check_compatible(policy, sc, checkpoint=checkpoint)
        fps, source, seeds = sc.control_hz, f"scenario {sc.name}, seed {seed}", [seed + k for k in range(episodes)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        bar = step_bar(sc, len(seeds), "drive", progress)
        try:
            runs = []
            for k, s in enumerate(seeds):
                runs.append(_drive_clean(policy, sc, s, [bar.observer(k)] if progress else []))
                bar.episode_done(k)
        finally:
            bar.close()

    scores: dict[str, list[np.ndarray]] = {f"{lv:g}": [] for lv in variances}
    per_episode = []
    picked = sum(len(_spread(len(c.frames), ssim_frames)) for c, _ in runs)
    bar = progress_bar(picked * (1 + len(variances)), "attention (SSIM)", "frame", progress)
    for (collector, log), s in zip(runs, seeds):
        frames = np.stack(collector.frames)
        pick = _spread(len(frames), ssim_frames)
        clean = saliency_maps(policy, frames[pick], on_frames=bar.update)
        for lv in variances:
            scores[f"{lv:g}"].append(ssim_scores(policy, frames[pick], lv, s, clean, on_frames=bar.update))
        activity = neuron_activity_of(policy, frames, collector.activity)
        per_episode.append(
            {
                "seed": s,
                "steps": len(frames),
                "ssim_frames": len(pick),
                "mean_ssim": {k: float(v[-1].mean()) for k, v in scores.items()},
                "neurons": int(activity.shape[1]) if activity.ndim == 2 else 0,
                **{k: _or_none(v) for k, v in activity_dimension(activity).items()},
                "off_road_events": None if log is None else log.off_road_events,
            }
        )
    bar.close()
    stability = {k: _score_summary(np.concatenate(v)) for k, v in scores.items()}

    # the first episode's pictures
    collector = runs[0][0]
    frames = np.stack(collector.frames)
    shown = _spread(len(frames), images)
    mapped = len(frames) if video else len(shown)
    bar = progress_bar(mapped + (len(frames) if video else 0), "saliency", "frame", progress)
    try:
        maps = saliency_maps(policy, frames if video else frames[shown], on_frames=bar.update)
        written = []
        for j, i in enumerate(shown):
            path = out / "saliency" / f"frame_{i:04d}.png"
            write_png(path, saliency_panel(policy, frames[i], maps[i if video else j], variances, seed))
            written.append(str(path))
        if video:
            h, w = frames.shape[1:3]
            with video_writer(out / "saliency.mp4", fps, (2 * h, 2 * w)) as vw:
                for f, m in zip(frames, maps):
                    vw.write(cv2.resize(overlay(f, m), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST))
                    bar.update()
    finally:
        bar.close()
    activity = np.stack(collector.activity) if collector.activity else np.zeros((0, 0))
    from drive.eval.sweep import driver_label

    name = label or driver_label(checkpoint)
    plot_neuron_traces(
        np.asarray(collector.t_s),
        activity,
        policy.neuron_labels,
        np.asarray(collector.steering),
        np.asarray(collector.expert),
        out / "neuron_traces.png",
        title=f"{name}: neuron traces, {source}",
        policy_label=name,
        reference_label="recorded" if data is not None else "expert",
    )
    has_wiring = write_wiring(policy, out / "wiring.png")

    def mean_of(key: str) -> float | None:
        values = [e[key] for e in per_episode if e[key] is not None]
        return float(np.mean(values)) if values else None

    result = {
        "checkpoint": str(checkpoint) if isinstance(checkpoint, (str, Path)) else None,
        "label": name,
        "model": policy.model_name,
        "scenario": None if data is not None else sc.name,
        "source": source,
        "seed": seed,
        "episodes": len(runs),
        "seeds": seeds,
        "steps": sum(e["steps"] for e in per_episode),
        "method": "VisualBackProp (Bojarski et al. 2018) on policy.head.convs; SSIM (scikit-image) between maps of "
        "clean frames and the same frames with Gaussian noise of variance sigma^2 on [0, 1] images; "
        "PC1 share and participation ratio of the covariance spectrum of the neuron activity of each clean "
        "episode, averaged over episodes",
        "ssim_frames": sum(e["ssim_frames"] for e in per_episode),
        "mean_ssim": {k: v["mean"] for k, v in stability.items()},
        "ssim": stability,
        "activity_source": activity_source(policy),
        "neurons": per_episode[0]["neurons"],
        "pc1_share": mean_of("pc1_share"),
        "participation_ratio": mean_of("participation_ratio"),
        "per_episode": per_episode,
        "off_road_events": None if data is not None else sum(e["off_road_events"] for e in per_episode),
        "files": {
            "saliency_images": written,
            "saliency_video": str(out / "saliency.mp4") if video else None,
            "neuron_traces": str(out / "neuron_traces.png"),
            "wiring": str(out / "wiring.png") if has_wiring else None,
        },
    }
    atomic_write_json(out / "explain.json", result)
    return result
