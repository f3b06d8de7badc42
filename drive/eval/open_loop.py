"""Open-loop replay: a driver predicts steering over the frames of a recorded episode (the NCP paper's *passive* test).

The driver runs over a whole episode (or a segment of one), carrying its recurrent state from frame to
frame, with the recorded frame times: it is told the time since the last frame it saw (``dt_s`` from the
``timestamp`` column; the nominal ``1 / fps`` for the first frame), as in closed loop.

Perturbations are those of ``drive stress`` (:mod:`drive.eval.perturb`), applied as the closed loop
applies them (:func:`perturbed_frames`): a :class:`~drive.eval.perturb.Chain` reset with ``(seed, episode)``,
then for each frame ``camera`` and ``deliver``. The same seed gives the same frames out for the same frames
in. ``drop`` holds the previous prediction on a lost frame (and the next frame is integrated over the true
elapsed time); ``latency`` shows the model the frame from k frames ago. Only the stages in
``OPEN_LOOP_STAGES`` apply: physical kinds act on a car, which a recording does not have.

- :func:`check_fits`: the dataset's frame size and rate must be the driver's;
- :func:`load_segment`: a segment's frames, labels and times (the last two episodes decoded are kept);
- :func:`run_open_loop`: one driver over one segment, an :class:`OpenLoopRun`;
- :func:`recorded_trace`: one episode and a driver's run over it, for ``drive explain --data``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from drive.errors import UserError
from drive.eval.perturb import CLEAN, KINDS, Chain, make

OPEN_LOOP_STAGES = ("camera", "timing")
"""The perturbation stages a recording allows (no car to push or steer)."""


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
    on_frames: Callable[[int], Any] | None = None,
) -> OpenLoopRun:
    """Run a driver over recorded frames, state carried, true elapsed time; see the module docstring.

    A :class:`~drive.policy.model.DrivingPolicy` under a camera perturbation (or none), when the neuron
    activity is not wanted (``activity=False``) and ``batched``, runs ``chunk`` frames per call of its
    ``forward`` (the conv head on the whole chunk, the controller over the sequence, the state carried):
    the same computation as one ``step`` per frame, several times faster. Otherwise one ``step`` per frame.
    ``on_frames(n)`` is called as frames are done (``n`` more each time), for a progress bar.
    """
    from drive.eval.rollout import clamp_steering, policy_step

    dt = segment_dt(t_s, fps, where)
    scale = (policy.max_steer_rad / data_max_steer_rad) if getattr(policy, "max_steer_rad", None) else 1.0
    if batched and not activity and (kind == CLEAN or KINDS[kind].cls.stage == "camera"):
        from drive.policy.model import DrivingPolicy

        if isinstance(policy, DrivingPolicy):
            return _run_batched(policy, frames, label, t_s, dt, scale, kind, level, seed, episode, chunk, on_frames)
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
        if on_frames is not None:
            on_frames(1)
    activity = np.stack(acts) if acts and acts[0].size else np.zeros((n, 0), np.float32)
    return OpenLoopRun(
        pred, np.asarray(label, np.float64), np.asarray(t_s, np.float64), seen, dropped, activity, nonfinite
    )


def _run_batched(
    policy: Any, frames, label, t_s, dt, scale, kind, level, seed, episode, chunk, on_frames=None
) -> OpenLoopRun:
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
            if on_frames is not None:
                on_frames(x.shape[1])
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


_EPISODES: dict[tuple, tuple] = {}
"""Per process: (dataset, episode) -> (frames, label, t_s, info), the last two decoded."""


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
    policy: Any,
    data: str | Path,
    episode: int | None = None,
    duration_s: float | None = None,
    progress: bool = False,
) -> RecordedTrace:
    """Frames of one episode of a dataset (default: its first) and the driver's open-loop run over them.

    ``duration_s`` keeps only the first seconds. The dataset must fit the policy (size and frame rate).
    ``progress``: a bar in frames (:func:`drive.eval.progress.progress_bar`).
    """
    from drive.data.reader import DatasetReader
    from drive.eval.progress import progress_bar

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
    bar = progress_bar(len(frames), "open loop", "frame", progress)
    try:
        run = run_open_loop(
            policy, frames, label, t_s, info.fps, info.max_steer_rad, episode=episode, on_frames=bar.update
        )
    finally:
        bar.close()
    return RecordedTrace(
        np.asarray(frames),
        list(t_s - t_s[0]),
        list(run.prediction),
        list(run.label),
        list(run.activity),
        info.fps,
        f"{root.name} episode {episode}",
    )
