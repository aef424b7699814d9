"""Target adapters: one small interface over local Hugging Face models.

    from mmia.targets import load_target
    target = load_target("path/to/model")          # kind from config.json; CPU float32 / CUDA bf16
    target.kind                                      # "causal-lm", "vlm", "audio-lm", "clip", "clap"
    enc = [target.encode(s) for s in samples]        # generative: ids + slice codes per token
    stats = target.token_stats(enc)                  # one forward pass; per-token statistics
    target.embed_text(texts); target.embed_media(m)  # contrastive: normalised embeddings

Batching, caching and resuming are the engine's job (`mmia.engine`).
"""

from mmia.targets.base import (
    ANSWER,
    AUDIO,
    CONTRASTIVE_KINDS,
    GENERATIVE_KINDS,
    IMAGE,
    OTHER,
    PROMPT,
    SLICE_CODES,
    ContrastiveTarget,
    Encoded,
    GenerativeTarget,
    Target,
)
from mmia.targets.loading import detect_kind, load_target
from mmia.targets.token_stats import STAT_NAMES, STATS_VERSION, stats_from_logits

__all__ = [
    "ANSWER",
    "AUDIO",
    "CONTRASTIVE_KINDS",
    "GENERATIVE_KINDS",
    "IMAGE",
    "OTHER",
    "PROMPT",
    "SLICE_CODES",
    "STATS_VERSION",
    "STAT_NAMES",
    "ContrastiveTarget",
    "Encoded",
    "GenerativeTarget",
    "Target",
    "detect_kind",
    "load_target",
    "stats_from_logits",
]
