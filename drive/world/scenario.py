"""Scenarios: the YAML files under ``scenarios/`` read into typed, validated dataclasses.

Schema (every key optional; a missing key takes the dataclass default, which are the values of
``scenarios/default.yaml``)::

    name: default                 # str, names the scenario in datasets and reports
    track:
      kind: procedural            # procedural | racetrack (highway-env's racetrack layout)
      split: test                 # train | test: the track seeds of drive.world.tracks
      seeds: null                 # or an explicit list of track seeds, each 0..2**32-1 (not with racetrack)
      lanes: 2                    # *1..3; null = the kind's own (procedural 2, racetrack 2)
      lane_width_m: 3.5           # *2.5..6 m; null = the kind's own (procedural 3.5, racetrack 5)
      ego_lane: 0                 # *lane the ego drives in, 0 = rightmost; null = random per reset
      lane_position: null         # *lane count and ego lane drawn together (below); replaces lanes, ego_lane
      curvature_fraction: 1.0     # *0.05..1: the tightest bend, as a fraction of the drivable bound
    speed_mps: 10.0               # *ego speed, held constant, m/s (0 < v <= 40; procedural: see below)
    traffic:
      vehicles: 0                 # other vehicles, in lanes other than the ego's
      speed_mps: 8.0              # their cruise speed, m/s
    camera:
      height_m: 1.2               # *camera height above the ground, m
      pitch_rad: 0.12             # *downward pitch, rad
      yaw_rad: 0.0                # *mount yaw, rad, positive looks left (-0.5..0.5)
      fov_deg: 80.0               # *horizontal field of view, deg
      width: 200                  # pixels
      height: 78                  # pixels
    markings:
      centre_line: dashed         # *lines between lanes: dashed | solid | none
      line_colour: white          # *their colour: white | yellow
      wear: 0.0                   # *worn, faded paint: 0..0.9
      edge_lines: both            # *edge lines painted: both | left | right | none
    surface:
      asphalt_tone: 1.0           # *asphalt brightness factor, 0.4..1.8
      asphalt_texture: 1.0        # *patches and wear bands, 0..2
      shoulder: gravel            # *gravel | grass | kerb
      ground: grass               # *grass | dry | dirt
      ground_texture: 1.0         # *patchiness of the ground, 0..2
    light:
      sun_elevation_rad: 0.8      # *0..1.5; below 0.6 the light dims and warms (dusk near 0)
      sun_azimuth_rad: 0.0        # *-pi..pi, world frame; shadows point away from the sun
      fog_density: 0.0            # *0..1: haze distance 220 m / (1 + 15 fog)
      sky: clear                  # *clear | cloudy | overcast
      shadows_per_100m: 0.0       # *roadside trees, poles, buildings casting shadows, 0..20
    control_hz: 20.0              # policy / camera frequency, Hz
    sim_hz: 40.0                  # simulation frequency, Hz, an integer multiple of control_hz
    duration_s: 60.0              # episode length before truncation, s (0 < d <= 86400)
    seed: null                    # seed of the first reset() when none is given, 0..2**32-1 (null: entropy)
    max_steer_rad: 0.35           # front-wheel angle that normalised steering 1.0 stands for, rad

Keys marked * are drawn per episode (``drive.world.appearance``): a single value is fixed,
``[lo, hi]`` is a range (integers inclusive), a list of three or more numbers or of words is a
choice.

``track.lane_position`` draws where the ego drives: a lane count and the ego's lane in it, together.
Its words are ``drive.world.appearance.LANE_POSITIONS``: ``only_of_1`` (one lane); ``right_of_2``,
``left_of_2`` (two lanes); ``right_of_3``, ``middle_of_3``, ``left_of_3`` (three lanes). It takes one
word (fixed), a list of words (each equally likely) or a mapping ``{word: weight}`` (weights >= 0, not
all 0: each position is drawn with probability weight / sum). With it, ``track.lanes`` follows from the
positions (leave it out) and ``track.ego_lane`` must be left out (or null). Drawing ``lanes`` and then a
uniform ``ego_lane`` instead makes the middle of three lanes one episode in nine.

An unknown key, a value of the wrong type or an impossible value raises
``drive.errors.UserError`` naming the file, the dotted key (``camera.fov_deg``) and the value.

A procedural loop is at most 2 km long (``drive.world.tracks.MAX_LENGTH_M``), so its bends cannot be
gentler than a 2 km circle's (radius 318 m): the bound that ``speed_mps`` (3 m/s² of lateral
acceleration), ``track.curvature_fraction`` and ``max_steer_rad`` set must allow that circle on every lane,
for every drawn value (one lane, default steering: up to 30.8 m/s at ``curvature_fraction`` 1, 9.7 m/s at
0.1, and no ``curvature_fraction`` below 0.064; more lanes allow a little less). A scenario that asks for
more is refused when read, naming the field to change; the racetrack takes any speed.

The file itself is read by one loader (:func:`read_yaml`): at most ``MAX_SCENARIO_BYTES``, plain YAML
data (``yaml.SafeLoader``) without aliases (``*name``: no "billion laughs"), duplicate keys or nesting
deeper than ``MAX_YAML_DEPTH``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import reprlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from drive import resources
from drive.errors import UserError
from drive.world.appearance import (
    KEYS,
    LANE_POSITIONS,
    LightSpec,
    MarkingsSpec,
    SurfaceSpec,
    spec_kind,
    spec_values,
)
from drive.world.camera import CameraConfig
from drive.world.tracks import (
    MAX_LATERAL_ACCEL_MPS2,
    MAX_LENGTH_M,
    MIN_RADIUS_M,
    STEER_MARGIN,
    TEST_SEEDS,
    TRAIN_SEEDS,
    curvature_limit,
    loop_curvature_floor,
)

TRACK_KINDS = ("procedural", "racetrack")
SPLITS = ("train", "test")
#: Lane count and width (m) of highway-env's racetrack layout, which cannot be changed.
RACETRACK_LANES = 2
RACETRACK_LANE_WIDTH_M = 5.0
#: highway-env's ``Vehicle.MAX_SPEED``, m/s.
MAX_SPEED_MPS = 40.0
#: Longest episode a scenario (``duration_s``) or a ``--duration-s`` flag may ask for, s.
MAX_DURATION_S = 24 * 3600.0
#: Largest track seed or scenario seed, as for every seed of the package (``--seed``): 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
#: Largest scenario file read, bytes (the shipped ones are under 2 KB).
MAX_SCENARIO_BYTES = 1 << 20
#: Deepest nesting of lists and mappings a scenario file may have (the schema needs 3).
MAX_YAML_DEPTH = 16

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 8
_REPR.maxlevel = 3


def _show(value: Any) -> str:
    """``repr(value)``, shortened for error messages: a long value is shown as its start and ``...``."""
    return _REPR.repr(value)


@dataclasses.dataclass
class TrackSpec:
    """Which road the ego drives on."""

    kind: str = "procedural"
    """``procedural`` (closed circuits generated from a seed) or ``racetrack`` (highway-env's layout)."""
    split: str | None = "test"
    """``train`` or ``test``: take the track seeds from ``drive.world.tracks.TRAIN_SEEDS`` / ``TEST_SEEDS`` (racetrack: ignored)."""
    seeds: list[int] | None = None
    """Explicit list of procedural track seeds; replaces ``split`` (give one or the other)."""
    lanes: int | list[int] | None = None
    """Number of lanes (drawn), all in the driving direction, 1..3; ``None`` = the kind's own (2); resolved on construction."""
    lane_width_m: float | list[float] | None = None
    """Lane width (drawn), m; ``None`` = the kind's own (procedural 3.5 m, racetrack 5 m); resolved on construction."""
    ego_lane: int | list[int] | None = 0
    """Lane the ego starts in and the expert keeps (drawn), 0 = rightmost; ``None`` = random at each reset."""
    curvature_fraction: float | list[float] = 1.0
    """Procedural tracks' tightest bend (drawn), as a fraction 0.05..1 of the bound the speed and steering allow."""
    lane_position: str | list[str] | dict[str, float] | None = None
    """Lane count and ego lane drawn together (``drive.world.appearance.LANE_POSITIONS``): a word, a list of
    words (equally likely) or ``{word: weight}``; ``None`` = draw ``lanes`` and ``ego_lane`` instead. When set,
    ``lanes`` becomes the lane counts of its positions and ``ego_lane`` ``None``, on construction."""

    def __post_init__(self) -> None:
        if self.lane_position is not None:
            counts = lane_position_counts(self.lane_position)
            if counts:  # unknown words: left to the validation, which names them
                self.lanes = counts[0] if len(counts) == 1 else counts
                self.ego_lane = None
        # ``None`` lanes / lane width resolve to the kind's own values
        if self.lanes is None:
            self.lanes = RACETRACK_LANES if self.kind == "racetrack" else 2
        if self.lane_width_m is None:
            self.lane_width_m = RACETRACK_LANE_WIDTH_M if self.kind == "racetrack" else 3.5

    @property
    def n_lanes(self) -> int:
        """The largest lane count this spec can draw."""
        return max(spec_values(self.lanes)) if self.lanes is not None else 2

    @property
    def min_lanes(self) -> int:
        """The smallest lane count this spec can draw."""
        return min(spec_values(self.lanes)) if self.lanes is not None else 2

    def seed_list(self) -> list[int] | None:
        """The procedural track seeds this spec draws from (``None`` for the racetrack)."""
        if self.kind == "racetrack":
            return None
        if self.seeds is not None:
            return list(self.seeds)
        return list(TRAIN_SEEDS if self.split == "train" else TEST_SEEDS)

    @property
    def width_m(self) -> float:
        """The lane width in effect, m (a drawn width: its first value)."""
        if self.lane_width_m is not None:
            return float(spec_values(self.lane_width_m)[0])
        return RACETRACK_LANE_WIDTH_M if self.kind == "racetrack" else 3.5


def lane_position_counts(spec: Any) -> list[int]:
    """The lane counts, ascending, of the known positions a ``track.lane_position`` spec can draw (a
    mapping's positions of weight 0 are never drawn)."""
    if isinstance(spec, dict):
        spec = [p for p, w in spec.items() if isinstance(w, (int, float)) and w > 0]
    return sorted({LANE_POSITIONS[p][0] for p in spec_values(spec) if isinstance(p, str) and p in LANE_POSITIONS})


@dataclasses.dataclass
class TrafficSpec:
    """Other vehicles on the road, as moving distractors (the ego can crash into them)."""

    vehicles: int = 0
    """How many other vehicles; they drive in the lanes other than the ego's (needs 2+ lanes)."""
    speed_mps: float = 8.0
    """Their cruise speed, m/s; each gets +-10 % and keeps its gap to the vehicle ahead (IDM)."""


@dataclasses.dataclass
class CameraSpec:
    """The forward camera; its mount (height, pitch, yaw, field of view) may be drawn per episode."""

    height_m: float | list[float] = 1.2
    """Height of the optical centre above the ground, m (drawn)."""
    pitch_rad: float | list[float] = 0.12
    """Downward pitch of the optical axis, rad (drawn; 0 = level, positive looks down)."""
    yaw_rad: float | list[float] = 0.0
    """Mount yaw, rad (drawn; positive looks left), -0.5..0.5."""
    fov_deg: float | list[float] = 80.0
    """Horizontal field of view, deg (drawn)."""
    width: int = 200
    """Image width, px (fixed: the observation size)."""
    height: int = 78
    """Image height, px (fixed: the observation size)."""

    def config(
        self,
        height_m: float | None = None,
        pitch_rad: float | None = None,
        yaw_rad: float | None = None,
        fov_deg: float | None = None,
    ) -> CameraConfig:
        """A concrete ``CameraConfig``: the drawn values given, else each spec's first value."""

        def first(v):
            return float(spec_values(v)[0])

        return CameraConfig(
            height_m=first(self.height_m) if height_m is None else float(height_m),
            pitch_rad=first(self.pitch_rad) if pitch_rad is None else float(pitch_rad),
            yaw_rad=first(self.yaw_rad) if yaw_rad is None else float(yaw_rad),
            fov_deg=first(self.fov_deg) if fov_deg is None else float(fov_deg),
            width=self.width,
            height=self.height,
        )


@dataclasses.dataclass
class Scenario:
    """Everything that defines an episode of ``drive/Drive-v0``."""

    name: str = "default"
    """Name of the scenario, stored with recorded datasets and evaluation reports."""
    track: TrackSpec = dataclasses.field(default_factory=TrackSpec)
    """The road."""
    speed_mps: float | list[float] = 10.0
    """Ego speed (drawn), m/s, held constant (the policy only steers)."""
    traffic: TrafficSpec = dataclasses.field(default_factory=TrafficSpec)
    """Other vehicles."""
    camera: CameraSpec = dataclasses.field(default_factory=CameraSpec)
    """The forward-facing camera that makes the observation."""
    markings: MarkingsSpec = dataclasses.field(default_factory=MarkingsSpec)
    """Painted lines (drawn)."""
    surface: SurfaceSpec = dataclasses.field(default_factory=SurfaceSpec)
    """Asphalt, shoulder and ground (drawn)."""
    light: LightSpec = dataclasses.field(default_factory=LightSpec)
    """Sun, sky, fog and shadows (drawn)."""
    control_hz: float = 20.0
    """Control (and camera) frequency, Hz: one ``step()`` lasts ``1/control_hz`` s."""
    sim_hz: float = 40.0
    """Simulation frequency, Hz; an integer multiple of ``control_hz``."""
    duration_s: float = 60.0
    """Episode length, s, after which the episode is truncated."""
    seed: int | None = None
    """Seed of the first ``reset()`` when none is given; ``None`` (the default) draws it from entropy, as Gymnasium's envs do."""
    max_steer_rad: float = 0.35
    """Front-wheel steering angle, rad, that a normalised steering of 1.0 stands for."""

    @property
    def substeps(self) -> int:
        """Simulation steps per control step."""
        return int(round(self.sim_hz / self.control_hz))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-safe) that ``from_dict`` reads back to an equal scenario."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str = "<dict>") -> "Scenario":
        """Build and validate a scenario; ``source`` names the file in error messages."""
        d = {} if d is None else dict(d)
        track = d.get("track")
        if isinstance(track, dict) and track.get("seeds") is not None and "split" not in track:
            d["track"] = {**track, "split": None}  # explicit seeds replace the default split
        if isinstance(track, dict) and track.get("lane_position") is not None:
            _check_lane_position_alone(track, source)
        scenario = _build(cls, d, "", source)
        _validate(scenario, source)
        return scenario


