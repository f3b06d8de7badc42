"""Closed-loop selection drives only training-split tracks that the dataset never recorded, with reset seeds it
never used, and ranks by off-road events, then mean |lateral offset|."""

from __future__ import annotations

import pytest

from drive.data.recorder import record
from drive.errors import UserError
from drive.policy.reference import ExpertPolicy
from drive.train.selection import (
    CheckSpec,
    check_tracks,
    closed_loop_check,
    held_out_spec,
    recorded_seeds,
    selection_key,
)
from drive.world.tracks import TEST_SEEDS, TRAIN_SEEDS


@pytest.fixture(scope="module")
def tiny_recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec") / "data"
    record("train", 3, root, seed=0, duration_s=0.5, progress=False)
    return root


def test_the_check_refuses_test_tracks_and_an_empty_list():
    for bad in ([TEST_SEEDS[0]], [3, TEST_SEEDS[-1]], [], [TRAIN_SEEDS.stop]):
        with pytest.raises(UserError, match="not training-split tracks"):
            check_tracks(bad)
    check_tracks([0, 999])
    with pytest.raises(UserError, match="not training-split tracks"):
        closed_loop_check(ExpertPolicy(), CheckSpec((TEST_SEEDS[0],), (1,), 1.0))


def test_the_held_out_spec_avoids_every_recorded_track_and_reset_seed(tiny_recording):
    tracks, resets = recorded_seeds(tiny_recording)
    assert len(tracks) == 3 and len(resets) == 3
    spec = held_out_spec(tiny_recording, episodes=20, duration_s=2.0, seed=0)
    assert len(spec.tracks) == len(spec.reset_seeds) == 20
    assert all(t in TRAIN_SEEDS for t in spec.tracks) and not set(spec.tracks) & tracks
    assert not set(spec.reset_seeds) & resets
    assert held_out_spec(tiny_recording, 20, 2.0, seed=0) == spec  # fixed for every training seed
    assert held_out_spec(tiny_recording, 20, 2.0, seed=1).tracks != spec.tracks


def test_the_expert_passes_the_check_and_the_key_ranks_exits_before_lateral(tiny_recording):
    spec = held_out_spec(tiny_recording, episodes=2, duration_s=1.0)
    result = closed_loop_check(ExpertPolicy(), spec)
    assert result["episodes"] == 2 and result["off_road_events"] == 0
    assert 0 <= result["mean_abs_lateral_m"] < 0.2 and result["distance_m"] > 10
    assert result["key"] == list(selection_key(result))
    better = {"off_road_events": 0, "mean_abs_lateral_m": 0.9}
    worse = {"off_road_events": 1, "mean_abs_lateral_m": 0.1}
    assert selection_key(better) < selection_key(worse)


def test_training_keeps_the_epoch_that_drives_best_and_records_every_epochs_figure(
    make_train_dataset, small_config, monkeypatch
):
    """Scripted check figures: epoch 2 has no exit and the least lateral offset, epoch 3 the lowest validation
    loss would not matter; the saved weights are epoch 2's and every checked epoch's figure is in config.json."""
    import json

    import torch
    from safetensors.torch import load_file

    import drive.train.selection as selection
    from drive.train.loop import train

    scripted = {1: (2, 0.3), 2: (0, 0.4), 3: (0, 0.6), 4: (1, 0.1)}
    seen: list[dict] = []
    calls = {"n": 0}

    def fake_check(policy, spec):
        calls["n"] += 1
        check_tracks(spec.tracks)  # only training-split tracks ever reach the check
        epoch = calls["n"] + 1  # select_from_epoch=2: epochs 2, 3, 4 are checked
        seen.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        off, lateral = scripted[epoch]
        figures = {"off_road_events": off, "mean_abs_lateral_m": lateral, "distance_m": 100.0, "episodes": 2}
        return {**figures, "key": list(selection_key(figures))}

    monkeypatch.setattr(selection, "closed_loop_check", fake_check)
    data = make_train_dataset()
    cfg = small_config(data, epochs=4, select_by="closed_loop", select_episodes=2, select_from_epoch=2)
    train(cfg)
    config = json.loads((tmp_path_of(cfg) / "config.json").read_text())
    metrics = config["metrics"]
    assert calls["n"] == 3 and metrics["best_epoch"] == 2
    assert [r["epoch"] for r in metrics["closed_loop_by_epoch"]] == [2, 3, 4]
    assert [r["off_road_events"] for r in metrics["closed_loop_by_epoch"]] == [0, 0, 1]
    assert metrics["best_closed_loop"]["epoch"] == 2 and "closed-loop" in metrics["weights"]
    saved = load_file(str(tmp_path_of(cfg) / "model.safetensors"))
    for key, value in seen[0].items():  # the weights checked at epoch 2 are the ones saved
        assert torch.equal(saved[key], value), key
    check = config["data"]["selection_check"]
    assert len(check["tracks"]) == 2 and all(t in TRAIN_SEEDS for t in check["tracks"])


