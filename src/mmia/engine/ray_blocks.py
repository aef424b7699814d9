"""The Ray engine's side that every command shares: blocks of rows to actors, their Parquet shards back.

A command's driver validates its data, finds in `OUT/shards/<run key>/` the ids some shard already
holds (`done_ids`), and hands the other rows to `run_blocks`: blocks of row numbers become a Ray
Data dataset, `map_batches` sends each to an actor (a `BlockWorker` subclass that loads its models
once, reads its own rows with `rows_of` and turns them into one Parquet file), and the driver
writes each file it gets back into the shard folder (written aside, then renamed: a shard is
whole or absent), so a rerun computes only what no shard holds and the results folder needs no
shared file system across machines. Items need not be rows: UMID's are numbered inversions, its
blocks cut by the caller. A per-run ledger actor counts each block's starts, so a block that
kills its worker every time fails the run after `--max-retries` retries instead of looping.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from mmia.data.schema import Sample
from mmia.engine.ray_cluster import RayOptions
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


def value_shard(ids: list[str], rows: list[int], values: list[dict], meta: dict) -> bytes:
    """A shard of per-item arrays (FiMMIA's raw features, UMID's inversions): id, row, and each
    value as safetensors bytes (the cache's encoding), `meta` in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmia.cache import _encode

    table = pa.table({"id": pa.array(ids, pa.string()), "row": pa.array(rows, pa.int64()),
                      "value": pa.array([_encode(v) for v in values], pa.binary())})
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def shard_values(shard_dir: Path, wanted: list[str], what: str = "sample") -> dict[str, dict]:
    """The decoded values of `value_shard` files for the ids `wanted` (the first shard holding an id
    wins); every wanted id must be in one."""
    import pyarrow.parquet as pq

    from mmia.cache import _decode

    want, values = set(wanted), {}
    for p in sorted(shard_dir.glob("rows-*.parquet")):
        d = pq.read_table(p, columns=["id", "value"]).to_pydict()
        for sid, blob in zip(d["id"], d["value"], strict=True):
            if sid in want and sid not in values:
                values[sid] = _decode(blob)
    lost = [i for i in wanted if i not in values]
    if lost:
        raise RuntimeError(f"{len(lost)} {what}(s) are in no shard (first: '{lost[0]}'); rerun to compute them")
    return values


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


def span(items: list[int]) -> str:
    """'rows 4-7' for a contiguous block, else its first rows."""
    items = sorted(items)
    if items == list(range(items[0], items[-1] + 1)):
        return f"row {items[0]}" if len(items) == 1 else f"rows {items[0]}-{items[-1]}"
    return "rows " + ", ".join(map(str, items[:8])) + (f", ... ({len(items)} rows)" if len(items) > 8 else "")


class BlockWorker:
    """A Ray Data actor over blocks of items (row numbers of the data file, unless a subclass
    overrides `load`): subclasses load their models in `__init__` (calling `super().__init__`)
    and implement `shard(loaded) -> Parquet bytes`. Media that does not decode (an InputError)
    goes back to the driver as an error naming the row, not as a crash; so does a block that
    the ledger says has killed 1 + max_retries workers already."""

    def __init__(self, *, path: str, threads: int, fault: str | None = None, ledger=None,
                 max_retries: int | None = None):
        import torch

        from mmia import progress

        torch.set_num_threads(max(1, threads))
        progress.set_quiet(True)
        progress.quiet_libraries()
        self.path, self.fault, self.ledger, self.max_retries = Path(path), fault, ledger, max_retries

    def load(self, items: list[int]) -> list:
        """What the block's items stand for: the samples at these rows of the data file."""
        return rows_of(self.path, items)

    def ids(self, loaded: list) -> list[str]:
        """The ids a shard holds (what `done_ids` reads back): the samples' ids."""
        return [s.id for s in loaded]

    def shard(self, loaded: list) -> bytes:
        raise NotImplementedError

    def facts(self) -> dict:
        """What every shard's metadata holds about the worker that wrote it."""
        return {"pid": os.getpid(), "peak_rss_mib": peak_rss_mib()}

    def _attempt(self, key: str) -> int:
        import ray

        return ray.get(self.ledger.start.remote(key)) if self.ledger is not None else 1

    def __call__(self, batch: dict) -> dict:
        from mmia.engine.ray_cluster import fault_hook

        out = {"block": [], "name": [], "shard": [], "n": [], "error": [], "error_row": [], "deaths": []}

        def failed(reason: str, row: int | None, deaths: int = 0) -> None:
            out["name"].append("")
            out["shard"].append(b"")
            out["n"].append(0)
            out["error"].append(reason)
            out["error_row"].append(-1 if row is None else int(row))
            out["deaths"].append(deaths)

        for block in batch["rows"]:
            items = [int(r) for r in str(block).split(",")]
            out["block"].append(str(block))  # one entry per block, on every path below
            attempt = self._attempt(str(block))  # counted before anything can kill this process
            if self.max_retries is not None and attempt > self.max_retries + 1:
                failed("killed its worker", None, attempt - 1)
                continue
            fault_hook(self.fault, items)
            try:
                loaded = self.load(items)
                blob = self.shard(loaded)
            except InputError as exc:
                failed(exc.reason, exc.row)
                continue
            digest = hashlib.sha256("\n".join(self.ids(loaded)).encode()).hexdigest()[:12]
            out["name"].append(f"rows-{min(items):09d}-{digest}.parquet")
            out["shard"].append(blob)
            out["n"].append(len(loaded))
            out["error"].append("")
            out["error_row"].append(-1)
            out["deaths"].append(0)
        return out


def cut_blocks(todo: list[int], workers: int, batch_size: int, block_rows: int | None) -> list[list[int]]:
    size = block_size(len(todo), workers, batch_size, block_rows)
    return [todo[s:s + size] for s in range(0, len(todo), size)]


def run_blocks(*, path: Path, todo: list[int] | None = None, worker, kwargs: dict, shard_dir: Path, ray: RayOptions,
               batch_size: int, description: str, blocks: list[list[int]] | None = None,
               what=None, unit: str = "samples") -> tuple[dict, set[str]]:
    """Compute the rows `todo` of the data file at `path` (or the pre-cut `blocks` of items) on
    `ray.workers` actors of class `worker` (constructed with `kwargs` plus path, threads, the
    attempt ledger and the test fault hook); each returned shard is written into `shard_dir` as
    it arrives. A block that killed its worker 1 + `ray.max_retries` times fails the run (an
    InputError naming its rows; `what(items)` words them, default "rows a-b" of `path`), after
    every other block's shard is written, so a rerun computes only the failed blocks.
    Returns (facts for results.json, names of new shards)."""
    import ray as ray_mod

    from mmia.engine.ray_cluster import FAULT_ENV, AttemptLedger, ray_session, worker_resources
    from mmia.progress import progress_bar

    info: dict = {"computed": 0}
    new: set[str] = set()
    if blocks is None:
        blocks = cut_blocks(todo or [], ray.workers, batch_size, ray.block_rows)
    n_items = sum(map(len, blocks))
    poisoned: list[tuple[list[int], int]] = []
    with ray_session(ray.address) as session:
        remote = worker_resources(session, ray.workers, ray.gpus_per_worker, ray.cpus_per_worker, len(blocks))
        ledger = ray_mod.remote(num_cpus=0)(AttemptLedger).remote()
        # one Ray Data block, so one task, per block of ours: past 200 items from_items would bundle
        # several into a task, which one actor then computes in turn (and retries together)
        ds = ray_mod.data.from_items([{"rows": ",".join(map(str, b))} for b in blocks],
                                     override_num_blocks=max(1, len(blocks)))
        kwargs = {**kwargs, "path": str(path), "threads": int(remote["num_cpus"]), "ledger": ledger,
                  "max_retries": ray.max_retries, "fault": os.environ.get(FAULT_ENV) or None}
        ds = ds.map_batches(worker, batch_size=1, batch_format="numpy", fn_constructor_kwargs=kwargs,
                            **{k: v for k, v in remote.items() if v is not None})
        info.update(address=session.address, started_here=session.started_here, cpus_per_worker=remote["num_cpus"],
                    actors=remote["compute"].max_size,
                    blocks=len(blocks), block_rows=max(map(len, blocks), default=0), max_retries=ray.max_retries)
        by_key = {",".join(map(str, b)): b for b in blocks}
        try:
            with progress_bar(f"{description} {n_items} {unit} on {ray.workers} Ray worker(s)", n_items,
                              unit=unit) as bar:
                for out in ds.iter_rows():
                    if int(out["deaths"]):
                        poisoned.append((by_key[str(out["block"])], int(out["deaths"])))
                        continue
                    if out["error"]:
                        row = int(out["error_row"])
                        raise InputError(str(out["error"]), path, row if row >= 0 else None)
                    write_atomic(shard_dir / str(out["name"]), bytes(out["shard"]))
                    new.add(str(out["name"]))
                    info["computed"] += int(out["n"])
                    bar.advance(int(out["n"]))
        finally:
            ray_mod.kill(ledger)
    if poisoned:
        items, deaths = poisoned[0]
        words = what(items) if what is not None else span(items)
        more = f" (and {len(poisoned) - 1} other block(s))" if len(poisoned) > 1 else ""
        raise InputError(f"{words}{more} killed their Ray worker {deaths} times (--max-retries {ray.max_retries}; "
                         f"out of memory on a row?); the other blocks' shards are kept in {shard_dir}, so a "
                         "rerun computes only these", path)
    return info, new