def _check_lane_position_alone(track: dict[str, Any], source: str) -> None:
    """``track.lane_position`` draws the lane count and the ego lane: refuse a ``lanes`` or ``ego_lane`` beside it
    (except the values it sets itself, so that ``to_dict`` reads back)."""
    if track.get("ego_lane") is not None:
        raise UserError(
            f"{source}: track.ego_lane: track.lane_position draws the ego's lane; leave ego_lane out, "
            f"got {_show(track['ego_lane'])}"
        )
    lanes = track.get("lanes")
    counts = lane_position_counts(track["lane_position"])
    if lanes is not None and counts:  # no known word: the validation names the lane_position
        if lanes != (counts[0] if len(counts) == 1 else counts):
            raise UserError(
                f"{source}: track.lanes: track.lane_position draws the lane count; leave lanes out, got {_show(lanes)}"
            )


def duration_s_arg(text: str) -> float:
    """``type=`` of the ``--duration-s`` flags: seconds in (0, ``MAX_DURATION_S``], the bound of ``duration_s``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION_S):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds > 0 and <= {MAX_DURATION_S:g} (a scenario's longest episode), got {text!r}"
        )
    return value


def scenario_path(name_or_path: str | os.PathLike) -> Path:
    """A scenario file: an existing path, or the name of a shipped one (``train`` -> scenarios/train.yaml)."""
    p = Path(name_or_path)
    if p.is_dir():
        raise UserError(
            f"{name_or_path}: is a folder, not a scenario file (give a .yaml file or a shipped name: "
            f"{', '.join(shipped_scenarios())})"
        )
    if p.exists():
        if not p.is_file():  # a FIFO would block the read forever, a device never end
            raise UserError(f"{name_or_path}: not a regular file (give a .yaml file or a shipped scenario name)")
        return p
    shipped = resources.scenario_path(p.name) if len(p.parts) == 1 else None
    if shipped is not None:
        return shipped
    raise UserError(f"{name_or_path}: no such scenario file (shipped scenarios: {', '.join(shipped_scenarios())})")


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped under ``scenarios/`` (package data ``drive.scenarios`` once installed)."""
    return resources.shipped_scenarios()


