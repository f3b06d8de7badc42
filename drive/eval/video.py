"""The evaluation video: one composed RGB picture per control step, written as H.264 (yuv420p) MP4.

Each picture shows, left to right and top to bottom::

    ┌──────────────────────────────┬──────────────┐
    │ camera, as the policy saw it │  top-down    │
    │ (perturbed, ×2)              │  map with    │
    ├──────────────────────────────┤  the path    │
    │ steering: policy vs expert   │  driven      │
    ├──────────────────────────────┴──────────────┤
    │ neuron activity: one row per neuron, time → │
    └─────────────────────────────────────────────┘

The open-loop video of ``drive evaluate`` (:func:`write_overlay_video`) has the same layout with a
steering trace (recorded and predicted, :func:`trace_panel`) in place of the map.

Frames are RGB uint8 everywhere here. The writer is :class:`drive.video_io.VideoWriter` (PyAV), which
browsers play; :class:`Compositor` keeps both picture sizes even, as yuv420p needs.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from drive.eval.plots import EXPERT, RECORDED, rgb
from drive.video_io import VideoWriter, iter_video, video_writer

__all__ = [
    "ActivityStrip",
    "Compositor",
    "VideoWriter",
    "fit",
    "read_video",
    "steering_panel",
    "trace_panel",
    "video_writer",
    "write_overlay_video",
]

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
GREY = (150, 150, 150)
POLICY_RGB = (255, 140, 0)
EXPERT_RGB = rgb(EXPERT)
"""The expert (and recorded steering): its colour in every figure (:data:`drive.eval.plots.PALETTE`)."""
BACKGROUND = 24


def _text(img: np.ndarray, text: str, org: tuple[int, int], color=WHITE, scale: float = 0.4) -> None:
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``image`` to fit inside (height, width) keeping its aspect ratio, centred on a dark canvas."""
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    interp = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas


