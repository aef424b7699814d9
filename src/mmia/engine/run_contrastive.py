"""Run a contrastive target over samples: text, media and augmented-media embeddings per
sample, batch by batch, cached and resumable like the generative engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from mmia.cache import Cache, make_key
from mmia.engine.augment import augmentations
from mmia.engine.run_generative import EngineCounts, content_tag, length_order
from mmia.errors import InputError

EMBED_VERSION = "1"


def embed_key(target, sample, n_aug: int, seed: int) -> str:
    return make_key(target.fingerprint, sample.id, f"aug{n_aug}:seed{seed}:{content_tag(sample)}", "embeddings",
                    EMBED_VERSION)


def embed_rows(target, rows: Sequence, n_aug: int = 0, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Embeddings of one batch: {"text": (d,), "media": (d,), "aug": (n_aug, d)} per sample."""
    texts = [s.full_text for s in rows]
    media = [target.load_media(getattr(s, target.media_kind)) for s in rows]
    t = target.embed_text(texts)
    m = target.embed_media(media)
    if n_aug:
        kind = target.media_kind
        augs = [a for s, x in zip(rows, media, strict=True) for a in augmentations(x, kind, s.id, n_aug, seed)]
        a = target.embed_media(augs).reshape(len(rows), n_aug, -1)
    else:
        a = np.zeros((len(rows), 0, t.shape[1]), np.float32)
    return [{"text": t[i], "media": m[i], "aug": a[i]} for i in range(len(rows))]


def iter_embeddings(
    target,
    samples: Sequence,
    *,
    n_aug: int = 0,
    seed: int = 0,
    cache: Cache | None = None,
    batch_size: int = 16,
    counts: EngineCounts | None = None,
    skip_bad: bool = False,
    source=None,
    bar=None,
) -> Iterator[tuple[int, dict[str, np.ndarray] | None]]:
    """Yield (index, embeddings) for every sample; a sample lacking text or media raises InputError."""
    counts = counts if counts is not None else EngineCounts()
    order = length_order(samples)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        keys = {i: embed_key(target, samples[i], n_aug, seed) for i in idx}
        found = cache.get_many(list(keys.values())) if cache is not None else {}
        todo = []
        for i in idx:
            if keys[i] in found:
                continue
            s = samples[i]
            if getattr(s, target.media_kind) is None or not s.full_text:
                msg = f"a {target.kind} target needs text and {target.media_kind} in every row"
                if not skip_bad:
                    raise InputError(msg, source, s.row)
                counts.skipped.append((i, msg))
                continue
            todo.append(i)
        computed = {}
        if todo:
            try:
                values = embed_rows(target, [samples[i] for i in todo], n_aug, seed)
            except InputError:
                if not skip_bad:
                    raise
                values = []
                for i in list(todo):  # find the bad one(s) sample by sample
                    try:
                        values.extend(embed_rows(target, [samples[i]], n_aug, seed))
                    except InputError as exc:
                        counts.skipped.append((i, str(exc)))
                        todo.remove(i)
            computed = {keys[i]: v for i, v in zip(todo, values, strict=True)}
            if cache is not None and computed:
                cache.put_many(computed)
            counts.batches += 1
            counts.computed += len(todo)
        counts.cached += sum(1 for i in idx if keys[i] in found)
        for i in idx:
            yield i, found.get(keys[i], computed.get(keys[i]))
        if bar is not None:
            bar.advance(len(idx))
