"""drive.video_io: H.264 writing is deterministic and reads back close to its input."""

from __future__ import annotations

import numpy as np

from drive.video_io import VideoWriter, iter_video


def _frames(n: int = 24) -> list[np.ndarray]:
    base = np.random.default_rng(0).integers(0, 256, (78, 200, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def _encode(path, frames) -> bytes:
    with VideoWriter(path, 20.0, (78, 200), gop=10) as w:
        for i, f in enumerate(frames):
            w.write(f, timestamp_s=i / 20.0)
    return path.read_bytes()


def test_the_same_frames_encode_to_the_same_bytes_every_time_in_one_process(tmp_path):
    frames = _frames()
    first = _encode(tmp_path / "a.mp4", frames)
    for k in range(3):  # the row padding libx264 reads is written, not left as it was in memory
        assert _encode(tmp_path / f"b{k}.mp4", frames) == first
    decoded = list(iter_video(tmp_path / "a.mp4"))
    assert len(decoded) == len(frames)
    smooth = np.full((78, 200, 3), 120, np.uint8)
    smooth[:, 100:] = (30, 200, 90)
    _encode(tmp_path / "s.mp4", [smooth] * 4)
    back = list(iter_video(tmp_path / "s.mp4"))[0].astype(int)
    assert np.abs(back - smooth).mean() < 4  # colour conversion and CRF 23 keep a plain picture
