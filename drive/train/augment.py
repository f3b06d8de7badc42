"""Training augmentation of frame sequences: photometric jitter and random shadows, seeded.

Every frame of a sequence gets the same change (lighting does not flicker from frame to frame):

* photometric: brightness, contrast and saturation factors and a hue shift, applied in that order with
  ``torchvision.transforms.v2.functional``;
* shadow: with probability ``shadow_prob`` a dark quadrilateral spanning the image's height (bounded by a
  random slanted line and the left or right edge, drawn with ``cv2.fillPoly``) multiplies the pixels
  under it by a factor in ``[1 - shadow_darkness, 0.9]``;
* noise (off unless ``noise_variance > 0``): Gaussian pixel noise of a variance drawn per sequence from
  ``[0, noise_variance]`` on the [0, 1] scale, fresh for every frame (a camera's noise does flicker), added
  last, before the clip and the rounding to uint8: the noise model of ``drive stress --perturb gaussian``.

Parameters are drawn for a whole (global) batch at once from a ``torch.Generator``, so a process that
handles a slice of the batch (torchrun) applies exactly what a single process would to those sequences.
:func:`batch_generator` seeds that generator from (seed, epoch, batch), so a resumed run draws the same.
Recovery views (shifted and rotated frames with labels that steer back) are :mod:`drive.train.viewpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


def batch_generator(seed: int, epoch: int, batch: int, stream: int = 0) -> torch.Generator:
    """A generator seeded from (seed, epoch, batch) by numpy's SeedSequence (independent streams).

    ``stream`` > 0 gives another stream, independent of stream 0 (this module's draws) for the same (seed,
    epoch, batch): the recovery views of :mod:`drive.train.viewpoint` draw from stream 1, so turning them on
    leaves the photometric draws as they were."""
    key = [seed, epoch, batch] + ([stream] if stream else [])
    state = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@dataclass
class Augmenter:
    """Draws and applies per-sequence augmentation; see the module docstring."""

    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.0
    shadow_prob: float = 0.5
    shadow_darkness: float = 0.6
    noise_variance: float = 0.0

    def sample(self, batch: int, height: int, width: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Parameters for ``batch`` sequences: factors (B,), shadow flags (B,), shadow polygons (B, 4, 2)."""

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64)

        top, bottom = uniform(0, width), uniform(0, width)
        left_side = torch.rand(batch, generator=generator) < 0.5
        edge = torch.where(left_side, torch.zeros(batch), torch.full((batch,), float(width)))
        polygons = (
            torch.stack(
                [
                    torch.stack([top, torch.zeros(batch, dtype=torch.float64)], 1),
                    torch.stack([bottom, torch.full((batch,), float(height), dtype=torch.float64)], 1),
                    torch.stack([edge.double(), torch.full((batch,), float(height), dtype=torch.float64)], 1),
                    torch.stack([edge.double(), torch.zeros(batch, dtype=torch.float64)], 1),
                ],
                1,
            )
            .round()
            .to(torch.int32)
        )
        params = {
            "brightness": uniform(1 - self.brightness, 1 + self.brightness),
            "contrast": uniform(1 - self.contrast, 1 + self.contrast),
            "saturation": uniform(1 - self.saturation, 1 + self.saturation),
            "hue": uniform(-self.hue, self.hue),
            "shadow": torch.rand(batch, generator=generator) < self.shadow_prob,
            "shadow_factor": uniform(1 - self.shadow_darkness, 0.9),
            "polygon": polygons,
        }
        if self.noise_variance:  # drawn after the rest, so the other parameters are as without noise
            params["noise_variance"] = uniform(0.0, self.noise_variance)
            params["noise_seed"] = torch.randint(0, 2**62, (batch,), generator=generator)
        return params

    def apply(self, frames: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """frames uint8 (B, T, H, W, 3) -> augmented uint8 (B, T, H, W, 3), one parameter set per sequence.

        Works in float [0, 1] on channels-last views (the fast layout for these ops on CPU) and rounds
        back to uint8 once at the end, as a camera would quantise.
        """
        from torchvision.transforms.v2 import functional as F  # lazy: it imports torch._dynamo (~1 s)

        b, t, h, w, _ = frames.shape
        out = torch.empty_like(frames)
        for i in range(b):
            img = frames[i].permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W), channels-last memory
            if self.brightness:
                img = F.adjust_brightness(img, float(params["brightness"][i]))
            if self.contrast:
                img = F.adjust_contrast(img, float(params["contrast"][i]))
            if self.saturation:
                img = F.adjust_saturation(img, float(params["saturation"][i]))
            if self.hue:
                img = F.adjust_hue(img, float(params["hue"][i]))
            img = img.permute(0, 2, 3, 1)  # back to (T, H, W, 3)
            if bool(params["shadow"][i]):
                mask = np.zeros((h, w), dtype=np.uint8)
                cv2.fillPoly(mask, [params["polygon"][i].numpy()], 1)
                scale = torch.where(torch.from_numpy(mask).bool(), float(params["shadow_factor"][i]), 1.0)
                img = img * scale[None, :, :, None]
            if "noise_variance" in params:
                g = torch.Generator().manual_seed(int(params["noise_seed"][i]))
                std = float(params["noise_variance"][i]) ** 0.5
                img = (img + std * torch.randn(img.shape, generator=g)).clamp_(0.0, 1.0)
            out[i] = img.mul(255.0).round_().clamp_(0, 255)
        return out

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(frames, self.sample(frames.shape[0], frames.shape[2], frames.shape[3], generator))

    @classmethod
    def from_config(cls, cfg) -> "Augmenter":
        return cls(
            brightness=cfg.brightness,
            contrast=cfg.contrast,
            saturation=cfg.saturation,
            hue=cfg.hue,
            shadow_prob=cfg.shadow_prob,
            shadow_darkness=cfg.shadow_darkness,
            noise_variance=cfg.augment_noise,
        )

    @classmethod
    def noise_only(cls, noise_variance: float) -> "Augmenter":
        """Only the pixel noise (for ``--no-augment --augment-noise S``)."""
        return cls(
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            hue=0.0,
            shadow_prob=0.0,
            shadow_darkness=0.0,
            noise_variance=noise_variance,
        )


def slice_params(params: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """The parameters of sequences ``start`` .. ``stop - 1`` of a batch."""
    return {k: v[start:stop] for k, v in params.items()}
