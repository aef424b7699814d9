"""The contrastive model a text-only audit runs against: the targets layer's CLIP/CLAP adapter.

UMID needs normalised text embeddings of queries, a media encoder that gradients flow through
(`embed_pixels` for CLIP; `embed_waveform` / `embed_features` for CLAP) and real-media
embeddings for the biometric baseline: all come from `mmia.targets.contrastive`. Here the
adapter is loaded on the CPU in float32 (the inversion's optimiser state and restarts live
there) with its weights frozen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmia.errors import InputError
from mmia.targets.contrastive import CLAPTarget, CLIPTarget

ContrastiveAdapter = CLIPTarget | CLAPTarget


def load_contrastive(model_dir: str | Path, base: str | Path | None = None) -> ContrastiveAdapter:
    """A CLIP or CLAP adapter from a local Hugging Face directory, CPU float32, weights frozen.

    `model_dir` may be a PEFT adapter of a CLIP/CLAP model (merged into `base`, default the base
    its adapter_config.json names).
    """
    from mmia import offline, progress
    from mmia.targets import detect_kind, load_target
    from mmia.targets.peft_adapter import adapter_or_none

    if progress.is_quiet():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    peft = adapter_or_none(model_dir, base)
    model_dir = Path(model_dir) if peft else Path(offline.resolve_model_dir(model_dir, "target"))
    kind = detect_kind(peft.base if peft else model_dir)
    if kind not in ("clip", "clap"):
        raise InputError(f"is a {kind} model, not a CLIP- or CLAP-style model (need 'clip' or 'clap')",
                         (peft.base if peft else model_dir) / "config.json")
    return load_target(model_dir, kind=kind, device="cpu", dtype="float32",
                       base=peft.base if peft else None).freeze()


def text_embeddings(target: ContrastiveAdapter, texts: list[str]) -> torch.Tensor:
    """Normalised text embeddings (n, d) as a torch tensor."""
    return torch.from_numpy(target.embed_text(texts))


def media_file_embeddings(target: ContrastiveAdapter, paths: list[Path], batch_size: int = 64) -> torch.Tensor:
    """Normalised embeddings (n, d) of real image or audio files, through the model's own processor."""
    out = []
    for i in range(0, len(paths), batch_size):
        out.append(target.embed_media([target.load_media(p) for p in paths[i : i + batch_size]]))
    return torch.from_numpy(np.concatenate(out)) if out else torch.zeros(0, target.embed_dim)
