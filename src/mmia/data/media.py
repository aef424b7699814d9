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


def load_video(
    ref: MediaRef, max_frames: int | None = None, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Decode a video to uint8 frames (T, H, W, 3).

    Accepts a folder of frame images (natural sort order), an animated GIF/WebP/TIFF/PNG, or a
    `.npy` uint8 array of shape (T, H, W, 3) (loaded without pickle). `max_frames` samples
    frames evenly.
    """
    from PIL import Image, ImageSequence

    frames: list[np.ndarray]
    if isinstance(ref, Path) and ref.is_dir():
        paths = list_frames(ref)
        if not paths:
            raise MediaError("video folder holds no frame images", ref)
        if max_frames is not None and len(paths) > max_frames:
            paths = [paths[i] for i in np.linspace(0, len(paths) - 1, max_frames).round().astype(int)]
        return np.stack([load_image(p, size) for p in paths])
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
            raise MediaError(
                f"video does not decode ({exc}); give a folder of frames, an animated GIF/WebP or a .npy array",
                _name(ref),
            ) from None
    if max_frames is not None and len(frames) > max_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    if size is not None:
        wh = (size, size) if isinstance(size, int) else (size[1], size[0])
        frames = [np.asarray(Image.fromarray(f).resize(wh, Image.BICUBIC)) for f in frames]
    return np.stack(frames)


def check_media(ref: MediaRef, kind: str) -> None:
    """Cheap decodability check (headers, not full decode) run when a dataset loads."""
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
        else:
            check_media(ref, "image")
    else:
        raise ValueError(kind)