class _ScenarioLoader(yaml.SafeLoader):
    """The one YAML loader of scenario files: ``yaml.SafeLoader`` (plain data only), stricter.

    It refuses a key given twice in one mapping (instead of keeping the last), any alias (``*name``:
    a "billion laughs" file makes a few lines stand for billions of values, which every later walk over
    them, even an error message, would expand) and nesting deeper than ``MAX_YAML_DEPTH``.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in scenario files", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_show(key)} (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The data of a scenario YAML file, read through ``_ScenarioLoader``; bad content is a ``UserError``.

    At most ``MAX_SCENARIO_BYTES`` are read: a larger file (or a device that never ends) is refused.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the scenario file: {exc.strerror or exc}") from None
    if len(data) > MAX_SCENARIO_BYTES:
        raise UserError(f"{path}: too large for a scenario file (more than {MAX_SCENARIO_BYTES} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return yaml.load(text, Loader=_ScenarioLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML: {_yaml_error_line(exc)}") from None
    except RecursionError:  # a guard behind MAX_YAML_DEPTH
        raise UserError(f"{path}: invalid YAML: nested too deeply") from None


def _yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong, and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read a scenario YAML file (or a shipped scenario's name) into a validated ``Scenario``."""
    p = scenario_path(path)
    d = read_yaml(p)
    if d is not None and not isinstance(d, dict):
        raise UserError(f"{p}: the top level must be a mapping of keys, got {type(d).__name__}")
    return Scenario.from_dict(d, source=str(p))


