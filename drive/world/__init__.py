"""The driving world: tracks, a forward camera, the expert and the Gymnasium env ``drive/Drive-v0``.

Importing this package registers ``drive/Drive-v0`` with Gymnasium (the env module itself is
imported only when the env is made)::

    import gymnasium, drive.world
    env = gymnasium.make("drive/Drive-v0", scenario="racetrack")
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "drive/Drive-v0"

if ENV_ID not in registry:
    # 1200 steps: scenarios/default.yaml's 60 s at 20 Hz (the env also truncates at its scenario's
    # duration_s; pass max_episode_steps= to gymnasium.make for longer scenarios)
    register(id=ENV_ID, entry_point="drive.world.env:DriveEnv", max_episode_steps=1200)
