"""Lazy media decoding: images to RGB arrays, audio to mono float32 at a rate, video to frames.

A media reference is a resolved `Path` or the raw `bytes` of a file (datasets' Image/Audio
columns). Every decoder raises `MediaError` (an `InputError`) naming the file.
"""

from __future__ import annotations

import io
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmia.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
ANIMATED_SUFFIXES = {".gif", ".webp", ".tif", ".tiff", ".png", ".apng"}
VIDEO_FILE_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"}  # decoded with PyAV
VIDEO_FORMS = "a folder of frames, an animated GIF/WebP, a .npy array or an .mp4/.webm/.mkv/.mov/.avi file"

MediaRef = Path | bytes


class MediaError(InputError):
    """Media that cannot be read or decoded."""


def _name(ref: MediaRef) -> str:
    return str(ref) if isinstance(ref, Path) else f"<{len(ref)} bytes>"


def _open(ref: MediaRef):
    if isinstance(ref, (bytes, bytearray)):
        return io.BytesIO(ref)
    return ref


def load_image(ref: MediaRef, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to a uint8 RGB array (H, W, 3), optionally resized (bicubic)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(_open(ref)) as im:
            im = im.convert("RGB")
            if size is not None:
                wh = (size, size) if isinstance(size, int) else (size[1], size[0])
                im = im.resize(wh, Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise MediaError(f"image does not decode ({exc.__class__.__name__}: {exc})", _name(ref)) from None


def load_audio(ref: MediaRef, sampling_rate: int = 16000) -> np.ndarray:
    """Decode audio to mono float32 in [-1, 1] at `sampling_rate` (polyphase resampling)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        data, sr = sf.read(_open(ref), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, TypeError, ValueError) as exc:
        raise MediaError(f"audio does not decode ({exc})", _name(ref)) from None
    mono = data.mean(axis=1)
    if sr != sampling_rate:
        frac = Fraction(sampling_rate, sr).limit_denominator(1000)
        mono = resample_poly(mono, frac.numerator, frac.denominator).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def _pick(n: int, max_frames: int | None) -> list[int]:
    """Indices of the frames kept from `n`: all, or `max_frames` spread evenly over the whole clip."""
    if max_frames is None or n <= max_frames:
        return list(range(n))
    return np.linspace(0, n - 1, max_frames).round().astype(int).tolist()


def _resize(frame: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    from PIL import Image

    wh = (size, size) if isinstance(size, int) else (size[1], size[0])
    return np.asarray(Image.fromarray(frame).resize(wh, Image.BICUBIC))


def is_video_file(ref: MediaRef) -> bool:
    """A container file PyAV decodes: by suffix for a path, by its magic bytes for raw bytes."""
    if isinstance(ref, Path):
        return ref.suffix.lower() in VIDEO_FILE_SUFFIXES and not ref.is_dir()
    head = bytes(ref[:12])
    return (head[4:8] == b"ftyp"  # MP4 / MOV / M4V
            or head[:4] == b"\x1aE\xdf\xa3"  # Matroska / WebM (EBML)
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def _av_error(exc: Exception, ref: MediaRef) -> MediaError:
    reason = getattr(exc, "strerror", None) or str(exc)  # strerror: FFmpeg's reason without the path
    return MediaError(f"video does not decode ({reason})", _name(ref))


def _av_container(ref: MediaRef):
    """The opened container and its first video stream (MediaError when there is none)."""
    import av

    try:
        container = av.open(str(ref) if isinstance(ref, Path) else _open(ref))
    except (av.FFmpegError, OSError) as exc:
        raise _av_error(exc, ref) from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams if s.type in ("audio", "subtitle")})
        container.close()
        if not kinds:  # an MP4 cut short before its index (moov) opens with no stream or a bare 'data' one
            raise MediaError("video does not decode (no video or audio stream found; truncated?)", _name(ref))
        raise MediaError(f"video file has no video stream (only {', '.join(kinds)})", _name(ref))
    return container, container.streams.video[0]


def _av_count(ref: MediaRef) -> int:
    """Frames in the first video stream: the container's count where it gives one (MP4, MOV, AVI),
    else a first pass counting packets without decoding them (WebM and Matroska give none)."""
    container, stream = _av_container(ref)
    with container:
        if stream.frames:
            return stream.frames
        return sum(1 for packet in container.demux(stream) if packet.size)


def _rgb(frame) -> np.ndarray:
    """A decoded PyAV frame as uint8 RGB (H, W, 3); the one place a frame is converted (and held)."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _av_decode(ref: MediaRef, n: int, max_frames: int | None, size) -> tuple[list[np.ndarray], int]:
    """Decode, converting and keeping only the frames `_pick(n, max_frames)` names (memory stays at
    max_frames frames; every frame without max_frames); returns them and the frames decoded."""
    keep = None if max_frames is None else set(_pick(n, max_frames))
    frames: list[np.ndarray] = []
    t = 0
    container, stream = _av_container(ref)
    with container:
        stream.thread_type = "AUTO"  # threaded decoding; frames still come out in order
        for t, frame in enumerate(container.decode(stream), start=1):
            if keep is None or t - 1 in keep:
                arr = _rgb(frame)
                frames.append(arr if size is None else _resize(arr, size))
    return frames, t


def _load_video_file(ref: MediaRef, max_frames: int | None, size) -> np.ndarray:
    import av

    try:
        n = _av_count(ref) if max_frames is not None else 0
        frames, decoded = _av_decode(ref, n, max_frames, size)
        if max_frames is not None and _pick(decoded, max_frames) != [i for i in _pick(n, max_frames) if i < decoded]:
            # The container's count (or the packets) was not the frames decoded (edit lists, a
            # damaged tail), so the picks were off: decode again, sampling over the true count.
            frames, decoded = _av_decode(ref, decoded, max_frames, size)
    except av.FFmpegError as exc:
        raise _av_error(exc, ref) from None
    if not frames:
        raise MediaError("video does not decode (no frame decodes)", _name(ref))
    return np.stack(frames)


def load_video(
    ref: MediaRef, max_frames: int | None = None, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Decode a video to uint8 frames (T, H, W, 3).

    Accepts a folder of frame images (natural sort order), an animated GIF/WebP/TIFF/PNG, a
    `.npy` uint8 array of shape (T, H, W, 3) (loaded without pickle), or a video file
    (`.mp4`, `.m4v`, `.mov`, `.webm`, `.mkv`, `.avi`; its first video stream, decoded with PyAV).
    `max_frames` samples frames evenly over the whole video; `size` resizes each frame (bicubic).
    """
    from PIL import Image, ImageSequence

    frames: list[np.ndarray]
    if isinstance(ref, Path) and ref.is_dir():
        paths = list_frames(ref)
        if not paths:
            raise MediaError("video folder holds no frame images", ref)
        return np.stack([load_image(paths[i], size) for i in _pick(len(paths), max_frames)])
    if is_video_file(ref):
        return _load_video_file(ref, max_frames, size)
    if isinstance(ref, Path) and ref.suffix.lower() == ".npy":
        try:
            arr = np.load(ref, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MediaError(f"video array does not load ({exc})", ref) from None
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise MediaError(f"video array has shape {arr.shape}, expected (T, H, W, 3)", ref)
        frames = list(arr.astype(np.uint8))
    else:
        try:
            with Image.open(_open(ref)) as im:
                frames = [np.asarray(f.convert("RGB"), dtype=np.uint8).copy() for f in ImageSequence.Iterator(im)]
        except (OSError, ValueError, SyntaxError) as exc:
            raise MediaError(f"video does not decode ({exc}); give {VIDEO_FORMS}", _name(ref)) from None
    frames = [frames[i] for i in _pick(len(frames), max_frames)]
    if size is not None:
        frames = [_resize(f, size) for f in frames]
    return np.stack(frames)


def _check_video_file(ref: MediaRef) -> None:
    """A video stream is there and its first frame decodes (the rest is not decoded)."""
    import av

    container, stream = _av_container(ref)
    with container:
        try:
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as exc:
            raise _av_error(exc, ref) from None
    if first is None:
        raise MediaError("video does not decode (no frame decodes)", _name(ref))


def check_media(ref: MediaRef, kind: str) -> None:
    """Cheap decodability check (headers, or one frame of a video file) run when a dataset loads."""
    from PIL import Image

    if kind == "image":
        try:
            with Image.open(_open(ref)) as im:
                im.verify()
        except Exception as exc:  # PIL raises many types for corrupt files
            raise MediaError(f"image does not decode ({exc.__class__.__name__}: {exc})", _name(ref)) from None
    elif kind == "audio":
        import soundfile as sf

        try:
            info = sf.info(_open(ref))
        except Exception as exc:  # libsndfile error types vary by version
            raise MediaError(f"audio does not decode ({exc})", _name(ref)) from None
        if info.frames == 0:
            raise MediaError("audio file holds no samples", _name(ref))
    elif kind == "video":
        if isinstance(ref, Path) and ref.is_dir():
            frames = list_frames(ref)
            if not frames:
                raise MediaError("video folder holds no frame images", ref)
            check_media(frames[0], "image")
        elif isinstance(ref, Path) and ref.suffix.lower() == ".npy":
            try:
                arr = np.load(ref, allow_pickle=False, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise MediaError(f"video array does not load ({exc})", ref) from None
            if arr.ndim != 4 or arr.shape[-1] != 3:
                raise MediaError(f"video array has shape {arr.shape}, expected (T, H, W, 3)", ref)
        elif is_video_file(ref):
            _check_video_file(ref)
        else:
            check_media(ref, "image")
    else:
        raise ValueError(kind)