def as_scenario(scenario: "Scenario | str | os.PathLike | None") -> Scenario:
    """A ``Scenario`` from a scenario, a path or shipped name, or ``None`` (the defaults)."""
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return Scenario.from_dict(scenario)
    if isinstance(scenario, (str, os.PathLike)):
        return load_scenario(scenario)
    raise UserError(f"scenario: expected a Scenario, a path or None, got {type(scenario).__name__}")


# --- building and type checking ------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except ValueError:
                continue
        raise UserError(f"{source}: {key}: expected {_type_name(tp)}, got {_show(value)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{source}: {key}: expected a list, got {_show(value)}")
        return [_convert(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise UserError(f"{source}: {key}: expected a mapping, got {_show(value)}")
        return {_convert(k, key_tp, key, source): _convert(v, value_tp, f"{key}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{source}: {key}: expected a mapping of keys, got {_show(value)}")
        return _build(tp, value, key + ".", source)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{source}: {key}: must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise UserError(f"{source}: {key}: expected {_type_name(tp)}, got {_show(value)}")


def _build(cls: type, d: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in d:
        if k not in names:
            name = k if isinstance(k, str) and len(k) <= 60 else _show(k)
            raise UserError(
                f"{source}: {prefix}{name}: unknown key (value {_show(d[k])}); known keys: {', '.join(names)}"
            )
    kwargs = {k: _convert(v, hints[k], prefix + k, source) for k, v in d.items()}
    return cls(**kwargs)


def _validate(s: Scenario, source: str) -> None:
    def bad(key: str, value: Any, why: str) -> None:
        raise UserError(f"{source}: {key}: {why}, got {_show(value)}")

    t = s.track
    if t.kind not in TRACK_KINDS:
        bad("track.kind", t.kind, f"must be one of {', '.join(TRACK_KINDS)}")
    _validate_draws(s, source)
    _validate_lane_position(t.lane_position, source)
    if t.kind == "racetrack":
        if t.lane_position is not None and lane_position_counts(t.lane_position) != [RACETRACK_LANES]:
            bad(
                "track.lane_position",
                t.lane_position,
                f"racetrack has {RACETRACK_LANES} lanes: only positions of {RACETRACK_LANES} lanes",
            )
        if t.seeds is not None:
            bad("track.seeds", t.seeds, "racetrack is one fixed layout and takes no seeds")
        if t.lanes is not None and t.lanes != RACETRACK_LANES:
            bad("track.lanes", t.lanes, f"racetrack has {RACETRACK_LANES} lanes")
        if t.lane_width_m is not None and t.lane_width_m != RACETRACK_LANE_WIDTH_M:
            bad("track.lane_width_m", t.lane_width_m, f"racetrack lanes are {RACETRACK_LANE_WIDTH_M} m wide")
        if t.curvature_fraction != 1.0:
            bad("track.curvature_fraction", t.curvature_fraction, "racetrack is one fixed layout: leave it at 1.0")
    else:
        if t.seeds is not None and t.split is not None:
            bad("track.split", t.split, "give either track.split or track.seeds, not both (set split: null)")
        if t.seeds is None and t.split is None:
            bad("track.seeds", t.seeds, "a procedural track needs track.split or track.seeds")
        if t.seeds is not None:
            if len(t.seeds) == 0:
                bad("track.seeds", t.seeds, "must list at least one seed")
            for i, sd in enumerate(t.seeds):
                if not 0 <= sd <= MAX_SEED:
                    bad(f"track.seeds[{i}]", sd, "must be a whole number 0 <= seed < 2**32")
        _validate_loop_bound(s, source)
    if t.split is not None and t.split not in SPLITS:
        bad("track.split", t.split, f"must be one of {', '.join(SPLITS)}")
    if t.ego_lane is not None and max(spec_values(t.ego_lane)) >= t.min_lanes:
        bad(
            "track.ego_lane",
            t.ego_lane,
            f"must be a lane index in 0..{t.min_lanes - 1} (every drawn lane count has it) or null",
        )
    if s.traffic.vehicles < 0:
        bad("traffic.vehicles", s.traffic.vehicles, "must be >= 0")
    if s.traffic.vehicles > 0 and t.min_lanes < 2:
        bad(
            "traffic.vehicles",
            s.traffic.vehicles,
            "traffic drives in the lanes beside the ego's: needs track.lanes >= 2",
        )
    if s.traffic.vehicles > 40:
        bad("traffic.vehicles", s.traffic.vehicles, "must be <= 40")
    if not 0 < s.traffic.speed_mps <= MAX_SPEED_MPS:
        bad("traffic.speed_mps", s.traffic.speed_mps, f"must be > 0 and <= {MAX_SPEED_MPS} m/s")
    c = s.camera
    if not 8 <= c.width <= 2048:
        bad("camera.width", c.width, "must be between 8 and 2048 pixels")
    if not 8 <= c.height <= 2048:
        bad("camera.height", c.height, "must be between 8 and 2048 pixels")
    # the horizon must stay in the image for every drawn field of view and pitch
    half_vfov = min(
        math.atan((c.height / 2) / ((c.width / 2) / math.tan(math.radians(f) / 2))) for f in spec_values(c.fov_deg)
    )
    for pitch in spec_values(c.pitch_rad):
        if not -half_vfov < pitch < math.pi / 2 - 0.05:
            bad(
                "camera.pitch_rad",
                c.pitch_rad,
                f"must keep the horizon below the image top (> {-half_vfov:.3f}) and be < {math.pi / 2 - 0.05:.3f} rad",
            )
    if not 0 < s.control_hz <= 1000:
        bad("control_hz", s.control_hz, "must be > 0 and <= 1000 Hz")
    if not 0 < s.sim_hz <= 10000:
        bad("sim_hz", s.sim_hz, "must be > 0 and <= 10000 Hz")
    ratio = s.sim_hz / s.control_hz
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        bad("sim_hz", s.sim_hz, f"must be an integer multiple of control_hz ({s.control_hz})")
    if not 0 < s.duration_s <= MAX_DURATION_S:
        bad("duration_s", s.duration_s, f"must be > 0 and <= {MAX_DURATION_S:g} s")
    if s.seed is not None and not 0 <= s.seed <= MAX_SEED:
        bad("seed", s.seed, "must be a whole number 0 <= seed < 2**32, or null")
    if not 0 < s.max_steer_rad <= 1.0:
        bad("max_steer_rad", s.max_steer_rad, "must be > 0 and <= 1.0 rad")
    if not s.name:
        bad("name", s.name, "must not be empty")


def _validate_loop_bound(s: Scenario, source: str) -> None:
    """Every draw of a procedural scenario must have a loop: bends gentle enough, yet closing within 2 km.

    The bends' bound (``drive.world.tracks.curvature_limit`` at the speed, times ``curvature_fraction``)
    must reach ``loop_curvature_floor``; it is checked at the worst draw (fastest, smallest fraction, most
    and widest lanes), so that no reset can fail to generate its track.
    """
    from drive.world.expert import steer_to_curvature  # imports highway-env: only when a scenario is checked

    t = s.track
    v = max(spec_values(s.speed_mps))
    f = min(spec_values(t.curvature_fraction))
    lanes, width = t.n_lanes, max(spec_values(t.lane_width_m))
    steer = steer_to_curvature(s.max_steer_rad)
    kmax = curvature_limit(v, steer) * f
    floor = loop_curvature_floor(lanes, width)
    if kmax >= floor:
        return
    fixes: list[tuple[str, Any, str]] = []  # (key, its value, what would do)
    if f * min(STEER_MARGIN * steer, 1.0 / MIN_RADIUS_M) >= floor:  # slowing down is enough
        v_max = math.sqrt(f * MAX_LATERAL_ACCEL_MPS2 / floor)
        fixes.append(("speed_mps", s.speed_mps, f"speed_mps <= {math.floor(v_max * 100) / 100:g}"))
    f_min = floor / curvature_limit(v, steer)
    if f_min <= 1.0:
        fixes.append(
            (
                "track.curvature_fraction",
                t.curvature_fraction,
                f"track.curvature_fraction >= {math.ceil(f_min * 1000) / 1000:g}",
            )
        )
    if not fixes:
        fixes.append(("max_steer_rad", s.max_steer_rad, "a larger max_steer_rad"))
    key, value, _ = fixes[0]
    raise UserError(
        f"{source}: {key}: no procedural loop of at most {MAX_LENGTH_M:g} m has bends this gentle "
        f"(speed_mps {v:g}, track.curvature_fraction {f:g}, max_steer_rad {s.max_steer_rad:g}, {lanes} lane(s) of "
        f"{width:g} m: radius >= {1 / kmax:.0f} m); use {' or '.join(fix for _, _, fix in fixes)}, "
        f"or track.kind racetrack, got {_show(value)}"
    )


def _validate_lane_position(spec: Any, source: str) -> None:
    """``track.lane_position``: known words; a mapping's weights >= 0 and not all 0."""
    if spec is None:
        return
    key = "track.lane_position"
    if isinstance(spec, (list, dict)) and len(spec) == 0:
        raise UserError(f"{source}: {key}: an empty {type(spec).__name__} draws nothing, got {_show(spec)}")
    for p in spec_values(spec):
        if p not in LANE_POSITIONS:
            raise UserError(
                f"{source}: {key}: must be one of {', '.join(LANE_POSITIONS)} (a word, a list or a mapping "
                f"of them to weights), got {_show(p)}"
            )
    if isinstance(spec, dict):
        for p, w in spec.items():
            if not w >= 0:
                raise UserError(f"{source}: {key}.{p}: a weight must be >= 0, got {_show(w)}")
        if sum(spec.values()) <= 0:
            raise UserError(f"{source}: {key}: at least one weight must be > 0, got {_show(spec)}")


def _validate_draws(s: Scenario, source: str) -> None:
    """Every drawn key: a fixed value, a ``[lo, hi]`` range or a choice, each value in its bounds."""
    from drive.world.appearance import get_spec

    for path, _key, kind, lo, hi in KEYS:
        spec = get_spec(s, path)
        if spec is None:
            continue
        form = spec_kind(spec)
        if isinstance(spec, list) and len(spec) == 0:
            raise UserError(
                f"{source}: {path}: an empty list draws nothing (give a value, [lo, hi] or choices), got []"
            )
        if form == "range" and spec[0] > spec[1]:
            raise UserError(f"{source}: {path}: a range [lo, hi] needs lo <= hi, got {_show(spec)}")
        for v in spec_values(spec):
            if isinstance(kind, tuple):
                if v not in kind:
                    raise UserError(
                        f"{source}: {path}: must be one of {', '.join(kind)} (or a list of them), got {_show(v)}"
                    )
            elif lo is not None and not lo <= v <= hi:
                lo_s = "0" if lo == 1e-9 else f"{lo:g}"
                raise UserError(f"{source}: {path}: must be between {lo_s} and {hi:g}, got {_show(v)}")
