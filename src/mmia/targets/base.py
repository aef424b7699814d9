"""The one small interface every target adapter implements, and the types it passes around.

A *generative* target (causal LM, vision-language model, audio-language model) turns a sample
into token ids plus a per-token slice code (`encode`), runs a padded batch of them through the
model once (`logits`), and reduces the logits to per-token statistics (`token_stats`). A
*contrastive* target (CLIP, CLAP) embeds texts and media into one space (`embed_text`,
`embed_media`, `pair_similarity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# Slice codes, one per input token: which part of the sample the token belongs to.
OTHER, IMAGE, PROMPT, ANSWER, AUDIO = 0, 1, 2, 3, 4
SLICE_CODES = {"other": OTHER, "image": IMAGE, "prompt": PROMPT, "answer": ANSWER, "audio": AUDIO}
MEDIA_SLICES = ("image", "audio")
TEXT_SLICES = ("prompt", "answer")

GENERATIVE_KINDS = ("causal-lm", "vlm", "audio-lm")
CONTRASTIVE_KINDS = ("clip", "clap")


def slice_rows(codes: np.ndarray, slice_name: str) -> np.ndarray:
    """Boolean mask over a sample's L-1 statistics rows (row t: position t predicting token t+1)
    that one slice reads: the one rule the attacks and the statistics' row selection share.

    Text slices (prompt, answer) read the rows whose *predicted* token (codes[1:]) is in the
    slice, so the log-probabilities are those of the slice's own tokens. Media slices (image,
    audio) read the rows whose *input* token (codes[:-1]) is a media token: there is no true
    next token there, only the model's output distribution, which is what VL-MIA's target-free
    metrics read.
    """
    codes = np.asarray(codes)
    side = codes[:-1] if slice_name in MEDIA_SLICES else codes[1:]
    return side == SLICE_CODES[slice_name]


@dataclass
class Encoded:
    """One sample ready for a generative forward pass.

    `input_ids` (L,) and `codes` (L,) (a SLICE_CODES value per token); `extras` are the
    processor's per-sample media tensors whose first dimension is concatenated across a batch
    (pixel_values, image_grid_thw, input_features, ...); `token_extras` are (L,) tensors padded
    like the ids (mm_token_type_ids); `answer_start` the first token after the prompt part.
    """

    input_ids: np.ndarray
    codes: np.ndarray
    extras: dict = field(default_factory=dict)
    token_extras: dict = field(default_factory=dict)
    # Where the prompt part ends and the answer's text begins (its first token may be special,
    # e.g. an unknown word, and so coded `other`); None when not known.
    answer_start: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@runtime_checkable
class Target(Protocol):
    """What every adapter has: its kind, where it came from, and a fingerprint for cache keys."""

    kind: str
    path: Path
    fingerprint: str


@runtime_checkable
class GenerativeTarget(Target, Protocol):
    def encode(self, sample, transform=None) -> Encoded: ...

    def token_stats(self, batch: list[Encoded]) -> list[dict[str, np.ndarray]]: ...


@runtime_checkable
class ContrastiveTarget(Target, Protocol):
    media_kind: str  # "image" or "audio"

    def embed_text(self, texts: list[str]) -> np.ndarray: ...

    def embed_media(self, media: list) -> np.ndarray: ...

    def pair_similarity(self, texts: list[str], media: list) -> np.ndarray: ...


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str | None, device: str):
    """float32 on CPU, bfloat16 on CUDA, unless the caller names one."""
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if isinstance(dtype, str):
        if dtype not in names:
            raise ValueError(f"unknown dtype {dtype!r}; one of {', '.join(names)}")
        return names[dtype]
    return dtype
