"""Where noise enters the closed loop: seeded camera, timing and physical perturbations.

A frame travels one way through the loop, and each perturbation acts at one stage of it::

    env ──obs──▶ camera(frame) ──▶ deliver(frame) ──▶ policy ──steering──▶ actuate(s) ──▶ env.step
                 (pixel noise)      (drop / latency)                      (actuator noise)
                                                         disturb(env): a push of the car, before the step

Kinds (``KINDS`` holds the registry, one doc line each); a level of 0 is always the identity:

- camera: ``gaussian`` (variance σ² of additive noise on [0, 1] images; the NCP paper's 0.1, 0.2, 0.3),
  ``salt_pepper``, ``blur``, ``brightness``, ``contrast``, ``occlusion``, ``motion_blur``, ``jpeg``;
  and faults the training never shows: ``roll`` (the camera rotated about its optical axis),
  ``stuck_pixels`` (dead, white and hot sensor pixels and columns), ``colour_cast`` (wrong white
  balance) and ``freeze`` (the camera driver re-delivers a stale frame: a timing fault, applied at
  the camera stage because the policy is still called every step, on the stale frame);
- timing: ``drop`` (the frame is lost: the policy is not called and the previous action is held),
  ``latency`` (the policy sees the frame from k steps ago);
- physical: ``push`` (lateral displacement of the car, m), ``actuator`` (noise on the applied steering).

Every perturbation draws from its own ``numpy.random.Generator``, given at ``reset``, so an
episode is reproducible from its seed. Specs are written ``KIND:LEVEL,LEVEL,…`` on the command line
(``gaussian:0.1,0.2,0.3``) and parsed by ``parse_spec``; a sweep's list of them (strings, or
``(kind, levels)`` pairs from a library caller) by ``check_sweeps``. ``CLEAN`` names the unperturbed run.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np

from drive.errors import UserError

if TYPE_CHECKING:
    import torch

CLEAN = "clean"
"""The kind name of no perturbation (level 0): a sweep's clean run, level 0 of every kind."""


class Perturbation:
    """One perturbation at one level. Subclasses override the stage(s) they act at.

    ``reset`` is called at the start of every episode with a fresh generator; the stage methods
    are called once per control step, in the order the loop runs them.
    """

    kind: str = ""
    stage: str = ""

    def __init__(self, level: float):
        self.level = float(level)
        self.rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator, frame_shape: tuple[int, ...] | None = None) -> None:
        """Start an episode; ``frame_shape`` is the camera's (H, W, 3)."""
        self.rng = rng

    def camera(self, frame: np.ndarray) -> np.ndarray:
        """Corrupt the camera image (RGB uint8 (H, W, 3)); returns a new array of the same shape and dtype."""
        return frame

    def deliver(self, item: Any) -> Any | None:
        """Pass on what the policy sees this step (``item`` is opaque), a delayed one, or None if it is lost."""
        return item

    def actuate(self, steering: float) -> float:
        """The normalised steering the car receives, given the commanded one."""
        return steering

    def disturb(self, env: Any, t_s: float) -> None:
        """Act on the world directly (``t_s``: sim time of the coming step, s)."""

    @property
    def is_identity(self) -> bool:
        return self.level == 0.0

    def __repr__(self) -> str:
        return f"{self.kind}:{self.level:g}"


# --------------------------------------------------------------------------------------- camera


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    import torch  # lazy: only the torchvision perturbations need it, and it costs ~1 s to import

    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)


def _to_frame(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.permute(1, 2, 0).numpy())


