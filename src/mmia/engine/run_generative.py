"""Run a generative target over samples: length-sorted padded batches (of a row count, or cut
by a token budget), one forward pass per batch serving every attack, each batch's statistics
written to the cache before the next.

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
from mmia.engine.packing import token_batches
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
    max_batch_tokens: int | None = None,
    counts: EngineCounts | None = None,
    skip_bad: bool = False,
    source=None,
    bar=None,
) -> Iterator[tuple[int, dict[str, np.ndarray] | None]]:
    """Yield (index, statistics) for every sample, in length-sorted order.

    Samples are read in windows of `batch_size` (length-sorted). Cached samples are read back;
    without `max_batch_tokens` the others of a window are one forward batch, as always; with it,
    the encoded rows are cut into batches of at most `batch_size` rows and `max_batch_tokens`
    padded tokens (rows x the longest row's tokens, `packing.token_batches`), a window's last
    open batch carried on to fill up with the next window's rows. Each batch is written to the
    cache in one transaction before the next starts, so a killed run loses at most one batch.
    With `skip_bad`, a sample whose media fails to decode yields None and is recorded in
    `counts.skipped`; otherwise its InputError propagates, naming `source` (the data file) and
    the row.
    """
    counts = counts if counts is not None else EngineCounts()
    transform = TRANSFORMS[variant]
    order = length_order(samples)
    windows = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    carry = max_batch_tokens is not None

    def lookup(idx):
        keys = {i: stats_key(target, samples[i], variant) for i in idx}
        found = cache.get_many(list(keys.values())) if cache is not None else {}
        return keys, found, [i for i in idx if keys[i] not in found]

    def encode_rows(todo):
        """(indices encoded, their encodings, [(index, error)]); a bad sample is isolated one by one."""
        if not todo:
            return [], [], []
        try:
            return list(todo), target.encode_batch([samples[i] for i in todo], transform), []
        except InputError:
            ok, enc, bad = [], [], []
            for i in todo:
                try:
                    enc.append(target.encode(samples[i], transform))
                    ok.append(i)
                except InputError as exc:
                    bad.append((i, exc))
            return ok, enc, bad

    def encode(todo, before, last):
        """([(index, error)], forward batches [(indices, encodings, model inputs or None)], rows
        carried on). `before`: the previous window's future, done already (one worker runs these
        in order), whose carried rows come first. The batches are collated here too, off the
        thread that runs the model."""
        held = before.result()[2] if before is not None else []
        ok, enc, bad = encode_rows(todo)
        rows = held + list(zip(ok, enc, strict=True))
        groups = [rows[c] for c in token_batches([len(e) for _, e in rows], max_batch_tokens, batch_size)]
        rest = groups.pop() if carry and groups and not last and len(groups[-1]) < batch_size else []
        batches = []
        for g in groups:
            idx, encs = [i for i, _ in g], [e for _, e in g]
            batches.append((idx, encs, target.collate(encs) if split else None))
        return bad, batches, rest

    # A three-stage pipeline: a worker thread encodes window c+1 (media decoding, tokenising)
    # and another reduces the forward output of batch b to statistics while this thread runs
    # the model on batch b+1; torch releases the GIL in its kernels, so the stages overlap. The
    # cache is only touched from this thread. At most two batches' outputs are alive at once
    # (hidden states, or logits where the target keeps the full path).
    split = hasattr(target, "forward_batch") and hasattr(target, "reduce_batch")
    ready: dict[int, dict | None] = {}  # statistics (None: skipped) of samples not yielded yet
    pending: dict[int, str] = {}  # cache key of each sample in a batch not finished yet
    pos = 0  # how far along `order` the yields are

    def finish(w):
        idx, fut = w
        values = fut.result()
        computed = {pending[i]: v for i, v in zip(idx, values, strict=True)}
        if cache is not None:
            cache.put_many(computed)
        counts.batches += 1
        counts.computed += len(idx)
        for i, v in zip(idx, values, strict=True):
            ready[i] = v
            del pending[i]

    def flush():
        nonlocal pos
        start = pos
        while pos < len(order) and order[pos] in ready:
            i = order[pos]
            pos += 1
            yield i, ready.pop(i)
        if bar is not None and pos > start:
            bar.advance(pos - start)

    with ThreadPoolExecutor(max_workers=1) as enc_pool, ThreadPoolExecutor(max_workers=1) as red_pool:
        plans = [None] * len(windows)
        if windows:
            k0 = lookup(windows[0])
            plans[0] = (k0, enc_pool.submit(encode, k0[2], None, len(windows) == 1))
        waiting = None  # (indices, future of statistics) of the batch before

        for c, idx in enumerate(windows):
            (keys, found, todo), fut = plans[c]
            if c + 1 < len(windows):
                nxt = lookup(windows[c + 1])
                plans[c + 1] = (nxt, enc_pool.submit(encode, nxt[2], fut, c + 2 == len(windows)))
            plans[c] = None
            counts.cached += len(idx) - len(todo)
            ready.update({i: found[keys[i]] for i in idx if keys[i] in found})
            pending.update({i: keys[i] for i in todo})
            bad, batches, _ = fut.result()
            for i, exc in bad:
                if not skip_bad:
                    raise InputError(f"sample '{samples[i].id}': {exc}", source, samples[i].row) from None
                counts.skipped.append((i, str(exc)))
                ready[i] = None
                del pending[i]
            for b_idx, encoded, inputs in batches:
                if split:
                    out = target.forward_batch(encoded, inputs)
                    stats_future = red_pool.submit(target.reduce_batch, out, encoded)
                    del out
                else:
                    stats_future = red_pool.submit(target.token_stats, encoded)
                if waiting is not None:
                    finish(waiting)
                    yield from flush()
                waiting = (b_idx, stats_future)
            yield from flush()
        if waiting is not None:
            finish(waiting)
        yield from flush()


def answer_losses(target, samples: Sequence, *, cache: Cache | None = None, batch_size: int = 8,
                  slice_name: str = "answer", max_batch_tokens: int | None = None) -> np.ndarray:
    """Mean negative log-likelihood of each sample's answer (or text) tokens, in input order.

    The quantity FiMMIA and the loss attack need; NaN where a sample has no such tokens.
    """
    from mmia.targets.base import SLICE_CODES

    code = SLICE_CODES[slice_name]
    out = np.full(len(samples), np.nan)
    for i, st in iter_token_stats(target, samples, cache=cache, batch_size=batch_size,
                                  max_batch_tokens=max_batch_tokens):
        sel = st["codes"][1:] == code
        if sel.any():
            out[i] = -float(st["logp"][sel].mean())
    return out
