"""Check: replay's synthesized views against the simulator's true render, on recorded (H.264) test-track frames.

Issue 25, "Checked against the simulator", views. For each world (``plain``: ``scenarios/default.yaml``;
``randomized``: ``scenarios/train.yaml``'s randomized worlds on the test-split tracks) the expert records
``--episodes`` episodes of ``--duration-s`` s (``drive.data.recorder.record``; kept in ``OUT/data-<world>``
and reused). Each episode is driven again in the simulator from its recorded seeds with its recorded steering,
which gives the recorded car's pose at every frame. At every ``--every``-th frame, for each deviation (lateral
offset ±0.25, ±0.5, ±1.0 m, heading error ±2°, ±5°, alone and combined):

- the synthesized view: the *decoded H.264 frame* (what replay reads) re-rendered from the moved pose by
  :class:`drive.replay.homography.ViewSynthesizer`, with the camera the dataset records
  (:func:`drive.replay.recording.open_recording`);
- the true view: :class:`drive.world.camera.Camera` rendering the same world from the moved pose;
- SSIM (skimage, 7x7, RGB) and PSNR over the valid ground pixels (below the horizon, with a source), the
  valid share of all pixels, the filled share; the unwarped decoded frame's SSIM over the same pixels
  (the baseline); and the shipped ncp19's steering on the synthesized against the true view, both one step
  from the same recurrent state (the state after the episode's decoded frames up to this one): mean |Δ|
  in normalised steering, as a share of the full range [-1, 1] (|Δ| / 2) and of the spread ncp19's
  steering uses on the recorded frames (its 5th to 95th percentile).

The codec's own loss is reported too: the decoded frame against the true render at zero deviation.
Targets (issue 25): SSIM ≥ 0.95 at 0.5 m and 2°, ≥ 0.93 at 1 m and 5°, in both worlds (each sign
combination is listed; the verdict takes the worst). Writes ``OUT/views.csv`` (one row per world, deviation
and frame) and ``OUT/views.json``; the last printed line is one JSON object.

    .venv/bin/python tools/check_replay_views.py [--episodes 3] [--duration-s 20] [--every 10] [--out runs/check-replay-views]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from drive.data.layout import STEERING_APPLIED
from drive.policy.load import load_driver
from drive.replay.check import deviated_pose, masked_psnr, masked_ssim, record_test_episodes, scored_pixels
from drive.replay.homography import ViewSynthesizer
from drive.replay.recording import open_recording
from drive.world.camera import scenery_for
from drive.world.env import DriveEnv
from drive.world.scenario import Scenario, as_scenario

OFFSETS_M = (0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0)
HEADINGS_DEG = (0.0, 2.0, -2.0, 5.0, -5.0)
DEVIATIONS = [(o, h) for o, h in itertools.product(OFFSETS_M, HEADINGS_DEG) if (o, h) != (0.0, 0.0)]
TARGETS = {(0.5, 2.0): 0.95, (1.0, 5.0): 0.93}
"""SSIM targets by (|offset| m, |heading| deg): every sign combination must reach them."""


def worlds() -> dict[str, Scenario]:
    """The two worlds: the plain test road, and the training scenario's randomized worlds on the test tracks."""
    train = as_scenario("train")
    randomized = dataclasses.replace(
        train, name="randomized-test", track=dataclasses.replace(train.track, split="test", seeds=None)
    )
    return {"plain": as_scenario("default"), "randomized": randomized}


def recorded_poses(scenario: Scenario, meta: dict, steering: np.ndarray) -> tuple[DriveEnv, list[tuple]]:
    """The simulator driven again through a recorded episode: the env (its world) and the pose of every frame."""
    env = DriveEnv(scenario, off_road="terminate")
    _, info = env.reset(seed=int(meta["reset_seed"]), options={"track_seed": int(meta["track_seed"])})
    poses = [(info["x_m"], info["y_m"], info["yaw_rad"])]
    for u in steering[:-1]:
        _, _, terminated, _, info = env.step(np.array([u], np.float32))
        poses.append((info["x_m"], info["y_m"], info["yaw_rad"]))
        if terminated:
            break
    return env, poses


