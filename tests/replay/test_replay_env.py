"""drive/Replay-v0: registered, check_env clean, seeds pick episodes, the recorded frame at zero deviation."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drive.replay
from drive.replay.env import ReplayEnv


def test_check_env_is_clean(recording):
    env = ReplayEnv(recording(episodes=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_registered_and_made_by_id(recording):
    env = gym.make(drive.replay.ENV_ID, data=recording(), render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (78, 200, 3) and obs.dtype == np.uint8
    assert info["frame_index"] == 0 and info["interventions"] == 0 and info["fill_fraction"] == 0.0
    env.step(np.array([0.5], np.float32))
    side_by_side = env.render()
    assert side_by_side.shape == (78, 400, 3)
    env.close()


def test_zero_deviation_gives_back_the_recorded_frames_exactly(recording):
    env = ReplayEnv(recording(steering=np.zeros(12)))
    frames = env.recording.frames(0)
    obs, info = env.reset(seed=0)
    assert np.array_equal(obs, frames[0])
    for k in range(1, 12):
        obs, _, _, truncated, info = env.step(np.array([0.0], np.float32))
        assert np.array_equal(obs, frames[k]) and info["frame_index"] == k
    assert truncated


def test_seeds_and_options_pick_the_episode(recording):
    env = ReplayEnv(recording(episodes=2))
    assert [env.reset(seed=s)[1]["episode"] for s in range(4)] == [0, 1, 0, 1]
    _, info = env.reset(options={"episode": 1, "start_frame": 5})
    assert (info["episode"], info["frame_index"]) == (1, 5)
    with pytest.raises(ValueError, match="episode"):
        env.reset(options={"episode": 7})
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"lap": 1})


def test_bad_actions_are_refused(recording):
    env = ReplayEnv(recording())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="one steering value"):
        env.step(np.zeros(2, np.float32))
