"""What a registered score attack sees for one sample, and how it picks a slice of tokens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmia.targets.base import MEDIA_SLICES, SLICE_CODES


@dataclass
class SampleRecord:
    """One sample's inputs to the attacks (all optional but the sample).

    `stats`: the target's token statistics ({"codes": (L,), stat: (L-1,)}); `lower`: the same
    for the lowercased text; `reference`: the reference model's statistics (its own
    tokenisation); `embeddings`: a contrastive target's {"text", "media", "aug"}.
    """

    sample: object
    stats: dict | None = None
    lower: dict | None = None
    reference: dict | None = None
    embeddings: dict | None = None


def slice_rows(stats: dict, slice_name: str) -> np.ndarray:
    """Boolean mask over the statistics rows (positions t predicting token t+1) of one slice.

    Text slices (prompt, answer) select the rows whose *predicted* token is in the slice, so the
    log-probabilities are those of the slice's own tokens. Media slices (image, audio) select the
    rows whose *input* token is a media token: there is no true next token there, only the
    model's output distribution, which is what VL-MIA's target-free metrics read.
    """
    codes = stats["codes"]
    code = SLICE_CODES[slice_name]
    if slice_name in MEDIA_SLICES:
        return codes[:-1] == code
    return codes[1:] == code


def values(stats: dict | None, stat: str, slice_name: str) -> np.ndarray:
    """The per-token values of one statistic over one slice (empty if absent)."""
    if stats is None:
        return np.zeros(0)
    return stats[stat][slice_rows(stats, slice_name)]


def slice_text(sample, slice_name: str) -> str:
    """The text a text slice covers (for zlib): the answer, or the whole text, or the prompt."""
    if slice_name == "prompt":
        return sample.prompt or ""
    return sample.answer if sample.prompt is not None else (sample.text or "")
