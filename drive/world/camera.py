"""Cameras: a forward-facing pinhole camera on the car, and a heading-up top-down view.

Both render with NumPy/OpenCV from the road geometry (no pygame):

- per track, ``Scenery`` paints once a top-down colour raster of the world (textured grass, a
  gravel shoulder, asphalt with wear bands and patches, solid edge lines and dashed lane lines)
  with OpenCV at ≥ 0.15 m/px (at most 4096 px a side), plus a mip-map pyramid and a 360°
  panorama of sky and distant hills;
- per camera config, ``Camera`` precomputes the ground point (forward m, left m) hit by each pixel
  ray below the horizon, and the sky direction (azimuth, elevation) of each pixel above it;
- per frame, the ground points are moved by the car pose with one affine ``cv2.transform`` per
  mip level band and looked up with ``cv2.remap``; distance haze is blended in; the sky is a
  ``cv2.remap`` of the panorama shifted by the yaw; other vehicles are projected boxes (filled
  polygons, back faces culled, far to near).

Pinhole model (square pixels, pixel centres at integer coordinates): focal length
f = (W/2) / tan(fov/2) px, principal point (cx, cy) = ((W-1)/2, (H-1)/2). The camera sits at
the car's reference point, ``height_m`` above the ground, pitched down by ``pitch_rad``; so the
horizon is the image row v_h = cy - f·tan(pitch). Frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from drive.world.tracks import (
    EDGE_LINE_INSET_M,
    LINE_WIDTH_M,
    Track,
)

MIN_RASTER_M_PER_PX = 0.15
"""Finest raster resolution, m/px."""
MAX_RASTER_PX = 4096
"""Largest raster side, px (the resolution coarsens for big tracks)."""
RASTER_MARGIN_M = 60.0
"""Grass painted around the road's bounding box, m."""
HAZE_DISTANCE_M = 220.0
"""Distance at which haze covers 63 % of the ground colour, m."""
FAR_M = 2000.0
"""Ground farther than this is drawn as pure haze, m."""
NEAR_M = 0.2
"""Box corners nearer than this (along the optical axis) hide the face, m."""
PANORAMA_W, PANORAMA_H = 2048, 256
PANORAMA_MAX_ELEVATION_RAD = math.radians(75)
_SCENERY_CACHE_SIZE = 3


@dataclasses.dataclass
class CameraConfig:
    """Forward-facing pinhole camera on the car."""

    height_m: float = 1.2
    """Height of the optical centre above the ground, m."""
    pitch_rad: float = 0.12
    """Downward pitch of the optical axis, rad (0 = level, positive looks down)."""
    fov_deg: float = 80.0
    """Horizontal field of view, deg."""
    yaw_rad: float = 0.0
    """Mount yaw relative to the car's heading, rad (positive looks left)."""
    width: int = 200
    """Image width, px (the NCP paper's input is 200)."""
    height: int = 78
    """Image height, px (the NCP paper's input is 78)."""

    @property
    def focal_px(self) -> float:
        """Focal length, px."""
        return (self.width / 2) / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def horizon_row(self) -> float:
        """Image row (fractional) of the horizon: cy - f·tan(pitch)."""
        return self.cy - self.focal_px * math.tan(self.pitch_rad)


class VehicleBox(NamedTuple):
    """A vehicle to draw: a box standing on the ground."""

    x_m: float
    y_m: float
    heading_rad: float
    length_m: float = 5.0
    width_m: float = 2.0
    height_m: float = 1.5
    color: tuple[int, int, int] = (200, 40, 40)


# --- scenery: what the world looks like, per track ---------------------------------------------


