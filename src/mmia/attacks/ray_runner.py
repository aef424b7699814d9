"""`mmia attack --engine ray`: the local engine's scoring on Ray Data actors, resumable from Parquet shards.

How a run goes:

1. The driver walks the data file once, row by row (`scan_samples`: the same validation and
   errors as the local engine, so bad input is one line naming the file and row, exit 2), and
   keeps only each usable row's number, id and label; no media.
2. Rows whose id some shard of this run's configuration already holds are done; the others are
   cut into blocks of row numbers, the items of a Ray Data dataset.
3. `map_batches` sends each block to one of `--workers` actors (`ScoreWorker`). An actor loads
   the target (and reference) once, in `__init__`; per block it reads its own rows from the file
   and calls `score_samples` on them, the very function the local engine runs over the whole
   set (length-sorted forward batches, one pass per view, every attack reduced per sample), and
   returns the block's per-sample scores as one Parquet file.
4. The driver writes each returned file into `OUT/shards/<run key>/` (write, then rename: a
   shard is whole or absent), so the results folder needs no shared file system across
   machines; then it reads every shard back and evaluates exactly as the local engine does
   (`evaluate_scored` on one `Scored`).

A worker killed mid-block is restarted by Ray and the block retried (max_restarts /
max_task_retries); its output arrives once or not at all, and shards are merged by id, so no
sample is lost or counted twice. A killed driver loses at most the blocks in flight: a rerun
with the same --out computes only the rows no shard holds. The run key covers the target,
reference and base weights, the data file's bytes, the attacks and their configs, dtype and
device; another configuration writes to another shard folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmia.attacks.runner import Scored, attack_result, plan_attack, score_samples, write_attack_outputs
from mmia.data.schema import MEDIA_FIELDS, Dataset, Sample, SkippedRow
from mmia.errors import InputError

SHARDS = "shards"
SCORE_PREFIX = "score:"  # score columns in a shard, apart from id/row/label/skipped
META_KEY = b"mmia"


@dataclass
class RowIndex:
    """What the driver keeps of the data: row numbers, ids, labels (no text, no media)."""

    path: Path
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    modalities: tuple[str, ...] = ()
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_members(self) -> int:
        return sum(1 for v in self.labels if v == 1)

    @property
    def n_nonmembers(self) -> int:
        return sum(1 for v in self.labels if v == 0)


def index_rows(data, skip_bad: bool) -> RowIndex:
    """Validate the data file row by row and keep what the driver needs (a Dataset is indexed as is)."""
    from mmia.data.loading import scan_samples

    if hasattr(data, "samples"):
        items, path = [*data.samples, *data.skipped], Path(data.path)
    else:
        path = Path(data).expanduser()
        items = scan_samples(path, skip_bad=skip_bad)
    index = RowIndex(path=path)
    present: set[str] = set()
    for item in items:
        if isinstance(item, SkippedRow):
            index.skipped.append(item)
            continue
        index.rows.append(item.row)
        index.ids.append(item.id)
        index.labels.append(item.label)
        present.update(item.modalities)
    if not index.rows:
        raise InputError("holds no usable rows" + (f" ({len(index.skipped)} skipped)" if index.skipped else ""), path)
    index.modalities = tuple(m for m in ("text", *MEDIA_FIELDS) if m in present)
    return index


def _file_digest(path: Path) -> str:
    """sha256 of the data file's bytes (of every file, by relative path, for a datasets directory)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _model_digest(path) -> str | None:
    """The cache's fingerprint of a model directory, plus its JSON files (a PEFT adapter's config)."""
    from mmia.cache import fingerprint_dir

    if path is None:
        return None
    p = Path(path)
    h = hashlib.sha256(fingerprint_dir(p).encode())
    for f in sorted(p.glob("*.json")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:20]