def steering_panel(
    policy: float | None, expert: float | None, height: int, width: int, reference: str = EXPERT
) -> np.ndarray:
    """Two horizontal bars from the centre, policy (orange) and the reference (grey: the expert, or
    ``reference="recorded"`` for a dataset's label), with their values.

    Steering is normalised to [-1, 1]; positive is drawn to the left (as the steering wheel turns left).
    """
    panel = np.full((height, width, 3), BACKGROUND, np.uint8)
    label_w, value_w = 60, 64
    x0, x1 = label_w, width - value_w
    centre = (x0 + x1) // 2
    half = (x1 - x0) // 2
    rows = [("policy", policy, POLICY_RGB), (reference, expert, EXPERT_RGB)]
    bar_h = max(6, (height - 12) // 2 - 6)
    for i, (name, value, color) in enumerate(rows):
        y = 6 + i * (bar_h + 8)
        cv2.rectangle(panel, (x0, y), (x1, y + bar_h), (60, 60, 60), 1)
        _text(panel, name, (4, y + bar_h - 3), color)
        if value is None or not np.isfinite(value):
            _text(panel, "  n/a", (x1 + 4, y + bar_h - 3), GREY)
            continue
        v = float(np.clip(value, -1.0, 1.0))
        end = int(round(centre - v * half))
        cv2.rectangle(panel, (min(centre, end), y + 1), (max(centre, end), y + bar_h - 1), color, -1)
        _text(panel, f"{value:+.2f}", (x1 + 4, y + bar_h - 3), color)
    cv2.line(panel, (centre, 2), (centre, height - 3), WHITE, 1)
    return panel


class ActivityStrip:
    """A scrolling heat strip of neuron activity: one row per neuron, newest column on the right.

    Each neuron is scaled by its own min/max over the visible window, so slow and fast neurons are
    both readable; the colour map is OpenCV's VIRIDIS.
    """

    def __init__(self, labels: Sequence[str], columns: int, column_px: int = 2, row_px: int = 8):
        self.labels = list(labels)
        self.columns, self.column_px, self.row_px = columns, column_px, row_px
        self.history: collections.deque = collections.deque(maxlen=columns)

    def push(self, activity: np.ndarray | None) -> None:
        if activity is not None and len(self.labels):
            self.history.append(np.asarray(activity, dtype=np.float32).reshape(-1)[: len(self.labels)])

    def render(self, width: int) -> np.ndarray:
        n = len(self.labels)
        height = max(1, n) * self.row_px + 14
        panel = np.full((height, width, 3), BACKGROUND, np.uint8)
        _text(panel, "neuron activity (per-neuron scale)", (4, 10), GREY, 0.35)
        if not n:
            return panel
        label_w = 44
        for i, label in enumerate(self.labels):
            if self.row_px >= 6:
                _text(panel, label[:7], (2, 14 + i * self.row_px + self.row_px - 1), GREY, 0.3)
        if not self.history:
            return panel
        a = np.stack(list(self.history), axis=1)  # (N, T)
        lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
        scaled = np.where(hi - lo > 1e-9, (a - lo) / np.maximum(hi - lo, 1e-9), 0.5)
        gray = np.rint(np.nan_to_num(scaled, nan=0.0) * 255).astype(np.uint8)
        heat = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
        heat = cv2.resize(heat, (a.shape[1] * self.column_px, n * self.row_px), interpolation=cv2.INTER_NEAREST)
        heat = heat[:, -(width - label_w) :]
        panel[14 : 14 + heat.shape[0], width - heat.shape[1] :] = heat
        return panel


class Compositor:
    """Lays out camera, steering, top-down map and neuron activity in one RGB picture of fixed size."""

    def __init__(
        self, camera_hw: tuple[int, int], neuron_labels: Sequence[str] = (), camera_scale: int = 2, map_width: int = 320
    ):
        ch, cw = camera_hw
        self.cam_h, self.cam_w = ch * camera_scale, cw * camera_scale
        self.steer_h = 50
        self.map_w = map_width
        self.width = self.cam_w + self.map_w
        self.width += self.width % 2
        self.strip = ActivityStrip(neuron_labels, columns=(self.width - 44) // 2)
        self.strip_h = self.strip.render(self.width).shape[0]
        self.height = self.cam_h + self.steer_h + self.strip_h
        self.height += self.height % 2

    def compose(
        self,
        camera: np.ndarray,
        policy_steering: float | None,
        expert_steering: float | None,
        topdown: np.ndarray | None,
        activity: np.ndarray | None,
        lines: Sequence[str] = (),
        camera_note: str | None = None,
        reference: str = EXPERT,
    ) -> np.ndarray:
        """One picture. ``lines`` are printed on the map; ``camera_note`` (e.g. "frame dropped") on the camera;
        ``reference`` names the second steering bar (``expert``, or ``recorded`` for a dataset's label)."""
        self.strip.push(activity)
        out = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)
        cam = fit(camera, self.cam_h, self.cam_w)
        if camera_note:
            _text(cam, camera_note, (6, 16), (255, 60, 60), 0.5)
        out[: self.cam_h, : self.cam_w] = cam
        out[self.cam_h : self.cam_h + self.steer_h, : self.cam_w] = steering_panel(
            policy_steering, expert_steering, self.steer_h, self.cam_w, reference
        )
        map_h = self.cam_h + self.steer_h
        if topdown is not None:
            out[:map_h, self.cam_w : self.cam_w + self.map_w] = fit(topdown, map_h, self.map_w)
        for i, line in enumerate(lines):
            _text(out, line, (self.cam_w + 6, 14 + 14 * i), WHITE, 0.4)
        strip = self.strip.render(self.width)
        out[map_h : map_h + strip.shape[0]] = strip
        return out


def trace_panel(
    label: np.ndarray, prediction: np.ndarray, i: int, height: int, width: int, window: int = 200
) -> np.ndarray:
    """Recorded (grey, the expert's colour) and predicted (orange) steering over the last ``window`` frames, newest on the right."""
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
    cv2.putText(panel, RECORDED, (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, EXPERT_RGB, 1, cv2.LINE_AA)
    cv2.putText(panel, "predicted", (90, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, POLICY_RGB, 1, cv2.LINE_AA)
    cv2.putText(panel, f"steering, last {window} frames", (6, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, GREY, 1, cv2.LINE_AA)
    return panel


def write_overlay_video(path: Path, run: Any, fps: float, neuron_labels: Sequence[str], title: str) -> None:
    """The open-loop video of ``run`` (a :class:`drive.eval.open_loop.OpenLoopRun`), one picture per frame: the
    frame the model saw, steering bars and trace (recorded and predicted), neuron activity."""
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
                reference=RECORDED,
            )
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


def read_video(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a video as RGB uint8 arrays (for checks and tests)."""
    return list(iter_video(path))
