"""Tracks: closed circuits on a highway-env ``RoadNetwork``, sampled into fast centreline arrays.

Two kinds:

- ``racetrack``: highway-env's racetrack layout (``highway_env.envs.racetrack_env``), 2 lanes 5 m
  wide; its lanes are sampled, joined and lightly smoothed into our arrays.
- ``procedural``: a smooth closed loop generated from an integer seed: a star-shaped curve
  r(θ) = 1 + Σ_k a_k cos(kθ + φ_k), k = 2..6, stretched, rotated and scaled to 0.5–2 km, with
  1–3 lanes. Its curvature is bounded so the scenario's speed can be held: on every lane
  centre |κ| ≤ min(a_lat / v², 0.7·κ_steer, 1 / 20 m) with a_lat = ``MAX_LATERAL_ACCEL_MPS2``
  = 3 m/s² and κ_steer the tightest curvature the steering can make; far-apart parts of the loop
  keep ``MIN_SEPARATION_M`` of grass between their road edges. Its lanes are highway-env
  ``PolyLaneFixedWidth`` lanes (the loop cut in ≤ 200 m pieces) in a ``RoadNetwork``.
  A loop of length L turns by 2π, so its bound can be no lower than about 2π / ``MAX_LENGTH_M``
  (``loop_curvature_floor``: about 31 m/s at 3 m/s²); near that floor, where no drawn shape is
  smooth enough, the loop is a circle. A lower bound is a ``ValueError``.

Conventions: x, y in metres in a right-handed world frame; heading (yaw) in rad, counter-clockwise
from +x; lateral offsets are positive to the LEFT of the direction of travel (highway-env's lane
``lateral`` convention). Lanes are numbered from the right: lane 0 is the rightmost. Curvature
κ = dψ/ds is positive for left turns. Every track is described by its reference line, the road
centre line, sampled every ~``SAMPLE_SPACING_M`` m (arrays ``s``, ``x``, ``y``, ``heading``,
``curvature``); lane i is the parallel curve at lateral offset ``lane_offsets_m[i]``.

``project`` replaces highway-env's ``RoadNetwork.get_closest_lane_index`` (a Python loop over
every lane) with a vectorised search in a window around the previous index.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Procedural track seeds used for training (recording, model selection on training tracks).
TRAIN_SEEDS = range(0, 1000)
#: Procedural track seeds held out for testing: never used to record training data.
#: ``scenarios/default.yaml`` drives on these.
TEST_SEEDS = range(1000, 1010)

MAX_LATERAL_ACCEL_MPS2 = 3.0
"""Bound on v²·|κ| for procedural tracks at the scenario's speed, m/s²."""
MIN_RADIUS_M = 20.0
"""Smallest lane-centre radius of a procedural track, m, whatever the speed."""
STEER_MARGIN = 0.7
"""Procedural curvature stays below this fraction of the tightest curvature the steering can make."""
MIN_LENGTH_M, MAX_LENGTH_M = 500.0, 2000.0
"""Length range of procedural tracks (reference line), m."""
MIN_SEPARATION_M = 20.0
"""Grass kept between the road edges of two far-apart parts of a procedural loop, m."""
SAMPLE_SPACING_M = 0.5
"""Spacing of the centreline arrays, m (approximately: a loop holds a whole number of samples)."""
DASH_M, GAP_M = 3.0, 9.0
"""Dashed lane lines: dash and gap lengths, m."""
EDGE_LINE_INSET_M = 0.25
"""Solid edge lines are painted this far inside the road edge (line centre), m."""
LINE_WIDTH_M = 0.15
"""Painted line width, m."""
_SEARCH_WINDOW_M = 20.0
_MAX_ATTEMPTS = 200


def wrap_angle(a: float) -> float:
    """Wrap an angle to [-π, π), rad."""
    return (a + math.pi) % (2 * math.pi) - math.pi


