"""End to end: record two short expert episodes in the simulator, train a few steps, reload the checkpoint."""

import numpy as np
import torch

from drive.cli import main
from drive.data.reader import DatasetReader
from drive.data.recorder import record
from drive.policy.checkpoint import load_policy, read_config
from drive.train.loop import train


def test_record_train_reload_gives_the_same_outputs(tmp_path, small_config):
    data = record("train", 2, tmp_path / "rec", seed=0, duration_s=3.0, progress=False)
    reader = DatasetReader(data)
    assert len(reader.episodes) == 2
    result = train(small_config(data, epochs=1, batch_size=2, max_steps=3, val_fraction=0.5))
    assert len(result.progress["losses"]) == 3 and np.isfinite(result.progress["losses"]).all()
    out = tmp_path / "ckpt"
    config = read_config(out)
    assert config["policy"]["frame_period_s"] == 1.0 / reader.info.fps
    assert config["policy"]["max_steer_rad"] == reader.info.max_steer_rad

    frames = torch.from_numpy(reader.read_frames(0)[:12]).reshape(2, 6, 78, 200, 3)
    dt = torch.full((2, 6), 1.0 / reader.info.fps)
    with torch.no_grad():
        before, state_before = result.policy.eval()(frames, None, dt)
    latest = load_policy(out, weights=out / "train_state" / "model.safetensors")
    for name, value in result.policy.state_dict().items():  # a safetensors round trip keeps every bit
        torch.testing.assert_close(latest.state_dict()[name], value, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        after, state_after = latest(frames, None, dt)
    # same weights, same input: equal up to float32 rounding (kernels may block differently per call)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state_after, state_before, rtol=1e-5, atol=1e-6)
    # closed-loop stepping of the reloaded policy matches too
    y, _ = latest.step(frames[:, 0].numpy(), None, dt[:, 0].numpy())
    np.testing.assert_allclose(y, before[:, 0].numpy(), atol=1e-6)


def test_import_then_train_through_the_cli(tmp_path, capsys):
    import cv2

    src = tmp_path / "sc"
    src.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        img = rng.integers(0, 255, size=(120, 320, 3), dtype=np.uint8)
        cv2.imwrite(str(src / f"{i}.jpg"), img)
        lines.append(f"{i}.jpg {10 * np.sin(i / 5):.4f}")
    (src / "data.txt").write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "import",
                "--format",
                "sully-chen",
                str(src),
                "--fps",
                "20",
                "--out",
                str(tmp_path / "ds"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "ds"),
                "--out",
                str(tmp_path / "ck"),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--seq-len",
                "4",
                "--max-steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "drive import: 1 episode(s) added; 1 episode(s), 40 frame(s)" in out and "drive train: 2 step(s)" in out
    # one episode: validation is the last 20 % of it, by time
    assert read_config(tmp_path / "ck")["data"]["val_segments"] == [[0, 32, 40]]
