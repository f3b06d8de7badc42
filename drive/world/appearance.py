"""Randomized worlds: the scenario's draw specs, and the ``World`` drawn from them per episode.

In a scenario file every randomizable key takes one of three forms:

- a single value: fixed (``lanes: 2``, ``line_colour: white``);
- ``[lo, hi]``, two numbers: a range, drawn uniformly (integers: ``lo..hi`` inclusive);
- a list of values (three or more numbers, or any list of words): a choice, drawn uniformly;
- a mapping ``{value: weight}`` (only ``track.lane_position``): a choice drawn with those weights.

``draw_world(scenario, world_seed)`` draws every key from its own generator seeded by
``(world_seed, key)``, so a draw depends only on the episode's seed and that key's spec (adding
a randomized key never changes the others). The env uses the reset seed as ``world_seed`` (a
seed drawn from its generator on an unseeded reset) and returns ``World.as_dict()`` in the reset
info as ``info["world"]``.

The defaults of every key are today's plain look (``scenarios/default.yaml``); with them the
scenery is painted by exactly the code path it always was, so its frames are unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any

import numpy as np

CENTRE_LINES = ("dashed", "solid", "none")
LINE_COLOURS = ("white", "yellow")
EDGE_LINES = ("both", "left", "right", "none")
SHOULDERS = ("gravel", "grass", "kerb")
GROUNDS = ("grass", "dry", "dirt")
SKIES = ("clear", "cloudy", "overcast")
#: Sun elevation at and above which the light is today's full, neutral daylight, rad.
FULL_DAYLIGHT_ELEVATION_RAD = 0.6

#: Lane positions: which lane of how many the ego drives in, ``name: (lanes, ego_lane)``, lane 0 the
#: rightmost. One lane: ``only_of_1``; two: ``right_of_2``, ``left_of_2``; three: ``right_of_3``,
#: ``middle_of_3``, ``left_of_3``. ``track.lane_position`` draws one (lane count and ego lane together).
LANE_POSITIONS: dict[str, tuple[int, int]] = {
    "only_of_1": (1, 0),
    "right_of_2": (2, 0),
    "left_of_2": (2, 1),
    "right_of_3": (3, 0),
    "middle_of_3": (3, 1),
    "left_of_3": (3, 2),
}
#: Lane-width bins of the coverage table and the split, ``(name, upper bound m)``: the suite's 3.0 m
#: lanes are ``narrow``, the default 3.5 m ``standard``, the suite's 4.5 m ``wide``.
WIDTH_BINS: tuple[tuple[str, float], ...] = (("narrow", 3.25), ("standard", 4.0), ("wide", math.inf))
#: Light bins by sun elevation, ``(name, upper bound rad)``: the suite's dusk (0.03 rad) is ``dusk``, its
#: low sun (0.25 rad) ``low_sun``, full daylight (``FULL_DAYLIGHT_ELEVATION_RAD`` and above) ``day``.
LIGHT_BINS: tuple[tuple[str, float], ...] = (
    ("dusk", 0.15),
    ("low_sun", FULL_DAYLIGHT_ELEVATION_RAD),
    ("day", math.inf),
)


@dataclasses.dataclass
class MarkingsSpec:
    """Painted lines."""

    centre_line: str | list[str] = "dashed"
    """Lines between lanes: ``dashed``, ``solid`` or ``none`` (no line between the lanes)."""
    line_colour: str | list[str] = "white"
    """Colour of the lines between lanes: ``white`` or ``yellow`` (edge lines stay white)."""
    wear: float | list[float] = 0.0
    """Worn and faded paint, 0 (fresh) .. 0.9: fraction of the paint that is gone, and how far the rest has faded."""
    edge_lines: str | list[str] = "both"
    """Solid edge lines painted: ``both``, ``left`` (the right one missing), ``right`` or ``none``."""


@dataclasses.dataclass
class SurfaceSpec:
    """Road, shoulder and ground surfaces."""

    asphalt_tone: float | list[float] = 1.0
    """Brightness factor of the asphalt, 0.4 .. 1.8 (1 = today's grey)."""
    asphalt_texture: float | list[float] = 1.0
    """Strength of the asphalt's repair patches and tyre-wear bands, 0 (uniform) .. 2."""
    shoulder: str | list[str] = "gravel"
    """What borders the asphalt: ``gravel`` (a 0.8 m gravel strip), ``grass`` (none) or ``kerb`` (a light concrete kerb)."""
    ground: str | list[str] = "grass"
    """The ground beyond the road: ``grass``, ``dry`` (dry, yellowed grass) or ``dirt``."""
    ground_texture: float | list[float] = 1.0
    """Strength of the ground's patchiness, 0 (flat colour) .. 2."""


@dataclasses.dataclass
class LightSpec:
    """Sun, sky, haze and fog, and shadows of roadside objects."""

    sun_elevation_rad: float | list[float] = 0.8
    """Sun elevation, rad, 0 .. 1.5; below ``FULL_DAYLIGHT_ELEVATION_RAD`` (0.6) the light dims and warms (dusk near 0)."""
    sun_azimuth_rad: float | list[float] = 0.0
    """Direction of the sun in the world frame, rad, -π .. π (counter-clockwise from +x); shadows point away from it."""
    fog_density: float | list[float] = 0.0
    """Fog, 0 (today's distance haze only) .. 1: the haze distance is 220 m / (1 + 15·fog)."""
    sky: str | list[str] = "clear"
    """``clear`` (blue, some clouds), ``cloudy`` (many clouds) or ``overcast`` (grey, dimmer, soft shadows)."""
    shadows_per_100m: float | list[float] = 0.0
    """Roadside objects (trees, poles, buildings) per 100 m of road, 0 .. 20, whose shadows are painted on the ground."""


#: (scenario attribute path, world key, kind, lo, hi): every randomizable key. Kinds: int, float, or
#: a tuple of allowed words. lo/hi bound the values (None: checked elsewhere).
KEYS: tuple[tuple[str, str, Any, float | None, float | None], ...] = (
    ("track.lanes", "lanes", "int", 1, 3),
    ("track.lane_width_m", "lane_width_m", "float", 2.5, 6.0),
    ("track.ego_lane", "ego_lane", "int", 0, 2),
    ("track.curvature_fraction", "curvature_fraction", "float", 0.05, 1.0),
    ("speed_mps", "speed_mps", "float", 1e-9, 40.0),
    ("markings.centre_line", "centre_line", CENTRE_LINES, None, None),
    ("markings.line_colour", "line_colour", LINE_COLOURS, None, None),
    ("markings.wear", "line_wear", "float", 0.0, 0.9),
    ("markings.edge_lines", "edge_lines", EDGE_LINES, None, None),
    ("surface.asphalt_tone", "asphalt_tone", "float", 0.4, 1.8),
    ("surface.asphalt_texture", "asphalt_texture", "float", 0.0, 2.0),
    ("surface.shoulder", "shoulder", SHOULDERS, None, None),
    ("surface.ground", "ground", GROUNDS, None, None),
    ("surface.ground_texture", "ground_texture", "float", 0.0, 2.0),
    ("light.sun_elevation_rad", "sun_elevation_rad", "float", 0.0, 1.5),
    ("light.sun_azimuth_rad", "sun_azimuth_rad", "float", -math.pi, math.pi),
    ("light.fog_density", "fog_density", "float", 0.0, 1.0),
    ("light.sky", "sky", SKIES, None, None),
    ("light.shadows_per_100m", "shadows_per_100m", "float", 0.0, 20.0),
    ("camera.height_m", "camera_height_m", "float", 0.2, 10.0),
    ("camera.pitch_rad", "camera_pitch_rad", "float", None, None),
    ("camera.yaw_rad", "camera_yaw_rad", "float", -0.5, 0.5),
    ("camera.fov_deg", "camera_fov_deg", "float", 1e-9, 169.999),
)


@dataclasses.dataclass(frozen=True)
class World:
    """One episode's drawn world (flat; ``as_dict`` gives ``info["world"]``)."""

    world_seed: int
    lanes: int
    lane_width_m: float
    ego_lane: int  # -1: drawn by the env at reset (the scenario's ego_lane is null)
    curvature_fraction: float
    speed_mps: float
    centre_line: str
    line_colour: str
    line_wear: float
    edge_lines: str
    asphalt_tone: float
    asphalt_texture: float
    shoulder: str
    ground: str
    ground_texture: float
    sun_elevation_rad: float
    sun_azimuth_rad: float
    fog_density: float
    sky: str
    shadows_per_100m: float
    camera_height_m: float
    camera_pitch_rad: float
    camera_yaw_rad: float
    camera_fov_deg: float

    def as_dict(self) -> dict[str, Any]:
        """A fresh flat dict of str/int/float values, plus the derived light figures."""
        d = dataclasses.asdict(self)
        brightness, tint, kelvin = sun_light(self.sun_elevation_rad, self.sky)
        d["brightness"] = round(brightness, 4)
        d["colour_temperature_k"] = round(kelvin, 1)
        d["haze_distance_m"] = round(haze_distance_m(self.fog_density), 3)
        return d

    def appearance_key(self) -> tuple:
        """What the painted scenery depends on beyond the track (``()`` for the plain look)."""
        if self.plain_scenery:
            return ()
        return (
            self.world_seed,
            self.centre_line,
            self.line_colour,
            self.line_wear,
            self.edge_lines,
            self.asphalt_tone,
            self.asphalt_texture,
            self.shoulder,
            self.ground,
            self.ground_texture,
            self.sun_elevation_rad,
            self.sun_azimuth_rad,
            self.fog_density,
            self.sky,
            self.shadows_per_100m,
        )

    @property
    def plain_scenery(self) -> bool:
        """True when the scenery is today's plain look (painted by the original code path)."""
        return (
            self.centre_line == "dashed"
            and self.line_colour == "white"
            and self.line_wear == 0.0
            and self.edge_lines == "both"
            and self.asphalt_tone == 1.0
            and self.asphalt_texture == 1.0
            and self.shoulder == "gravel"
            and self.ground == "grass"
            and self.ground_texture == 1.0
            and self.sun_elevation_rad >= FULL_DAYLIGHT_ELEVATION_RAD
            and self.fog_density == 0.0
            and self.sky == "clear"
            and self.shadows_per_100m == 0.0
        )


def haze_distance_m(fog_density: float, clear_m: float = 220.0) -> float:
    """Distance at which haze covers 63 % of the ground, m."""
    return clear_m if fog_density == 0 else clear_m / (1.0 + 15.0 * fog_density)


def sun_light(elevation_rad: float, sky: str = "clear") -> tuple[float, np.ndarray, float]:
    """(brightness factor, RGB tint, colour temperature K) of the light at a sun elevation.

    Full neutral daylight (1, (1, 1, 1), 6500 K) at and above ``FULL_DAYLIGHT_ELEVATION_RAD``;
    towards the horizon it dims to 0.3 and warms to about 2500 K. Overcast skies are 20 %
    dimmer and cooler.
    """
    k = min(max(elevation_rad / FULL_DAYLIGHT_ELEVATION_RAD, 0.0), 1.0)
    brightness = 0.3 + 0.7 * math.sqrt(k)
    warm = np.array([1.0, 0.78, 0.55])
    tint = warm + (np.ones(3) - warm) * k
    kelvin = 2500.0 + 4000.0 * k
    if sky == "overcast":
        brightness *= 0.8
        tint = 0.5 * tint + 0.5 * np.array([0.97, 0.99, 1.02])
        kelvin = 0.5 * kelvin + 0.5 * 7000.0
    return brightness, tint, kelvin


def lane_position(lanes: Any, ego_lane: Any) -> str | None:
    """The ``LANE_POSITIONS`` name of an ego lane of ``lanes`` lanes; None when either is unknown (NaN, -1)."""
    return _POSITION_OF.get((_whole(lanes), _whole(ego_lane)))


def width_bin(lane_width_m: Any) -> str | None:
    """The ``WIDTH_BINS`` name of a lane width, m; None when it is unknown (None, NaN)."""
    return _bin(WIDTH_BINS, lane_width_m)


def light_bin(sun_elevation_rad: Any) -> str | None:
    """The ``LIGHT_BINS`` name of a sun elevation, rad; None when it is unknown (None, NaN)."""
    return _bin(LIGHT_BINS, sun_elevation_rad)


def world_bins(world: dict[str, Any]) -> dict[str, str | None]:
    """The bins of a drawn world (a flat dict as ``info["world"]``): ``lane_position``, ``width_bin`` and
    ``light_bin``, each None when the world lacks its values (an imported video has none)."""
    return {
        "lane_position": lane_position(world.get("lanes"), world.get("ego_lane")),
        "width_bin": width_bin(world.get("lane_width_m")),
        "light_bin": light_bin(world.get("sun_elevation_rad")),
    }


def bin_labels(bins: tuple[tuple[str, float], ...], unit: str) -> dict[str, str]:
    """``name: "name (lo..hi unit)"`` for each bin of ``WIDTH_BINS`` or ``LIGHT_BINS``."""
    out, lo = {}, None
    for name, hi in bins:
        if lo is None:
            out[name] = f"{name} (< {hi:g} {unit})"
        elif math.isinf(hi):
            out[name] = f"{name} (>= {lo:g} {unit})"
        else:
            out[name] = f"{name} ({lo:g}..{hi:g} {unit})"
        lo = hi
    return out


_POSITION_OF = {v: k for k, v in LANE_POSITIONS.items()}


def _finite(value: Any) -> float | None:
    """``value`` as a finite float; None for None, NaN (a column a row lacks), infinities and non-numbers."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _whole(value: Any) -> int | None:
    f = _finite(value)
    return int(f) if f is not None and f == int(f) else None


def _bin(bins: tuple[tuple[str, float], ...], value: Any) -> str | None:
    f = _finite(value)
    return None if f is None else next(name for name, upper in bins if f < upper)


def spec_kind(spec: Any) -> str:
    """``fixed``, ``range`` or ``choice`` (a ``{value: weight}`` mapping is a weighted choice)."""
    if isinstance(spec, dict):
        return "choice"
    if not isinstance(spec, list):
        return "fixed"
    if len(spec) == 2 and not any(isinstance(v, str) for v in spec):
        return "range"
    return "choice"


def draw_value(spec: Any, rng: np.random.Generator, kind: Any) -> Any:
    """Draw one value of a spec: a fixed value, a ``[lo, hi]`` range, a list of choices or ``{choice: weight}``."""
    if isinstance(spec, dict):
        names = list(spec)
        weights = np.asarray([float(spec[n]) for n in names])
        return names[int(rng.choice(len(names), p=weights / weights.sum()))]
    form = spec_kind(spec)
    if form == "fixed":
        return spec
    if form == "range":
        lo, hi = spec
        return int(rng.integers(int(lo), int(hi) + 1)) if kind == "int" else float(rng.uniform(lo, hi))
    return spec[int(rng.integers(len(spec)))]


def get_spec(scenario: Any, path: str) -> Any:
    obj = scenario
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def spec_values(spec: Any) -> list:
    """The extreme values a spec can take (fixed: itself; range: lo and hi; choice: every value)."""
    return list(spec) if isinstance(spec, (list, dict)) else [spec]


def draw_world(scenario: Any, world_seed: int) -> World:
    """Draw an episode's world from the scenario's specs (deterministic in ``world_seed``).

    A ``track.lane_position`` spec draws the lane count and the ego lane together (from its own
    generator, seeded by ``(world_seed, "lane_position")``), in place of ``lanes`` and ``ego_lane``.
    """
    values: dict[str, Any] = {"world_seed": int(world_seed)}
    for path, key, kind, _lo, _hi in KEYS:
        spec = get_spec(scenario, path)
        if spec is None:
            value = -1 if key == "ego_lane" else None
        else:
            rng = np.random.default_rng([int(world_seed), zlib.crc32(key.encode())])
            value = draw_value(spec, rng, kind)
        if kind == "float" and value is not None:
            value = float(value)
        values[key] = value
    if values["lanes"] is None:
        values["lanes"] = scenario.track.n_lanes
    if values["lane_width_m"] is None:
        values["lane_width_m"] = scenario.track.width_m
    elif spec_kind(scenario.track.lane_width_m) == "range":
        values["lane_width_m"] = round(values["lane_width_m"], 2)  # a few hundred widths: tracks stay cached
    if values["ego_lane"] != -1 and values["ego_lane"] >= values["lanes"]:
        values["ego_lane"] = values["lanes"] - 1  # only with a drawn lane count; validation keeps fixed ones in range
    positions = getattr(scenario.track, "lane_position", None)
    if positions is not None:
        rng = np.random.default_rng([int(world_seed), zlib.crc32(b"lane_position")])
        values["lanes"], values["ego_lane"] = LANE_POSITIONS[draw_value(positions, rng, tuple(LANE_POSITIONS))]
    return World(**values)
