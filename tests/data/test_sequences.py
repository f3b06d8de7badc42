"""Sequences: windows inside episodes, a seeded split by episode, and a frame cache decoded once."""

import numpy as np
import pytest
import torch

from drive.data import layout
from drive.data import reader as reader_module
from drive.data.sequences import (
    FrameCache,
    Segment,
    SequenceDataset,
    episode_strata,
    split_segments,
    window_starts,
)
from drive.world.appearance import LANE_POSITIONS


def test_windows_never_cross_an_episode_boundary(make_dataset):
    root, _ = make_dataset(lengths=(23, 17, 5))
    cache = FrameCache(root, progress=False)
    segments = [Segment(e, 0, n) for e, n in cache.lengths.items()]
    for stride in (1, 3, 8):
        ds = SequenceDataset(cache, segments, seq_len=8, stride=stride)
        rows = ds.rows(np.arange(len(ds)))
        episode_of_row = np.repeat(list(cache.lengths), list(cache.lengths.values()))
        assert (episode_of_row[rows] == episode_of_row[rows[:, :1]]).all()
        # every frame of the long-enough episodes is covered; the 5-frame episode gives no window
        covered = np.zeros(cache.num_frames, bool)
        covered[rows.ravel()] = True
        assert covered[:40].all() and not covered[40:].any()


def test_window_contents_match_the_episode(make_dataset):
    root, episodes = make_dataset(lengths=(20, 20), fps=10.0)
    cache = FrameCache(root, progress=False)
    ds = SequenceDataset(cache, [Segment(1, 0, 20)], seq_len=6, stride=6)
    frames, steering, dt = ds[1]
    assert frames.shape == (6, 78, 200, 3) and frames.dtype == torch.uint8
    np.testing.assert_allclose(steering.numpy(), episodes[1][1][6:12], atol=1e-6)
    np.testing.assert_allclose(dt.numpy(), 0.1, rtol=1e-5)
    assert np.abs(frames.numpy().astype(float) - episodes[1][0][6:12]).mean() < 6
    fb, sb, db = ds.get_batch([0, 1, 3])
    assert fb.shape == (3, 6, 78, 200, 3) and sb.shape == db.shape == (3, 6)
    assert torch.equal(fb[1], frames)


def test_split_by_episode_is_seeded_and_disjoint():
    lengths = {e: 30 for e in range(10)}
    a_train, a_val = split_segments(lengths, 0.2, seed=1)
    b_train, b_val = split_segments(lengths, 0.2, seed=1)
    assert a_train == b_train and a_val == b_val
    assert len(a_val) == 2 and len(a_train) == 8
    assert {s.episode for s in a_train}.isdisjoint({s.episode for s in a_val})
    assert all(s.start == 0 and s.stop == 30 for s in a_train + a_val)
    others = {tuple(s.episode for s in split_segments(lengths, 0.2, seed=k)[1]) for k in range(10)}
    assert len(others) > 1  # the seed matters


def test_split_keeps_one_episode_each_side_and_splits_single_episode_by_time():
    train, val = split_segments({0: 10, 1: 10}, 0.9, seed=0)
    assert len(train) == 1 and len(val) == 1
    train, val = split_segments({7: 100}, 0.25, seed=0)
    assert train == [Segment(7, 0, 75)] and val == [Segment(7, 75, 100)]
    train, val = split_segments({0: 10, 1: 10}, 0.0, seed=0)
    assert len(train) == 2 and val == []
    with pytest.raises(ValueError, match="--val-fraction"):
        split_segments({0: 10}, 1.0, seed=0)


def test_time_split_windows_stay_on_their_side():
    starts = window_starts([Segment(0, 0, 75)], {0: 0}, 16, 16)
    assert starts.max() + 16 <= 75
    starts = window_starts([Segment(0, 75, 100)], {0: 0}, 16, 16)
    assert starts.min() >= 75 and starts.max() + 16 <= 100


