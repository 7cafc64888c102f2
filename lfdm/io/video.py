"""Video files and frame folders: lazy decoding, probing and atomic writing.

Every failure names the file: a missing path, a truncated file (fewer frames than its header
promises) or bytes no decoder understands all raise ``VideoError``.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

import numpy as np

from lfdm.io import storage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


class VideoError(ValueError):
    """A video that is missing, truncated or undecodable; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def list_frame_files(folder: str) -> List[str]:
    """Image files of a frame folder in natural order (frame_2 before frame_10)."""
    names = [storage.basename(u) for u in storage.listdir(folder)]
    names = [n for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    return [storage.join(folder, n) for n in sorted(names, key=_natural_key)]


def is_frame_folder(uri: str) -> bool:
    return storage.is_dir(uri)


def probe(uri: str) -> VideoInfo:
    """Frame count, fps and size. Video files are decoded fully when the header has no count."""
    if not storage.exists(uri):
        raise VideoError(f"video not found: {uri}")
    if is_frame_folder(uri):
        files = list_frame_files(uri)
        if not files:
            raise VideoError(f"frame folder has no images ({', '.join(IMAGE_SUFFIXES)}): {uri}")
        first = _read_image(files[0])
        return VideoInfo(len(files), 0.0, first.shape[0], first.shape[1])
    frames = read_frames(uri)
    fps = _container_fps(uri)
    return VideoInfo(len(frames), fps, frames.shape[1], frames.shape[2])


def read_frames(uri: str, indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """Frames ``indices`` (file order, repeats allowed) as uint8 (N, H, W, 3); all frames if None.

    Decoding stops after the largest requested index.
    """
    if not storage.exists(uri):
        raise VideoError(f"video not found: {uri}")
    if is_frame_folder(uri):
        return _read_folder(uri, indices)
    return _read_video_file(uri, indices)


def _read_image(uri: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise VideoError(f"undecodable frame image {uri}: {exc}") from exc


def _read_folder(folder: str, indices: Optional[Sequence[int]]) -> np.ndarray:
    files = list_frame_files(folder)
    if not files:
        raise VideoError(f"frame folder has no images: {folder}")
    wanted = range(len(files)) if indices is None else indices
    for i in wanted:
        if not 0 <= i < len(files):
            raise VideoError(f"frame {i} requested but {folder} has {len(files)} frames")
    cache = {}
    out = []
    for i in wanted:
        if i not in cache:
            cache[i] = _read_image(files[i])
        out.append(cache[i])
    return np.stack(out)


def _open_container(uri: str):
    import av
    try:
        source = uri if not storage.is_s3(uri) else storage.bytes_io(uri)
        return av.open(source, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"undecodable video {uri}: {exc}") from exc


def _container_fps(uri: str) -> float:
    with _open_container(uri) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or 0
        return float(rate) if rate else 0.0


def _read_video_file(uri: str, indices: Optional[Sequence[int]]) -> np.ndarray:
    import av
    last = None if indices is None else max(indices, default=-1)
    frames: List[np.ndarray] = []
    with _open_container(uri) as container:
        if not container.streams.video:
            raise VideoError(f"undecodable video {uri}: no video stream")
        stream = container.streams.video[0]
        expected = int(stream.frames or 0)
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if last is not None and len(frames) > last:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            # Keep what decoded cleanly; the count checks below decide if it is enough.
            if not frames:
                raise VideoError(f"undecodable video {uri}: {exc}") from exc
            expected = max(expected, len(frames) + 1)
    if not frames:
        raise VideoError(f"undecodable video {uri}: no frame could be decoded")
    if last is None and expected and len(frames) < expected:
        raise VideoError(f"truncated video {uri}: decoded {len(frames)} of {expected} frames")
    if last is not None and last >= len(frames):
        what = "truncated video" if expected > len(frames) else "video too short"
        raise VideoError(f"{what} {uri}: frame {last} requested, only {len(frames)} decodable")
    if indices is None:
        return np.stack(frames)
    return np.stack([frames[i] for i in indices])


# ----------------------------------------------------------------------------- writing
def encode_video(frames: np.ndarray, fps: float = 12.0, fmt: str = "mp4", codec: Optional[str] = None) -> bytes:
    """uint8 (T, H, W, 3) -> bytes of an mp4 (H.264), avi (MJPEG) or gif file."""
    import av
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    buf = io.BytesIO()
    codec, pix_fmt, options = {
        "mp4": (codec or "libx264", "yuv420p", {"crf": "12", "preset": "veryfast"}),
        "avi": (codec or "mjpeg", "yuvj420p", {}),
        "gif": (codec or "gif", "rgb8", {}),
    }[fmt]
    height, width = frames.shape[1:3]
    if pix_fmt.startswith("yuv") and (height % 2 or width % 2):
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        height, width = frames.shape[1:3]
    with av.open(buf, mode="w", format=fmt) as container:
        from fractions import Fraction
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def write_video(uri: str, frames: np.ndarray, fps: float = 12.0, codec: Optional[str] = None) -> None:
    """Atomically write frames to ``uri``; the container follows the suffix (.mp4, .avi, .gif)."""
    fmt = os.path.splitext(str(uri))[1].lower().lstrip(".")
    if fmt not in ("mp4", "avi", "gif"):
        raise ValueError(f"unsupported video suffix for {uri}: use .mp4, .avi or .gif")
    storage.write_bytes(uri, encode_video(frames, fps, fmt, codec))


def write_frame_folder(uri: str, frames: Iterable[np.ndarray], pattern: str = "{:04d}.jpg") -> None:
    from PIL import Image
    storage.makedirs(uri)
    for i, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG" if pattern.endswith(".png") else "JPEG", quality=95)
        storage.write_bytes(storage.join(uri, pattern.format(i)), buf.getvalue())