def gaussian_noise(shape: tuple[int, ...], variance: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean Gaussian noise of the given variance on the [0, 1] intensity scale (float32)."""
    return rng.normal(0.0, math.sqrt(variance), size=shape).astype(np.float32)


class Gaussian(Perturbation):
    """Additive Gaussian noise N(0, σ²) on the image scaled to [0, 1], then clipped and re-quantised.

    The level is the variance σ² (the NCP paper's stress test uses 0.1, 0.2, 0.3). The noise drawn
    for the last frame, before clipping, is kept in ``last_noise`` so that it can be checked.
    """

    kind, stage = "gaussian", "camera"
    last_noise: np.ndarray | None = None

    def camera(self, frame):
        if self.is_identity:
            return frame
        self.last_noise = gaussian_noise(frame.shape, self.level, self.rng)
        noisy = frame.astype(np.float32) / 255.0 + self.last_noise
        return np.rint(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)


class SaltPepper(Perturbation):
    """A fraction ``level`` of the pixels is set to black or white (each with probability 1/2)."""

    kind, stage = "salt_pepper", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        h, w = frame.shape[:2]
        hit = self.rng.random((h, w)) < self.level
        white = self.rng.random((h, w)) < 0.5
        out = frame.copy()
        out[hit & white] = 255
        out[hit & ~white] = 0
        return out


class Blur(Perturbation):
    """Gaussian blur (OpenCV) with standard deviation ``level`` pixels; the kernel spans ±3σ."""

    kind, stage = "blur", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        return cv2.GaussianBlur(frame, (0, 0), sigmaX=self.level, sigmaY=self.level, borderType=cv2.BORDER_REFLECT)


class Brightness(Perturbation):
    """Adds ``level`` (a fraction of full scale, −1..1) to every pixel, clipped: 0.3 brightens by 77 grey levels."""

    kind, stage = "brightness", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        return np.clip(frame.astype(np.int16) + int(round(self.level * 255)), 0, 255).astype(np.uint8)


class Contrast(Perturbation):
    """Contrast loss: pixels are pulled towards the image's mean grey, contrast factor = 1 − ``level``.

    Uses torchvision's ``adjust_contrast``; 0.5 halves the contrast, 1 would leave a flat grey frame.
    """

    kind, stage = "contrast", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        import torchvision.transforms.v2.functional as TF  # lazy: it imports torch._dynamo (~1 s)

        return _to_frame(TF.adjust_contrast(_to_tensor(frame), 1.0 - self.level))


class Occlusion(Perturbation):
    """A black rectangle covering a fraction ``level`` of the frame's area, with the frame's aspect ratio.

    Its position is drawn at the start of the episode and kept (like dirt on the lens).
    """

    kind, stage = "occlusion", "camera"
    box: tuple[int, int, int, int] | None = None

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.box = None
        if frame_shape is not None and not self.is_identity:
            self.box = self._place(frame_shape[0], frame_shape[1])

    def _place(self, h: int, w: int) -> tuple[int, int, int, int]:
        side = math.sqrt(self.level)
        bh, bw = max(1, int(round(h * side))), max(1, int(round(w * side)))
        top = int(self.rng.integers(0, h - bh + 1))
        left = int(self.rng.integers(0, w - bw + 1))
        return top, left, bh, bw

    def camera(self, frame):
        if self.is_identity:
            return frame
        if self.box is None:
            self.box = self._place(frame.shape[0], frame.shape[1])
        top, left, bh, bw = self.box
        import torch
        import torchvision.transforms.v2.functional as TF

        return _to_frame(TF.erase(_to_tensor(frame), top, left, bh, bw, torch.zeros((), dtype=torch.uint8)))


class MotionBlur(Perturbation):
    """Horizontal motion blur: ``cv2.filter2D`` with a line kernel ``level`` pixels long (rounded; ≤ 1 is identity)."""

    kind, stage = "motion_blur", "camera"

    def camera(self, frame):
        length = int(round(self.level))
        if length <= 1:
            return frame
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        return cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)


class Jpeg(Perturbation):
    """JPEG compression artefacts: encoded and decoded by OpenCV at quality 100 − ``level`` (0 = not encoded)."""

    kind, stage = "jpeg", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        quality = int(round(100 - self.level))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"jpeg: OpenCV could not encode a frame of shape {frame.shape} at quality {quality}")
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class Roll(Perturbation):
    """The camera rolled by ``level`` degrees about its optical axis (a loose mount): the image rotated
    about its centre, counter-clockwise for a positive level (``cv2.warpAffine``, bilinear, edges replicated)."""

    kind, stage = "roll", "camera"

    def camera(self, frame):
        if self.is_identity:
            return frame
        h, w = frame.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), self.level, 1.0)
        return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


STUCK_VALUES = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
"""What a stuck pixel shows: dead (black), saturated (white) or hot in one colour channel (R, G, B)."""


class StuckPixels(Perturbation):
    """A fraction ``level`` of the sensor's pixels is stuck, for the whole episode, at a value drawn from
    ``STUCK_VALUES`` (black, white, or hot red, green or blue).

    Placed at ``reset`` from the episode's generator. A quarter of the stuck pixels come as whole stuck
    columns (a read-out fault), once that makes at least one column (level ≥ 4 / width, 0.02 for a
    200-px-wide camera); each column shows one value. The rest are single pixels in the other columns,
    so that the expected stuck fraction is ``level`` in all.
    """

    kind, stage = "stuck_pixels", "camera"
    column_share: float = 0.25
    columns: np.ndarray | None = None
    where: tuple[np.ndarray, np.ndarray] | None = None
    values: np.ndarray | None = None

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.columns = self.where = self.values = None
        if frame_shape is not None and not self.is_identity:
            self._place(frame_shape[0], frame_shape[1])

    def _place(self, h: int, w: int) -> None:
        n_cols = min(w, int(self.column_share * self.level * w))
        self.columns = np.sort(self.rng.choice(w, size=n_cols, replace=False))
        rest = (self.level - n_cols / w) / (1.0 - n_cols / w) if n_cols < w else 0.0
        stuck = self.rng.random((h, w)) < rest
        stuck[:, self.columns] = False
        kind = self.rng.integers(0, len(STUCK_VALUES), size=(h, w))
        kind[:, self.columns] = self.rng.integers(0, len(STUCK_VALUES), size=n_cols)
        stuck[:, self.columns] = True
        self.where = np.nonzero(stuck)
        self.values = STUCK_VALUES[kind[self.where]]

    def camera(self, frame):
        if self.is_identity:
            return frame
        if self.where is None:
            self._place(frame.shape[0], frame.shape[1])
        out = frame.copy()
        out[self.where] = self.values
        return out


class ColourCast(Perturbation):
    """A wrong white balance: per-episode gains on R, G, B drawn at ``reset`` uniformly in
    [1 − ``level``, 1 + ``level``], then divided by their mean (so a grey frame keeps its brightness),
    applied to every frame, rounded and clipped to 0..255."""

    kind, stage = "colour_cast", "camera"
    gains: np.ndarray | None = None

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.gains = None if self.is_identity else self._draw()

    def _draw(self) -> np.ndarray:
        gains = self.rng.uniform(1.0 - self.level, 1.0 + self.level, size=3)
        if gains.sum() <= 0.0:  # only at level 1, when all three draws are 0
            return np.ones(3, np.float32)
        return (gains / gains.mean()).astype(np.float32)

    def camera(self, frame):
        if self.is_identity:
            return frame
        if self.gains is None:
            self.gains = self._draw()
        return np.rint(np.clip(frame.astype(np.float32) * self.gains, 0.0, 255.0)).astype(np.uint8)


class Freeze(Perturbation):
    """The camera driver freezes: after each fresh frame, with probability ``level``, that frame is
    delivered again for the next ``steps`` control steps (5) instead of the new ones.

    Unlike ``drop`` the policy is called every step, on the stale frame (and its state advances).
    The expected fraction of stale steps is 5p / (1 + 5p) at level p: 1/3 at 0.1, 5/6 at 1.
    """

    kind, stage = "freeze", "camera"
    steps: int = 5

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.held: np.ndarray | None = None
        self.left = 0

    def camera(self, frame):
        if self.is_identity:
            return frame
        if self.left > 0:
            self.left -= 1
            return self.held
        if self.rng.random() < self.level:
            self.held, self.left = frame.copy(), self.steps
        return frame


# --------------------------------------------------------------------------------------- timing


class Drop(Perturbation):
    """Each frame is lost with probability ``level``: the policy is not called and the previous action is held.

    The first frame of an episode always arrives. When the next frame does arrive, the loop gives
    continuous-time controllers the real time elapsed since the last frame they saw.
    """

    kind, stage = "drop", "timing"

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.first = True

    def deliver(self, item):
        if self.first or self.is_identity:
            self.first = False
            return item
        return None if self.rng.random() < self.level else item


class Latency(Perturbation):
    """The policy sees the frame from ``level`` control steps ago (an integer); the first frame stands in until then."""

    kind, stage = "latency", "timing"

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.buffer: collections.deque = collections.deque(maxlen=int(round(self.level)) + 1)

    def deliver(self, item):
        if item is None:
            return None
        if not self.buffer:
            self.buffer.extend([item] * self.buffer.maxlen)
        self.buffer.append(item)
        return self.buffer[0]


# ------------------------------------------------------------------------------------- physical


class Push(Perturbation):
    """Every ``interval_s`` seconds of sim time the car is pushed sideways by ``level`` m, left or right at random.

    Applied through ``env.unwrapped.push(lateral_m)``; the first push comes after one interval.
    """

    kind, stage = "push", "physical"
    interval_s: float = 5.0

    def reset(self, rng, frame_shape=None):
        super().reset(rng, frame_shape)
        self.next_push_s = self.interval_s

    def disturb(self, env, t_s):
        if self.is_identity or t_s < self.next_push_s:
            return
        self.next_push_s += self.interval_s
        sign = 1.0 if self.rng.random() < 0.5 else -1.0
        env.unwrapped.push(sign * self.level)


class Actuator(Perturbation):
    """Zero-mean Gaussian noise of standard deviation ``level`` (normalised units) added to the applied steering, clipped to ±1."""

    kind, stage = "actuator", "physical"

    def actuate(self, steering):
        if self.is_identity:
            return steering
        return float(np.clip(steering + self.rng.normal(0.0, self.level), -1.0, 1.0))


# ------------------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Kind:
    """A perturbation kind in the registry."""

    name: str
    """Name used in specs (``KIND:LEVEL``)."""
    cls: Callable[[float], Perturbation]
    """Class that applies it at one level."""
    doc: str
    """One line: what the level means, with units."""
    low: float
    """Smallest valid level (inclusive)."""
    high: float
    """Largest valid level."""
    high_inclusive: bool = True
    """Whether ``high`` itself is valid."""
    integer: bool = False
    """Whether a level must be a whole number."""
    axis: str = ""
    """Short axis label for plots: what the level is, with its unit."""

    def check(self, level: float, where: str = "level") -> float:
        level = float(level)
        bad = (
            not math.isfinite(level)
            or level < self.low
            or (level > self.high if self.high_inclusive else level >= self.high)
            or (self.integer and level != int(level))
        )
        if bad:
            bracket = "]" if self.high_inclusive else ")"
            kind = "a whole number in" if self.integer else "in"
            raise UserError(
                f"{where}: {self.name} level must be {kind} [{self.low:g}, {self.high:g}{bracket}, got {level!r}"
            )
        return level


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "gaussian",
            Gaussian,
            "variance σ² of additive Gaussian noise on the image scaled to [0, 1] (paper: 0.1, 0.2, 0.3)",
            0.0,
            1.0,
            axis="noise variance σ²",
        ),
        Kind(
            "salt_pepper", SaltPepper, "fraction of pixels set to black or white", 0.0, 1.0, axis="fraction of pixels"
        ),
        Kind("blur", Blur, "Gaussian blur standard deviation, px", 0.0, 50.0, axis="blur σ (px)"),
        Kind(
            "brightness",
            Brightness,
            "brightness shift, fraction of full scale (−1..1)",
            -1.0,
            1.0,
            axis="brightness shift (fraction of full scale)",
        ),
        Kind(
            "contrast",
            Contrast,
            "contrast loss: contrast factor = 1 − level",
            0.0,
            1.0,
            axis="contrast loss (1 − factor)",
        ),
        Kind(
            "occlusion",
            Occlusion,
            "fraction of the frame hidden by one black rectangle placed per episode",
            0.0,
            1.0,
            axis="fraction of frame hidden",
        ),
        Kind(
            "motion_blur",
            MotionBlur,
            "horizontal motion-blur kernel length, px",
            0.0,
            200.0,
            integer=True,
            axis="kernel length (px)",
        ),
        Kind(
            "jpeg",
            Jpeg,
            "JPEG compression: quality = 100 − level (0 = none)",
            0.0,
            99.0,
            integer=True,
            axis="100 − JPEG quality",
        ),
        Kind(
            "roll",
            Roll,
            "camera roll about the optical axis, degrees (+ = image rotated counter-clockwise)",
            -180.0,
            180.0,
            axis="camera roll (°)",
        ),
        Kind(
            "stuck_pixels",
            StuckPixels,
            "fraction of sensor pixels stuck black, white or hot for the episode (a quarter as whole columns)",
            0.0,
            1.0,
            axis="fraction of pixels stuck",
        ),
        Kind(
            "colour_cast",
            ColourCast,
            "white-balance error: per-episode RGB gains in [1 − level, 1 + level], normalised to mean 1",
            0.0,
            1.0,
            axis="colour-cast strength (gain spread)",
        ),
        Kind(
            "freeze",
            Freeze,
            f"probability per fresh frame that the camera freezes for {Freeze.steps} steps (policy fed the stale frame)",
            0.0,
            1.0,
            axis="freeze probability per frame",
        ),
        Kind(
            "drop",
            Drop,
            "probability that a frame is lost (previous action held)",
            0.0,
            1.0,
            high_inclusive=False,
            axis="frame-drop probability",
        ),
        Kind(
            "latency",
            Latency,
            "delay of the frames the policy sees, control steps",
            0.0,
            1000.0,
            integer=True,
            axis="delay (control steps)",
        ),
        Kind(
            "push",
            Push,
            f"lateral push of the car every {Push.interval_s:g} s, random side, m",
            0.0,
            10.0,
            axis="push (m)",
        ),
        Kind(
            "actuator",
            Actuator,
            "std of Gaussian noise added to the applied normalised steering",
            0.0,
            2.0,
            axis="steering noise std (normalised)",
        ),
    ]
}


def make(kind: str, level: float, where: str = "perturbation") -> Perturbation:
    """One perturbation of a registered kind at one level; bad names and levels raise UserError."""
    if kind not in KINDS:
        raise UserError(f"{where}: unknown perturbation kind {kind!r}; known: {', '.join(KINDS)}")
    spec = KINDS[kind]
    return spec.cls(spec.check(level, where=f"{where} {kind!r}"))


def parse_spec(text: str, where: str = "--perturb") -> tuple[str, list[float]]:
    """Parse ``KIND:LEVEL,LEVEL,…`` into (kind, levels); errors name ``where`` and the value."""
    kind, sep, levels_text = text.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise UserError(f"{where}: unknown perturbation kind {kind!r} in {text!r}; known: {', '.join(KINDS)}")
    if not sep or not levels_text.strip():
        raise UserError(f"{where}: expected KIND:LEVEL[,LEVEL…], got {text!r}")
    levels = []
    for part in levels_text.split(","):
        try:
            level = float(part)
        except ValueError:
            raise UserError(f"{where}: level {part.strip()!r} in {text!r} is not a number") from None
        levels.append(KINDS[kind].check(level, where=f"{where} {text!r}"))
    return kind, levels


def check_sweeps(
    specs: Sequence[str | tuple[str, Sequence[float]]], where: str = "--perturb"
) -> list[tuple[str, list[float]]]:
    """A sweep's perturbations as (kind, levels): each spec a ``KIND:LEVEL,…`` string (:func:`parse_spec`) or
    a (kind, levels) pair, its kind known and every level checked; errors name ``where`` and the value."""
    out = []
    for spec in specs:
        if isinstance(spec, str):
            out.append(parse_spec(spec, where))
            continue
        kind, levels = spec
        if kind not in KINDS:
            raise UserError(f"{where}: unknown perturbation kind {kind!r}; known: {', '.join(KINDS)}")
        out.append((kind, [KINDS[kind].check(v, where=f"{where} {kind!r}") for v in levels]))
    return out


def parse_single(text: str, where: str = "--perturb") -> Perturbation:
    """Parse ``KIND:LEVEL`` (exactly one level) into a perturbation."""
    kind, levels = parse_spec(text, where)
    if len(levels) != 1:
        raise UserError(f"{where}: expected one level in {text!r}, got {len(levels)}")
    return make(kind, levels[0], where)


def describe() -> str:
    """The registry as text, one kind per line."""
    return "\n".join(f"{k.name:12s} {k.doc}" for k in KINDS.values())


# ---------------------------------------------------------------------------------------- chain


class Chain:
    """Several perturbations applied in the given order at each stage of the loop."""

    def __init__(self, perturbations: Sequence[Perturbation] = ()):
        self.items = list(perturbations)

    def reset(self, seed: int | Sequence[int], frame_shape: tuple[int, ...] | None = None) -> None:
        """Give each perturbation its own generator, derived from ``seed`` (an int or a tuple of ints)."""
        children = np.random.SeedSequence(seed).spawn(len(self.items))
        for p, child in zip(self.items, children):
            p.reset(np.random.default_rng(child), frame_shape)

    def camera(self, frame: np.ndarray) -> np.ndarray:
        for p in self.items:
            frame = p.camera(frame)
        return frame

    def deliver(self, item: Any) -> Any | None:
        for p in self.items:
            item = p.deliver(item)
        return item

    def actuate(self, steering: float) -> float:
        for p in self.items:
            steering = p.actuate(steering)
        return steering

    def disturb(self, env: Any, t_s: float) -> None:
        for p in self.items:
            p.disturb(env, t_s)

    def __repr__(self) -> str:
        return "+".join(map(repr, self.items)) or "clean"
