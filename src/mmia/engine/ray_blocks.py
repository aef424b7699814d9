"""The Ray engine's side that every command shares: blocks of rows to actors, their Parquet shards back.

A command's driver validates its data, finds in `OUT/shards/<run key>/` the ids some shard already
holds (`done_ids`), and hands the other rows to `run_blocks`: blocks of row numbers become a Ray
Data dataset, `map_batches` sends each to an actor (a `BlockWorker` subclass that loads its models
once, reads its own rows with `rows_of` and turns them into one Parquet file), and the driver
writes each file it gets back into the shard folder (written aside, then renamed: a shard is
whole or absent), so a rerun computes only what no shard holds and the results folder needs no
shared file system across machines.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from mmia.data.schema import Sample
from mmia.errors import InputError

SHARDS = "shards"
META_KEY = b"mmia"  # the Parquet metadata key of a shard's JSON facts


def file_digest(path: Path) -> str:
    """sha256 of the data file's bytes (of every file, by relative path, for a datasets directory)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_digest(path) -> str | None:
    """The cache's fingerprint of a model directory, plus its JSON files (a PEFT adapter's config)."""
    from mmia.cache import fingerprint_dir

    if path is None:
        return None
    p = Path(path)
    h = hashlib.sha256(fingerprint_dir(p).encode())
    for f in sorted(p.glob("*.json")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:20]


def rows_of(path: Path, rows: list[int]) -> list[Sample]:
    """The samples at the given row numbers, read from the file (they were validated by the driver)."""
    from mmia.data.loading import scan_samples

    want, last, found = set(rows), max(rows), {}
    for item in scan_samples(path, skip_bad=True, check_media_files=False):
        if isinstance(item, Sample) and item.row in want:
            found[item.row] = item
        if item.row >= last:
            break
    missing = [r for r in rows if r not in found]
    if missing:
        raise InputError("changed while the run was reading it (the row is gone or no longer valid)", path,
                         missing[0])
    return [found[r] for r in rows]


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (Linux and macOS), or None."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError):
        return None


def write_atomic(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def read_shards(shard_dir: Path, columns: list[str] | None = None) -> list:
    """Every whole shard of a run (pyarrow tables, by file name); unreadable ones are dropped."""
    import pyarrow.parquet as pq

    tables = []
    for p in sorted(shard_dir.glob("rows-*.parquet")):
        try:
            tables.append(pq.read_table(p, columns=columns))
        except Exception:  # noqa: BLE001  (a shard is renamed into place whole; this is not one of ours)
            p.unlink(missing_ok=True)
    return tables


def done_ids(shard_dir: Path) -> set[str]:
    done: set[str] = set()
    for t in read_shards(shard_dir, columns=["id"]):
        done.update(t.column("id").to_pylist())
    return done


def block_size(n_todo: int, workers: int, batch_size: int, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, block_rows)
    size = math.ceil(n_todo / (4 * workers)) if n_todo else 1
    size = batch_size * math.ceil(size / batch_size)  # whole forward batches
    return int(min(max(size, batch_size), 1024))


def shard_folder(out_dir, key: dict) -> Path:
    """`OUT/shards/<digest of key>/`, created, with the key itself in run.json for people."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(out_dir) / SHARDS / digest
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


class BlockWorker:
    """A Ray Data actor over blocks of rows: subclasses load their models in `__init__` (calling
    `super().__init__`) and implement `shard(samples) -> (Parquet bytes)`. Media that does not
    decode (an InputError) goes back to the driver as an error naming the row, not as a crash."""

    def __init__(self, *, path: str, threads: int, fault: str | None = None):
        import torch

        from mmia import progress

        torch.set_num_threads(max(1, threads))
        progress.set_quiet(True)
        progress.quiet_libraries()
        self.path, self.fault = Path(path), fault

    def shard(self, samples: list[Sample]) -> bytes:
        raise NotImplementedError

    def facts(self) -> dict:
        """What every shard's metadata holds about the worker that wrote it."""
        return {"pid": os.getpid(), "peak_rss_mib": peak_rss_mib()}

    def __call__(self, batch: dict) -> dict:
        from mmia.engine.ray_cluster import fault_hook

        fault_hook(self.fault)
        out = {"name": [], "shard": [], "n": [], "error": [], "error_row": []}
        for block_rows in batch["rows"]:
            rows = [int(r) for r in str(block_rows).split(",")]
            try:
                samples = rows_of(self.path, rows)
                blob = self.shard(samples)
            except InputError as exc:
                out["name"].append("")
                out["shard"].append(b"")
                out["n"].append(0)
                out["error"].append(exc.reason)
                out["error_row"].append(-1 if exc.row is None else int(exc.row))
                continue
            digest = hashlib.sha256("\n".join(s.id for s in samples).encode()).hexdigest()[:12]
            out["name"].append(f"rows-{min(rows):09d}-{digest}.parquet")
            out["shard"].append(blob)
            out["n"].append(len(samples))
            out["error"].append("")
            out["error_row"].append(-1)
        return out


def run_blocks(*, path: Path, todo: list[int], worker, kwargs: dict, shard_dir: Path, ray_address, workers: int,
               gpus_per_worker: float, cpus_per_worker, batch_size: int, block_rows: int | None,
               description: str) -> tuple[dict, set[str]]:
    """Score the rows `todo` of the data file at `path` on `workers` actors of class `worker`
    (constructed with `kwargs` plus path, threads and the test fault hook); each returned shard is
    written into `shard_dir` as it arrives. Returns (facts for results.json, names of new shards)."""
    from mmia.engine.ray_cluster import FAULT_ENV, ray_session, worker_resources
    from mmia.progress import progress_bar

    info: dict = {"computed": 0}
    new: set[str] = set()
    with ray_session(ray_address) as session:
        import ray

        remote = worker_resources(session, workers, gpus_per_worker, cpus_per_worker)
        size = block_size(len(todo), workers, batch_size, block_rows)
        blocks = [todo[s:s + size] for s in range(0, len(todo), size)]
        ds = ray.data.from_items([{"rows": ",".join(map(str, b))} for b in blocks])
        kwargs = {**kwargs, "path": str(path), "threads": int(remote["num_cpus"]),
                  "fault": os.environ.get(FAULT_ENV) or None}
        ds = ds.map_batches(worker, batch_size=1, batch_format="numpy", fn_constructor_kwargs=kwargs,
                            **{k: v for k, v in remote.items() if v is not None})
        info.update(address=session.address, started_here=session.started_here, cpus_per_worker=remote["num_cpus"],
                    blocks=len(blocks), block_rows=size)
        with progress_bar(f"{description} {len(todo)} samples on {workers} Ray worker(s)", len(todo),
                          unit="samples") as bar:
            for out in ds.iter_rows():
                if out["error"]:
                    row = int(out["error_row"])
                    raise InputError(str(out["error"]), path, row if row >= 0 else None)
                write_atomic(shard_dir / str(out["name"]), bytes(out["shard"]))
                new.add(str(out["name"]))
                info["computed"] += int(out["n"])
                bar.advance(int(out["n"]))
    return info, new