def steer_batch(driver, frames: list[np.ndarray], state, dt_s: float) -> np.ndarray:
    """ncp19's steering for each frame, every one a single step from the same ``state`` (1, S)."""
    batch = len(frames)
    states = state.repeat(batch, 1) if isinstance(state, torch.Tensor) else np.repeat(state, batch, axis=0)
    steering, _ = driver.step(np.stack(frames), states, np.full(batch, dt_s, np.float32))
    return np.asarray(steering, np.float64).reshape(-1)


def check_world(name: str, scenario: Scenario, data: Path, every: int, driver) -> tuple[list[dict], dict]:
    rec = open_recording(data)
    rows, codec, used = [], [], []
    for e in rec.episodes:
        table = rec.reader.episode_table(e)
        meta = rec.reader.episode_meta(e)
        frames = rec.frames(e)
        env, poses = recorded_poses(scenario, meta, table[STEERING_APPLIED].to_numpy(np.float64))
        cam, scenery = env.camera, scenery_for(env.track, world=env.world)
        synth = ViewSynthesizer(rec.cameras[e])
        dt_s = 1.0 / rec.fps
        state = driver.initial_state(1)
        for k in range(len(poses)):
            recorded = frames[k]
            x, y, yaw = poses[k]
            if k % every == 0 and k > 0:
                true0 = cam.render(scenery, x, y, yaw).copy()
                ground = synth.ground.reshape(synth.valid.shape)
                codec.append((masked_ssim(true0, recorded, ground), masked_psnr(true0, recorded, ground)))
                views, trues = [], []
                for offset, heading_deg in DEVIATIONS:
                    dyaw = math.radians(heading_deg)
                    true = cam.render(scenery, *deviated_pose(x, y, yaw, offset, dyaw)).copy()
                    view, fill = synth.warp(recorded, 0.0, offset, dyaw)
                    mask = scored_pixels(synth)
                    rows.append(
                        {
                            "world": name,
                            "episode": int(e),
                            "frame": k,
                            "offset_m": offset,
                            "heading_deg": heading_deg,
                            "ssim": masked_ssim(true, view, mask),
                            "psnr_db": masked_psnr(true, view, mask),
                            "ssim_unwarped": masked_ssim(true, recorded, mask),
                            "psnr_unwarped_db": masked_psnr(true, recorded, mask),
                            "valid_share": float(mask.mean()),
                            "fill_share": fill,
                        }
                    )
                    views.append(view)
                    trues.append(true)
                s_view = steer_batch(driver, views, state, dt_s)
                s_true = steer_batch(driver, trues, state, dt_s)
                for row, a, b in zip(rows[-len(DEVIATIONS) :], s_view, s_true):
                    row["steer_synth"], row["steer_true"] = float(a), float(b)
            steering, state = driver.step(recorded[None], state, np.array([dt_s], np.float32))
            used.append(float(np.asarray(steering).reshape(-1)[0]))
        env.close()
    p5, p95 = np.percentile(used, [5, 95])
    extra = {
        "episodes": len(rec.episodes),
        "frames_checked": len(codec),
        "codec_ssim": float(np.mean([c[0] for c in codec])),
        "codec_psnr_db": float(np.mean([c[1] for c in codec])),
        "ncp19_steering_p5_p95": [float(p5), float(p95)],
    }
    return rows, extra


