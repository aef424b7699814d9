"""Stable sample ids derived from content (sha256; never Python's salted hash())."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path


def content_id(fields: dict) -> str:
    """A 16-hex-digit id from the row's content fields (text, prompt, answer, media as written).

    Media given as bytes are hashed by content; paths by the string the file holds, so the id
    does not change when the data folder moves.
    """
    canon = {}
    for key in sorted(fields):
        value = fields[key]
        if value is None:
            continue
        if isinstance(value, (bytes, bytearray)):
            value = "sha256:" + hashlib.sha256(value).hexdigest()
        canon[key] = str(value)
    blob = json.dumps(canon, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def sample_digest(sample) -> str:
    """sha256 (hex) of what a sample holds, independent of its id and file: its texts and its
    media's bytes (`media_digest`)."""
    from mmia.data.schema import MEDIA_FIELDS

    parts = [sample.text, sample.prompt, sample.answer] + [media_digest(getattr(sample, m)) for m in MEDIA_FIELDS]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def stable_seed(*parts) -> int:
    """A 63-bit seed from any strings/ints, the same on every run and machine."""
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def short_hash(text: str, n: int = 12) -> str:
    """Hash shown instead of a query that may hold personal data."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def media_digest(value) -> str | None:
    """sha256 of a medium's content: bytes as given, a decoded array, a file's bytes, or a
    folder's files (names and bytes, sorted). Cache keys use it rather than the path, so moving a data folder keeps
    its cached values and a file rewritten in place is never served stale ones. A path is read
    once per process while its size and modification time stay the same."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()
    if hasattr(value, "__array__"):  # decoded media (perturbed neighbours): dtype, shape and values
        import numpy as np

        arr = np.ascontiguousarray(value)
        return hashlib.sha256(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes()).hexdigest()
    path = Path(value)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return _digest_files(True, tuple((str(f), *_stamp(f)) for f in files))
    return _digest_files(False, ((str(path), *_stamp(path)),))


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=65536)
def _digest_files(folder: bool, files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in files:
        if folder:  # a folder's file names count too (frame order)
            h.update(Path(name).name.encode("utf-8"))
        with open(name, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()
