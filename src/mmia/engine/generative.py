"""Run a generative target over samples: length-sorted padded batches, one forward pass per
batch serving every attack, each batch's statistics written to the cache before the next.

`score_rows` is the plain function over one batch of rows (no cache, no ordering);
`iter_token_stats` streams (index, statistics) pairs with caching, resuming and a progress bar,
so memory stays flat in the number of samples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mmia.cache import Cache, make_key
from mmia.data.ids import media_digest
from mmia.errors import InputError
from mmia.targets.token_stats import STATS_VERSION

# Text variants a run may need; the lowercase ratio attack asks for "lower".
TRANSFORMS: dict[str, Callable[[str], str] | None] = {"": None, "lower": str.lower}


@dataclass
class EngineCounts:
    """What a run did: samples read from the cache, samples computed, forward batches run."""

    cached: int = 0
    computed: int = 0
    batches: int = 0
    skipped: list = field(default_factory=list)  # (index, reason) of samples whose media failed

    def as_dict(self) -> dict:
        return {"cached": self.cached, "computed": self.computed, "batches": self.batches, "skipped": len(self.skipped)}


def content_tag(sample) -> str:
    """A short digest of what is scored (text fields and media content), part of the cache key."""
    fields = {k: getattr(sample, k) for k in ("text", "prompt", "answer")}
    fields.update({k: media_digest(getattr(sample, k)) for k in ("image", "audio", "video")})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def stats_key(target, sample, variant: str = "") -> str:
    return make_key(target.fingerprint, sample.id, f"{variant}:{content_tag(sample)}", "token-stats", STATS_VERSION)


def score_rows(target, rows: Sequence, variant: str = "") -> list[dict[str, np.ndarray]]:
    """Token statistics of one batch of samples in one forward pass (no cache, no ordering)."""
    return target.token_stats(target.encode_batch(list(rows), TRANSFORMS[variant]))


def length_order(samples: Sequence) -> list[int]:
    """Sample indices sorted by text length (stable), so batches pad little."""
    return sorted(range(len(samples)), key=lambda i: len(samples[i].full_text))


def iter_token_stats(
    target,
    samples: Sequence,
    *,
    variant: str = "",
    cache: Cache | None = None,
    batch_size: int = 8,
    counts: EngineCounts | None = None,
    skip_bad: bool = False,
    source=None,
    bar=None,
) -> Iterator[tuple[int, dict[str, np.ndarray] | None]]:
    """Yield (index, statistics) for every sample, in length-sorted order.

    Cached samples are read back; the others are encoded and scored batch by batch, and each
    batch is written to the cache in one transaction before the next starts, so a killed run
    loses at most one batch. With `skip_bad`, a sample whose media fails to decode yields None
    and is recorded in `counts.skipped`; otherwise its InputError propagates, naming `source`
    (the data file) and the row.
    """
    counts = counts if counts is not None else EngineCounts()
    transform = TRANSFORMS[variant]
    order = length_order(samples)
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]

    def lookup(idx):
        keys = {i: stats_key(target, samples[i], variant) for i in idx}
        found = cache.get_many(list(keys.values())) if cache is not None else {}
        return keys, found, [i for i in idx if keys[i] not in found]

    def encode(todo):
        """(indices encoded, their encodings, [(index, error)], model inputs or None); a bad sample
        is isolated one by one. The batch is collated here too, off the thread that runs the model."""
        if not todo:
            return [], [], [], None
        try:
            ok, enc, bad = list(todo), target.encode_batch([samples[i] for i in todo], transform), []
        except InputError:
            ok, enc, bad = [], [], []
            for i in todo:
                try:
                    enc.append(target.encode(samples[i], transform))
                    ok.append(i)
                except InputError as exc:
                    bad.append((i, exc))
        return ok, enc, bad, (target.collate(enc) if split and enc else None)

    # A three-stage pipeline: a worker thread encodes batch c+1 (media decoding, tokenising)
    # and another reduces the logits of batch c to statistics while this thread runs the model
    # on batch c+1; torch releases the GIL in its kernels, so the stages overlap. The cache is
    # only touched from this thread. At most two batches of logits are alive at once.
    split = hasattr(target, "logits") and hasattr(target, "reduce_logits")
    with ThreadPoolExecutor(max_workers=1) as enc_pool, ThreadPoolExecutor(max_workers=1) as red_pool:
        plans = [None] * len(chunks)
        if chunks:
            k0 = lookup(chunks[0])
            plans[0] = (k0, enc_pool.submit(encode, k0[2]))
        waiting = None  # (idx, keys, found, todo, ok, future of statistics) of the previous batch

        def finish(w):
            idx, keys, found, todo, ok, fut = w
            computed = {}
            if fut is not None:
                values = fut.result()
                computed = {keys[i]: v for i, v in zip(ok, values, strict=True)}
                if cache is not None:
                    cache.put_many(computed)
                counts.batches += 1
                counts.computed += len(ok)
            counts.cached += len(idx) - len(todo)
            for i in idx:
                yield i, found.get(keys[i], computed.get(keys[i]))
            if bar is not None:
                bar.advance(len(idx))

        for c, idx in enumerate(chunks):
            (keys, found, todo), fut = plans[c]
            if c + 1 < len(chunks):
                nxt = lookup(chunks[c + 1])
                plans[c + 1] = (nxt, enc_pool.submit(encode, nxt[2]))
            plans[c] = None
            ok, encoded, bad, inputs = fut.result()
            for i, exc in bad:
                if not skip_bad:
                    raise InputError(f"sample '{samples[i].id}': {exc}", source, samples[i].row) from None
                counts.skipped.append((i, str(exc)))
            stats_future = None
            if encoded:
                if split:
                    logits, _ = target.logits(encoded, inputs)
                    stats_future = red_pool.submit(target.reduce_logits, logits, encoded)
                else:
                    stats_future = red_pool.submit(lambda e=encoded: e and target.token_stats(e))
            if waiting is not None:
                yield from finish(waiting)
            waiting = (idx, keys, found, todo, ok, stats_future)
        if waiting is not None:
            yield from finish(waiting)


def answer_losses(target, samples: Sequence, *, cache: Cache | None = None, batch_size: int = 8,
                  slice_name: str = "answer") -> np.ndarray:
    """Mean negative log-likelihood of each sample's answer (or text) tokens, in input order.

    The quantity FiMMIA and the loss attack need; NaN where a sample has no such tokens.
    """
    from mmia.targets.base import SLICE_CODES

    code = SLICE_CODES[slice_name]
    out = np.full(len(samples), np.nan)
    for i, st in iter_token_stats(target, samples, cache=cache, batch_size=batch_size):
        sel = st["codes"][1:] == code
        if sel.any():
            out[i] = -float(st["logp"][sel].mean())
    return out