def _periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [−1, 1] that tiles seamlessly: a random grid, wrap-padded, upsampled."""
    g = rng.standard_normal((cells, cells)).astype(np.float32)
    pad = 3
    gp = np.pad(g, pad, mode="wrap")
    c = size // cells
    big = cv2.resize(gp, ((cells + 2 * pad) * c, (cells + 2 * pad) * c), interpolation=cv2.INTER_CUBIC)
    out = big[pad * c : pad * c + size, pad * c : pad * c + size]
    return out / max(1e-6, float(np.abs(out).max()))


def _shade(color: Sequence[float], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]


#: Base ground colours (RGB) of ``surface.ground``: (grass, dry patches).
GROUND_COLOURS = {
    "grass": ((78, 112, 52), (150, 140, 88)),
    "dry": ((150, 138, 80), (178, 160, 104)),
    "dirt": ((118, 94, 68), (146, 122, 92)),
}
#: Base colours (RGB) of ``markings.line_colour``.
LINE_COLOURS_RGB = {"white": (232, 232, 226), "yellow": (236, 186, 40)}
KERB_RGB = (188, 188, 182)
KERB_WIDTH_M = 0.3


class Scenery:
    """The painted world of one track: raster pyramid, panorama and colours (seeded).

    ``world`` (a drawn ``drive.world.appearance.World``) changes markings, surfaces, light, fog
    and roadside shadows; all of it is painted here, once per episode, never per frame. Without a
    world, or with the plain look, the scenery is painted exactly as it always was.
    """

    def __init__(self, track: Track, seed: int = 0, world=None):
        self.track = track
        self.world = w = world if world is not None and not world.plain_scenery else None
        rng = np.random.default_rng([int(seed), 0x5CE])
        # colours (RGB), varied a little per track
        grass, dry_grass = GROUND_COLOURS[w.ground] if w is not None else GROUND_COLOURS["grass"]
        self.grass = np.array(grass) * rng.uniform(0.85, 1.15, 3)
        self.dry_grass = np.array(dry_grass) * rng.uniform(0.9, 1.1)
        self.asphalt = np.array([92, 92, 96]) * rng.uniform(0.8, 1.2)
        self.shoulder = np.array([128, 116, 98]) * rng.uniform(0.85, 1.1)
        line_factor = rng.uniform(0.9, 1.0)
        self.line = np.array([232, 232, 226]) * line_factor
        self.haze = np.array([196, 206, 216]) * rng.uniform(0.92, 1.04)
        self.zenith = np.array([96, 140, 204]) * rng.uniform(0.85, 1.1)
        self.hills = np.array([92, 112, 108]) * rng.uniform(0.8, 1.1)
        self.centre_line_rgb = self.line
        if w is not None:
            from drive.world.appearance import sun_light

            self.asphalt = self.asphalt * w.asphalt_tone
            self.centre_line_rgb = np.array(LINE_COLOURS_RGB[w.line_colour]) * line_factor
            fog = min(1.0, 1.5 * w.fog_density)
            self.haze = self.haze * (1 - 0.6 * fog) + 205.0 * 0.6 * fog
            if w.sky == "overcast":
                self.zenith = np.array([150.0, 156.0, 164.0]) * rng.uniform(0.9, 1.05)
            self.light, self.tint, _ = sun_light(w.sun_elevation_rad, w.sky)
        x0, y0, x1, y1 = track.bounds(RASTER_MARGIN_M)
        extent = max(x1 - x0, y1 - y0)
        self.m_per_px = max(MIN_RASTER_M_PER_PX, extent / MAX_RASTER_PX)
        self.x_min, self.y_max = x0, y1
        w_px = int(math.ceil((x1 - x0) / self.m_per_px))
        h_px = int(math.ceil((y1 - y0) / self.m_per_px))
        self.levels = self._paint(rng, w_px, h_px)
        self.border = tuple(float(c) for c in self.grass)
        self.panorama = self._panorama(rng)
        if w is not None:
            gain = self.light * self.tint
            self.border = tuple(float(c) for c in np.clip(np.array(self.border) * gain, 0, 255))
            self.haze = np.clip(self.haze * gain, 0, 255)

    def world_to_px(self, xy: np.ndarray, level: int = 0) -> np.ndarray:
        """World points (…, 2) m -> raster pixel coordinates (col, row) at a mip level."""
        k = self.m_per_px * 2**level
        return np.stack([(xy[..., 0] - self.x_min) / k - 0.5, (self.y_max - xy[..., 1]) / k - 0.5], axis=-1)

    def _paint(self, rng: np.random.Generator, w: int, h: int) -> list[np.ndarray]:
        world = self.world
        tile = 1024
        n1 = _periodic_noise(rng, tile, 8)
        n2 = _periodic_noise(rng, tile, 32)
        n3 = _periodic_noise(rng, tile, 128)
        n4 = _periodic_noise(rng, tile, 512)
        if world is None or world.ground_texture == 1.0:
            dry = np.clip(0.5 + 0.9 * n1, 0, 1)[..., None] * 0.45
            lum = (1 + 0.10 * n2 + 0.10 * n3 + 0.08 * n4)[..., None]
        else:
            gt = world.ground_texture
            dry = np.clip(0.5 + 0.9 * gt * n1, 0, 1)[..., None] * 0.45
            lum = (1 + gt * (0.10 * n2 + 0.10 * n3 + 0.08 * n4))[..., None]
        grass_tile = ((self.grass * (1 - dry) + self.dry_grass * dry) * lum).clip(0, 255).astype(np.uint8)
        reps = (math.ceil(h / tile), math.ceil(w / tile), 1)
        img = np.ascontiguousarray(np.tile(grass_tile, reps)[:h, :w])
        t = self.track
        shift = 4
        scale = 2**shift

        def pts(poly: np.ndarray) -> np.ndarray:
            return np.round(self.world_to_px(poly) * scale).astype(np.int32)

        def px(m: float) -> int:
            return max(1, int(round(m / self.m_per_px)))

        centre = pts(t.offset_polyline(0.0))
        aa = cv2.LINE_AA
        shoulder = "gravel" if world is None else world.shoulder
        if shoulder == "gravel":
            cv2.polylines(img, [centre], True, _shade(self.shoulder, 1.0), px(t.road_width_m + 1.6), aa, shift)
        elif shoulder == "kerb":
            cv2.polylines(img, [centre], True, KERB_RGB, px(t.road_width_m + 2 * KERB_WIDTH_M), aa, shift)
        cv2.polylines(img, [centre], True, _shade(self.asphalt, 1.0), px(t.road_width_m), aa, shift)
        texture = 1.0 if world is None else world.asphalt_texture
        # repair patches: darker or lighter rectangles of asphalt along the road
        n_patches = int(t.length_m / 25)
        for s in rng.uniform(0, t.length_m, n_patches):
            lat = rng.uniform(-t.half_width_m + 1.0, t.half_width_m - 1.0)
            cx, cy, hd = t.pose_at(float(s), float(lat))
            L, W = rng.uniform(1.0, 6.0), rng.uniform(0.5, 2.5)
            c, sn = math.cos(hd), math.sin(hd)
            corners = np.array(
                [
                    [cx + a * c * L / 2 - b * sn * W / 2, cy + a * sn * L / 2 + b * c * W / 2]
                    for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
                ]
            )
            f = rng.uniform(0.8, 1.15)
            if texture != 1.0:
                f = 1.0 + (f - 1.0) * texture
            cv2.fillPoly(img, [pts(corners)], _shade(self.asphalt, f), aa, shift)
        # tyre-wear bands, slightly darker, in each lane
        if texture > 0:
            band = 0.9 if texture == 1.0 else 1.0 - 0.1 * texture
            for o in t.lane_offsets_m:
                for side in (-0.85, 0.85):
                    cv2.polylines(
                        img, [pts(t.offset_polyline(o + side))], True, _shade(self.asphalt, band), px(0.5), aa, shift
                    )
        # painted lines: solid edges, dashed lane dividers
        edges = "both" if world is None else world.edge_lines
        centre_kind = "dashed" if world is None else world.centre_line
        worn = world is not None and world.line_wear > 0
        layers = [
            (self.line, np.zeros((h, w), np.uint8) if worn else img),
            (self.centre_line_rgb, np.zeros((h, w), np.uint8) if worn else img),
        ]
        lw = px(LINE_WIDTH_M)
        for side in (-1, 1):
            if edges == "both" or (edges == "left" and side == 1) or (edges == "right" and side == -1):
                colour, target = layers[0]
                cv2.polylines(
                    target,
                    [pts(t.offset_polyline(side * (t.half_width_m - EDGE_LINE_INSET_M)))],
                    True,
                    255 if worn else _shade(colour, 1.0),
                    lw,
                    aa,
                    shift,
                )
        colour, target = layers[1]
        ink = 255 if worn else _shade(colour, 1.0)
        if centre_kind == "dashed":
            dash = t.dash_mask()
            starts = np.flatnonzero(dash & ~np.roll(dash, 1))
            ends = np.flatnonzero(dash & ~np.roll(dash, -1))
            if len(starts) and ends[0] < starts[0]:
                ends = np.roll(ends, -1)
            for o in t.lane_offsets_m[:-1] + t.lane_width_m / 2:
                poly = pts(t.offset_polyline(o))
                runs = [poly[np.arange(a, (b if b >= a else b + t.n) + 1) % t.n] for a, b in zip(starts, ends)]
                cv2.polylines(target, runs, False, ink, lw, aa, shift)
        elif centre_kind == "solid":
            for o in t.lane_offsets_m[:-1] + t.lane_width_m / 2:
                cv2.polylines(target, [pts(t.offset_polyline(o))], True, ink, lw, aa, shift)
        if worn:
            self._blend_worn_paint(img, layers, world.line_wear, reps, tile)
        if world is not None and world.shadows_per_100m > 0:
            self._paint_shadows(img, pts, px)
        # fine grain everywhere
        grain = (128 + 10 * _periodic_noise(rng, tile, 512)).astype(np.uint8)
        grain = np.ascontiguousarray(np.tile(grain, reps[:2])[:h, :w])
        img = cv2.multiply(img, cv2.merge([grain, grain, grain]), scale=1 / 128)
        if world is not None and (self.light != 1.0 or np.any(self.tint != 1.0)):
            img = cv2.multiply(img, tuple(float(g) for g in self.light * self.tint) + (0.0,))
        levels = [img]
        while len(levels) < 7 and min(levels[-1].shape[:2]) > 16:
            levels.append(cv2.pyrDown(levels[-1]))
        return levels

    def _blend_worn_paint(self, img: np.ndarray, layers, wear: float, reps, tile: int) -> None:
        """Blend the line masks into the raster: ``wear`` of the paint gone in blotches, the rest faded."""
        wrng = np.random.default_rng([self.world.world_seed, 0x3EA2])
        blotch = _periodic_noise(wrng, tile, 256) * 0.6 + _periodic_noise(wrng, tile, 64) * 0.4
        keep = np.clip((blotch - (2 * wear - 1.0)) * 4.0, 0, 1) * (1.0 - 0.6 * wear)  # paint left, 0..1
        for colour, mask in layers:
            rows, cols = np.nonzero(mask)  # the lines cover a few % of the raster: blend only there
            alpha = (mask[rows, cols] / 255.0 * keep[rows % tile, cols % tile])[:, None]
            img[rows, cols] = (
                (img[rows, cols] * (1 - alpha) + np.array(_shade(colour, 1.0)) * alpha).round().astype(np.uint8)
            )

    def _paint_shadows(self, img: np.ndarray, pts, px) -> None:
        """Shadows of roadside trees, poles and buildings, cast away from the sun onto ground and road."""
        world, t = self.world, self.track
        srng = np.random.default_rng([world.world_seed, 0x5AD0])
        elev = max(world.sun_elevation_rad, 0.05)
        reach = 1.0 / math.tan(elev)  # shadow length per metre of height
        away = -np.array([math.cos(world.sun_azimuth_rad), math.sin(world.sun_azimuth_rad)])
        n = int(round(t.length_m / 100.0 * world.shadows_per_100m))
        mask = np.zeros(img.shape[:2], np.uint8)
        bases: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        edge = t.half_width_m + 0.8
        for _ in range(n):
            s = float(srng.uniform(0, t.length_m))
            side = 1.0 if srng.random() < 0.5 else -1.0
            kind = srng.choice(["tree", "tree", "pole", "building"])
            if kind == "building":
                lat = side * (edge + srng.uniform(8.0, 20.0))
                height, length, depth = srng.uniform(6, 15), srng.uniform(10, 20), srng.uniform(8, 14)
                cx, cy, hd = t.pose_at(s, lat + side * depth / 2)
                c, sn = math.cos(hd), math.sin(hd)
                foot = np.array(
                    [
                        [cx + a * c * length / 2 - b * sn * depth / 2, cy + a * sn * length / 2 + b * c * depth / 2]
                        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
                    ]
                )
                cast = foot + away * min(height * reach, 80.0)
                hull = cv2.convexHull(np.concatenate([pts(foot), pts(cast)]).astype(np.int32))
                cv2.fillPoly(mask, [hull], 255, cv2.LINE_AA, 4)
                bases.append((pts(foot), (120, 112, 106)))
                continue
            lat = side * (edge + srng.uniform(1.0, 7.0))
            bx, by, _ = t.pose_at(s, lat)
            base = np.array([bx, by])
            height = srng.uniform(5, 10) if kind == "tree" else srng.uniform(6, 9)
            thick = 0.3 if kind == "tree" else 0.22
            trunk_len = min(height * (0.55 if kind == "tree" else 1.0) * reach, 80.0)
            normal = np.array([-away[1], away[0]]) * thick / 2
            quad = np.array(
                [base - normal, base + normal, base + away * trunk_len + normal, base + away * trunk_len - normal]
            )
            cv2.fillPoly(mask, [pts(quad)], 255, cv2.LINE_AA, 4)
            if kind == "tree":
                r = srng.uniform(1.5, 3.0)
                centre = base + away * min(height * 0.75 * reach, 80.0)
                along = min(r / math.sin(elev), 4 * r)
                ang = math.degrees(math.atan2(-away[1], away[0]))  # raster rows grow southwards
                cpx = pts(centre[None])[0] / 16.0
                cv2.ellipse(mask, (int(cpx[0]), int(cpx[1])), (px(along), px(r)), ang, 0, 360, 255, -1, cv2.LINE_AA)
            bases.append((pts(np.array([base + normal * 2 + away * 0, base - normal * 2])), (70, 60, 50)))
        blur = max(1, px(0.6 if world.sky == "overcast" else 0.25))
        mask = cv2.GaussianBlur(mask, (0, 0), blur)
        strength = 0.25 if world.sky == "overcast" else 0.5
        gain = 255 - (mask.astype(np.uint16) * int(255 * strength) // 255).astype(np.uint8)
        img[:] = cv2.multiply(img, cv2.merge([gain, gain, gain]), scale=1 / 255)
        for poly, colour in bases:
            if len(poly) > 2:
                cv2.fillPoly(img, [poly], colour, cv2.LINE_AA, 4)
            else:
                cv2.polylines(img, [poly], False, colour, px(0.3), cv2.LINE_AA, 4)

    def _panorama(self, rng: np.random.Generator) -> np.ndarray:
        """360° strip: columns = world azimuth (0..2π, counter-clockwise), rows = elevation (top = max)."""
        el = np.linspace(PANORAMA_MAX_ELEVATION_RAD, 0, PANORAMA_H)[:, None]
        t = (el / PANORAMA_MAX_ELEVATION_RAD) ** 0.6
        sky = self.haze[None, None, :] * (1 - t[..., None]) + self.zenith[None, None, :] * t[..., None]
        sky = np.repeat(sky, PANORAMA_W, axis=1).astype(np.float32)
        # soft clouds
        clouds = np.clip(_periodic_noise(rng, PANORAMA_W, 16), 0, 1)
        clouds = cv2.resize(clouds, (PANORAMA_W, PANORAMA_H))
        amount = rng.uniform(0.2, 0.8)
        if self.world is not None and self.world.sky != "clear":
            amount = 1.0
            clouds = np.clip(clouds * 1.5 + (0.35 if self.world.sky == "overcast" else 0.1), 0, 1)
        clouds *= np.clip((el[:, 0] - 0.03) / 0.3, 0, 1)[:, None] * amount
        sky = sky * (1 - clouds[..., None]) + 245.0 * clouds[..., None]
        # distant hills: silhouette up to a few degrees
        az = np.linspace(0, 2 * np.pi, PANORAMA_W, endpoint=False)
        prof = np.zeros_like(az)
        for k in (1, 2, 3, 5, 8, 13, 21):
            prof += rng.uniform(0, 1) / k**0.7 * np.cos(k * az + rng.uniform(0, 2 * np.pi))
        prof = np.radians(0.6 + 3.0 * (prof - prof.min()) / max(1e-6, np.ptp(prof)) * rng.uniform(0.4, 1.0))
        row_el = el[:, 0][:, None]
        below = row_el <= prof[None, :]
        depth = np.clip(row_el / np.maximum(prof[None, :], 1e-6), 0, 1)[..., None]
        hill = self.hills * (0.85 + 0.15 * depth) * 0.6 + self.haze * 0.4
        sky = np.where(below[..., None], hill, sky)
        if self.world is not None:
            fog = min(1.0, 1.5 * self.world.fog_density)
            sky = sky * (1 - fog) + self.haze * fog
            sky = sky * (self.light * self.tint)
        return np.ascontiguousarray(sky.clip(0, 255).astype(np.uint8))


_SCENERY: "collections.OrderedDict[tuple, Scenery]" = collections.OrderedDict()


def scenery_for(track: Track, seed: int | None = None, world=None) -> Scenery:
    """The (cached, a few at a time) scenery of a track and drawn world; ``seed`` defaults to the track's seed."""
    seed = (track.seed or 0) if seed is None else seed
    key = (
        track.name,
        track.n,
        round(track.length_m, 3),
        track.lanes,
        track.lane_width_m,
        seed,
        world.appearance_key() if world is not None else (),
    )
    sc = _SCENERY.get(key)
    if sc is None:
        sc = Scenery(track, seed, world)
        _SCENERY[key] = sc
        while len(_SCENERY) > _SCENERY_CACHE_SIZE:
            _SCENERY.popitem(last=False)
    else:
        _SCENERY.move_to_end(key)
    return sc


