"""The driving policy: camera frames in, normalised steering out (perception + controller + timing).

:class:`DrivingPolicy` chains a perception head (:mod:`drive.policy.perception`) and, except for the
feed-forward ``cnn``, a recurrent controller (:mod:`drive.core.controllers`). It owns the conventions
every caller shares:

* frames are RGB uint8 (B, T, H, W, 3), exactly ``image_height`` x ``image_width`` (:meth:`DrivingPolicy.step`
  also takes float32 pixel values on the same [0, 255] scale; its docstring states the input contract);
* steering is normalised to [-1, 1]; radians = steering * ``max_steer_rad``;
* time: ``dt_s`` (s) is the time since the previous frame; the controller sees
  ``dt_s / frame_period_s``, so one nominal frame is one unit of controller time. Without ``dt_s``
  every frame is one nominal frame;
* recurrent state is one tensor (B, S) (S = 0 for ``cnn``), carried by the caller.

:meth:`DrivingPolicy.step` is the closed-loop entry point (inference mode, numpy in and out). By default
it computes in float32, exactly as :meth:`DrivingPolicy.forward`. ``set_inference_precision("bfloat16")``
runs the convolutions of ``step`` in bfloat16 instead (a cached copy of the conv weights, refreshed when
the weights change): on CPUs with AMX/AVX512-BF16 this cuts the conv time by about a third at batch 1
and by half or more at batch 8, for output differences of about 1e-3 of the feature scale.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from drive.core.limits import MAX_IMAGE_SIDE, check_int
from drive.policy.perception import CONTROLLER_MODELS, MODEL_NAMES, build_head, head_from_config, standardize_images

DEFAULT_FRAME_PERIOD_S = 0.1
"""Nominal frame period, s, when none is given (10 Hz); training sets it from the dataset's fps."""
DEFAULT_MAX_STEER_RAD = 0.5
"""Angle, rad, of normalised steering 1.0 when none is given; training sets it from the dataset."""
MAX_STEER_RAD = math.pi / 2
"""Largest ``max_steer_rad`` a policy may have: a front-wheel angle beyond 90 degrees is not a steering angle."""
MAX_FRAME_PERIOD_S = 10.0
"""Longest nominal frame period, s (0.1 frames per second)."""
POLICY_KEYS = (
    "model",
    "frame_period_s",
    "max_steer_rad",
    "image_height",
    "image_width",
    "state_size",
    "normalisation",
    "head",
    "controller",
)
"""The fields of :attr:`DrivingPolicy.config`; :func:`policy_from_config` refuses any other."""
NORMALISATION = {
    "images": "per-image standardisation: (x - mean) / max(std, 1/sqrt(3*H*W)), x RGB in [0, 255]",
    "steering": "normalised to [-1, 1]; radians = steering * max_steer_rad",
    "time": "controller time = dt_s / frame_period_s",
}