def run_key(*, index: RowIndex, target_dir, reference_dir, base, specs, configs, device, dtype, skip_bad) -> dict:
    from mmia.targets.token_stats import STATS_VERSION

    return {
        "data": _file_digest(index.path),
        "target": _model_digest(target_dir),
        "base": _model_digest(base),
        "reference": _model_digest(reference_dir),
        "attacks": {s.name: configs[s.name].model_dump(mode="json") for s in specs},
        "stats_version": STATS_VERSION,
        "device": device or "auto",
        "dtype": dtype or "auto",
        "skip_bad": skip_bad,
    }


def _rows_of(path: Path, rows: list[int]) -> list[Sample]:
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


def shard_bytes(samples: list[Sample], scored: Scored, meta: dict) -> bytes:
    """One block's per-sample outputs as a Parquet file: id, row, label, skipped (reason or null) and
    one `score:<column>` per score column (NaN where the sample has no such value); the block's
    seconds, engine counts and worker facts in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_id = {s.id: s for s in samples}
    skipped = list(scored.skipped)
    ids = list(scored.ids) + [d["id"] for d in skipped]
    cols: dict = {
        "id": pa.array(ids, pa.string()),
        "row": pa.array([by_id[i].row for i in ids], pa.int64()),
        "label": pa.array([by_id[i].label for i in ids], pa.int64()),
        "skipped": pa.array([None] * len(scored.ids) + [d["reason"] for d in skipped], pa.string()),
    }
    for name, values in scored.columns.items():
        cols[SCORE_PREFIX + name] = pa.array(np.concatenate([values, np.full(len(skipped), np.nan)]), pa.float64())
    meta = {**meta, "column_attack": scored.column_attack, "seconds": scored.seconds, "counts": scored.counts}
    table = pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


class ScoreWorker:
    """A Ray Data actor: the target loaded once; each call scores one block of rows with `score_samples`."""

    def __init__(self, *, path: str, target_dir: str, kind: str, base: str | None, reference_dir: str | None,
                 attacks: dict, device, dtype, cache_dir, batch_size: int, skip_bad: bool, threads: int,
                 allow_download: bool = False, fault: str | None = None):
        import torch

        from mmia import offline, progress
        from mmia.attacks.registry import get_attack
        from mmia.targets import load_target

        torch.set_num_threads(max(1, threads))
        progress.set_quiet(True)
        progress.quiet_libraries()
        offline.configure(allow_download=allow_download)
        self.path = Path(path)
        self.specs = [get_attack(name) for name in attacks]
        self.configs = {name: get_attack(name).make_config(**cfg) for name, cfg in attacks.items()}
        self.target = load_target(target_dir, kind=kind, device=device, dtype=dtype, base=base)
        self.reference = (load_target(reference_dir, device=self.target.device, dtype=dtype)
                          if reference_dir is not None else None)
        self.cache_dir, self.batch_size, self.skip_bad, self.fault = cache_dir, batch_size, skip_bad, fault
        self.meta = {"device": str(self.target.device), "dtype": str(self.target.dtype).removeprefix("torch."),
                     "target_kind": self.target.kind, "fingerprint": self.target.fingerprint}

    def __call__(self, batch: dict) -> dict:
        from mmia.cache import Cache
        from mmia.engine.ray_cluster import fault_hook

        fault_hook(self.fault)
        out = {"name": [], "shard": [], "n": [], "error": [], "error_row": []}
        for block_rows in batch["rows"]:
            rows = [int(r) for r in str(block_rows).split(",")]
            t0, c0, started = time.perf_counter(), time.process_time(), time.time()
            cache = Cache(self.cache_dir) if self.cache_dir is not None else None
            try:
                samples = _rows_of(self.path, rows)
                scored = score_samples(Dataset(self.path, samples), self.target, self.specs,
                                       reference=self.reference, configs=self.configs, cache=cache,
                                       batch_size=self.batch_size, skip_bad=self.skip_bad, progress=False)
            except InputError as exc:
                out["name"].append("")
                out["shard"].append(b"")
                out["n"].append(0)
                out["error"].append(exc.reason)
                out["error_row"].append(-1 if exc.row is None else int(exc.row))
                continue
            finally:
                if cache is not None:
                    cache.close()
            digest = hashlib.sha256("\n".join(s.id for s in samples).encode()).hexdigest()[:12]
            meta = {**self.meta, "pid": os.getpid(), "block_seconds": time.perf_counter() - t0,
                    "block_cpu_seconds": time.process_time() - c0, "started": started, "finished": time.time(),
                    "peak_rss_mib": _peak_rss_mib()}
            out["name"].append(f"rows-{min(rows):09d}-{digest}.parquet")
            out["shard"].append(shard_bytes(samples, scored, meta))
            out["n"].append(len(samples))
            out["error"].append("")
            out["error_row"].append(-1)
        return out


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (Linux and macOS), or None."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError):
        return None


def _write_atomic(path: Path, blob: bytes) -> None:
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


def merge_shards(index: RowIndex, shard_dir: Path, specs, new_shards: set[str]) -> tuple[Scored, dict]:
    """One Scored over the data in file order from the shards (each id once), as the local engine's
    `score_samples` returns it, and the summed counts of the shards this run wrote."""
    import pyarrow.parquet as pq

    by_id: dict[str, tuple] = {}
    column_attack: dict[str, str] = {}
    seconds: dict[str, float] = {}
    counts: dict[str, dict] = {}
    meta_any: dict = {}
    for p in sorted(shard_dir.glob("rows-*.parquet")):
        t = pq.read_table(p)
        meta = json.loads(t.schema.metadata[META_KEY])
        meta_any = meta_any or meta
        column_attack.update(meta["column_attack"])
        for k, v in meta["seconds"].items():
            seconds[k] = seconds.get(k, 0.0) + v
        if p.name in new_shards:
            for view, c in meta["counts"].items():
                acc = counts.setdefault(view, {})
                for k, v in c.items():
                    acc[k] = acc.get(k, 0) + v
        d = t.to_pydict()
        score_cols = [c for c in d if c.startswith(SCORE_PREFIX)]
        for j, sid in enumerate(d["id"]):
            if sid not in by_id:
                by_id[sid] = (d["skipped"][j], {c[len(SCORE_PREFIX):]: d[c][j] for c in score_cols})
    lost = [sid for sid in index.ids if sid not in by_id]
    if lost:
        raise RuntimeError(f"{len(lost)} sample(s) are in no shard (first: '{lost[0]}'); rerun to compute them")
    order = [s.name for s in specs]
    names = sorted(column_attack, key=lambda c: order.index(column_attack[c]) if column_attack[c] in order else 0)
    ids, labels, keep, skipped = [], [], [], []
    for row, sid, label in zip(index.rows, index.ids, index.labels, strict=True):
        reason, _ = by_id[sid]
        if reason is not None:
            skipped.append({"row": row, "id": sid, "reason": reason})
            continue
        ids.append(sid)
        labels.append(-1 if label is None else label)
        keep.append(sid)
    columns = {}
    for c in names:
        columns[c] = np.array([by_id[sid][1].get(c, math.nan) for sid in keep], dtype=np.float64)
    lab = np.array(labels, dtype=np.int64)
    scored = Scored(ids=ids, labels=None if (lab < 0).any() else lab, columns=columns,
                    column_attack={c: column_attack[c] for c in names}, seconds=seconds, counts=counts,
                    skipped=skipped)
    return scored, meta_any


def _block_size(n_todo: int, workers: int, batch_size: int, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, block_rows)
    size = math.ceil(n_todo / (4 * workers)) if n_todo else 1
    size = batch_size * math.ceil(size / batch_size)  # whole forward batches
    return int(min(max(size, batch_size), 1024))


def run_attack_ray(data, target_dir, *, attacks=None, reference_dir=None, out_dir=None, batch_size: int = 8,
                   device=None, dtype=None, cache_dir=None, skip_bad: bool = False, configs: dict | None = None,
                   seed: int = 0, base_dir=None, ray_address: str | None = None, workers: int = 1,
                   gpus_per_worker: float = 0.0, cpus_per_worker: float | None = None,
                   block_rows: int | None = None):
    """`run_attack` on Ray Data actors; the same (RunResult, ScoreTable), plus shards in `out_dir/shards/`."""
    from mmia.engine.ray_cluster import FAULT_ENV, ray_session, worker_resources
    from mmia.offline import downloads_allowed
    from mmia.progress import progress_bar

    if out_dir is None:
        raise InputError("--engine ray keeps each sample's scores in the results folder: give --out")
    t0 = time.perf_counter()
    index = index_rows(data, skip_bad)
    peft, kind, reference_dir, reference_from, specs = plan_attack(target_dir, reference_dir, base_dir,
                                                                   index.modalities, attacks)
    configs = {s.name: (configs or {}).get(s.name) or s.make_config() for s in specs}
    base = peft.base if peft else None
    key = run_key(index=index, target_dir=target_dir, reference_dir=reference_dir, base=base, specs=specs,
                  configs=configs, device=device, dtype=dtype, skip_bad=skip_bad)
    key_digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    shard_dir = Path(out_dir) / SHARDS / key_digest
    shard_dir.mkdir(parents=True, exist_ok=True)
    (shard_dir / "run.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    done = done_ids(shard_dir)
    todo = [r for r, sid in zip(index.rows, index.ids, strict=True) if sid not in done]
    new_shards: set[str] = set()
    ray_info = {"workers": workers, "gpus_per_worker": gpus_per_worker, "shards": str(shard_dir),
                "reused": len(index) - len(todo), "computed": 0}
    if todo:
        with ray_session(ray_address) as session:
            import ray

            remote = worker_resources(session, workers, gpus_per_worker, cpus_per_worker)
            size = _block_size(len(todo), workers, batch_size, block_rows)
            blocks = [todo[s:s + size] for s in range(0, len(todo), size)]
            ds = ray.data.from_items([{"rows": ",".join(map(str, b))} for b in blocks])
            kwargs = dict(path=str(index.path), target_dir=str(target_dir), kind=kind,
                          base=None if base is None else str(base),
                          reference_dir=None if reference_dir is None else str(reference_dir),
                          attacks={n: c.model_dump(mode="json") for n, c in configs.items()}, device=device,
                          dtype=dtype, cache_dir=None if cache_dir is None else str(cache_dir),
                          batch_size=batch_size, skip_bad=skip_bad, threads=int(remote["num_cpus"]),
                          allow_download=downloads_allowed(), fault=os.environ.get(FAULT_ENV) or None)
            ds = ds.map_batches(ScoreWorker, batch_size=1, batch_format="numpy", fn_constructor_kwargs=kwargs,
                                **{k: v for k, v in remote.items() if v is not None})
            ray_info.update(address=session.address, started_here=session.started_here,
                            cpus_per_worker=remote["num_cpus"], blocks=len(blocks), block_rows=size)
            with progress_bar(f"scoring {len(todo)} samples on {workers} Ray worker(s)", len(todo),
                              unit="samples") as bar:
                for out in ds.iter_rows():
                    if out["error"]:
                        row = int(out["error_row"])
                        raise InputError(str(out["error"]), index.path, row if row >= 0 else None)
                    _write_atomic(shard_dir / str(out["name"]), bytes(out["shard"]))
                    new_shards.add(str(out["name"]))
                    ray_info["computed"] += int(out["n"])
                    bar.advance(int(out["n"]))
    scored, meta = merge_shards(index, shard_dir, specs, new_shards)
    settings = {"batch_size": batch_size, "device": meta.get("device"), "dtype": meta.get("dtype"),
                "target_kind": meta.get("target_kind", kind), "engine": scored.counts,
                "seconds_total": round(time.perf_counter() - t0, 3), "engine_kind": "ray", "ray": ray_info}
    result, table = attack_result(index, scored, specs, configs, target_dir=target_dir, reference_dir=reference_dir,
                                  reference_from=reference_from, peft=peft, seed=seed, settings=settings)
    write_attack_outputs(out_dir, result, table)
    return result, table
