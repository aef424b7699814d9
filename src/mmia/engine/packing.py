"""Forward batches cut by a token budget: a pure function over the rows' token counts."""

from __future__ import annotations

from collections.abc import Sequence


def token_batches(lengths: Sequence[int], max_tokens: int | None, max_rows: int) -> list[slice]:
    """Consecutive rows cut into batches, in order: a batch takes the next row while it has
    fewer than `max_rows` rows and its padded size, rows x the longest row's tokens, stays
    within `max_tokens` (None: no budget, batches of `max_rows`). A row longer than the
    budget is a batch of its own: every batch has at least one row.

    A padded batch costs rows x width whatever its rows' own lengths, so the budget bounds
    the model's activations per batch: on length-sorted rows, short rows go many to a batch and
    long ones few.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    out, start, width = [], 0, 0
    for i, n in enumerate(lengths):
        wider = max(width, int(n))
        full = i - start >= max_rows or (max_tokens is not None and (i - start + 1) * wider > max_tokens)
        if i > start and full:
            out.append(slice(start, i))
            start, wider = i, int(n)
        width = wider
    if start < len(lengths):
        out.append(slice(start, len(lengths)))
    return out
