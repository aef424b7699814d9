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

Steps 2-4 are `mmia.engine.ray_blocks.run_blocks`, which `mmia fimmia score|train` and
`mmia umid` share with `--engine ray`. A worker killed mid-block is restarted by Ray and the
block retried (Ray Data's actor-pool defaults, max_restarts=-1 and max_task_retries=-1), at most
--max-retries times per block (then the run fails naming the block's rows); its output arrives
once or not at all, and shards are merged by id, so no sample is lost or counted twice. A killed driver loses at
most the blocks in flight: a rerun with the same --out computes only the rows no shard holds.
The run key covers the target, reference and base weights, the data file's bytes, the attacks
and their configs, dtype and device; another configuration writes to another shard folder.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmia.attacks.runner import Scored, attack_result, budget_setting, plan_attack, score_samples
from mmia.data.schema import MEDIA_FIELDS, Dataset, Sample, SkippedRow
from mmia.engine.ray_blocks import (  # noqa: F401  (SHARDS, done_ids: what callers of this module read)
    META_KEY,
    SHARDS,
    BlockWorker,
    done_ids,
    file_digest,
    model_digest,
    run_blocks,
    shard_folder,
)
from mmia.engine.ray_cluster import RayOptions
from mmia.errors import InputError

SCORE_PREFIX = "score:"  # score columns in a shard, apart from id/row/label/skipped


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


def run_key(*, index: RowIndex, target_dir, reference_dir, base, specs, configs, device, dtype, skip_bad) -> dict:
    from mmia.targets.token_stats import STATS_VERSION

    return {
        "data": file_digest(index.path),
        "target": model_digest(target_dir),
        "base": model_digest(base),
        "reference": model_digest(reference_dir),
        "attacks": {s.name: configs[s.name].model_dump(mode="json") for s in specs},
        "stats_version": STATS_VERSION,
        "device": device or "auto",
        "dtype": dtype or "auto",
        "skip_bad": skip_bad,
    }


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


class ScoreWorker(BlockWorker):
    """A Ray Data actor: the target loaded once; each block of rows scored with `score_samples`."""

    def __init__(self, *, path: str, target_dir: str, kind: str, base: str | None, reference_dir: str | None,
                 attacks: dict, device, dtype, cache_dir, batch_size: int, skip_bad: bool, threads: int,
                 allow_download: bool = False, max_batch_tokens: int | None = None, **block):
        super().__init__(path=path, threads=threads, **block)
        from mmia import offline
        from mmia.attacks.registry import get_attack
        from mmia.targets import load_target

        offline.configure(allow_download=allow_download)
        self.specs = [get_attack(name) for name in attacks]
        self.configs = {name: get_attack(name).make_config(**cfg) for name, cfg in attacks.items()}
        self.target = load_target(target_dir, kind=kind, device=device, dtype=dtype, base=base)
        self.reference = (load_target(reference_dir, device=self.target.device, dtype=dtype)
                          if reference_dir is not None else None)
        self.cache_dir, self.batch_size, self.skip_bad = cache_dir, batch_size, skip_bad
        self.max_batch_tokens = max_batch_tokens
        self.meta = {"device": str(self.target.device), "dtype": str(self.target.dtype).removeprefix("torch."),
                     "target_kind": self.target.kind, "fingerprint": self.target.fingerprint}

    def shard(self, samples: list[Sample]) -> bytes:
        from mmia.cache import Cache

        t0, c0, started = time.perf_counter(), time.process_time(), time.time()
        cache = Cache(self.cache_dir) if self.cache_dir is not None else None
        try:
            scored = score_samples(Dataset(self.path, samples), self.target, self.specs, reference=self.reference,
                                   configs=self.configs, cache=cache, batch_size=self.batch_size,
                                   skip_bad=self.skip_bad, progress=False, max_batch_tokens=self.max_batch_tokens)
        finally:
            if cache is not None:
                cache.close()
        meta = {**self.meta, **self.facts(), "block_seconds": time.perf_counter() - t0,
                "block_cpu_seconds": time.process_time() - c0, "started": started, "finished": time.time()}
        return shard_bytes(samples, scored, meta)


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


def run_attack_ray(data, target_dir, *, attacks=None, reference_dir=None, out_dir=None, batch_size: int = 8,
                   device=None, dtype=None, cache_dir=None, skip_bad: bool = False, configs: dict | None = None,
                   seed: int = 0, base_dir=None, ray_address: str | None = None, workers: int = 1,
                   gpus_per_worker: float = 0.0, cpus_per_worker: float | None = None,
                   block_rows: int | None = None, max_batch_tokens: int | None = None,
                   max_retries: int | None = None):
    """`run_attack` on Ray Data actors; the same (RunResult, ScoreTable), plus shards in `out_dir/shards/`."""
    from mmia.offline import downloads_allowed

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
    shard_dir = shard_folder(out_dir, key)
    done = done_ids(shard_dir)
    todo = [r for r, sid in zip(index.rows, index.ids, strict=True) if sid not in done]
    new_shards: set[str] = set()
    ray_info = {"workers": workers, "gpus_per_worker": gpus_per_worker, "shards": str(shard_dir),
                "reused": len(index) - len(todo), "computed": 0}
    if todo:
        kwargs = dict(target_dir=str(target_dir), kind=kind, base=None if base is None else str(base),
                      reference_dir=None if reference_dir is None else str(reference_dir),
                      attacks={n: c.model_dump(mode="json") for n, c in configs.items()}, device=device,
                      dtype=dtype, cache_dir=None if cache_dir is None else str(cache_dir), batch_size=batch_size,
                      skip_bad=skip_bad, allow_download=downloads_allowed(), max_batch_tokens=max_batch_tokens)
        ray = RayOptions(address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                         cpus_per_worker=cpus_per_worker, block_rows=block_rows,
                         **({} if max_retries is None else {"max_retries": max_retries}))
        info, new_shards = run_blocks(path=index.path, todo=todo, worker=ScoreWorker, kwargs=kwargs,
                                      shard_dir=shard_dir, ray=ray, batch_size=batch_size, description="scoring")
        ray_info.update(info)
    scored, meta = merge_shards(index, shard_dir, specs, new_shards)
    settings = {"batch_size": batch_size, **budget_setting(max_batch_tokens), "device": meta.get("device"),
                "dtype": meta.get("dtype"),
                "target_kind": meta.get("target_kind", kind), "engine": scored.counts,
                "seconds_total": round(time.perf_counter() - t0, 3), "engine_kind": "ray", "ray": ray_info}
    result, table = attack_result(index, scored, specs, configs, target_dir=target_dir, reference_dir=reference_dir,
                                  reference_from=reference_from, peft=peft, seed=seed, settings=settings)
    from mmia.report import save_run

    save_run(out_dir, result, table)
    return result, table
