"""Perturbations: shape and dtype kept, level 0 is the identity, seeded, the requested noise statistics, timing,
and known answers for the faults the training never shows (roll, stuck_pixels, colour_cast, freeze)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drive.eval.perturb import (
    KINDS,
    STUCK_VALUES,
    Chain,
    Drop,
    Freeze,
    Gaussian,
    Latency,
    make,
    parse_single,
    parse_spec,
)

CAMERA_LEVELS = {
    "gaussian": 0.1,
    "salt_pepper": 0.05,
    "blur": 2.0,
    "brightness": 0.3,
    "contrast": 0.5,
    "occlusion": 0.2,
    "motion_blur": 9,
    "jpeg": 90,
    "roll": 10.0,
    "stuck_pixels": 0.05,
    "colour_cast": 0.3,
}
SEQUENCE_CAMERA_LEVELS = {"freeze": 0.2}
"""Camera kinds that act over several frames (tested below): one frame alone passes unchanged."""


def road_frame(h: int = 78, w: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=-1).astype(np.uint8)
    return np.clip(frame.astype(int) + rng.integers(-10, 10, frame.shape), 0, 255).astype(np.uint8)


def started(p, seed=0, shape=(78, 200, 3)):
    Chain([p]).reset(seed, shape)
    return p


def test_every_camera_kind_is_tested_and_registered_with_a_doc_line():
    camera = {k for k, spec in KINDS.items() if spec.cls.stage == "camera"}
    assert camera == set(CAMERA_LEVELS) | set(SEQUENCE_CAMERA_LEVELS)
    assert all(spec.doc and spec.axis for spec in KINDS.values())


@pytest.mark.parametrize("kind", sorted(CAMERA_LEVELS))
def test_camera_kinds_keep_shape_dtype_and_change_the_frame(kind):
    frame = road_frame()
    out = started(make(kind, CAMERA_LEVELS[kind])).camera(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frame.astype(int)).mean() > 0.5
    assert np.array_equal(frame, road_frame())  # input left untouched


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_level_zero_is_the_identity(kind):
    p = started(make(kind, 0))
    frame = road_frame()
    assert np.array_equal(p.camera(frame), frame)
    assert [p.deliver(i) for i in range(5)] == list(range(5))
    assert p.actuate(0.3) == 0.3


@pytest.mark.parametrize("kind", sorted(CAMERA_LEVELS))
def test_same_seed_same_result_and_other_seed_differs_for_random_kinds(kind):
    frames = [road_frame(seed=i) for i in range(3)]
    a = [started(make(kind, CAMERA_LEVELS[kind]), seed=7).camera(f) for f in frames]
    b = [started(make(kind, CAMERA_LEVELS[kind]), seed=7).camera(f) for f in frames]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    if kind in ("gaussian", "salt_pepper", "occlusion", "stuck_pixels", "colour_cast"):
        c = [started(make(kind, CAMERA_LEVELS[kind]), seed=8).camera(f) for f in frames]
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("variance", [0.01, 0.1, 0.3])
def test_gaussian_noise_has_the_requested_variance_before_clipping(variance):
    g = started(Gaussian(variance), seed=1)
    grey = np.full((78, 200, 3), 128, np.uint8)
    out = g.camera(grey)
    noise = g.last_noise
    assert noise.shape == grey.shape and noise.dtype == np.float32
    assert abs(noise.mean()) < 0.01
    assert noise.var() == pytest.approx(variance, rel=0.03)
    if variance <= 0.01:  # clipping is negligible at this level: the output carries the same noise
        assert (out.astype(np.float64) / 255).var() == pytest.approx(variance, rel=0.05)


def test_salt_pepper_hits_the_requested_fraction_with_black_and_white():
    out = started(make("salt_pepper", 0.1)).camera(np.full((78, 200, 3), 128, np.uint8))
    hit = (out != 128).any(axis=-1)
    assert hit.mean() == pytest.approx(0.1, abs=0.01)
    assert set(np.unique(out[hit])) == {0, 255}


def test_occlusion_covers_the_requested_area_and_stays_put():
    p = started(make("occlusion", 0.25))
    white = np.full((78, 200, 3), 255, np.uint8)
    a, b = p.camera(white), p.camera(white)
    black = (a == 0).all(axis=-1)
    assert black.mean() == pytest.approx(0.25, abs=0.02)
    assert np.array_equal(a, b)


def test_brightness_shift_and_contrast_loss():
    grey = road_frame()
    brighter = started(make("brightness", 0.2)).camera(grey)
    assert brighter.astype(int).mean() > grey.astype(int).mean() + 40
    flat = started(make("contrast", 0.5)).camera(grey)
    assert flat.astype(float).std() == pytest.approx(grey.astype(float).std() * 0.5, rel=0.1)


def test_latency_delays_by_k_steps():
    p = started(Latency(3))
    assert [p.deliver(i) for i in range(8)] == [0, 0, 0, 0, 1, 2, 3, 4]


def test_drop_loses_about_the_requested_fraction_but_never_the_first_frame():
    p = started(Drop(0.4), seed=3)
    got = [p.deliver(i) for i in range(5000)]
    assert got[0] == 0
    lost = sum(g is None for g in got)
    assert lost / 5000 == pytest.approx(0.4, abs=0.03)


def test_actuator_noise_has_the_requested_std_and_stays_in_range():
    p = started(make("actuator", 0.1), seed=2)
    out = np.array([p.actuate(0.0) for _ in range(4000)])
    assert out.std() == pytest.approx(0.1, rel=0.06)
    assert np.all(np.abs([p.actuate(0.98) for _ in range(200)]) <= 1.0)


def test_push_pushes_the_car_every_interval_with_the_level():
    class FakeEnv:
        def __init__(self):
            self.unwrapped = self
            self.pushes = []

        def push(self, lateral_m):
            self.pushes.append(lateral_m)

    env = FakeEnv()
    p = started(make("push", 0.7), seed=5)
    for step in range(int(12.0 / 0.05)):
        p.disturb(env, step * 0.05)
    assert len(env.pushes) == 2  # at 5 s and 10 s
    assert all(abs(v) == pytest.approx(0.7) for v in env.pushes)


def test_parse_spec_reads_kind_and_levels():
    assert parse_spec("gaussian:0.1,0.2,0.3") == ("gaussian", [0.1, 0.2, 0.3])
    assert parse_single("latency:2").level == 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("fog:0.1", "unknown perturbation kind 'fog'"),
        ("gaussian", "expected KIND:LEVEL"),
        ("gaussian:abc", "'abc'"),
        ("gaussian:-0.1", "-0.1"),
        ("drop:1", "drop level"),
        ("latency:1.5", "whole number"),
        ("gaussian:nan", "nan"),
    ],
)
def test_bad_specs_raise_a_value_error_naming_argument_and_value(text, fragment):
    with pytest.raises(ValueError) as exc:
        parse_spec(text)
    assert "--perturb" in str(exc.value) and fragment in str(exc.value)


# ------------------------------------------- faults the training never shows: known answers


def test_roll_by_90_degrees_is_a_quarter_turn_counter_clockwise():
    rng = np.random.default_rng(0)
    square = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8), (0, 0), 1.5)
    out = started(make("roll", 90), shape=square.shape).camera(square)
    assert out.shape == square.shape and out.dtype == np.uint8
    inner = np.s_[2:-2, 2:-2]
    assert np.abs(out[inner].astype(int) - np.rot90(square)[inner].astype(int)).max() <= 1
    back = started(make("roll", -90), shape=square.shape).camera(out)
    assert np.abs(back[inner].astype(int) - square[inner].astype(int)).max() <= 2


def test_roll_keeps_the_centre_and_replicates_the_edges():
    frame = road_frame()
    out = started(make("roll", 5)).camera(frame)
    h, w = frame.shape[:2]
    assert np.abs(out[h // 2, w // 2].astype(int) - frame[h // 2, w // 2].astype(int)).max() <= 12
    assert not (out == 0).all(axis=-1).any()  # no black corners: edges replicated, not filled


@pytest.mark.parametrize("level, columns", [(0.01, 0), (0.1, 5)])
def test_stuck_pixels_hit_the_requested_fraction_and_stay_for_the_episode(level, columns):
    grey = np.full((78, 200, 3), 128, np.uint8)
    p = started(make("stuck_pixels", level), seed=3)
    a = p.camera(grey)
    stuck = (a != 128).any(axis=-1)
    assert stuck.mean() == pytest.approx(level, abs=0.15 * level)
    assert {tuple(v) for v in a[stuck]} <= {tuple(v) for v in STUCK_VALUES}
    assert len(p.columns) == columns and stuck[:, p.columns].all()
    b = p.camera(road_frame())  # another frame: the same pixels, at the same values
    assert np.array_equal(b[stuck], a[stuck])
    assert np.array_equal(b[~stuck], road_frame()[~stuck])


def test_colour_cast_keeps_the_mean_brightness_and_changes_the_channel_ratio():
    frame = (road_frame() // 2 + 64).astype(np.uint8)  # mid-range: no clipping
    p = started(make("colour_cast", 0.3), seed=4)
    out = p.camera(frame)
    assert p.gains.mean() == pytest.approx(1.0)
    assert p.gains.min() >= 0.7 / 1.3 and p.gains.max() <= 1.3 / 0.7
    grey = np.full_like(frame, 128)
    assert p.camera(grey).astype(float).mean() == pytest.approx(128, abs=0.5)
    ratio = out.reshape(-1, 3).astype(float).mean(0) / frame.reshape(-1, 3).astype(float).mean(0)
    assert ratio == pytest.approx(p.gains, abs=0.01)  # each channel scaled by its gain
    assert ratio.max() - ratio.min() > 0.05
    assert out.astype(float).mean() == pytest.approx(frame.astype(float).mean(), rel=0.1)
    assert np.array_equal(p.camera(frame), out)  # the same cast all episode


@pytest.mark.parametrize("level", [0.05, 0.3, 1.0])
def test_freeze_repeats_a_stale_frame_for_five_steps_at_the_expected_rate(level):
    p = started(make("freeze", level), seed=6)
    n = 6000
    frames = [np.full((4, 4, 3), i % 251, np.uint8) for i in range(n)]
    got = np.array([p.camera(f)[0, 0, 0] for f in frames])
    fresh = got == np.arange(n) % 251
    stale = ~fresh
    assert stale.mean() == pytest.approx(5 * level / (1 + 5 * level), abs=0.03)
    # every freeze: the last fresh frame, repeated for exactly Freeze.steps steps
    starts = np.flatnonzero(stale[1:] & fresh[:-1]) + 1
    assert len(starts) > 0
    for s in starts[:-1]:
        assert np.all(got[s : s + Freeze.steps] == got[s - 1])
        assert fresh[s + Freeze.steps]


def test_freeze_is_seeded():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(200)]

    def run(seed):
        p = started(make("freeze", 0.2), seed=seed)
        return [int(p.camera(f)[0, 0, 0]) for f in frames]

    assert run(1) == run(1) and run(1) != run(2)


@pytest.mark.parametrize("text", ["roll:181", "stuck_pixels:1.5", "colour_cast:-0.1", "freeze:2"])
def test_bad_levels_of_the_new_kinds_are_one_line_errors(text):
    with pytest.raises(ValueError) as exc:
        parse_spec(text)
    assert "\n" not in str(exc.value) and text.split(":")[0] in str(exc.value)
