"""Video files, written and read with PyAV (FFmpeg): the one video helper of the package.

Writing: H.264 (libx264) in yuv420p in an MP4 container with the index up front (``+faststart``), which
browsers, the Hugging Face dataset viewer and LeRobot all play. :class:`VideoWriter` takes RGB uint8
frames, optionally with their own timestamps (a variable frame rate, on a 1/90000 s clock), and makes
the file appear (renamed from a hidden temporary) only when it is closed with ``keep=True``.

Reading: :func:`iter_video` decodes anything FFmpeg can, H.264 and the older MPEG-4 Part 2 (OpenCV
``mp4v``) files alike, to RGB uint8 frames.
"""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from drive.errors import UserError
from drive.io import atomic_path

CODEC = "h264"
PIX_FMT = "yuv420p"
CLOCK_HZ = 90000
"""Time base of written videos with explicit timestamps (the MPEG clock: exact for 10, 15, 20, 24, 25, 30, 60 Hz)."""
DEFAULT_CRF = 23
"""libx264 constant rate factor: 23 is FFmpeg's default; lower is larger and closer to the source."""
DEFAULT_PRESET = "veryfast"
"""libx264 preset: ``veryfast`` encodes the small frames here faster than OpenCV's mp4v (tools/bench_sim.py)."""


X264_PARAMS = "mbtree=0"
"""libx264 options beyond the preset. With macroblock-tree rate control on (libx264's default), the
same frames encoded to different bytes from one video to the next in a process (measured: decoded
frames up to 38/255 apart between two recordings of one seed); with it off the bytes repeat, and a
video is ~1.5x larger at the same CRF."""


