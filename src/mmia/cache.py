"""Content-addressed on-disk store for per-sample computed values.

Engine: SQLite, from the standard library. Why: each `put_many` is one transaction, and
SQLite's write-ahead log makes a transaction either wholly present or wholly absent after the
writing process is killed (SIGKILL included), so a resumed run finds every batch that finished
and nothing half-written; readers never block the writer; one file, nothing to install.
(LMDB would add a dependency and a map size to guess; Parquet shards would need our own
atomic-rename and compaction logic.)

Keys are sha256 digests of (model fingerprint, sample id, perturbation id, method, method
version), so a changed model, perturbation or method version never reads a stale value.
Values are dicts of numpy arrays serialised with safetensors (no pickle anywhere).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

Value = dict[str, np.ndarray]


def default_cache_dir() -> Path:
    """mmia's cache root: the value cache, and the testbeds in its `testbeds/` folder."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmia", appauthor=False))


def make_key(model: str, sample_id: str, perturbation: str = "", method: str = "", version: str = "") -> str:
    blob = json.dumps([model, sample_id, perturbation, method, version], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fingerprint_dir(path: str | Path) -> str:
    """Fingerprint a Hugging Face model directory without reading all of its weights.

    Hashes config.json, each safetensors file's name, size and header (tensor names, shapes,
    offsets) and three 1 MiB samples of its data: any retraining changes it, and a multi-GB
    checkpoint is fingerprinted in milliseconds.
    """
    path = Path(path)
    h = hashlib.sha256()
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json"):
        f = path / name
        if f.exists():
            h.update(name.encode())
            h.update(f.read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            h.update(fh.read(min(header_len, 64 << 20)))
            for frac in (0.0, 0.5, 1.0):
                fh.seek(max(0, int((size - (1 << 20)) * frac)))
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:20]


def _encode(value: Value) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in value.items()})


def _decode(blob: bytes) -> Value:
    from safetensors.numpy import load

    return load(blob)


class Cache:
    """A key -> dict-of-arrays store in one SQLite file; safe to kill at any moment."""

    def __init__(self, path: str | Path | None = None):
        path = Path(path) if path is not None else default_cache_dir() / "values.sqlite"
        if path.suffix != ".sqlite":
            path = path / "values.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=120, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a committed transaction survives a killed process; only power loss may undo
        # the latest ones, and never leaves the file corrupt.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, created REAL)"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._conn.close()

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def __contains__(self, key: str) -> bool:
        return self._conn.execute("SELECT 1 FROM entries WHERE key=?", (key,)).fetchone() is not None

    def get(self, key: str) -> Value | None:
        row = self._conn.execute("SELECT value FROM entries WHERE key=?", (key,)).fetchone()
        return None if row is None else _decode(row[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for k, blob in self._conn.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                out[k] = _decode(blob)
        return out

    def missing(self, keys: Sequence[str]) -> list[str]:
        present: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            present.update(k for (k,) in self._conn.execute(f"SELECT key FROM entries WHERE key IN ({marks})", chunk))
        return [k for k in keys if k not in present]

    def put_many(self, items: dict[str, Value]) -> None:
        """Write all items in one transaction: after a kill, all of them are there or none."""
        rows = [(k, _encode(v), time.time()) for k, v in items.items()]
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", rows)

    def put(self, key: str, value: Value) -> None:
        self.put_many({key: value})


def cached_map(
    cache: Cache | None,
    keys: Sequence[str],
    items: Sequence,
    compute: Callable[[list], Iterable[Value]],
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[Value]:
    """Values for `items`, computing only those whose key is not cached, batch by batch.

    `compute` maps a list of items to one value each. Each computed batch is written before
    the next starts, so a killed run loses at most one batch. `on_batch(n)` reports progress
    (cached items are reported at once).
    """
    if len(keys) != len(items):
        raise ValueError("keys and items differ in length")
    found = cache.get_many(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in found]
    if on_batch and len(keys) - len(todo):
        on_batch(len(keys) - len(todo))
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        values = list(compute([items[i] for i in idx]))
        if len(values) != len(idx):
            raise RuntimeError(f"compute returned {len(values)} values for {len(idx)} items")
        batch = {keys[i]: v for i, v in zip(idx, values, strict=True)}
        if cache is not None:
            cache.put_many(batch)
        found.update(batch)
        if on_batch:
            on_batch(len(idx))
    return [found[k] for k in keys]
