"""Packing the unshared tails of neighbour sequences on top of a reference's KV cache.

A neighbour that only changes text shares a token prefix with its original (the media tokens,
the prompt, and the answer up to its first edit). With a causal model the hidden states and
keys/values over that prefix are the original's, so only the tail after it has to run. Tails
have very different lengths (the first edit falls anywhere), so instead of padding each to the
longest, several tails are packed into one row of a batch ("bin") and a 4-D attention mask
lets each tail token see exactly what it would see alone: the reference's cache positions
before the row's divergence point, and the earlier tokens of its own tail. Position ids
continue from the divergence point, so rotary embeddings are those of the unpacked row.

Pure numpy here (tested without a model); `mmia.fimmia.scoring_llava` runs the forwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class PackedTails:
    """Tails packed into `n_bins` rows of `width` tokens, on top of the reference's first `n_past`
    cached positions (the longest prefix any tail needs: the rest of the cache is dropped).

    `flat_start[i]` is where tail i's first token sits in the (n_bins * width) flattened output;
    `allowed[b, q, k]` says whether query q of bin b may attend to key k, where keys 0..n_past-1
    are the cache and n_past + q' is slot q' of the same bin.
    """

    ids: np.ndarray  # (n_bins, width) int64
    positions: np.ndarray  # (n_bins, width) int64
    allowed: np.ndarray  # (n_bins, width, n_past + width) bool
    flat_start: list[int]
    n_past: int

    @property
    def n_bins(self) -> int:
        return self.ids.shape[0]


def _first_fit(lengths: list[int], order: list[int], width: int) -> list[list[int]]:
    """Indices `order` (by decreasing length) first fit into bins of `width` slots."""
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = lengths[i]
        for b, room in enumerate(free):
            if room >= n:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(width - n)
    return bins


def choose_width(lengths: list[int], n_past: int, token_cost: float) -> int:
    """The bin width, from the longest tail up to three times it, that minimises the estimated cost
    of the packed forward: slots * (token_cost + n_past + width), where `token_cost` is a token's
    work outside attention (projections, MLP) in units of one query-key pair's attention work,
    and a slot attends to n_past + width keys. Bins as wide as the longest tail leave ~18% of
    the slots empty when most tails are longer than half the longest (none can share a row);
    wider bins fill better but make every query see more keys. Widths are tried in ~16 steps
    (the packing runs per sample, so its Python time counts)."""
    real = [n for n in lengths if n]
    if not real:
        return 0
    longest = max(real)
    order = sorted(range(len(real)), key=lambda i: -real[i])
    best, best_cost = longest, float("inf")
    for width in range(longest, min(3 * longest, sum(real)) + 1, max(1, longest // 16)):
        cost = len(_first_fit(real, order, width)) * width * (token_cost + n_past + width)
        if cost < best_cost:
            best, best_cost = width, cost
    return best


def pack_tails(tails: list[list[int]], shared: list[int], pad_id: int, width: int | None = None) -> PackedTails:
    """Pack `tails[i]` (tokens at positions shared[i], shared[i]+1, ... of row i, whose first
    shared[i] positions are the cache's) into bins of `width` slots (default: as wide as the
    longest tail; see `choose_width`), first fit by decreasing length. Padding slots attend to
    key 0 only (never a fully masked row, which gives NaN under SDPA); their outputs are never
    read."""
    longest = max((len(t) for t in tails), default=0)
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"bin width {width} < longest tail {longest}")
    n_past = max((c for t, c in zip(tails, shared, strict=True) if t), default=0)
    order = sorted((i for i in range(len(tails)) if tails[i]), key=lambda i: -len(tails[i]))
    bins = _first_fit([len(t) for t in tails], order, width)
    ids = np.full((len(bins), width), pad_id, dtype=np.int64)
    positions = np.zeros((len(bins), width), dtype=np.int64)
    allowed = np.zeros((len(bins), width, n_past + width), dtype=bool)
    if allowed.size:  # no bins when no row has a tail (every row a prefix of the original)
        allowed[:, :, 0] = True  # padding slots; overwritten below for real ones
    causal = np.tril(np.ones((width, width), dtype=bool))
    flat_start = [0] * len(tails)
    for b, members in enumerate(bins):
        q0 = 0
        for i in members:
            t, c = tails[i], shared[i]
            n = len(t)
            ids[b, q0 : q0 + n] = t
            positions[b, q0 : q0 + n] = np.arange(c, c + n)
            allowed[b, q0 : q0 + n, 0] = c > 0
            allowed[b, q0 : q0 + n, :c] = True
            allowed[b, q0 : q0 + n, n_past + q0 : n_past + q0 + n] = causal[:n, :n]
            flat_start[i] = b * width + q0
            q0 += n
    return PackedTails(ids, positions, allowed, flat_start, n_past)


def hidden_index(start: int, length: int, shared: int, n_ref: int, flat_start: int) -> list[int]:
    """Rows of the table [reference hidden states (n_ref); packed outputs flattened] that hold
    the states predicting tokens start..length-1 of a row: position p = j - 1 comes from the
    reference when p < shared, else from the row's own tail."""
    first, last = start - 1, length - 1  # positions p in [first, last)
    cut = min(max(shared, first), last)
    return [*range(first, cut), *range(n_ref + flat_start + cut - shared, n_ref + flat_start + last - shared)]
