"""FiMMIA's per-sample features computed by Ray Data actors (`fimmia score` and `fimmia train --engine ray`).

Each actor builds one `FeatureExtractor` (target scorer, neighbour maker, embedders) in
`__init__` and runs its `compute` (the local engine's per-sample function: the sample's and its K
neighbours' losses and embeddings) over each block of rows; the raw values travel back as one
Parquet shard per block (id, row, the values as safetensors bytes) and land in
`OUT/shards/<run key>/`. The driver then stacks them in the data's order with `assemble`, as the
local engine does. In the two-model protocol the base's rows come from an actor holding the
base's extractor built as `api.base_extractor` builds it (the base's losses, the target's media
encoder). A rerun computes only the rows no shard holds; a killed actor is restarted by Ray
(see `mmia.engine.ray_blocks`).
"""

from __future__ import annotations

import time
from pathlib import Path

from mmia.data.schema import Dataset, Sample
from mmia.engine.ray_blocks import (
    BlockWorker,
    done_ids,
    file_digest,
    model_digest,
    run_blocks,
    shard_folder,
    shard_values,
    value_shard,
)
from mmia.engine.ray_cluster import RayOptions


class FeatureWorker(BlockWorker):
    """A Ray Data actor holding one FeatureExtractor (the target's, or with `base` the base's);
    each block's raw FiMMIA values as a Parquet file."""

    def __init__(self, *, path: str, target: str, cfg: dict, threads: int, base: str | None = None,
                 allow_download: bool = False, max_batch_tokens: int | None = None, **block):
        super().__init__(path=path, threads=threads, **block)
        from mmia import offline
        from mmia.fimmia.pipeline import FeatureExtractor, FimmiaConfig, make_scorer

        offline.configure(allow_download=allow_download)
        # the token budget travels beside the config: no dump of it holds one (`FimmiaConfig`)
        config = FimmiaConfig(**cfg, max_batch_tokens=max_batch_tokens)
        if base is None:
            self.extractor = FeatureExtractor(target, config, cache=None)
        else:  # api.base_extractor's: only the media embeddings read the target (media_embedder "target")
            media = make_scorer(target, config) if config.media_embedder == "target" else None
            self.extractor = FeatureExtractor(base, config, cache=None, media_scorer=media)

    def shard(self, loaded: list[Sample]) -> bytes:
        t0 = time.perf_counter()
        values = [self.extractor.compute(s) for s in loaded]
        meta = {**self.facts(), "block_seconds": time.perf_counter() - t0}
        return value_shard([s.id for s in loaded], [s.row for s in loaded], values, meta)


def features_on_ray(ds: Dataset, target, cfg, out_dir, *, base=None, ray: RayOptions | None = None):
    """(FeatureSet of `ds` in its order, facts for results.json), computed on Ray actors and kept
    in shards under `out_dir/shards/`. `base`: the base model's features of the two-model protocol."""
    from mmia.fimmia.pipeline import FEATURES_VERSION, assemble
    from mmia.offline import downloads_allowed

    ray = ray or RayOptions()
    key = {"command": "fimmia features", "data": file_digest(Path(ds.path)), "target": model_digest(target),
           "base": model_digest(base), "adapter_base": model_digest(cfg.adapter_base),
           "fimmia": cfg.model_dump(mode="json"), "features_version": FEATURES_VERSION}
    shard_dir = shard_folder(out_dir, key)
    done = done_ids(shard_dir)
    todo = [s.row for s in ds.samples if s.id not in done]
    info = {"workers": ray.workers, "gpus_per_worker": ray.gpus_per_worker, "shards": str(shard_dir),
            "reused": len(ds) - len(todo), "computed": 0}
    if todo:
        kwargs = {"target": str(target), "base": None if base is None else str(base),
                  "cfg": cfg.model_dump(mode="json"), "max_batch_tokens": cfg.max_batch_tokens,
                  "allow_download": downloads_allowed()}
        ran, _ = run_blocks(path=Path(ds.path), todo=todo, worker=FeatureWorker, kwargs=kwargs, shard_dir=shard_dir,
                            ray=ray, batch_size=cfg.batch_size,
                            description=f"FiMMIA features ({'base' if base else 'target'}) of")
        info.update(ran)
    values = shard_values(shard_dir, ds.ids)
    return assemble(ds, [values[s.id] for s in ds.samples]), info


class RayFeatures:
    """`FeatureExtractor.features` on Ray actors, for the code paths that take an extractor
    (`api.protocol_features`): the same FeatureSet, from shards under `out_dir`; `runs` keeps each
    call's facts for results.json and the attack model's settings."""

    def __init__(self, target, cfg, out_dir, *, base=None, ray: RayOptions | None = None):
        self.target, self.cfg, self.out_dir, self.base, self.ray = target, cfg, out_dir, base, ray
        self.runs: list[dict] = []

    def features(self, dataset: Dataset, description: str = "") -> object:
        fs, info = features_on_ray(dataset, self.target, self.cfg, self.out_dir, base=self.base, ray=self.ray)
        self.runs.append({"features": "base" if self.base else "target", **info})
        return fs