class Track:
    """A closed circuit: centreline arrays for fast queries, lanes, and a highway-env road network."""

    def __init__(
        self,
        name: str,
        kind: str,
        seed: int | None,
        x: np.ndarray,
        y: np.ndarray,
        lanes: int,
        lane_width_m: float,
        network=None,
        smooth_m: float = 0.0,
    ):
        """``x``, ``y``: the closed reference (road centre) polyline, not repeating its first point."""
        if lanes < 1:
            raise ValueError(f"track {name}: lanes must be >= 1, got {lanes}")
        self.name = name
        self.kind = kind
        self.seed = seed
        self.lanes = int(lanes)
        self.lane_width_m = float(lane_width_m)
        self.road_width_m = self.lanes * self.lane_width_m
        self.half_width_m = self.road_width_m / 2
        #: lateral offset of each lane centre from the reference, m, lane 0 rightmost
        self.lane_offsets_m = (np.arange(self.lanes) - (self.lanes - 1) / 2) * self.lane_width_m
        x, y = _resample_closed(np.asarray(x, float), np.asarray(y, float), SAMPLE_SPACING_M)
        if smooth_m > 0:
            x, y = _smooth_closed(x, y, smooth_m / SAMPLE_SPACING_M)
            x, y = _resample_closed(x, y, SAMPLE_SPACING_M)
        n = len(x)
        seg = np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y)
        self.length_m = float(seg.sum())
        self.n = n
        self.ds = self.length_m / n
        self.s = np.arange(n) * self.ds
        self.x, self.y = x, y
        dx = (np.roll(x, -1) - np.roll(x, 1)) / 2
        dy = (np.roll(y, -1) - np.roll(y, 1)) / 2
        self.heading = np.arctan2(dy, dx)
        dh = (np.roll(self.heading, -1) - np.roll(self.heading, 1) + np.pi) % (2 * np.pi) - np.pi
        self.curvature = dh / (2 * self.ds)
        self._cos, self._sin = np.cos(self.heading), np.sin(self.heading)
        self._k = max(4, int(_SEARCH_WINDOW_M / self.ds))
        self._window = np.arange(-self._k, self._k + 1)
        self._network = network

    # --- queries --------------------------------------------------------------------------

    def wrap_s(self, s: float) -> float:
        """Arc length folded into [0, length), m."""
        return s % self.length_m

    def project(self, x: float, y: float, hint: int | None = None) -> tuple[float, float, int]:
        """Project a world point on the reference line: (s m, lateral m (left +), sample index).

        With ``hint`` (the index returned last time) only ±20 m around it are searched.
        """
        if hint is None:
            i = int(np.argmin((self.x - x) ** 2 + (self.y - y) ** 2))
        else:
            idx = self._window + hint
            d2 = (self.x.take(idx, mode="wrap") - x) ** 2 + (self.y.take(idx, mode="wrap") - y) ** 2
            j = int(np.argmin(d2))
            if j == 0 or j == len(idx) - 1:  # moved beyond the window: search everything
                return self.project(x, y, None)
            i = int(idx[j]) % self.n
        ex, ey = x - float(self.x[i]), y - float(self.y[i])
        c, sn = float(self._cos[i]), float(self._sin[i])
        s = float(self.s[i]) + ex * c + ey * sn
        # one refinement against the interpolated centreline (as ``pose_at`` draws it)
        px, py, h = self.pose_at(s)
        c, sn = math.cos(h), math.sin(h)
        ex, ey = x - px, y - py
        s = (s + ex * c + ey * sn) % self.length_m
        return s, -ex * sn + ey * c, i

    def _interp(self, s: float) -> tuple[int, int, float]:
        u = (s % self.length_m) / self.ds
        i = int(u)
        if i >= self.n:
            i = self.n - 1
        return i, (i + 1) % self.n, u - i

    def pose_at(self, s: float, lateral: float = 0.0) -> tuple[float, float, float]:
        """World (x m, y m, heading rad) of the point at arc length ``s`` and lateral offset."""
        i, j, f = self._interp(s)
        h = float(self.heading[i]) + f * wrap_angle(float(self.heading[j] - self.heading[i]))
        px = float(self.x[i]) + f * float(self.x[j] - self.x[i])
        py = float(self.y[i]) + f * float(self.y[j] - self.y[i])
        return px - math.sin(h) * lateral, py + math.cos(h) * lateral, wrap_angle(h)

    def poses(self, s: np.ndarray, lateral: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised ``pose_at``: world x (m), y (m), heading (rad) at arc lengths ``s``."""
        u = (np.asarray(s, float) % self.length_m) / self.ds
        i = np.minimum(u.astype(int), self.n - 1)
        j = (i + 1) % self.n
        f = u - i
        dh = (self.heading[j] - self.heading[i] + np.pi) % (2 * np.pi) - np.pi
        h = self.heading[i] + f * dh
        px = self.x[i] + f * (self.x[j] - self.x[i])
        py = self.y[i] + f * (self.y[j] - self.y[i])
        return px - np.sin(h) * lateral, py + np.cos(h) * lateral, h

    def curvatures(self, s: np.ndarray, lateral: np.ndarray | float = 0.0) -> np.ndarray:
        """Vectorised ``curvature_at``, 1/m."""
        u = (np.asarray(s, float) % self.length_m) / self.ds
        i = np.minimum(u.astype(int), self.n - 1)
        k = self.curvature[i] + (u - i) * (self.curvature[(i + 1) % self.n] - self.curvature[i])
        return k / (1.0 - np.asarray(lateral) * k)

    def heading_at(self, s: float) -> float:
        """Road heading at arc length ``s``, rad."""
        return self.pose_at(s)[2]

    def curvature_at(self, s: float, lateral: float = 0.0) -> float:
        """Curvature, 1/m (left turns positive), of the parallel curve at ``lateral`` m from the reference."""
        i, j, f = self._interp(s)
        k = float(self.curvature[i]) + f * float(self.curvature[j] - self.curvature[i])
        return k / (1.0 - lateral * k)

    def lane_curvature_at(self, s: float, lane: int) -> float:
        """Curvature of lane ``lane``'s centre at reference arc length ``s``, 1/m."""
        return self.curvature_at(s, float(self.lane_offsets_m[lane]))

    def lane_of(self, lateral: float) -> int:
        """The lane whose centre is nearest to a lateral offset from the reference."""
        i = int(round(lateral / self.lane_width_m + (self.lanes - 1) / 2))
        return min(max(i, 0), self.lanes - 1)

    def offset_polyline(self, lateral: float | np.ndarray) -> np.ndarray:
        """(n, 2) points of the closed curve at ``lateral`` m from the reference (left +)."""
        return np.stack([self.x - self._sin * lateral, self.y + self._cos * lateral], axis=1)

    def max_abs_lane_curvature(self) -> float:
        """Largest |κ| over every lane centre, 1/m."""
        return max(float(np.max(np.abs(self.curvature / (1 - o * self.curvature)))) for o in self.lane_offsets_m)

    def dash_mask(self) -> np.ndarray:
        """Boolean per sample: True where a dashed lane line is painted (dash ``DASH_M``, gap ``GAP_M``)."""
        return (self.s % (DASH_M + GAP_M)) < DASH_M

    def bounds(self, margin_m: float = 0.0) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the road, m, grown by ``margin_m``."""
        m = self.half_width_m + margin_m
        return (float(self.x.min() - m), float(self.y.min() - m), float(self.x.max() + m), float(self.y.max() + m))

    @property
    def network(self):
        """The highway-env ``RoadNetwork`` carrying the lanes (built on first use)."""
        if self._network is None:
            self._network = _procedural_network(self)
        return self._network

    def __repr__(self) -> str:
        return (
            f"Track({self.name!r}, length={self.length_m:.0f} m, lanes={self.lanes}x{self.lane_width_m} m, "
            f"max |κ|={self.max_abs_lane_curvature():.4f} 1/m)"
        )


# --- construction ---------------------------------------------------------------------------


def _resample_closed(x: np.ndarray, y: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    xc, yc = np.append(x, x[0]), np.append(y, y[0])
    seg = np.hypot(np.diff(xc), np.diff(yc))
    keep = np.append(seg > 1e-9, True)
    if not keep.all():
        xc, yc = xc[keep], yc[keep]
        seg = np.hypot(np.diff(xc), np.diff(yc))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    n = max(16, int(round(total / spacing)))
    s = np.arange(n) * (total / n)
    return np.interp(s, cum, xc), np.interp(s, cum, yc)


def _smooth_closed(x: np.ndarray, y: np.ndarray, sigma_samples: float) -> tuple[np.ndarray, np.ndarray]:
    r = int(math.ceil(3 * sigma_samples))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_samples) ** 2)
    k /= k.sum()
    pad = lambda a: np.concatenate([a[-r:], a, a[:r]])  # noqa: E731
    return np.convolve(pad(x), k, mode="valid"), np.convolve(pad(y), k, mode="valid")


def curvature_limit(speed_mps: float, steer_curvature_inv_m: float) -> float:
    """Largest lane-centre |κ| (1/m) a procedural track may have at ``speed_mps``.

    ``steer_curvature_inv_m`` is the tightest curvature the vehicle's steering can make.
    """
    if speed_mps <= 0 or steer_curvature_inv_m <= 0:
        raise ValueError(
            f"curvature_limit: speed_mps and steer_curvature_inv_m must be > 0, got {speed_mps}, {steer_curvature_inv_m}"
        )
    return min(MAX_LATERAL_ACCEL_MPS2 / speed_mps**2, STEER_MARGIN * steer_curvature_inv_m, 1.0 / MIN_RADIUS_M)


def _reference_bound(lanes: int, lane_width_m: float, kmax: float) -> float:
    """Bound on the reference line's |κ| so that every lane centre keeps |κ| <= kmax: κ/(1 - o κ) <= kmax."""
    outer = (lanes - 1) * lane_width_m / 2  # the outermost lane centre's offset
    return 0.995 * kmax / (1 + outer * kmax)


def loop_curvature_floor(lanes: int, lane_width_m: float) -> float:
    """Smallest ``max_curvature_inv_m`` (1/m) that ``procedural_track`` meets for every seed.

    A closed loop turns by 2π, so its reference line's largest |κ| is at least 2π / length: with at most
    ``MAX_LENGTH_M``, the bound must allow a circle of that length (on every lane centre).
    """
    c = 2 * math.pi / MAX_LENGTH_M
    outer = (lanes - 1) * lane_width_m / 2
    return c / (0.995 - outer * c)


def procedural_track(seed: int, lanes: int = 2, lane_width_m: float = 3.5, max_curvature_inv_m: float = 0.03) -> Track:
    """Generate the closed circuit of ``seed`` (deterministic; see the module docstring)."""
    if seed < 0:
        raise ValueError(f"procedural_track: seed must be >= 0, got {seed}")
    if not 1 <= lanes <= 3:
        raise ValueError(f"procedural_track: lanes must be 1..3, got {lanes}")
    if max_curvature_inv_m <= 0:
        raise ValueError(f"procedural_track: max_curvature_inv_m must be > 0, got {max_curvature_inv_m}")
    return _procedural_cached(int(seed), int(lanes), float(lane_width_m), float(max_curvature_inv_m))


@functools.lru_cache(maxsize=32)
def _procedural_cached(seed: int, lanes: int, lane_width_m: float, kmax: float) -> Track:
    rng = np.random.default_rng([seed, 0x7AC])
    kref = _reference_bound(lanes, lane_width_m, kmax)
    theta = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    # below 2π / MAX_LENGTH_M no drawn shape can fit (every loop's largest |κ| is at least 2π / length)
    attempts = _MAX_ATTEMPTS if kref * MAX_LENGTH_M >= 2 * math.pi * (1 - 1e-6) else 0
    for attempt in range(attempts):
        # shapes get smoother with each failed attempt, so high speeds still find a loop
        amplitude = 0.32 * (1 - attempt / _MAX_ATTEMPTS)
        r = np.ones_like(theta)
        for k in range(2, 7):
            r += rng.uniform(0, amplitude) / k**0.8 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        stretch = 1.0 + rng.uniform(0.0, 0.8) * (1 - attempt / _MAX_ATTEMPTS)
        rot = rng.uniform(0, 2 * np.pi)
        target_len = rng.uniform(MIN_LENGTH_M, MAX_LENGTH_M)
        clockwise = rng.random() < 0.5
        if r.min() < 0.3:
            continue
        px, py = stretch * r * np.cos(theta), r * np.sin(theta)
        x = px * math.cos(rot) - py * math.sin(rot)
        y = px * math.sin(rot) + py * math.cos(rot)
        if clockwise:
            x, y = x[::-1], y[::-1]
        seg = np.hypot(np.diff(np.append(x, x[0])), np.diff(np.append(y, y[0])))
        x, y = x * (target_len / seg.sum()), y * (target_len / seg.sum())
        trial = Track("trial", "procedural", seed, x, y, 1, 1.0)
        scale = max(1.0, float(np.max(np.abs(trial.curvature))) / kref)  # κ scales as 1/size
        if trial.length_m * scale > MAX_LENGTH_M:
            continue
        x, y = x * scale, y * scale
        x, y = x - x.mean(), y - y.mean()
        track = _checked(Track(f"procedural-{seed}", "procedural", seed, x, y, lanes, lane_width_m), kmax)
        if track is not None:
            return track
    # no drawn shape was smooth enough (the bound is near 2π / MAX_LENGTH_M): the tightest circle allowed
    length = min(max(2 * math.pi / kref, MIN_LENGTH_M), MAX_LENGTH_M)
    radius = length / (2 * math.pi)
    phi = np.linspace(0, 2 * np.pi, int(round(length / SAMPLE_SPACING_M)), endpoint=False)  # samples on the arc
    x, y = radius * np.cos(phi), radius * np.sin(phi)
    if np.random.default_rng([seed, 0x7AC, 1]).random() < 0.5:
        x, y = x[::-1], y[::-1]
    track = _checked(Track(f"procedural-{seed}", "procedural", seed, x, y, lanes, lane_width_m), kmax)
    if track is not None:
        return track
    raise ValueError(
        f"procedural_track: seed {seed}: no loop met the bounds (max curvature {kmax:.6g} 1/m; a loop of at most "
        f"{MAX_LENGTH_M:g} m with {lanes} lane(s) of {lane_width_m:g} m needs >= "
        f"{loop_curvature_floor(lanes, lane_width_m):.6g} 1/m)"
    )


def _checked(track: Track, kmax: float) -> Track | None:
    """``track`` if every lane centre keeps |κ| <= ``kmax`` and far parts keep their grass, else None."""
    if track.max_abs_lane_curvature() > kmax * 1.001:
        return None
    if not _well_separated(track):
        return None
    return track


def _well_separated(track: Track) -> bool:
    """No two parts of the loop farther apart than 100 m along it come within road width + margin."""
    step = max(1, int(5.0 / track.ds))
    pts = np.stack([track.x[::step], track.y[::step]], 1)
    s = track.s[::step]
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
    ds = np.abs(s[:, None] - s[None, :])
    ds = np.minimum(ds, track.length_m - ds)
    far = ds > max(100.0, math.pi * (track.road_width_m + MIN_SEPARATION_M))
    return bool(np.all(d[far] >= track.road_width_m + MIN_SEPARATION_M))


def _procedural_network(track: Track):
    """highway-env RoadNetwork of ``PolyLaneFixedWidth`` lanes, the loop cut in ≤ 200 m pieces."""
    from highway_env.road.lane import LineType, PolyLaneFixedWidth
    from highway_env.road.road import RoadNetwork

    net = RoadNetwork()
    pieces = max(3, int(math.ceil(track.length_m / 200.0)))
    bounds = np.linspace(0, track.n, pieces + 1).astype(int)
    step = max(1, int(round(2.0 / track.ds)))
    for lane in range(track.lanes):
        pts = track.offset_polyline(track.lane_offsets_m[lane])
        right = LineType.CONTINUOUS_LINE if lane == 0 else LineType.NONE
        left = LineType.CONTINUOUS_LINE if lane == track.lanes - 1 else LineType.STRIPED
        for p in range(pieces):
            idx = np.append(np.arange(bounds[p], bounds[p + 1], step), bounds[p + 1]) % track.n
            net.add_lane(
                f"p{p}",
                f"p{(p + 1) % pieces}",
                PolyLaneFixedWidth(
                    [tuple(q) for q in pts[idx]], width=track.lane_width_m, line_types=(right, left), speed_limit=None
                ),
            )
    return net


@functools.lru_cache(maxsize=1)
def racetrack() -> Track:
    """highway-env's racetrack: its own road construction, lanes sampled into our arrays."""
    import warnings

    from highway_env.envs.racetrack_env import RacetrackEnv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = RacetrackEnv(config={"other_vehicles": 0})
    net = env.road.network
    env.close()
    order = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "a"]
    pts: list[np.ndarray] = []
    for k, (a, b) in enumerate(zip(order[:-1], order[1:])):
        lane = net.get_lane((a, b, 0))
        nxt = net.get_lane((b, order[(k + 2) % (len(order) - 1)], 0))
        q, hq = nxt.position(0.0, 0.0), nxt.heading_at(0.0)
        direction = np.array([math.cos(hq), math.sin(hq)])
        for s in np.arange(0.0, lane.length, 0.25):
            p = lane.position(s, 0.0)
            if (p - q) @ direction < 0:  # segments overshoot the next one's start by up to ~1 m
                pts.append(p)
    lane0 = np.array(pts)
    t0 = Track("racetrack-lane0", "racetrack", None, lane0[:, 0], lane0[:, 1], 1, 5.0, smooth_m=1.0)
    # the reference (road centre) is half a lane to the left of lane 0
    ref = t0.offset_polyline(2.5)
    return Track("racetrack", "racetrack", None, ref[:, 0], ref[:, 1], 2, 5.0, network=net)


def track_for(kind: str, seed: int | None, lanes: int, lane_width_m: float, max_curvature_inv_m: float) -> Track:
    """The track of a scenario: ``racetrack`` or the procedural loop of ``seed``."""
    if kind == "racetrack":
        return racetrack()
    if kind == "procedural":
        if seed is None:
            raise ValueError("track_for: a procedural track needs a seed, got None")
        return procedural_track(seed, lanes, lane_width_m, max_curvature_inv_m)
    raise ValueError(f"track_for: kind must be procedural or racetrack, got {kind!r}")