class DrivingPolicy(nn.Module):
    """Perception + controller. See the module docstring for the conventions."""

    def __init__(
        self,
        model_name: str,
        head: nn.Module,
        controller: nn.Module | None,
        frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
        max_steer_rad: float = DEFAULT_MAX_STEER_RAD,
        image_height: int = 78,
        image_width: int = 200,
    ):
        super().__init__()
        if model_name not in MODEL_NAMES:
            raise ValueError(f"unknown model {model_name!r} (choose from {', '.join(MODEL_NAMES)})")
        if not _in_range(frame_period_s, 0.0, MAX_FRAME_PERIOD_S, low_open=True):
            raise ValueError(f"frame_period_s={frame_period_s!r} must be a number in (0, {MAX_FRAME_PERIOD_S:g}] s")
        if not _in_range(max_steer_rad, 0.0, MAX_STEER_RAD, low_open=True):
            raise ValueError(f"max_steer_rad={max_steer_rad!r} must be a number in (0, pi/2] rad")
        image_height = check_int("image_height", image_height, 1, MAX_IMAGE_SIDE)
        image_width = check_int("image_width", image_width, 1, MAX_IMAGE_SIDE)
        if controller is not None and controller.in_features != head.out_features:
            raise ValueError(f"controller takes {controller.in_features} features, the head gives {head.out_features}")
        self.model_name = model_name
        self.head = head
        self.controller = controller
        self.frame_period_s = float(frame_period_s)
        self.max_steer_rad = float(max_steer_rad)
        self.image_height = int(image_height)
        self.image_width = int(image_width)
        self.state_size = 0 if controller is None else int(controller.state_size)
        self.inference_precision = "float32"
        self._fast_head: tuple | None = None  # (key, bfloat16 copy of head.convs); a tuple, so not a submodule

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this policy (JSON-able)."""
        return {
            "model": self.model_name,
            "frame_period_s": self.frame_period_s,
            "max_steer_rad": self.max_steer_rad,
            "image_height": self.image_height,
            "image_width": self.image_width,
            "state_size": self.state_size,
            "normalisation": dict(NORMALISATION),
            "head": dict(self.head.config),
            "controller": None if self.controller is None else self.controller.config,
        }

    @property
    def neuron_labels(self) -> list[str]:
        return [] if self.controller is None else list(self.controller.neuron_labels)

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    def initial_state(self, batch: int) -> torch.Tensor:
        """The zero (or learned) initial state, (batch, S)."""
        p = self._param()
        if self.controller is None:
            return torch.zeros(batch, 0, device=p.device, dtype=p.dtype)
        return self.controller.initial_state(batch, device=p.device, dtype=p.dtype)

    def _check_frames(self, frames: torch.Tensor, dims: int) -> None:
        if frames.dim() != dims or tuple(frames.shape[-3:]) != (self.image_height, self.image_width, 3):
            want = "(B, T, H, W, 3)" if dims == 5 else "(B, H, W, 3)"
            raise ValueError(
                f"frames must be {want} with H, W = {self.image_height}, {self.image_width}; "
                f"got shape {tuple(frames.shape)}"
            )

    def set_inference_precision(self, precision: str) -> "DrivingPolicy":
        """``float32`` (default) or ``bfloat16``: the precision of the convolutions in :meth:`step`."""
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"inference precision must be 'float32' or 'bfloat16', got {precision!r}")
        self.inference_precision = precision
        self._fast_head = None
        return self

    def _bf16_convs(self) -> nn.Module:
        key = tuple((id(p), p._version, p.device) for p in self.head.parameters())
        if self._fast_head is None or self._fast_head[0] != key:
            convs = copy.deepcopy(self.head.convs).to(dtype=torch.bfloat16, memory_format=torch.channels_last).eval()
            self._fast_head = (key, convs)
        return self._fast_head[1]

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Perception only: frames (N, H, W, 3) uint8 -> head output (N, F)."""
        images = frames.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels-last for the convolutions
        return self.head(images.to(self._param().device, non_blocking=True))

    def forward(
        self, frames: torch.Tensor, state: torch.Tensor | None = None, dt_s: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames uint8 (B, T, H, W, 3), state (B, S) or None, dt_s (B, T) s or None ->
        (normalised steering (B, T), state (B, S))."""
        self._check_frames(frames, 5)
        b, t = frames.shape[:2]
        feats = self.features(frames.reshape(b * t, *frames.shape[2:]))
        if self.controller is None:
            steering = feats.view(b, t)
            return steering, (state if state is not None else self.initial_state(b))
        timespans = None if dt_s is None else dt_s.to(feats.device, feats.dtype) / self.frame_period_s
        y, state = self.controller(feats.view(b, t, -1), state, timespans)
        return y[..., 0], state

    FRAME_DTYPES = ("uint8", "float32")
    """Frame dtypes :meth:`step` takes: uint8 pixel values, or float32 pixel values on the same [0, 255] scale."""

    def _step_frames(self, frames: Any) -> torch.Tensor:
        """``frames`` of :meth:`step` checked against the input contract, as a (B, H, W, 3) tensor."""
        if isinstance(frames, np.ndarray):
            if frames.dtype.name not in self.FRAME_DTYPES:
                raise ValueError(
                    f"frames: dtype {frames.dtype.name} is not supported; give RGB uint8 (0..255) "
                    "or float32 pixel values in [0, 255]"
                )
            if not (frames.flags.writeable and frames.flags.c_contiguous):
                frames = np.array(frames)  # torch wants writable memory; 47 kB a frame, a few us
            frames = torch.from_numpy(frames)
        elif not isinstance(frames, torch.Tensor):
            raise ValueError(f"frames: expected a numpy array or a torch tensor, got {type(frames).__name__}")
        if frames.dtype not in (torch.uint8, torch.float32):
            raise ValueError(
                f"frames: dtype {str(frames.dtype).removeprefix('torch.')} is not supported; give RGB "
                "uint8 (0..255) or float32 pixel values in [0, 255]"
            )
        self._check_frames(frames, 4)
        if frames.dtype == torch.float32:
            finite = torch.isfinite(frames)
            if not bool(finite.all()):
                bad = frames[~finite].flatten()[0].item()
                raise ValueError(
                    f"frames: float frames must be finite, got {bad} ({int((~finite).sum())} non-finite value(s))"
                )
            lo, hi = float(frames.min()), float(frames.max())
            if lo < 0.0 or hi > 255.0:
                raise ValueError(f"frames: float32 pixel values must be in [0, 255], got values in [{lo:g}, {hi:g}]")
        return frames

    def _step_state(self, state: Any, batch: int) -> torch.Tensor:
        """``state`` of :meth:`step`: None (the initial state) or (B, S), torch or numpy, on the policy's device."""
        if state is None:
            return self.initial_state(batch)
        if isinstance(state, np.ndarray):
            state = torch.from_numpy(np.asarray(state, dtype=np.float32))
        if not isinstance(state, torch.Tensor):
            raise ValueError(
                f"state: expected a torch tensor (or numpy array) of shape ({batch}, {self.state_size}) "
                f"or None, got {type(state).__name__}"
            )
        if tuple(state.shape) != (batch, self.state_size):
            raise ValueError(
                f"state: expected shape ({batch}, {self.state_size}) (batch, state size of "
                f"{self.model_name}), got {tuple(state.shape)}"
            )
        p = self._param()
        return state.to(device=p.device, dtype=p.dtype)

    def _step_timespans(self, dt_s: Any, batch: int) -> torch.Tensor | None:
        """``dt_s`` of :meth:`step` (None, a scalar or (B,), s) as controller timespans (B,)."""
        if dt_s is None:
            return None
        p = self._param()
        dt = torch.as_tensor(np.asarray(dt_s, dtype=np.float64) if not isinstance(dt_s, torch.Tensor) else dt_s)
        if dt.dim() == 0:
            dt = dt.expand(batch)
        elif tuple(dt.shape) != (batch,):
            raise ValueError(
                f"dt_s: expected a scalar or shape ({batch},) (one per frame), got shape {tuple(dt.shape)}"
            )
        ok = torch.isfinite(dt) & (dt > 0)
        if not bool(ok.all()):
            raise ValueError(f"dt_s: must be finite and > 0 seconds, got {dt[~ok].flatten()[0].item()}")
        return dt.to(device=p.device, dtype=p.dtype) / self.frame_period_s

    @torch.inference_mode()
    def step(
        self, frames: Any, state: Any = None, dt_s: Any = None, infos: Any = None
    ) -> tuple[np.ndarray, torch.Tensor]:
        """One closed-loop step for a batch of B envs (the :class:`drive.policy.protocol.Driver` step).

        Input contract (checked; a violation raises one ``ValueError`` naming the argument and value):

        * ``frames``: numpy array or torch tensor (B, H, W, 3), RGB, H x W = ``image_height`` x
          ``image_width``; dtype **uint8** (0..255), or **float32** pixel values on the same scale,
          finite and in [0, 255]. Other dtypes (int16, bool, float64, …), NaN/inf and out-of-range
          floats are refused, so a corrupt frame never becomes a NaN steering silently.
        * ``state``: None (the initial state), or (B, S) as returned by the previous call; a torch
          tensor, or a numpy array (converted to the policy's dtype and device).
        * ``dt_s``: None (every frame is one nominal frame), a scalar (the same for every sample,
          broadcast to B) or (B,): seconds since each sample's previous frame, finite and > 0.
        * ``infos``: the env's info per frame; not used (a trained policy sees only the camera).

        Returns the normalised steering as numpy float32 (B,) (radians = steering * ``max_steer_rad``)
        and the new state (B, S). Computes in float32 unless :meth:`set_inference_precision` chose bfloat16.
        """
        frames = self._step_frames(frames)
        batch = frames.shape[0]
        state = self._step_state(state, batch)
        timespans = self._step_timespans(dt_s, batch)
        if self.inference_precision == "bfloat16":
            images = standardize_images(frames.permute(0, 3, 1, 2).to(self._param().device))
            feats = self.head.tail(self._bf16_convs()(images.to(torch.bfloat16)).float())
        else:
            feats = self.features(frames)
        if self.controller is None:
            steering = feats[:, 0]
        else:
            y, state = self.controller.step(feats, state, timespans)
            steering = y[:, 0]
        return steering.float().cpu().numpy(), state

    def neuron_activity(self, state: torch.Tensor) -> np.ndarray:
        """Per-neuron activity (B, N) of the controller for a state; (B, 0) for ``cnn``."""
        if self.controller is None:
            return np.zeros((state.shape[0], 0), dtype=np.float32)
        with torch.no_grad():
            return self.controller.neuron_activity(state).float().cpu().numpy()


def build_policy(
    model: str,
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S,
    max_steer_rad: float = DEFAULT_MAX_STEER_RAD,
    image_height: int = 78,
    image_width: int = 200,
    head: dict[str, Any] | None = None,
    **controller_overrides,
) -> DrivingPolicy:
    """A fresh policy of a registry model (``ncp19, lstm, gru, ctrnn, cfc, feedforward`` = conv head +
    controller; ``cnn`` = PilotNet). ``head`` overrides head arguments; the remaining keyword arguments go
    to :func:`drive.core.controllers.build_controller` (e.g. a solver choice)."""
    perception = build_head(model, image_height=image_height, image_width=image_width, **(head or {}))
    controller = None
    if model in CONTROLLER_MODELS:
        from drive.core.controllers import build_controller

        controller = build_controller(
            model, in_features=perception.out_features, out_features=1, **controller_overrides
        )
    elif controller_overrides:
        raise ValueError(f"model {model!r} has no controller; unexpected options {sorted(controller_overrides)}")
    return DrivingPolicy(
        model,
        perception,
        controller,
        frame_period_s=frame_period_s,
        max_steer_rad=max_steer_rad,
        image_height=image_height,
        image_width=image_width,
    )


def _in_range(value: Any, low: float, high: float, low_open: bool = False) -> bool:
    """A real number (not a bool) in [low, high], or (low, high] with ``low_open``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    v = float(value)
    return math.isfinite(v) and (v > low if low_open else v >= low) and v <= high


def policy_from_config(config: dict[str, Any]) -> DrivingPolicy:
    """Rebuild a policy (fresh weights) from :attr:`DrivingPolicy.config`.

    Refuses (``ValueError`` naming the field and value) an unknown field, a value out of its bounds
    (:mod:`drive.core.limits`; ``max_steer_rad`` in (0, pi/2]) and fields that contradict each other: the
    model name against the controller's name or the head's kind, ``state_size`` against the controller
    built, ``normalisation`` against the one this code applies.
    """
    if not isinstance(config, dict):
        raise ValueError(f"policy config must be an object, got {type(config).__name__}")
    unknown = [k for k in config if k not in POLICY_KEYS]
    if unknown:
        raise ValueError(f"policy config: unknown field {unknown[0]!r} (known: {', '.join(POLICY_KEYS)})")
    try:
        model = config["model"]
        head_config, controller_config = config["head"], config.get("controller")
        kwargs = {k: config[k] for k in ("frame_period_s", "max_steer_rad", "image_height", "image_width")}
    except KeyError as exc:
        raise ValueError(f"policy config: missing field {exc.args[0]!r}") from None
    if model not in MODEL_NAMES:
        raise ValueError(f"policy config: field 'model' is {model!r}, expected one of {', '.join(MODEL_NAMES)}")
    want_kind = "pilotnet" if model == "cnn" else "conv_head"
    if not isinstance(head_config, dict) or head_config.get("kind") != want_kind:
        found = head_config.get("kind") if isinstance(head_config, dict) else head_config
        raise ValueError(f"policy config: field 'head.kind' is {found!r}, model {model!r} has a {want_kind!r} head")
    if model in CONTROLLER_MODELS:
        name = controller_config.get("name") if isinstance(controller_config, dict) else controller_config
        if name != model:
            raise ValueError(f"policy config: field 'controller.name' is {name!r}, expected the model's {model!r}")
    elif controller_config is not None:
        raise ValueError(f"policy config: field 'controller' must be null for model {model!r}")
    if "normalisation" in config and config["normalisation"] != NORMALISATION:
        raise ValueError(
            f"policy config: field 'normalisation' is {config['normalisation']!r:.120}, this code applies {NORMALISATION!r}"
        )
    try:
        head = head_from_config(head_config)
    except ValueError as exc:
        raise ValueError(f"policy config: field 'head': {exc}") from None
    controller = None
    if controller_config is not None:
        from drive.core.controllers import controller_from_config

        try:
            controller = controller_from_config(controller_config)
        except ValueError as exc:
            raise ValueError(f"policy config: field 'controller': {exc}") from None
    try:
        policy = DrivingPolicy(model, head, controller, **kwargs)
    except ValueError as exc:
        raise ValueError(f"policy config: {exc}") from None
    if "state_size" in config and config["state_size"] != policy.state_size:
        raise ValueError(
            f"policy config: field 'state_size' is {config['state_size']!r}, but its controller has {policy.state_size}"
        )
    return policy
