"""Stable sample ids derived from content (sha256; never Python's salted hash())."""

from __future__ import annotations

import hashlib
import json


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


def stable_seed(*parts) -> int:
    """A 63-bit seed from any strings/ints, the same on every run and machine."""
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def short_hash(text: str, n: int = 12) -> str:
    """Hash shown instead of a query that may hold personal data."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]
