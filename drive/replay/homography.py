"""View synthesis: a recorded camera frame re-rendered from a nearby pose on the same ground plane.

The camera is the pinhole of :mod:`drive.world.camera` (:class:`~drive.world.camera.CameraConfig`):
focal length f = (W/2)/tan(fov/2) px, principal point (cx, cy) = ((W-1)/2, (H-1)/2), the optical centre
``height_m`` above the ground at the car's reference point, pitched down by ``pitch_rad``, turned by the
mount's ``yaw_rad``; the horizon is the image row v_h = cy - f·tan(pitch). A vehicle-frame point
(forward F, left L, up Z) has camera coordinates c = R_p·R_m·(F, L, Z - h) (depth X, left, up) and pixel
(u·X, v·X, X) = K·c with K = [[cx, -f, 0], [cy, 0, -f], [1, 0, 0]].

The learner's car stands at ``(dx, dy)`` m in the recorded car's frame (forward, left), turned by ``dyaw``
rad (left +); both cameras share height, pitch, mount and lens. Each learner pixel takes its colour from
the recorded frame through one of two homographies (learner pixel -> recorded pixel):

- below the horizon, the ground plane: H_g = G·T·G⁻¹, with G = K·R_p·R_m·diag(1, 1, -h) the map from
  ground points (F, L, 1) to pixels and T the planar move from the learner's frame to the recorded one;
- above it, a pure rotation (what lies there is taken to be far away): H_s = A·R_z(dyaw)·A⁻¹, A = K·R_p·R_m.

The two agree on the horizon (far ground points move only by the rotation). A learner pixel whose source
falls outside the recorded frame (or behind the recorded camera) has no source; it is filled by OpenCV's
border rule, never by a constant colour, so that a wedge of fill does not tell a network which way it
stands off the path. ``fill``: ``replicate`` (the default) takes the nearest edge pixel of the recorded
frame, so a road edge that leaves the frame runs on, flattened, into the fill; ``reflect`` mirrors the
frame's texture across its edge, which also turns a road edge back into a V (seen at 1 m and 5° on the
plain test road; a more telling shape). The share of such pixels is returned with the frame.
Zero deviation returns (a copy of) the recorded frame, exactly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from drive.world.camera import CameraConfig

FILLS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}
"""How pixels with no source are filled: OpenCV border modes (no constant colour)."""


def intrinsics(cfg: CameraConfig) -> np.ndarray:
    """K: camera coordinates (depth X, left, up) -> homogeneous pixel (u·X, v·X, X)."""
    f = cfg.focal_px
    return np.array([[cfg.cx, -f, 0.0], [cfg.cy, 0.0, -f], [1.0, 0.0, 0.0]])


def camera_rotation(cfg: CameraConfig) -> np.ndarray:
    """R_p·R_m: vehicle-frame directions (forward, left, up) -> camera coordinates (depth, left, up)."""
    cm, sm = math.cos(cfg.yaw_rad), math.sin(cfg.yaw_rad)
    cp, sp = math.cos(cfg.pitch_rad), math.sin(cfg.pitch_rad)
    r_mount = np.array([[cm, sm, 0.0], [-sm, cm, 0.0], [0.0, 0.0, 1.0]])
    r_pitch = np.array([[cp, 0.0, -sp], [0.0, 1.0, 0.0], [sp, 0.0, cp]])
    return r_pitch @ r_mount


def ground_to_image(cfg: CameraConfig) -> np.ndarray:
    """G: ground points (forward m, left m, 1) in the car's frame -> homogeneous pixels (third entry = depth)."""
    return intrinsics(cfg) @ camera_rotation(cfg) @ np.diag([1.0, 1.0, -cfg.height_m])


