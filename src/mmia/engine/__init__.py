"""The engine: runs a target over batches of rows, one forward pass for all attacks, cached.

    from mmia.engine import iter_token_stats, answer_losses
    for i, stats in iter_token_stats(target, samples, cache=Cache(dir), batch_size=8):
        ...  # stats: {"codes": (L,), "logp": (L-1,), "entropy": (L-1,), ...}; reduce it, then drop it

`score_rows(target, rows)` is the cache-free function over one batch. `--engine ray` maps the attack
runner's `score_samples` (which streams these) over blocks of rows on Ray Data actors; cluster
handling is in `mmia.engine.ray_cluster`.
"""

from mmia.engine.run_contrastive import embed_rows, iter_embeddings
from mmia.engine.run_generative import EngineCounts, answer_losses, iter_token_stats, score_rows, stats_key

__all__ = ["EngineCounts", "answer_losses", "embed_rows", "iter_embeddings", "iter_token_stats", "score_rows",
           "stats_key"]
