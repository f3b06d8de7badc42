"""drive.policy.load: a checkpoint (path or shipped name) becomes a driver on a runtime; clean one-line errors."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from drive.errors import UserError
from drive.policy.load import check_compatible, load_driver, resolve_checkpoint
from drive.policy.reference import ExpertPolicy

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "ncp19"


def test_the_shipped_checkpoint_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("checkpoints/ncp19").resolve() == SHIPPED.resolve()


def test_expert_and_driver_objects(tmp_path):
    assert isinstance(load_driver("expert"), ExpertPolicy)
    driver = ExpertPolicy()
    assert load_driver(driver) is driver


def test_a_folder_without_a_checkpoint_and_an_unknown_runtime_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint here"):
        load_driver(tmp_path)
    with pytest.raises(UserError, match="--runtime"):
        load_driver(SHIPPED, "tensorrt")


def test_torch_runtime_gives_the_policy_and_its_frames_are_checked_against_the_scenario():
    policy = load_driver(SHIPPED, "torch")
    assert policy.model_name == "ncp19"
    camera = types.SimpleNamespace(height=policy.image_height, width=policy.image_width)
    check_compatible(policy, types.SimpleNamespace(name="fits", camera=camera))
    small = types.SimpleNamespace(name="small", camera=types.SimpleNamespace(height=10, width=20))
    with pytest.raises(UserError, match=r"--checkpoint: the policy takes \d+x\d+ frames but scenario 'small'"):
        check_compatible(policy, small)
    check_compatible(ExpertPolicy(), small)  # the expert takes any frame


def test_a_shipped_checkpoint_is_found_by_its_bare_name_from_any_folder(tmp_path, monkeypatch):
    from drive import resources
    from drive.policy.load import resolve_checkpoint

    monkeypatch.chdir(tmp_path)
    names = resources.shipped_checkpoints()
    assert "ncp19" in names
    for name in names:
        assert resolve_checkpoint(name) == resolve_checkpoint(f"checkpoints/{name}")
        assert (resolve_checkpoint(name) / "config.json").is_file()
    (tmp_path / "ncp19").mkdir()  # a folder of that name here is what the user means: it is not a checkpoint
    with pytest.raises(UserError, match=r"^--checkpoint ncp19: no checkpoint here .*shipped name \(.*ncp19"):
        resolve_checkpoint("ncp19")


# ------------------------------------------------------------------ compatibility: frame size, rate, camera


def _checkpoint(tmp_path, name: str, fps: float = 20.0, hw: tuple[int, int] = (78, 200), camera=None) -> Path:
    """A checkpoint folder (config.json only: the checks read no weights) trained on ``fps`` Hz ``hw`` frames,
    its dataset recorded with ``camera`` (``info.camera``), or without a camera record (None)."""
    import json

    config = json.loads((SHIPPED / "config.json").read_text())
    config["policy"].update(frame_period_s=1.0 / fps, image_height=hw[0], image_width=hw[1])
    info = config["data"]["info"]
    info.update(fps=fps, image_height=hw[0], image_width=hw[1], source="drive import --format csv")
    info.pop("scenario")
    if camera is not None:
        info["camera"] = camera
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _default_road():
    from drive.world.scenario import as_scenario

    return as_scenario("default")  # 20 Hz, 78x200, fov 80, height 1.2, pitch 0.12


def test_a_30_hz_checkpoint_on_the_20_hz_road_is_warned_in_one_line_naming_both_rates(tmp_path):
    from drive.policy.load import check_checkpoint_compatible

    ckpt = _checkpoint(tmp_path, "dashcam30", fps=30.0)
    with pytest.warns(UserWarning) as record:
        notes = check_checkpoint_compatible(ckpt, _default_road())
    assert len(notes) == 1 and [str(w.message) for w in record] == notes
    assert "\n" not in notes[0] and "30 Hz" in notes[0] and "20 Hz" in notes[0] and "'default'" in notes[0]


def test_a_16_9_checkpoint_on_the_default_road_is_a_one_line_error_naming_both_sizes(tmp_path):
    from drive.policy.load import check_checkpoint_compatible

    ckpt = _checkpoint(tmp_path, "dashcam169", hw=(72, 128))
    with pytest.raises(
        UserError,
        match=r"^--checkpoint \S+dashcam169: the policy takes 72x128 frames but scenario "
        r"'default' renders 78x200 \(camera.height x camera.width\)$",
    ):
        check_checkpoint_compatible(ckpt, _default_road())


def test_another_camera_is_warned_naming_both_and_camera_from_checkpoint_renders_with_it(tmp_path):
    from drive.policy.load import check_checkpoint_compatible, with_trained_camera

    camera = {"height_m": 1.45, "pitch_rad": 0.12, "fov_deg": 120.0}
    ckpt = _checkpoint(tmp_path, "wide", camera=camera)
    road = _default_road()
    with pytest.warns(
        UserWarning,
        match=r"trained on camera height_m 1.45, fov_deg 120 .* renders camera height_m "
        r"1.2, fov_deg 80; it can drive",
    ):
        check_checkpoint_compatible(ckpt, road)
    matched = with_trained_camera(road, ckpt)
    assert (matched.camera.height_m, matched.camera.pitch_rad, matched.camera.fov_deg, matched.camera.yaw_rad) == (
        1.45,
        0.12,
        120.0,
        0.0,
    )
    assert (matched.camera.height, matched.camera.width) == (road.camera.height, road.camera.width)
    assert check_checkpoint_compatible(ckpt, matched) == []
    with pytest.raises(UserError, match=r"^--camera-from-checkpoint: checkpoint \S+ records no camera"):
        with_trained_camera(road, _checkpoint(tmp_path, "nocamera"))


def test_a_matching_checkpoint_is_silent(tmp_path, recwarn):
    from drive.policy.checkpoint import read_config
    from drive.policy.load import check_checkpoint_compatible, check_compatible, trained_camera

    road = _default_road()
    assert check_checkpoint_compatible(SHIPPED, road) == []  # trained on 20 Hz, fov 68..90 around the road's 80
    assert trained_camera(read_config(SHIPPED))[0]["fov_deg"] == [68.0, 90.0]
    camera = {"height_m": 1.2, "pitch_rad": 0.12, "fov_deg": 80.0}
    assert check_checkpoint_compatible(_checkpoint(tmp_path, "same", camera=camera), road) == []
    assert check_checkpoint_compatible(_checkpoint(tmp_path, "unrecorded"), road) == []  # no camera: not checked
    assert check_compatible(ExpertPolicy(), road, checkpoint="expert") == []
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