# --- the forward camera ------------------------------------------------------------------------


class Camera:
    """Forward-facing pinhole camera: ``render(scenery, x, y, yaw, boxes)`` -> RGB uint8 (H, W, 3)."""

    def __init__(self, config: CameraConfig | None = None, haze_distance_m: float = HAZE_DISTANCE_M):
        """``haze_distance_m``: distance at which haze covers 63 % of the ground (fog shortens it), m."""
        self.config = c = config or CameraConfig()
        self.haze_distance_m = float(haze_distance_m)
        H, W, f = c.height, c.width, c.focal_px
        self.shape = (H, W, 3)
        u = np.arange(W, dtype=np.float64)[None, :]
        v = np.arange(H, dtype=np.float64)[:, None]
        X = np.ones((H, W))
        Y = -(u - c.cx) / f + 0 * v
        Z = -(v - c.cy) / f + 0 * u
        cp, sp = math.cos(c.pitch_rad), math.sin(c.pitch_rad)
        Xw = X * cp + Z * sp  # forward component of the ray (vehicle frame)
        Zw = -X * sp + Z * cp  # up component
        ground_rows = np.flatnonzero(Zw[:, 0] < -1e-9)
        self.ground_start = int(ground_rows[0]) if len(ground_rows) else H
        g = slice(self.ground_start, H)
        t = c.height_m / -Zw[g]
        F, L = t * Xw[g], t * Y[g]
        rng_m = t * np.sqrt(Xw[g] ** 2 + Y[g] ** 2 + Zw[g] ** 2)
        far = np.minimum(1.0, FAR_M / np.maximum(rng_m, 1e-6))
        F, L, rng_m = F * far, L * far, rng_m * far
        if c.yaw_rad != 0.0:  # the mount's yaw turns the ground rays about the vertical axis
            cy_, sy_ = math.cos(c.yaw_rad), math.sin(c.yaw_rad)
            F, L = F * cy_ - L * sy_, F * sy_ + L * cy_
        self._ground_range = rng_m
        # mip level per row: footprint ~ range / f / sqrt(sin(grazing angle))
        graze = np.maximum(-Zw[g] / np.sqrt(Xw[g] ** 2 + Y[g] ** 2 + Zw[g] ** 2), 1e-3)
        self._footprint_m = (rng_m / f / np.sqrt(graze)).min(axis=1)
        self._FL = np.ascontiguousarray(np.stack([F, L], axis=-1).astype(np.float32))
        haze = 1 - np.exp(-rng_m / self.haze_distance_m)
        haze[rng_m >= FAR_M * 0.999] = 1.0
        self._w_haze = np.ascontiguousarray(haze.astype(np.float32))
        self._w_ground = np.ascontiguousarray((1 - haze).astype(np.float32))
        # sky: panorama coordinates (azimuth px before the yaw shift, elevation row)
        s = slice(0, self.ground_start)
        az = np.arctan2(Y[s], Xw[s])
        if c.yaw_rad != 0.0:
            az = az + c.yaw_rad
        el = np.arctan2(Zw[s], np.hypot(Xw[s], Y[s]))
        el = np.clip(el, 0, PANORAMA_MAX_ELEVATION_RAD)
        self._sky_map = np.ascontiguousarray(
            np.stack(
                [
                    az / (2 * np.pi) * PANORAMA_W,
                    (1 - el / PANORAMA_MAX_ELEVATION_RAD) * (PANORAMA_H - 1),
                ],
                axis=-1,
            ).astype(np.float32)
        )
        self._bands_for: dict[float, list[tuple[int, int, int]]] = {}
        self._tan_half_fov = math.tan(math.radians(c.fov_deg) / 2)

    def _bands(self, m_per_px: float, n_levels: int) -> list[tuple[int, int, int]]:
        """(first row, last row + 1, mip level) bands of the ground rows for a raster resolution."""
        bands = self._bands_for.get(m_per_px)
        if bands is None:
            lev = np.clip(
                np.floor(np.log2(np.maximum(self._footprint_m / m_per_px, 1e-9)) + 0.5), 0, n_levels - 1
            ).astype(int)
            bands = []
            start = 0
            for r in range(1, len(lev) + 1):
                if r == len(lev) or lev[r] != lev[start]:
                    bands.append((start, r, int(lev[start])))
                    start = r
            self._bands_for[m_per_px] = bands
        return bands

    def render(
        self,
        scenery: Scenery,
        x: float,
        y: float,
        yaw: float,
        boxes: Sequence[VehicleBox] = (),
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The camera frame of a car at (x m, y m) heading ``yaw`` rad: RGB uint8 (H, W, 3)."""
        if out is None:
            out = np.empty(self.shape, np.uint8)
        g0 = self.ground_start
        if g0 > 0:
            m = cv2.add(self._sky_map, ((yaw % (2 * math.pi)) / (2 * math.pi) * PANORAMA_W, 0.0, 0.0, 0.0))
            cv2.remap(scenery.panorama, m, None, cv2.INTER_LINEAR, dst=out[:g0], borderMode=cv2.BORDER_WRAP)
        if g0 < self.shape[0]:
            ground = np.empty((self.shape[0] - g0, self.shape[1], 3), np.uint8)
            c, s = math.cos(yaw), math.sin(yaw)
            for r0, r1, lev in self._bands(scenery.m_per_px, len(scenery.levels)):
                k = scenery.m_per_px * 2**lev
                M = np.array(
                    [[c / k, -s / k, (x - scenery.x_min) / k - 0.5], [-s / k, -c / k, (scenery.y_max - y) / k - 0.5]]
                )
                mp = cv2.transform(self._FL[r0:r1], M)
                cv2.remap(
                    scenery.levels[lev],
                    mp,
                    None,
                    cv2.INTER_LINEAR,
                    dst=ground[r0:r1],
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=scenery.border,
                )
            haze = np.empty_like(ground)
            haze[:] = scenery.haze.astype(np.uint8)
            out[g0:] = cv2.blendLinear(ground, haze, self._w_ground, self._w_haze)
        if boxes:
            self._draw_boxes(out, scenery, x, y, yaw, boxes)
        return out

    def project(
        self, forward: np.ndarray, left: np.ndarray, up: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vehicle-frame points (m; up from the ground) -> pixel (u, v) and depth along the optical axis (m)."""
        c = self.config
        if c.yaw_rad != 0.0:
            cy_, sy_ = math.cos(c.yaw_rad), math.sin(c.yaw_rad)
            forward, left = forward * cy_ + left * sy_, -forward * sy_ + left * cy_
        zc = np.asarray(up, float) - c.height_m
        cp, sp = math.cos(c.pitch_rad), math.sin(c.pitch_rad)
        X = forward * cp - zc * sp
        Z = forward * sp + zc * cp
        f = c.focal_px
        with np.errstate(divide="ignore", invalid="ignore"):
            u = c.cx - f * np.asarray(left, float) / X
            v = c.cy - f * Z / X
        return u, v, X

    def _draw_boxes(
        self, out: np.ndarray, scenery: Scenery, x: float, y: float, yaw: float, boxes: Sequence[VehicleBox]
    ) -> None:
        arr = np.array([b[:6] for b in boxes], float)  # (B, 6): x, y, heading, length, width, height
        dx, dy = arr[:, 0] - x, arr[:, 1] - y
        cam_yaw = yaw + self.config.yaw_rad  # cull in the camera's own heading
        fwd_c, lft_c = dx * math.cos(cam_yaw) + dy * math.sin(cam_yaw), -dx * math.sin(cam_yaw) + dy * math.cos(cam_yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        dist = np.hypot(dx, dy)
        radius = 0.5 * np.hypot(arr[:, 3], arr[:, 4])
        # in front, within the field of view (with the box's size as margin), not too far to see
        keep = (fwd_c > -radius) & (dist < 400.0) & (np.abs(lft_c) <= fwd_c * self._tan_half_fov + radius * 1.5)
        if not keep.any():
            return
        order = np.flatnonzero(keep)[np.argsort(-dist[keep])]  # far to near
        a = arr[order]
        bc, bs = np.cos(a[:, 2])[:, None], np.sin(a[:, 2])[:, None]
        px = _BOX_POINTS[None, :, 0] * a[:, 3:4] / 2  # box frame, m
        py = _BOX_POINTS[None, :, 1] * a[:, 4:5] / 2
        pz = _BOX_POINTS[None, :, 2] * a[:, 5:6]
        wx = a[:, 0:1] + px * bc - py * bs - x
        wy = a[:, 1:2] + px * bs + py * bc - y
        u, v, depth = self.project(wx * c + wy * s, -wx * s + wy * c, pz)
        in_front = depth >= NEAR_M
        uv = np.where(in_front[..., None], np.stack([u, v], -1), 0.0)
        ok = in_front & (np.abs(uv) < 2**22).all(-1)
        uv = np.round(uv * 16).astype(np.int32)
        # back-face culling: face f is seen when the camera (in the box frame) is beyond its plane
        cx_, cy_ = x - a[:, 0], y - a[:, 1]
        cam_b = np.stack(
            [cx_ * bc[:, 0] + cy_ * bs[:, 0], -cx_ * bs[:, 0] + cy_ * bc[:, 0], np.full(len(a), self.config.height_m)],
            1,
        )
        ext = np.stack([a[:, 3] / 2, a[:, 4] / 2, a[:, 5]], 1)
        seen = (cam_b @ _FACE_NORMALS.T) > ext[:, _FACE_AXES]  # (B, faces)
        seen &= ok[:, _FACE_IDX].all(-1)
        win_ok = ok[:, _WINDOW_IDX].all(-1)  # (B, side faces)
        haze = 1.0 - np.exp(-dist[order] / self.haze_distance_m)[:, None, None]
        colors = np.array([boxes[i].color for i in order], float)
        face_col = (colors[:, None, :] * _FACE_SHADES[None, :, None] * (1 - haze) + scenery.haze * haze).clip(0, 255)
        win_col = _WINDOW_COLOR * (1 - haze[:, 0]) + scenery.haze * haze[:, 0]
        for k in range(len(a)):
            for f in np.flatnonzero(seen[k]):
                cv2.fillPoly(out, [uv[k, _FACE_IDX[f]]], face_col[k, f].tolist(), cv2.LINE_AA, 4)
                if f > 0 and win_ok[k, f - 1]:
                    cv2.fillPoly(out, [uv[k, _WINDOW_IDX[f - 1]]], win_col[k].tolist(), cv2.LINE_AA, 4)


def _box_template() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit box points (x, y in ±1 of half length/width, z in 0..1 of height), faces and side windows.

    Faces: roof, right, left, front, rear (corner indices, outward normal, shade); one window quad
    on the upper part of each side face, in the same order as faces 1..4.
    """
    corners = [(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0), (-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)]
    faces = [(4, 5, 6, 7), (0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (3, 0, 4, 7)]
    normals = [(0, 0, 1), (0, -1, 0), (0, 1, 0), (1, 0, 0), (-1, 0, 0)]
    shades = [1.15, 0.85, 0.85, 0.7, 0.6]
    pts = [np.array(p, float) for p in corners]
    windows = []
    for face in faces[1:]:
        a, b, c, d = (np.array(corners[i], float) for i in face)  # bottom0, bottom1, top1, top0
        inset = (b - a) * 0.08
        quad = [
            a + (d - a) * 0.55 + inset,
            b + (c - b) * 0.55 - inset,
            b + (c - b) * 0.9 - inset,
            a + (d - a) * 0.9 + inset,
        ]
        windows.append(list(range(len(pts), len(pts) + 4)))
        pts.extend(quad)
    return np.array(pts), np.array(faces), np.array(normals, float), np.array(shades), np.array(windows)


_BOX_POINTS, _FACE_IDX, _FACE_NORMALS, _FACE_SHADES, _WINDOW_IDX = _box_template()
_FACE_AXES = np.argmax(np.abs(_FACE_NORMALS), 1)
_WINDOW_COLOR = np.array([40.0, 48.0, 60.0])


# --- the top-down view -----------------------------------------------------------------------


class TopDownCamera:
    """Heading-up map around the car (car pointing up), for videos and maps."""

    def __init__(self, width: int = 320, height: int = 320, m_per_px: float = 0.25, car_row_fraction: float = 0.7):
        if width < 8 or height < 8 or m_per_px <= 0 or not 0 <= car_row_fraction <= 1:
            raise ValueError(
                f"TopDownCamera: bad size/scale ({width}x{height}, {m_per_px} m/px, row {car_row_fraction})"
            )
        self.width, self.height, self.m_per_px = width, height, m_per_px
        self.c0 = (width - 1) / 2
        self.r0 = (height - 1) * car_row_fraction

    def _to_view(self, xy: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = xy[..., 0] - x, xy[..., 1] - y
        fwd, lft = dx * c + dy * s, -dx * s + dy * c
        return np.stack([self.c0 - lft / self.m_per_px, self.r0 - fwd / self.m_per_px], -1)

    def render(
        self,
        scenery: Scenery,
        x: float,
        y: float,
        yaw: float,
        boxes: Sequence[VehicleBox] = (),
        ego: VehicleBox | None = None,
        path_xy: np.ndarray | Sequence | None = None,
    ) -> np.ndarray:
        """RGB uint8 (height, width, 3) map; ``path_xy`` ((N, 2) world m) is drawn as a line."""
        lev = int(
            np.clip(math.floor(math.log2(max(self.m_per_px / scenery.m_per_px, 1.0))), 0, len(scenery.levels) - 1)
        )
        k = scenery.m_per_px * 2**lev
        c, s = math.cos(yaw), math.sin(yaw)
        m = self.m_per_px
        # dst (col, row) -> forward = (r0 - row) m, left = (c0 - col) m -> world -> src px
        a_col, a_row = -m, 0.0  # d(left)/dcol, d(left)/drow
        f_col, f_row = 0.0, -m
        # world x = x + F c - L s ; y = y + F s + L c
        wx_col, wx_row = f_col * c - a_col * s, f_row * c - a_row * s
        wy_col, wy_row = f_col * s + a_col * c, f_row * s + a_row * c
        wx0 = x + (self.r0 * m) * c - (self.c0 * m) * s
        wy0 = y + (self.r0 * m) * s + (self.c0 * m) * c
        M = np.array(
            [
                [wx_col / k, wx_row / k, (wx0 - scenery.x_min) / k - 0.5],
                [-wy_col / k, -wy_row / k, (scenery.y_max - wy0) / k - 0.5],
            ]
        )
        img = cv2.warpAffine(
            scenery.levels[lev],
            M,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=scenery.border,
        )
        if path_xy is not None and len(path_xy) >= 2:
            p = self._to_view(np.asarray(path_xy, float), x, y, yaw)
            cv2.polylines(img, [np.round(p * 16).astype(np.int32)], False, (255, 200, 0), 2, cv2.LINE_AA, 4)
        all_boxes = list(boxes) + ([ego] if ego is not None else [])
        for b in all_boxes:
            bc, bs = math.cos(b.heading_rad), math.sin(b.heading_rad)
            hl, hw = b.length_m / 2, b.width_m / 2
            corners = np.array(
                [
                    [b.x_m + a * hl * bc - w * hw * bs, b.y_m + a * hl * bs + w * hw * bc]
                    for a, w in ((-1, -1), (1, -1), (1, 1), (-1, 1))
                ]
            )
            p = np.round(self._to_view(corners, x, y, yaw) * 16).astype(np.int32)
            cv2.fillPoly(img, [p], tuple(int(q) for q in b.color), cv2.LINE_AA, 4)
            cv2.polylines(img, [p], True, (20, 20, 20), 1, cv2.LINE_AA, 4)
        return img