def _as_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _yuv420p_frame(rgb: np.ndarray):
    """An ``av.VideoFrame`` in yuv420p from an RGB uint8 image, every byte of its planes written.

    FFmpeg pads each plane's rows to an aligned line size; ``VideoFrame.from_ndarray`` leaves that
    padding uninitialised, and libx264 reads it. Here it repeats each row's last pixel, so the
    encoder's input never depends on what was in memory before.
    """
    import av

    h, w = rgb.shape[:2]
    flat = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    frame = av.VideoFrame(w, h, PIX_FMT)
    offset = 0
    for plane, (ph, pw) in zip(frame.planes, ((h, w), (h // 2, w // 2), (h // 2, w // 2))):
        values = flat[offset : offset + ph * pw].reshape(ph, pw)
        offset += ph * pw
        rows = np.empty((ph, plane.line_size), np.uint8)
        rows[:, :pw] = values
        rows[:, pw:] = values[:, -1:]
        plane.update(rows)
    return frame


class VideoWriter:
    """Write RGB uint8 frames (H, W, 3) of one size to an H.264/yuv420p MP4 at ``path``, atomically.

    ``size_hw`` must be even in both directions (yuv420p halves the colour planes). ``gop`` is the
    keyframe interval in frames (None: libx264's default); a short one makes random access (LeRobot's
    reader) cheaper at some cost in size. ``threads`` is the encoder's thread count (0: libx264 decides,
    about 1.5 per core; with 1 the encoder is ~2x slower than OpenCV's mp4v on 2 cores). RGB becomes
    yuv420p (BT.601, limited range, as FFmpeg's own conversion) with OpenCV, ~2.5x faster than swscale.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size_hw: tuple[int, int],
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        gop: int | None = None,
        threads: int = 0,
    ):
        import av

        self.path = Path(path)
        self.fps = float(fps)
        self.h, self.w = int(size_hw[0]), int(size_hw[1])
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"{self.path}: video frame rate must be a positive number, got {fps!r}")
        if self.h <= 0 or self.w <= 0 or self.h % 2 or self.w % 2:
            raise ValueError(f"{self.path}: H.264 yuv420p needs an even frame size, got {self.h}x{self.w} (HxW)")
        self.frames = 0
        self._last_pts = -1
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        try:
            self._container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=_as_fraction(self.fps))
            stream.width, stream.height, stream.pix_fmt = self.w, self.h, PIX_FMT
            options = {"crf": str(int(crf)), "preset": preset, "x264-params": X264_PARAMS}
            if gop is not None:
                options["g"] = str(int(gop))
            stream.options = options
            stream.codec_context.thread_count = int(threads)
            stream.codec_context.time_base = Fraction(1, CLOCK_HZ)
            stream.time_base = Fraction(1, CLOCK_HZ)
            self._stream = stream
        except BaseException as exc:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def write(self, rgb: np.ndarray, timestamp_s: float | None = None) -> None:
        """Append a frame; ``timestamp_s`` (s from the first frame) defaults to ``frames / fps``."""

        if self._container is None:
            raise ValueError(f"{self.path}: the video writer is closed")
        if rgb.shape != (self.h, self.w, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame must be uint8 {(self.h, self.w, 3)}, got {rgb.dtype} {rgb.shape}")
        t = self.frames / self.fps if timestamp_s is None else float(timestamp_s)
        pts = max(int(round(t * CLOCK_HZ)), self._last_pts + 1)
        frame = _yuv420p_frame(rgb)
        frame.pts = pts
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it into place (or throw it away when ``keep`` is False)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            try:
                if keep:
                    for packet in self._stream.encode(None):
                        container.mux(packet)
            finally:
                container.close()  # writes the trailer: can fail too (disk full)
        except BaseException as exc:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary
            raise
        if keep:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("discarded"), None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(keep=exc_type is None)


@contextlib.contextmanager
def video_writer(
    path: str | os.PathLike, fps: float, size_hw: tuple[int, int], **options: Any
) -> Iterator[VideoWriter]:
    """A :class:`VideoWriter` that is kept when the block ends normally and discarded on an exception."""
    writer = VideoWriter(path, fps, size_hw, **options)
    try:
        yield writer
    except BaseException:
        writer.close(keep=False)
        raise
    writer.close(keep=True)


@contextlib.contextmanager
def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: video not found")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise UserError(f"{path}: unreadable video ({exc})") from None
    try:
        if not container.streams.video:
            raise UserError(f"{path}: unreadable video (no video stream)")
        yield container
    finally:
        container.close()


def iter_video(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video one by one, RGB uint8 (H, W, 3), at most ``max_frames`` of them.

    FileNotFoundError when the file is missing; ValueError naming the file when FFmpeg cannot read it
    or it holds no frame.
    """
    for _, rgb in iter_video_timed(path, max_frames):
        yield rgb


def iter_video_timed(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Like :func:`iter_video`, with each frame's presentation time: ``(t, rgb)``, ``t`` in seconds from
    the first frame (``pts * time_base``; NaN for a frame without a timestamp)."""
    import av

    n = 0
    t0 = None
    with _open(path) as container:
        if max_frames is not None and max_frames <= 0:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                t = math.nan if frame.time is None else float(frame.time)
                if t0 is None:
                    t0 = t
                yield t - t0, frame.to_ndarray(format="rgb24")
                n += 1
                if max_frames is not None and n >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            if n == 0:
                raise UserError(f"{path}: unreadable video ({exc})") from None
            return  # a truncated file: keep the frames that decoded
    if n == 0:
        raise UserError(f"{path}: unreadable video (no frame could be decoded)")


def frame_times(path: str | os.PathLike) -> np.ndarray:
    """The presentation times of a video's frames, s from the first frame, in display order, read from
    the container's packets without decoding (``pts * time_base``); raises UserError naming the file
    when a packet carries no timestamp (then only decoding can tell)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        pts = []
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream flush packet
                continue
            if packet.pts is None:
                raise UserError(f"{path}: a video packet carries no presentation timestamp")
            pts.append(packet.pts)
        if not pts:
            raise UserError(f"{path}: unreadable video (no frame)")
        t = np.sort(np.asarray(pts, dtype=np.float64)) * float(stream.time_base)
    return t - t[0]


def decode_video(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """All (at most ``max_frames``) frames of a video as one RGB uint8 array (N, H, W, 3)."""
    return np.stack(list(iter_video(path, max_frames=max_frames)), axis=0)


def video_fps(path: str | os.PathLike) -> float:
    """Frame rate stored in a video's header, Hz (0.0 when the container does not say)."""
    with _open(path) as container:
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    fps = float(rate) if rate else 0.0
    return fps if math.isfinite(fps) and fps > 0 else 0.0


def video_info(path: str | os.PathLike) -> dict[str, Any]:
    """The stream's properties under LeRobot's ``video.*`` keys: codec, pix_fmt, fps, height, width,
    channels, and ``has_audio``."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        return {
            "video.height": int(stream.height),
            "video.width": int(stream.width),
            "video.codec": stream.codec_context.name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(fps) if fps == int(fps) else fps,
            "video.channels": 1 if stream.pix_fmt and "gray" in stream.pix_fmt else 3,
            "has_audio": bool(container.streams.audio),
        }
