"""Recovery views for training (``drive train --viewpoint-augment``): recorded windows seen from off the path,
labelled with the steering that brings the car back (PilotNet's shifted and rotated views).

A recording with no recoveries (a human's video, or ``drive record`` without DART noise) shows only a car on
its path; a network trained on it never sees what to do once it has left it. With probability
``viewpoint_prob`` per training window:

1. **The deviation.** A starting lateral offset e₀ ~ U[-``viewpoint_max_offset_m``, +…] m (left +) and a
   heading error ψ₀ ~ U[-``viewpoint_max_yaw_rad``, +…] rad (left +) from the recorded car, drawn
   independently, uniformly (not DART's coloured noise: a window's start is a fresh draw).
2. **The recovery.** The deviation is not held over the window: it decays as the car would recover. From
   frame k to k+1 the learner's car applies the recorded (applied) steering plus the correction below, and
   its (e, ψ) follows the replay world's kinematics (:func:`drive.replay.path.advance`: the kinematic bicycle
   with the 5 m wheelbase, exact in the path's frame, the recorded speed and frame times).
3. **The view.** Frame k is the recorded frame re-rendered from (e_k, ψ_k)
   (:func:`drive.replay.path.camera_move`, then :class:`drive.replay.homography.ViewSynthesizer`: the ground
   plane below the horizon, a rotation above it, edges filled by replication), with the episode's camera.
4. **The label.** Frame k's label is the recorded label plus the correction Δδ_k / ``max_steer_rad``,
   clipped to [-1, 1].

The control law (:func:`recovery_correction`) is the expert's (:mod:`drive.world.expert`) about the
recorded path instead of the lane: with κ_r the recorded car's path curvature (from its applied steering),
D = max(v·T, 4 m) the lookahead (v the recorded speed, T = ``viewpoint_horizon_s``; 4 m is the expert's
``min_settle_m``) and χ ≈ ψ the direction of travel against the path's (the slip of the path-following
steering is the recorded car's, so χ = ψ + β(κ_r) − β_r = ψ, as the expert takes the slip at the lane's
curvature), the commanded path curvature is

    κ = κ_r·cos χ / (1 − κ_r·e) − (2/D)·sin χ − e / D²,

and Δδ = δ(κ) − δ(κ_r), δ(·) the bicycle's front-wheel angle for a curvature
(:func:`drive.world.expert.curvature_to_steer`). Linearised in path length s, e″ + (2/D)·e′ + e/D² = 0:
critically damped, e(s) = (e₀ + (ψ₀ + e₀/D)·s)·e^(−s/D), a time constant of T at speed v. A zero
deviation gives Δδ = 0 exactly: the window's frames and labels come back unchanged.

Only windows of episodes with camera metadata (``world.camera_*`` columns of ``drive record``, or
``meta/info.json``'s ``camera`` from ``drive import --camera-height-m --camera-pitch-rad --fov-deg``) and a
recorded speed are changed; a training set with none is refused in one line. The draws come from (seed,
epoch, batch), stream 1 of :func:`drive.train.augment.batch_generator` (for the whole global batch, as the
photometric augmentation; it runs first, on the recorded frames, and the photometric changes after it).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from drive.data import layout
from drive.data.sequences import FrameCache, MultiFrameCache
from drive.errors import UserError
from drive.io import read_json
from drive.replay.homography import ViewSynthesizer
from drive.replay.path import advance, camera_move, path_from_table, slip_angle
from drive.replay.recording import camera_config
from drive.train.augment import batch_generator, slice_params
from drive.train.config import TrainConfig
from drive.world.camera import CameraConfig
from drive.world.expert import ExpertConfig, curvature_to_steer, steer_to_curvature

VIEWPOINT_STREAM = 1
"""The :func:`~drive.train.augment.batch_generator` stream of the recovery views' draws."""
MIN_LOOKAHEAD_M = ExpertConfig.min_settle_m
"""Shortest lookahead of the recovery law, m (the expert's smallest settling distance)."""