def test_cache_is_built_once_and_reused_without_decoding(make_dataset, monkeypatch):
    root, _ = make_dataset(lengths=(20, 20))
    first = FrameCache(root, progress=False)
    assert first.built
    assert (root / "cache" / "frames.u8").stat().st_size == 40 * 78 * 200 * 3

    def no_decode(*args, **kwargs):
        raise AssertionError("video decoded although the cache is valid")

    monkeypatch.setattr(reader_module, "decode_video", no_decode)
    monkeypatch.setattr(reader_module.DatasetReader, "read_frames", no_decode)
    second = FrameCache(root, progress=False)
    assert not second.built
    ds = SequenceDataset(second, [Segment(0, 0, 20), Segment(1, 0, 20)], seq_len=4)
    for _epoch in range(2):
        for i in range(len(ds)):
            frames, _, _ = ds[i]
    assert np.array_equal(np.asarray(second.frames), np.asarray(first.frames))


def test_cache_is_rebuilt_when_an_episode_is_added(make_dataset, pattern_frames, write_episode_files):
    root, _ = make_dataset(lengths=(20,))
    assert FrameCache(root, progress=False).built
    write_episode_files(root, 1, pattern_frames(12, 5), np.zeros(12), 10.0, 20)
    cache = FrameCache(root, progress=False)
    assert cache.built and cache.num_frames == 32 and cache.episodes == [0, 1]
    assert not FrameCache(root, progress=False).built
    with pytest.raises(FileNotFoundError, match="stale"):
        write_episode_files(root, 2, pattern_frames(12, 6), np.zeros(12), 10.0, 32)
        FrameCache(root, build=False, progress=False)


def test_non_increasing_timestamps_are_an_error(make_dataset):
    import pandas as pd

    root, _ = make_dataset(lengths=(10,))
    path = layout.data_path(root, 0)
    table = pd.read_parquet(path)
    table.loc[5, layout.TIMESTAMP] = table.loc[3, layout.TIMESTAMP]
    table.to_parquet(path, index=False)
    with pytest.raises(ValueError, match="file-000.parquet: column 'timestamp' does not increase at frame 5"):
        FrameCache(root, progress=False)


def test_train_only_episodes_never_validate_and_leave_the_split_unchanged():
    lengths = {e: 30 for e in range(6)}
    train, val = split_segments(lengths, 0.34, seed=4)
    grown = {**lengths, 6: 30, 7: 30}
    train2, val2 = split_segments(grown, 0.34, seed=4, train_only=[6, 7])
    assert val2 == val
    assert [s.episode for s in train2] == [s.episode for s in train] + [6, 7]
    # one eligible episode: split by time, train-only ones all train
    train, val = split_segments({0: 40, 1: 20}, 0.25, seed=0, train_only=[1])
    assert val == [Segment(0, 30, 40)] and train == [Segment(0, 0, 30), Segment(1, 0, 20)]
    assert split_segments({0: 10}, 0.5, seed=0, train_only=[0]) == ([Segment(0, 0, 10)], [])


def _world_meta(position: str, elevation: float) -> dict:
    """An episode-table row with the drawn world's lane position and sun elevation (as drive record writes)."""
    lanes, ego = LANE_POSITIONS[position]
    return {
        "world.lanes": lanes,
        "world.ego_lane": ego,
        "world.lane_width_m": 3.5,
        "world.sun_elevation_rad": elevation,
    }


def _sides(strata: dict, train, val) -> tuple[set, set]:
    return {lab for s in train for lab in strata[s.episode]}, {lab for s in val for lab in strata[s.episode]}


def _rare_strata(n: int = 40) -> dict[int, tuple]:
    """``n`` episodes, mostly the right lane of two in daylight; two each in the middle of three and at dusk,
    one in the left lane of three (it may fall on either side)."""
    rare = {5: ("middle_of_3", 0.8), 17: ("middle_of_3", 0.03), 23: ("right_of_2", 0.03)}
    rare |= {n - 11: ("left_of_3", 0.25), n - 10: ("only_of_1", 0.25), n - 9: ("only_of_1", 1.0)}
    return {e: episode_strata(_world_meta(*rare.get(e, ("right_of_2", 0.8)))) for e in range(n)}


