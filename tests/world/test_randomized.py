"""Randomized worlds: drawn per episode from the seed, recorded, in range, and each one changes the picture."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive.errors import UserError
from drive.world import camera as camera_mod
from drive.world.appearance import (
    KEYS,
    LANE_POSITIONS,
    draw_world,
    get_spec,
    haze_distance_m,
    spec_kind,
    spec_values,
)
from drive.world.camera import Camera, Scenery
from drive.world.env import DriveEnv
from drive.world.scenario import Scenario, load_scenario

# a small loop (120 m straights, 30 m bends): a scenery paints in well under a second
STRAIGHT_M = 120.0


@pytest.fixture
def small_track(make_stadium):
    return make_stadium(2, 3.5, STRAIGHT_M, 30.0)


def _frame(track, **sections):
    """The camera frame of a world with ``sections`` set, from lane 0 in the middle of the first straight."""
    sc = Scenario.from_dict(sections)
    w = draw_world(sc, 0)
    cam = Camera(
        sc.camera.config(w.camera_height_m, w.camera_pitch_rad, w.camera_yaw_rad, w.camera_fov_deg),
        haze_distance_m(w.fog_density),
    )
    scenery = Scenery(track, 0, w)
    x, y, h = track.pose_at(STRAIGHT_M / 2, float(track.lane_offsets_m[0]))
    return cam.render(scenery, x, y, h).astype(int), cam, scenery


def _pixel(frame, cam, left_m, forward_m=8.0):
    """The pixel showing the ground ``forward_m`` ahead and ``left_m`` left of the car."""
    u, v, _ = cam.project(np.array([forward_m]), np.array([left_m]), np.zeros(1))
    return frame[int(round(v[0])), int(round(u[0]))]


# ego in lane 0 of two 3.5 m lanes: the centre line is 1.75 m to its left, the edge lines (0.25 m
# inside the road) 5.0 m left and 1.5 m right, the shoulder starts 1.75 m right
CENTRE, LEFT_EDGE, RIGHT_EDGE, SHOULDER, KERB = 1.75, 5.0, -1.5, -2.3, -1.9


def test_train_scenario_draws_stay_in_range_over_1000_episodes():
    sc = load_scenario("train")
    seen: dict[str, set] = {}
    for seed in range(1000):
        w = draw_world(sc, seed).as_dict()
        for path, key, kind, lo, hi in KEYS:
            spec = get_spec(sc, path)
            value = w[key]
            if spec is None:  # train.yaml's track.lane_position draws the ego lane with the lane count
                assert key == "ego_lane" and 0 <= value < w["lanes"], (key, value)
                seen.setdefault(key, set()).add((w["lanes"], value))
                continue
            form = spec_kind(spec)
            if form == "range":
                assert spec[0] <= value <= spec[1], (key, value, spec)
                assert isinstance(value, int) if kind == "int" else isinstance(value, float)
            else:
                assert value in spec_values(spec), (key, value, spec)
            seen.setdefault(key, set()).add(value)
        # down to the sun on the horizon (0.3) under an overcast sky (20 % dimmer)
        assert 0.3 * 0.8 - 1e-9 <= w["brightness"] <= 1.0 and 2500 <= w["colour_temperature_k"] <= 7000
        assert w["haze_distance_m"] <= 220.0
    # every randomized key really varies, and every choice is drawn
    for path, key, kind, _lo, _hi in KEYS:
        spec = get_spec(sc, path)
        if isinstance(spec, list):
            assert len(seen[key]) > 1, key
            if spec_kind(spec) == "choice":
                assert seen[key] == set(spec), key
    assert seen["lanes"] == {1, 2, 3}
    assert seen["ego_lane"] == set(LANE_POSITIONS.values())  # every lane of every lane count


def test_same_seed_same_world_and_frames_different_seeds_differ():
    env = DriveEnv("train")
    camera_mod._SCENERY.clear()
    obs_a, info_a = env.reset(seed=7)
    step_a = env.step(np.array([0.1], np.float32))[0]
    camera_mod._SCENERY.clear()  # paint the scenery again: the painting itself must be deterministic
    env_b = DriveEnv("train")
    obs_b, info_b = env_b.reset(seed=7)
    step_b = env_b.step(np.array([0.1], np.float32))[0]
    assert info_a["world"] == info_b["world"]
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(step_a, step_b)
    obs_c, info_c = env.reset(seed=8)
    assert info_c["world"] != info_a["world"]
    assert np.abs(obs_c.astype(int) - obs_a).mean() > 5
    # the world's values are plain str / int / float / bool
    assert all(isinstance(v, (str, int, float, bool)) for v in info_a["world"].values())
    assert info_a["world"]["world_seed"] == 7


def test_reset_info_world_matches_the_episode():
    env = DriveEnv(
        {
            "track": {"split": "test", "lanes": [1, 3], "lane_width_m": [3.0, 4.5], "ego_lane": None},
            "speed_mps": [8.0, 12.0],
        },
        render_camera=False,
    )
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        w = info["world"]
        assert env.track.lanes == w["lanes"] and env.track.lane_width_m == pytest.approx(w["lane_width_m"])
        assert env.lane == w["ego_lane"] and w["track_seed"] == env.track_seed
        assert info["speed_mps"] == pytest.approx(w["speed_mps"])
        assert env.world_info == w and env.world_info is not w


def test_markings_change_the_picture(small_track):
    solid, cam, _ = _frame(small_track, markings={"centre_line": "solid"})
    yellow, _, _ = _frame(small_track, markings={"centre_line": "solid", "line_colour": "yellow"})
    none, _, _ = _frame(small_track, markings={"centre_line": "none"})
    worn, _, _ = _frame(small_track, markings={"centre_line": "solid", "wear": 0.9})
    asphalt = _pixel(none, cam, 0.0)
    white_px, yellow_px = _pixel(solid, cam, CENTRE), _pixel(yellow, cam, CENTRE)
    assert white_px.mean() > asphalt.mean() + 50 and abs(int(white_px[0]) - int(white_px[2])) < 15
    assert yellow_px[0] - yellow_px[2] > 80  # yellow: red well above blue
    assert np.abs(_pixel(none, cam, CENTRE) - asphalt).max() < 20  # no line pixels where the line was
    assert _pixel(worn, cam, CENTRE).mean() < white_px.mean() - 40
    left_only, _, _ = _frame(small_track, markings={"edge_lines": "left"})
    assert _pixel(left_only, cam, LEFT_EDGE).mean() > asphalt.mean() + 50
    assert np.abs(_pixel(left_only, cam, RIGHT_EDGE) - asphalt).max() < 20
    assert _pixel(solid, cam, RIGHT_EDGE).mean() > asphalt.mean() + 50


def test_surfaces_change_the_picture(small_track):
    base, cam, _ = _frame(small_track)
    road = base[60:, 80:120]
    bright, _, _ = _frame(small_track, surface={"asphalt_tone": 1.6})
    assert bright[60:, 80:120].mean() > road.mean() + 15
    flat, _, _ = _frame(small_track, surface={"asphalt_texture": 0.0, "ground_texture": 0.0})
    rough, _, _ = _frame(small_track, surface={"asphalt_texture": 2.0, "ground_texture": 2.0})
    assert not np.array_equal(flat, rough)
    grass, _, _ = _frame(small_track, surface={"shoulder": "grass"})
    kerb, _, _ = _frame(small_track, surface={"shoulder": "kerb"})
    g, s = _pixel(grass, cam, SHOULDER), _pixel(base, cam, SHOULDER)
    assert g[1] > g[0] and s[0] > s[1]  # green grass where the (brownish) gravel was
    k = _pixel(kerb, cam, KERB)
    assert k.min() > _pixel(grass, cam, KERB).max() - 60 and k[0] > _pixel(grass, cam, KERB)[0]
    dirt, _, _ = _frame(small_track, surface={"ground": "dirt"})
    gd, gg = _pixel(dirt, cam, -6.0, 12.0), _pixel(base, cam, -6.0, 12.0)
    assert gd[0] > gd[1] and gg[1] > gg[0]  # brown dirt, green grass


def test_light_fog_sky_and_shadows_change_the_picture(small_track):
    base, cam, base_scenery = _frame(small_track)
    dusk, _, _ = _frame(small_track, light={"sun_elevation_rad": 0.02})
    assert dusk.mean() < 0.6 * base.mean()
    assert dusk[..., 0].mean() / dusk[..., 2].mean() > 1.2 * base[..., 0].mean() / base[..., 2].mean()  # warmer
    fog, _, _ = _frame(small_track, light={"fog_density": 0.6})
    horizon = int(math.ceil(cam.config.horizon_row)) + 2
    assert fog[horizon : horizon + 6].std(axis=1).mean() < 0.5 * base[horizon : horizon + 6].std(axis=1).mean()
    overcast, _, _ = _frame(small_track, light={"sky": "overcast"})
    sky_b, sky_o = base[:10].reshape(-1, 3).mean(0), overcast[:10].reshape(-1, 3).mean(0)
    assert (sky_b[2] - sky_b[0]) > (sky_o[2] - sky_o[0]) + 20  # the clear sky is bluer
    _, _, shade_scenery = _frame(small_track, light={"sun_elevation_rad": 0.2, "shadows_per_100m": 15.0})
    _, _, lit_scenery = _frame(small_track, light={"sun_elevation_rad": 0.2})
    assert shade_scenery.levels[0].mean() < lit_scenery.levels[0].mean() - 2
    assert (np.abs(shade_scenery.levels[0].astype(int) - lit_scenery.levels[0]).max(-1) > 30).mean() > 0.01


@pytest.mark.parametrize("key, value", [("height_m", 1.5), ("pitch_rad", 0.17), ("yaw_rad", 0.05), ("fov_deg", 70.0)])
def test_camera_mount_changes_the_picture(small_track, key, value):
    base, cam, _ = _frame(small_track)
    moved, cam2, _ = _frame(small_track, camera={key: value})
    assert np.abs(moved - base).mean() > 3
    if key == "yaw_rad":  # looking left moves the centre line to the right in the image
        u0 = cam.project(np.array([10.0]), np.array([CENTRE]), np.zeros(1))[0][0]
        u1 = cam2.project(np.array([10.0]), np.array([CENTRE]), np.zeros(1))[0][0]
        assert u1 > u0 + 5


def test_plain_world_paints_the_original_scenery(small_track):
    plain = Scenery(small_track, 0)
    drawn = Scenery(small_track, 0, draw_world(Scenario(), 3))
    for a, b in zip(plain.levels, drawn.levels):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.panorama, drawn.panorama)


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("track:\n  lanes: [1, 4]\n", "track.lanes", "4"),
        ("track:\n  lanes: []\n", "track.lanes", "[]"),
        ("track:\n  lanes: [3, 1]\n", "track.lanes", "[3, 1]"),
        ("track:\n  lane_width_m: [2.0, 4.0]\n", "track.lane_width_m", "2.0"),
        ("track:\n  lanes: [1, 3]\n  ego_lane: 1\n", "track.ego_lane", "1"),
        ("track:\n  curvature_fraction: 1.5\n", "track.curvature_fraction", "1.5"),
        ("speed_mps: [5, 50]\n", "speed_mps", "50.0"),
        ("markings:\n  centre_line: dotted\n", "markings.centre_line", "'dotted'"),
        ("markings:\n  line_colour: [white, blue]\n", "markings.line_colour", "'blue'"),
        ("markings:\n  wear: 1.5\n", "markings.wear", "1.5"),
        ("markings:\n  edge_lines: top\n", "markings.edge_lines", "'top'"),
        ("markings:\n  colour: white\n", "markings.colour", "'white'"),
        ("surface:\n  asphalt_tone: 3\n", "surface.asphalt_tone", "3.0"),
        ("surface:\n  asphalt_texture: -1\n", "surface.asphalt_texture", "-1.0"),
        ("surface:\n  shoulder: sand\n", "surface.shoulder", "'sand'"),
        ("surface:\n  ground: [grass, snow]\n", "surface.ground", "'snow'"),
        ("surface:\n  ground_texture: x\n", "surface.ground_texture", "'x'"),
        ("light:\n  sun_elevation_rad: [0.1, 2.0]\n", "light.sun_elevation_rad", "2.0"),
        ("light:\n  sun_azimuth_rad: 4\n", "light.sun_azimuth_rad", "4.0"),
        ("light:\n  fog_density: 2\n", "light.fog_density", "2.0"),
        ("light:\n  sky: purple\n", "light.sky", "'purple'"),
        ("light:\n  shadows_per_100m: -1\n", "light.shadows_per_100m", "-1.0"),
        ("light:\n  rain: 1\n", "light.rain", "1"),
        ("camera:\n  height_m: [1.0, 20.0]\n", "camera.height_m", "20.0"),
        ("camera:\n  pitch_rad: [0.1, 1.6]\n", "camera.pitch_rad", "[0.1, 1.6]"),
        ("camera:\n  yaw_rad: 0.9\n", "camera.yaw_rad", "0.9"),
        ("camera:\n  fov_deg: [60, 180]\n", "camera.fov_deg", "180.0"),
        ("seed: -1\n", "seed", "-1"),
    ],
)
def test_bad_new_key_is_one_line_naming_file_key_and_value(tmp_path, text, key, value):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg and f"{key}:" in msg and value in msg, msg


def test_suite_cases_load_on_the_test_tracks():
    from drive.eval.suite import suite_cases
    from drive.resources import suite_dir
    from drive.world.tracks import TEST_SEEDS

    cases = suite_cases()
    assert {
        "single_lane",
        "three_lanes_middle",
        "left_lane",
        "narrow_lanes",
        "wide_lanes",
        "yellow_centre_line",
        "no_centre_line",
        "low_sun_shadows",
        "dusk",
        "fog",
        "camera_mount",
        "higher_speed",
        "traffic",
    } <= set(cases)
    for case in cases:
        sc = load_scenario(suite_dir() / f"{case}.yaml")
        assert sc.track.seed_list() == list(TEST_SEEDS)
        assert not any(isinstance(v, list) for v in draw_world(sc, 0).as_dict().values())


def test_default_and_traffic_frames_unchanged_by_randomized_worlds():
    """Frames rendered before randomized worlds existed (commit 146baaf), stored: the plain look is unchanged.

    Same code path, so on the machine that stored them they are bit-identical; the tolerance only
    allows for another CPU's OpenCV rounding.
    """
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "plain_frames_before_randomization.npz")
    for name, scenario, seed in (("default_seed0", "default", 0), ("traffic_seed3", "traffic", 3)):
        env = DriveEnv(scenario)
        obs, info = env.reset(seed=seed)
        frames = [obs.copy()]
        for _ in range(30):
            obs, _, _, _, info = env.step(np.array([info["expert_steering"]], np.float32))
        frames.append(obs.copy())
        diff = np.abs(np.stack(frames).astype(int) - ref[name])
        assert diff.mean() < 0.05 and diff.max() <= 3, (name, diff.mean(), diff.max())
