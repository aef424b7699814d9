"""What a registered score attack sees for one sample, and how it picks a slice of tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmia.targets.base import slice_rows


@dataclass
class SampleRecord:
    """One sample's inputs to the attacks: the sample, and its views (view name -> that engine
    stream's output for it; `mmia.attacks.views.VIEWS` says what each holds).

    "stats": the target's token statistics ({"codes": (L,), stat: (L-1,)}); "lower": the same
    for the lowercased text; "reference": the reference model's statistics (its own
    tokenisation); "embeddings": a contrastive target's {"text", "media", "aug"}. Only the views
    some requested attack declares are there (and "reference" only with a reference model).
    """

    sample: object
    views: dict[str, dict] = field(default_factory=dict)
    # What several attacks derive from the same statistics (a slice's row mask, its sorted
    # values), found once per sample: see `slice_values` and `sorted_values`.
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def view(self, name: str) -> dict | None:
        """One view's output for this sample; None where that view was not opened."""
        return self.views.get(name)


def values(stats: dict | None, stat: str, slice_name: str) -> np.ndarray:
    """The per-token values of one statistic over one slice (empty if absent)."""
    if stats is None:
        return np.zeros(0)
    return stats[stat][slice_rows(stats["codes"], slice_name)]


def slice_text(sample, slice_name: str) -> str:
    """The text a text slice covers (for zlib): the answer, or the whole text, or the prompt."""
    if slice_name == "prompt":
        return sample.prompt or ""
    return sample.answer if sample.prompt is not None else (sample.text or "")


def slice_values(rec: SampleRecord, stat: str, slice_name: str, view: str = "stats") -> np.ndarray:
    """`values(rec.view(view), stat, slice_name)`, the slice's row mask found once per record."""
    stats = rec.view(view)
    if stats is None:
        return np.zeros(0)
    key = (view, slice_name)
    rows = rec.memo.get(key)
    if rows is None:
        rows = rec.memo[key] = slice_rows(stats["codes"], slice_name)
    return stats[stat][rows]


def sorted_values(rec: SampleRecord, stat: str, slice_name: str) -> np.ndarray:
    """The slice's values of one statistic as sorted float64, sorted once per record (MaxRényi-K%
    and MinRényi-K% read the same ones)."""
    key = ("sorted", stat, slice_name)
    out = rec.memo.get(key)
    if out is None:
        out = rec.memo[key] = np.sort(np.asarray(slice_values(rec, stat, slice_name), dtype=np.float64).ravel())
    return out
