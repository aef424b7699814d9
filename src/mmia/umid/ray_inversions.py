"""`mmia umid --engine ray`: the audit's per-query inversions on Ray Data actors, kept in shards.

The inversions are UMID's whole cost; the rest (signals, the reference fit, the decision, the
no-inversion control) is cheap and stays on the driver. So the driver lists the inversions the
audit will run (`audit.inversion_sets`: queries, gibberish reference, control names, sequential
baseline), numbers them, and cuts each set into blocks of whole batches; an actor (`InversionWorker`,
the contrastive target loaded once) runs `audit.invert_texts`, the local engine's batch
function, over each block's batches and returns one Parquet shard (cache key, item, value).
`audit_queries` then runs unchanged with a read-only cache of the shards' values, so every
score comes out of the local code path.

Batches: locally `run_inversions` inverts a set's not-yet-cached texts `batch_size` at a time;
the blocks here are whole batches of the same texts in the same order (a text an earlier set
holds is left out, as the local cache leaves it out), and they are cut from the whole plan
whatever the shards hold, so a rerun after a lost shard recomputes that shard's batches exactly.
Each query's starts come from its own seed, and Adam is elementwise, so a query's inversion does
not depend on its batch-mates up to float32 rounding in the batched forward passes (tested).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mmia.engine.ray_blocks import (
    BlockWorker,
    block_size,
    done_ids,
    model_digest,
    run_blocks,
    shard_folder,
    shard_values,
    value_shard,
)
from mmia.engine.ray_cluster import RayOptions
from mmia.umid.audit import CACHE_VERSION, InversionSet, inversion_keys
from mmia.umid.invert import InversionSettings


class ShardValues:
    """A read-only cache over the shards' inversions (the `cache` of `run_inversions`): an
    inversion the plan missed would be computed here instead of on the actors, so that is refused."""

    def __init__(self, values: dict[str, dict]):
        self.values = values

    def get_many(self, keys) -> dict[str, dict]:
        return {k: self.values[k] for k in keys if k in self.values}

    def put_many(self, items: dict) -> None:
        raise RuntimeError(f"{len(items)} inversion(s) were not computed by the Ray workers (an inversion set "
                           "missing from umid.audit.inversion_sets)")


class InversionWorker(BlockWorker):
    """A Ray Data actor holding the contrastive target; each block's inversions as one Parquet file."""

    def __init__(self, *, path: str, threads: int, target_dir: str, base: str | None, jobs: list[list],
                 sets: list[dict], allow_download: bool = False, **block):
        super().__init__(path=path, threads=threads, **block)
        from mmia import offline
        from mmia.umid.target import load_contrastive

        offline.configure(allow_download=allow_download)
        self.target = load_contrastive(target_dir, base=base)
        self.jobs = jobs  # item -> [key, text, set number]
        self.sets = [{**s, "settings": InversionSettings(**s["settings"])} for s in sets]

    def load(self, items: list[int]) -> list[list]:
        return [[*self.jobs[i], i] for i in items]

    def ids(self, loaded: list[list]) -> list[str]:
        return [key for key, *_ in loaded]

    def shard(self, loaded: list[list]) -> bytes:
        from mmia.umid.audit import invert_texts

        t0 = time.perf_counter()
        spec = self.sets[loaded[0][2]]  # a block lies within one set
        texts = [text for _, text, *_ in loaded]
        values = []
        for s in range(0, len(texts), spec["batch_size"]):  # the local engine's batches
            values += invert_texts(self.target, texts[s:s + spec["batch_size"]], spec["template"], spec["settings"],
                                   spec["seed"], spec["sequential"])
        meta = {**self.facts(), "block_seconds": time.perf_counter() - t0}
        return value_shard(self.ids(loaded), [item for *_, item in loaded], values, meta)


def plan_blocks(target, sets: list[InversionSet], workers: int, block_rows: int | None):
    """(jobs [key, text, set number] by item number, blocks of item numbers, each within one set and
    whole batches of it unless `block_rows` says otherwise)."""
    jobs: list[list] = []
    blocks: list[list[int]] = []
    seen: set[str] = set()
    for n, st in enumerate(sets):
        items = []
        for key, text in zip(inversion_keys(target, st.texts, st.template, st.settings, st.seed, st.sequential),
                             st.texts, strict=True):
            if key not in seen:  # the local cache has it from an earlier set (or earlier in this one)
                seen.add(key)
                items.append(len(jobs))
                jobs.append([key, text, n])
        size = block_size(len(items), workers, st.batch_size, block_rows)
        blocks += [items[s:s + size] for s in range(0, len(items), size)]
    return jobs, blocks


def inversions_on_ray(target, target_dir, base, sets: list[InversionSet], out_dir, *, queries: Path,
                      ray: RayOptions | None = None) -> tuple[ShardValues, dict]:
    """Every inversion of `sets` computed on Ray actors (or found in the shards under `out_dir`);
    (a cache holding them for `audit_queries`, facts for results.json)."""
    from mmia.engine.ray_blocks import span
    from mmia.offline import downloads_allowed

    ray = ray or RayOptions()
    key = {"command": "umid inversions", "target": model_digest(target_dir), "base": model_digest(base),
           "version": CACHE_VERSION}
    shard_dir = shard_folder(out_dir, key)
    jobs, blocks = plan_blocks(target, sets, ray.workers, ray.block_rows)
    done = done_ids(shard_dir)
    todo = [b for b in blocks if any(jobs[i][0] not in done for i in b)]
    info = {"workers": ray.workers, "gpus_per_worker": ray.gpus_per_worker, "shards": str(shard_dir),
            "inversions": len(jobs), "reused": sum(len(b) for b in blocks) - sum(len(b) for b in todo),
            "computed": 0, "sets": {s.name: len(s.texts) for s in sets}}
    if todo:
        names = [s.name for s in sets]

        def what(items: list[int]) -> str:  # no query text: they may be PII
            return f"the inversions {span(items).removeprefix('rows ')} ({names[jobs[items[0]][2]]})"

        kwargs = dict(target_dir=str(target_dir), base=None if base is None else str(base), jobs=jobs,
                      sets=[{"template": s.template, "settings": dataclasses.asdict(s.settings), "seed": s.seed,
                             "sequential": s.sequential, "batch_size": s.batch_size} for s in sets],
                      allow_download=downloads_allowed())
        ran, _ = run_blocks(path=Path(queries), blocks=todo, worker=InversionWorker, kwargs=kwargs,
                            shard_dir=shard_dir, ray=ray, batch_size=sets[0].batch_size, description="UMID:",
                            what=what, unit="inversions")
        info.update(ran)
    return ShardValues(shard_values(shard_dir, [k for k, *_ in jobs], "inversion")), info