def summarise(df: pd.DataFrame, spread: dict[str, float]) -> pd.DataFrame:
    df = df.assign(steer_abs_delta=(df["steer_synth"] - df["steer_true"]).abs())
    g = df.groupby(["world", "offset_m", "heading_deg"], sort=False)
    out = g.agg(
        frames=("ssim", "size"),
        ssim=("ssim", "mean"),
        ssim_min=("ssim", "min"),
        psnr_db=("psnr_db", "mean"),
        ssim_unwarped=("ssim_unwarped", "mean"),
        psnr_unwarped_db=("psnr_unwarped_db", "mean"),
        valid_share=("valid_share", "mean"),
        fill_share=("fill_share", "mean"),
        steer_abs_delta=("steer_abs_delta", "mean"),
    ).reset_index()
    out["steer_delta_share_full"] = out["steer_abs_delta"] / 2.0
    out["steer_delta_share_used"] = out["steer_abs_delta"] / out["world"].map(spread)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/check-replay-views"))
    ap.add_argument("--episodes", type=int, default=3, help="recorded episodes per world (default 3)")
    ap.add_argument("--duration-s", type=float, default=20.0, help="length of each recorded episode, s")
    ap.add_argument("--every", type=int, default=10, help="check every n-th frame (default 10)")
    ap.add_argument("--checkpoint", default="ncp19", help="the driver whose steering is compared (default ncp19)")
    args = ap.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    driver = load_driver(args.checkpoint)
    rows, extras = [], {}
    for name, scenario in worlds().items():
        data = args.out / f"data-{name}"
        record_test_episodes(scenario, data, args.episodes, args.duration_s)
        r, extras[name] = check_world(name, scenario, data, args.every, driver)
        rows += r
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "views.csv", index=False)
    spread = {w: float(np.diff(x["ncp19_steering_p5_p95"])[0]) for w, x in extras.items()}
    table = summarise(df, spread)

    pd.set_option("display.width", 200)
    print(
        table.to_string(
            index=False,
            float_format=lambda v: f"{v:.3f}",
            columns=[
                "world",
                "offset_m",
                "heading_deg",
                "ssim",
                "ssim_min",
                "psnr_db",
                "ssim_unwarped",
                "valid_share",
                "fill_share",
                "steer_abs_delta",
                "steer_delta_share_full",
                "steer_delta_share_used",
            ],
        )
    )
    verdicts = {}
    for world in table["world"].unique():
        w = table[table["world"] == world]
        print(
            f"\n{world}: {extras[world]['episodes']} episode(s), {extras[world]['frames_checked']} frames checked; "
            f"codec (decoded H.264 vs true render, ground pixels): SSIM {extras[world]['codec_ssim']:.3f}, "
            f"PSNR {extras[world]['codec_psnr_db']:.1f} dB; ncp19 steering 5-95 % spread "
            f"{spread[world]:.3f}"
        )
        for (off, head), target in TARGETS.items():
            sel = w[(w["offset_m"].abs() == off) & (w["heading_deg"].abs() == head)]
            same = sel[np.sign(sel["offset_m"]) == np.sign(sel["heading_deg"])]
            worst = float(sel["ssim"].min())
            verdicts[f"{world}_{off:g}m_{head:g}deg"] = {
                "target": target,
                "ssim_worst_signs": round(worst, 4),
                "ssim_same_signs": round(float(same["ssim"].mean()), 4),
                "ssim_all_signs": round(float(sel["ssim"].mean()), 4),
                "ssim_unwarped": round(float(sel["ssim_unwarped"].mean()), 4),
                "psnr_db": round(float(sel["psnr_db"].mean()), 2),
                "valid_share": round(float(sel["valid_share"].mean()), 4),
                "steer_delta_share_full": round(float(sel["steer_delta_share_full"].mean()), 4),
                "met": worst >= target,
            }
            v = verdicts[f"{world}_{off:g}m_{head:g}deg"]
            print(
                f"  {off:g} m & {head:g} deg: SSIM {v['ssim_all_signs']:.3f} (same signs {v['ssim_same_signs']:.3f}, "
                f"worst sign combination {worst:.3f}; unwarped {v['ssim_unwarped']:.3f}), target {target}: "
                f"{'met' if v['met'] else 'NOT met'}"
            )
    summary = {
        "check": "replay_views",
        "episodes_per_world": args.episodes,
        "duration_s": args.duration_s,
        "every": args.every,
        "worlds": extras,
        "targets": verdicts,
        "all_targets_met": all(v["met"] for v in verdicts.values()),
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    (args.out / "views.json").write_text(
        json.dumps({**summary, "table": table.to_dict("records")}, indent=1, default=float)
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
