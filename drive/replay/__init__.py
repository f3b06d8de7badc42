"""Closed loop on recorded drives: the replay world ``drive/Replay-v0``.

A recorded (or imported) drive gives a path; the learner deviates from it by its own steering, and sees
the recorded frame re-rendered from where it is (a ground-plane homography below the horizon, a pure
rotation above it), with PilotNet's intervention rule (1 m). Importing this package registers the env::

    import gymnasium, drive.replay
    env = gymnasium.make("drive/Replay-v0", data="data/train")

- :mod:`drive.replay.homography`: the view synthesis (:class:`~drive.replay.homography.ViewSynthesizer`);
- :mod:`drive.replay.path`: the recorded path and the learner's deviation kinematics;
- :mod:`drive.replay.recording`: a dataset opened for replay (paths, cameras, checks);
- :mod:`drive.replay.env`: the Gymnasium env;
- :mod:`drive.replay.check`: synthesized views against the simulator's true render (SSIM).
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "drive/Replay-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="drive.replay.env:ReplayEnv")