def planar_move(dx: float, dy: float, dyaw: float) -> np.ndarray:
    """T: homogeneous ground points in the learner's frame -> the recorded car's frame."""
    c, s = math.cos(dyaw), math.sin(dyaw)
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def view_homographies(cfg: CameraConfig, dx: float, dy: float, dyaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(H_ground, H_sky): learner pixel -> recorded pixel, homogeneous, for the learner at (dx, dy, dyaw).

    Both are scaled so that the third entry of ``H @ (u, v, 1)`` is positive exactly when the source point
    lies in front of the recorded camera (for learner pixels on their own side of the horizon).
    """
    g = ground_to_image(cfg)
    g_inv = np.linalg.inv(g)
    # the third entry of G⁻¹·p is zero on the horizon; make it positive below it (ground in front)
    if (g_inv @ np.array([cfg.cx, cfg.horizon_row + 10.0, 1.0]))[2] < 0:
        g_inv = -g_inv
    h_ground = g @ planar_move(dx, dy, dyaw) @ g_inv
    a = intrinsics(cfg) @ camera_rotation(cfg)
    c, s = math.cos(dyaw), math.sin(dyaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    h_sky = a @ rz @ np.linalg.inv(a)  # K⁻¹·p has depth 1 > 0: no sign to fix
    return h_ground, h_sky


def _row_shift(rows: int) -> np.ndarray:
    """Pixel (u, v) of a block that starts at image row ``rows`` -> pixel (u, v + rows) of the image."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, float(rows)], [0.0, 0.0, 1.0]])


class ViewSynthesizer:
    """Re-render frames of one camera from nearby poses: ``warp(frame, dx, dy, dyaw)`` -> (frame, fill share)."""

    def __init__(self, config: CameraConfig, fill: str = "replicate"):
        if fill not in FILLS:
            raise ValueError(f"ViewSynthesizer: fill must be one of {', '.join(FILLS)}, got {fill!r}")
        self.config = cfg = config
        self.fill = fill
        self._border = FILLS[fill]
        h, w = cfg.height, cfg.width
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        self._pixels = np.stack([u.ravel(), v.ravel(), np.ones(h * w)])  # (3, H·W)
        #: per pixel, whether it sees the ground (below the horizon row), as drive.world.camera decides
        self.ground = (v > cfg.horizon_row).ravel()
        # pixels are in row order, so the ground ones are one block at the end: each homography maps its own block
        self._first_ground = int(np.argmax(self.ground)) if self.ground.any() else h * w
        self.valid = np.ones((h, w), bool)
        """The pixels of the last :meth:`warp` that had a source in the recorded frame."""
        self._full = np.full((h, w), 255, np.uint8)

    def source_coordinates(self, dx: float, dy: float, dyaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per learner pixel, the recorded frame's (u, v) it shows and whether it has a source: (H, W) arrays."""
        cfg = self.config
        h_ground, h_sky = view_homographies(cfg, dx, dy, dyaw)
        k = self._first_ground
        q = np.empty_like(self._pixels)
        np.matmul(h_sky, self._pixels[:, :k], out=q[:, :k])
        np.matmul(h_ground, self._pixels[:, k:], out=q[:, k:])
        in_front = q[2] > 1e-9
        depth = np.where(in_front, q[2], 1.0)
        src_u = np.where(in_front, q[0] / depth, self._pixels[0])
        src_v = np.where(in_front, q[1] / depth, self._pixels[1])
        valid = in_front & (src_u >= 0) & (src_u <= cfg.width - 1) & (src_v >= 0) & (src_v <= cfg.height - 1)
        shape = (cfg.height, cfg.width)
        return src_u.reshape(shape), src_v.reshape(shape), valid.reshape(shape)

    def warp(self, frame: np.ndarray, dx: float, dy: float, dyaw: float) -> tuple[np.ndarray, float]:
        """The recorded ``frame`` (H, W, 3) as seen from (dx, dy, dyaw); and the share of filled pixels."""
        if dx == 0.0 and dy == 0.0 and dyaw == 0.0:
            self.valid = np.ones(frame.shape[:2], bool)
            return frame.copy(), 0.0  # a new array: callers keep what they are given
        cfg = self.config
        h_ground, h_sky = view_homographies(cfg, dx, dy, dyaw)
        k = self._first_ground
        if k % cfg.width or (h_ground[2] @ self._pixels[:, k:] <= 1e-9).any():
            # a ground pixel whose source lies behind the recorded camera (or a horizon inside a row): the exact maps
            src_u, src_v, self.valid = self.source_coordinates(dx, dy, dyaw)
            out = cv2.remap(
                frame, src_u.astype(np.float32), src_v.astype(np.float32), cv2.INTER_LINEAR, borderMode=self._border
            )
            return out, float(1.0 - self.valid.mean())
        # the same maps, computed and sampled by OpenCV one block at a time (sky rows, then ground rows): with
        # WARP_INVERSE_MAP each output pixel reads the source H·(u, v, 1), as source_coordinates does
        rows = k // cfg.width
        out = np.empty_like(frame)
        valid = np.empty((cfg.height, cfg.width), np.uint8)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for lo, hi, h in ((0, rows, h_sky), (rows, cfg.height, h_ground @ _row_shift(rows))):
            if hi > lo:
                size = (cfg.width, hi - lo)
                out[lo:hi] = cv2.warpPerspective(frame, h, size, flags=flags, borderMode=self._border)
                valid[lo:hi] = cv2.warpPerspective(
                    self._full, h, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0
                )
        self.valid = valid == 255  # a source inside the frame: every bilinear tap on a frame pixel
        return out, float(1.0 - self.valid.mean())