def test_stratified_split_puts_every_lane_position_and_light_bin_on_both_sides():
    strata = _rare_strata()
    lengths = {e: 30 for e in strata}
    assert strata[17] == ("lane_position=middle_of_3", "light_bin=dusk")
    counts: dict[str, int] = {}
    for labels in strata.values():
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
    shared = {lab for lab, n in counts.items() if n >= 2}
    assert {"lane_position=middle_of_3", "light_bin=dusk", "light_bin=low_sun", "lane_position=only_of_1"} <= shared
    vals = set()
    for seed in range(50):
        train, val = split_segments(lengths, 0.2, seed, strata=strata)
        assert len(val) == 8 and len(train) == 32 and not {s.episode for s in train} & {s.episode for s in val}
        on_train, on_val = _sides(strata, train, val)
        assert shared <= on_train and shared <= on_val, seed
        vals.add(tuple(s.episode for s in val))
        assert split_segments(lengths, 0.2, seed, strata=strata) == (train, val)  # seeded
    assert len(vals) > 40  # still a draw: the seed picks the episodes


def test_stratified_split_grows_the_validation_set_only_when_too_small_for_every_stratum():
    # every lane position twice, in two light bins: one validation episode cannot hold six positions
    positions = [p for p in LANE_POSITIONS for _ in range(2)]
    strata = {e: episode_strata(_world_meta(p, 0.03 if e % 2 else 0.8)) for e, p in enumerate(positions)}
    lengths = {e: 20 for e in strata}
    for seed in range(20):
        train, val = split_segments(lengths, 0.1, seed, strata=strata)
        on_train, on_val = _sides(strata, train, val)
        assert on_train == on_val == {lab for labels in strata.values() for lab in labels}
        assert len(val) == 6  # one episode of each position; their light bins come with them


def test_split_without_drawn_worlds_is_the_seeded_draw_as_before(make_dataset):
    lengths = {e: 30 for e in range(10)}
    no_world = {e: episode_strata({"episode_index": e, "source": "clip.mp4"}) for e in lengths}
    assert set(no_world.values()) == {()}
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(10)
        expected_val = sorted(int(e) for e in order[:2])
        train, val = split_segments(lengths, 0.2, seed, strata=no_world)
        assert [s.episode for s in val] == expected_val and (train, val) == split_segments(lengths, 0.2, seed)
    # a dataset of imported video: the cache has no strata and splits as before
    root, _ = make_dataset(lengths=(12, 12, 12, 12))
    cache = FrameCache(root, progress=False)
    assert cache.strata == {e: () for e in range(4)}
    assert cache.split(0.25, 3) == split_segments(cache.lengths, 0.25, 3)


def test_the_cache_split_is_stratified_by_the_recorded_worlds_and_the_same_for_every_training_seed(make_dataset):
    import pandas as pd

    strata = _rare_strata(24)
    root, _ = make_dataset(lengths=(8,) * 24)
    for e in range(24):  # the world columns drive record stores with each episode
        path = layout.episode_meta_path(root, e)
        row = pd.read_parquet(path)
        position = next(lab for lab in strata[e] if lab.startswith("lane_position=")).split("=")[1]
        light = next(lab for lab in strata[e] if lab.startswith("light_bin=")).split("=")[1]
        elevation = {"dusk": 0.03, "low_sun": 0.25, "day": 0.8}[light]
        for k, v in _world_meta(position, elevation).items():
            row[k] = v
        row.to_parquet(path, index=False)
    cache = FrameCache(root, progress=False)
    assert cache.strata == strata
    splits = []
    for training_seed in range(4):  # what a training run seeds before it splits
        np.random.seed(training_seed)
        torch.manual_seed(training_seed)
        splits.append(cache.split(0.2, 7))
    assert all(s == splits[0] for s in splits)
    train, val = splits[0]
    assert splits[0] == split_segments(cache.lengths, 0.2, 7, strata=strata)
    on_train, on_val = _sides(strata, train, val)
    assert {"lane_position=middle_of_3", "light_bin=dusk"} <= on_train & on_val