def _dataset_of(cache: FrameCache | MultiFrameCache, episode: int) -> tuple[FrameCache, int]:
    """The one dataset's cache that holds ``episode`` of ``cache`` (several datasets' caches: a
    :class:`~drive.data.sequences.MultiFrameCache`), and the episode's index in that dataset."""
    if isinstance(cache, MultiFrameCache):
        k, own = cache.locate(episode)
        return cache.caches[k], own
    return cache, episode


def recovery_correction(
    offset_m: float, heading_rad: float, curvature_path: float, speed_mps: float, horizon_s: float
) -> float:
    """Δδ (front-wheel angle, rad) to add to the recorded steering of a car at ``offset_m`` (left +) and
    ``heading_rad`` (left +) from a path of curvature ``curvature_path``: the law of the module docstring."""
    lookahead = max(MIN_LOOKAHEAD_M, abs(speed_mps) * horizon_s)
    chi = heading_rad
    denom = 1.0 - curvature_path * offset_m
    feed_forward = curvature_path * math.cos(chi) / denom if denom > 0.1 else curvature_path
    kappa = feed_forward - (2.0 / lookahead) * math.sin(chi) - offset_m / lookahead**2
    return curvature_to_steer(kappa) - curvature_to_steer(curvature_path)


class ViewpointAugmenter:
    """Recovery views of a frame cache's windows (see the module docstring).

    Per cache row it keeps the recorded path (curvature, slip, speed, path length to the next frame, the
    applied steering) and the episode, for the ``episodes`` given that have a camera and a speed;
    ``cameras`` maps those episodes to their camera, ``skipped`` the others to the reason.
    """

    def __init__(
        self,
        cache: FrameCache | MultiFrameCache,
        episodes: Sequence[int],
        prob: float = 0.5,
        max_offset_m: float = 1.0,
        max_yaw_rad: float = 0.0873,
        horizon_s: float = 1.0,
    ):
        self.prob, self.max_offset_m, self.max_yaw_rad, self.horizon_s = prob, max_offset_m, max_yaw_rad, horizon_s
        self.max_steer_rad = float(cache.info.max_steer_rad)
        n = cache.num_frames
        self.episode = np.full(n, -1, dtype=np.int64)
        self.curvature, self.slip, self.speed, self.ds, self.applied = (np.zeros(n) for _ in range(5))
        self.cameras: dict[int, CameraConfig] = {}
        self.skipped: dict[int, str] = {}
        infos: dict[Path, dict] = {}
        for e in sorted(set(int(e) for e in episodes)):
            own, own_episode = _dataset_of(cache, e)
            root = own.root
            if root not in infos:
                infos[root] = read_json(layout.info_path(root), "not a drive dataset: meta/info.json", expect=dict)
            try:
                camera = camera_config(own.reader, own_episode, infos[root])
                table = own.reader.episode_table(own_episode)
                path = path_from_table(table, self.max_steer_rad, layout.data_path(root, own_episode))
            except UserError as exc:
                self.skipped[e] = str(exc)
                continue
            rows = slice(cache.offsets[e], cache.offsets[e] + cache.lengths[e])
            self.cameras[e] = camera
            self.episode[rows] = e
            self.curvature[rows] = path.curvature_inv_m
            self.slip[rows] = path.slip_rad
            self.speed[rows] = path.speed_mps
            self.ds[rows] = np.append(path.ds_m, 0.0)
            self.applied[rows] = np.clip(path.steering, -1.0, 1.0)
        self._synthesizers: dict[tuple, ViewSynthesizer] = {}

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, cache: FrameCache | MultiFrameCache, episodes: Sequence[int]
    ) -> "ViewpointAugmenter | None":
        """The recovery views of a :class:`~drive.train.config.TrainConfig` (None without
        ``viewpoint_augment``) for the training ``episodes`` of ``cache``; a :class:`UserError` when none of
        them has a camera and a speed, a warning naming those skipped when some lack them."""
        if not cfg.viewpoint_augment:
            return None
        out = cls(
            cache,
            episodes,
            prob=cfg.viewpoint_prob,
            max_offset_m=cfg.viewpoint_max_offset_m,
            max_yaw_rad=cfg.viewpoint_max_yaw_rad,
            horizon_s=cfg.viewpoint_horizon_s,
        )
        if out.skipped:
            first = next(iter(out.skipped.values()))
            if not out.cameras:
                raise UserError(f"--viewpoint-augment: no training episode can be re-rendered: {first}")
            warnings.warn(
                f"--viewpoint-augment: {len(out.skipped)} of {len(out.skipped) + len(out.cameras)} training "
                f"episode(s) keep their recorded views (first: episode {min(out.skipped)}): {first}",
                UserWarning,
                stacklevel=2,
            )
        return out

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per sequence of a (global) batch: whether it is re-rendered, its starting offset (m) and heading
        error (rad); all three drawn for every sequence, in this order."""
        apply = torch.rand(batch, generator=generator, dtype=torch.float64) < self.prob
        offset = (2.0 * torch.rand(batch, generator=generator, dtype=torch.float64) - 1.0) * self.max_offset_m
        yaw = (2.0 * torch.rand(batch, generator=generator, dtype=torch.float64) - 1.0) * self.max_yaw_rad
        return {"apply": apply, "offset_m": offset, "yaw_rad": yaw}

    def recover(self, first_row: int, length: int, offset_m: float, yaw_rad: float) -> tuple[list, np.ndarray]:
        """The recovery from (``offset_m``, ``yaw_rad``) at cache row ``first_row`` over ``length`` frames:
        per frame the camera's pose in the recorded car's frame (dx, dy, dyaw) and the label correction
        (normalised steering)."""
        poses, corrections = [], np.zeros(length)
        e, psi = float(offset_m), float(yaw_rad)
        for k in range(length):
            r = first_row + k
            kr, br = float(self.curvature[r]), float(self.slip[r])
            corrections[k] = recovery_correction(e, psi, kr, float(self.speed[r]), self.horizon_s) / self.max_steer_rad
            poses.append(camera_move(e, psi, br))
            if k + 1 < length:
                delta = float(np.clip(self.applied[r] + corrections[k], -1.0, 1.0)) * self.max_steer_rad
                e, psi = advance(e, psi, float(self.ds[r]), kr, br, steer_to_curvature(delta), slip_angle(delta))
        return poses, corrections

    def synthesizer(self, episode: int) -> ViewSynthesizer:
        """The view synthesis of an episode's camera (one per distinct camera)."""
        camera = self.cameras[episode]
        key = dataclasses.astuple(camera)
        if key not in self._synthesizers:
            self._synthesizers[key] = ViewSynthesizer(camera)
        return self._synthesizers[key]

    def apply(
        self, frames: torch.Tensor, steering: torch.Tensor, rows: np.ndarray, params: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames uint8 (B, T, H, W, 3) and labels (B, T) of the windows at cache ``rows`` (B, T) -> the same
        with the chosen windows re-rendered and relabelled (new tensors; the others' values unchanged)."""
        frames, steering = frames.clone(), steering.clone()
        for i in range(frames.shape[0]):
            episode = int(self.episode[rows[i, 0]])
            if not bool(params["apply"][i]) or episode < 0:
                continue
            poses, corrections = self.recover(
                int(rows[i, 0]), rows.shape[1], float(params["offset_m"][i]), float(params["yaw_rad"][i])
            )
            synth = self.synthesizer(episode)
            window = frames[i].numpy()
            for k, pose in enumerate(poses):
                window[k] = synth.warp(window[k], *pose)[0]
            labels = steering[i].double().numpy() + corrections
            steering[i] = torch.from_numpy(np.clip(labels, -1.0, 1.0)).to(steering.dtype)
        return frames, steering

    def augment_batch(
        self,
        frames: torch.Tensor,
        steering: torch.Tensor,
        rows: np.ndarray,
        seed: int,
        epoch: int,
        batch: int,
        batch_size: int,
        first: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`apply` to sequences ``first`` .. of global batch ``batch`` (``batch_size`` sequences), the
        draws made for the whole global batch from (seed, epoch, batch), so a process that holds a slice of
        it (torchrun) changes its sequences exactly as a single process would."""
        params = self.sample(batch_size, batch_generator(seed, epoch, batch, stream=VIEWPOINT_STREAM))
        return self.apply(frames, steering, rows, slice_params(params, first, first + frames.shape[0]))