def tmp_path_of(cfg):
    from pathlib import Path

    return Path(cfg.out)


def test_the_check_drives_every_lane_position_equally_and_skips_used_reset_seeds():
    from collections import Counter

    from drive.train.selection import RESET_SEED_BASE, stratified_resets
    from drive.world.appearance import LANE_POSITIONS, draw_world, lane_position
    from drive.world.scenario import as_scenario

    scenario = as_scenario("train")
    used = set(range(RESET_SEED_BASE, RESET_SEED_BASE + 40))
    resets = stratified_resets(12, used)
    assert len(resets) == len(set(resets)) == 12 and not set(resets) & used
    drawn = [lane_position(draw_world(scenario, r).lanes, draw_world(scenario, r).ego_lane) for r in resets]
    assert drawn[:6] == list(LANE_POSITIONS)  # six episodes: each position once
    assert Counter(drawn) == {name: 2 for name in LANE_POSITIONS}
    one_lane = scenario.to_dict()
    one_lane["track"].update(lane_position={"only_of_1": 1}, lanes=None)
    assert stratified_resets(3, {RESET_SEED_BASE + 1}, one_lane) == tuple(RESET_SEED_BASE + k for k in (0, 2, 3))


def test_the_default_check_deals_its_episodes_over_the_randomized_and_nominal_worlds_in_every_lane_position(
    tiny_recording,
):
    """Twelve episodes: six in the randomized training worlds and six in the nominal world (the default camera
    mount), alternating, and within each scenario every lane position once; its reset seeds avoid the recording's."""
    from drive.world.appearance import LANE_POSITIONS, draw_world, lane_position
    from drive.world.scenario import as_scenario

    _, recorded_resets = recorded_seeds(tiny_recording)
    spec = held_out_spec(tiny_recording, episodes=12, duration_s=1.0)
    assert spec.scenario == "train,nominal"
    assert spec.episode_scenarios() == ["train", "nominal"] * 6
    assert not set(spec.reset_seeds) & recorded_resets
    for name in ("train", "nominal"):
        scenario = as_scenario(name)
        resets = [r for n, r in zip(spec.episode_scenarios(), spec.reset_seeds) if n == name]
        worlds = [draw_world(scenario, r) for r in resets]
        assert [lane_position(w.lanes, w.ego_lane) for w in worlds] == list(LANE_POSITIONS)
    nominal = [draw_world(as_scenario("nominal"), r) for r in spec.reset_seeds[1::2]]
    assert {(w.camera_height_m, w.camera_pitch_rad, w.camera_fov_deg) for w in nominal} == {(1.2, 0.12, 80.0)}


def test_the_check_reports_each_scenario_and_refuses_scenarios_off_the_training_split(tiny_recording, tmp_path):
    spec = held_out_spec(tiny_recording, episodes=2, duration_s=1.0)
    result = closed_loop_check(ExpertPolicy(), spec)
    assert set(result["by_scenario"]) == {"train", "nominal"}
    assert sum(part["episodes"] for part in result["by_scenario"].values()) == 2
    for bad in ("default", "scenarios/suite/three_lanes_middle.yaml", "racetrack", "train,default"):
        with pytest.raises(UserError, match="training-split"):
            held_out_spec(tiny_recording, 2, 1.0, scenario=bad)
        with pytest.raises(UserError, match="training-split"):
            closed_loop_check(ExpertPolicy(), CheckSpec((3,), (RESET,), 1.0, bad))
    with pytest.raises(UserError, match="select-scenario"):
        held_out_spec(tiny_recording, 2, 1.0, scenario=" , ")
    from drive.train.config import TrainConfig

    with pytest.raises(UserError, match=r"--select-scenario ' , ': must name one or more scenarios"):
        TrainConfig(data="d", out="o", select_scenario=" , ").validate()


RESET = 7_000_000
