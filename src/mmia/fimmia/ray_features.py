"""`mmia fimmia score --engine ray`: FiMMIA's per-sample features computed by Ray Data actors.

Each actor builds one `FeatureExtractor` (target scorer, neighbour maker, embedders) in
`__init__` and runs its `compute` (the local engine's per-sample function: the sample's and its K
neighbours' losses and embeddings) over each block of rows; the raw values travel back as one
Parquet shard per block (id, row, the values as safetensors bytes) and land in
`OUT/shards/<run key>/`. The driver then stacks them in the data's order with `assemble`, as the
local engine does, and the attack model scores the features. A rerun computes only the rows no
shard holds; a killed actor is restarted by Ray (see `mmia.engine.ray_blocks`).
"""

from __future__ import annotations

import time
from pathlib import Path

from mmia.data.schema import Dataset, Sample
from mmia.engine.ray_blocks import (
    META_KEY,
    BlockWorker,
    done_ids,
    file_digest,
    model_digest,
    run_blocks,
    shard_folder,
)


class FeatureWorker(BlockWorker):
    """A Ray Data actor holding one FeatureExtractor; each block's raw FiMMIA values as a Parquet file."""

    def __init__(self, *, path: str, target: str, cfg: dict, threads: int, allow_download: bool = False,
                 fault: str | None = None):
        super().__init__(path=path, threads=threads, fault=fault)
        from mmia import offline
        from mmia.fimmia.pipeline import FeatureExtractor, FimmiaConfig

        offline.configure(allow_download=allow_download)
        self.extractor = FeatureExtractor(target, FimmiaConfig(**cfg), cache=None)

    def shard(self, samples: list[Sample]) -> bytes:
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        from mmia.cache import _encode

        t0 = time.perf_counter()
        values = [_encode(self.extractor.compute(s)) for s in samples]
        meta = {**self.facts(), "block_seconds": time.perf_counter() - t0}
        table = pa.table({"id": pa.array([s.id for s in samples], pa.string()),
                          "row": pa.array([s.row for s in samples], pa.int64()),
                          "value": pa.array(values, pa.binary())})
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()


def features_on_ray(ds: Dataset, target, cfg, out_dir, *, ray_address=None, workers: int = 1,
                    gpus_per_worker: float = 0.0, cpus_per_worker=None, block_rows: int | None = None):
    """(FeatureSet of `ds` in its order, facts for results.json), computed on Ray actors and kept
    in shards under `out_dir/shards/`."""
    import pyarrow.parquet as pq

    from mmia.cache import _decode
    from mmia.fimmia.pipeline import FEATURES_VERSION, assemble
    from mmia.offline import downloads_allowed

    key = {"command": "fimmia score", "data": file_digest(Path(ds.path)), "target": model_digest(target),
           "adapter_base": model_digest(cfg.adapter_base), "fimmia": cfg.model_dump(mode="json"),
           "features_version": FEATURES_VERSION}
    shard_dir = shard_folder(out_dir, key)
    done = done_ids(shard_dir)
    todo = [s.row for s in ds.samples if s.id not in done]
    info = {"workers": workers, "gpus_per_worker": gpus_per_worker, "shards": str(shard_dir),
            "reused": len(ds) - len(todo), "computed": 0}
    if todo:
        ran, _ = run_blocks(path=Path(ds.path), todo=todo, worker=FeatureWorker,
                            kwargs={"target": str(target), "cfg": cfg.model_dump(mode="json"),
                                    "allow_download": downloads_allowed()},
                            shard_dir=shard_dir, ray_address=ray_address, workers=workers,
                            gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                            batch_size=cfg.batch_size, block_rows=block_rows, description="FiMMIA features of")
        info.update(ran)
    wanted = {s.id for s in ds.samples}
    values: dict[str, dict] = {}
    for p in sorted(shard_dir.glob("rows-*.parquet")):
        d = pq.read_table(p).to_pydict()
        for sid, blob in zip(d["id"], d["value"], strict=True):
            if sid in wanted and sid not in values:
                values[sid] = _decode(blob)
    lost = [s.id for s in ds.samples if s.id not in values]
    if lost:
        raise RuntimeError(f"{len(lost)} sample(s) are in no shard (first: '{lost[0]}'); rerun to compute them")
    return assemble(ds, [values[s.id] for s in ds.samples]), info
