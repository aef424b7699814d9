"""UMID's registered methods: the ensemble, its controls and the baselines it is compared with
(the audit of a query file and its results: `mmia.umid.api`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmia.attacks.registry import register_attack
from mmia.umid.audit import (
    MethodScores,
    SequentialConfig,
    UmidConfig,
    embedding_control_scores,
    media_cosine_scores,
    sequential_scores,
    umid_scores,
)

UMID_PAPER = "Membership Inference for Contrastive Pre-training Models with Text-only PII Queries, arXiv 2603.14222"
PREDECESSORS = ("TUNI (Rosy0912/TUNI, CLIP) and USMID (YiNakaD/CLAP_MIA, CLAP), predecessors of UMID "
                "(arXiv 2603.14222)")
CSA_PAPER = "Ko et al., Practical Membership Inference Attacks Against Large-Scale Multi-Modal Models, ICCV 2023"


@register_attack("umid", family="text-only", target_kinds=("clip", "clap"), paper=UMID_PAPER, config=UmidConfig)
def run_umid(target, texts: list[str], config: UmidConfig, cache=None) -> list[MethodScores]:
    """UMID (arXiv 2603.14222): batched inversion, gibberish reference, directional PyOD ensemble."""
    return umid_scores(target, texts, config, cache=cache)[0]


@register_attack("umid-name-control", family="text-only", target_kinds=("clip", "clap"), paper=UMID_PAPER,
                 config=UmidConfig, needs_labels=True)
def run_name_control(target, texts: list[str], config: UmidConfig, reference_names: list[str],
                     cache=None) -> MethodScores:
    """UMID (arXiv 2603.14222) with held-out non-member names as the reference: the name-likeness control."""
    scores, _ = umid_scores(target, texts, config, cache=cache, reference_texts=reference_names,
                            label="umid-name-control", with_diagnostics=False)
    held = {n.strip().lower() for n in reference_names}
    scores[0].mask = np.array([t.strip().lower() not in held for t in texts])
    return scores[0]


@register_attack("umid-embedding-control", family="text-only", target_kinds=("clip", "clap"), paper=UMID_PAPER,
                 config=UmidConfig)
def run_embedding_control(target, texts: list[str], config: UmidConfig,
                          reference_names: list[str] | None = None) -> MethodScores:
    """UMID's (arXiv 2603.14222) reference and ensemble on text embeddings alone: the no-inversion control."""
    if reference_names is None:
        return embedding_control_scores(target, texts, config)
    out = embedding_control_scores(target, texts, config, reference_texts=reference_names,
                                   label="umid-embedding-control:names")
    held = {n.strip().lower() for n in reference_names}
    out.mask = np.array([t.strip().lower() not in held for t in texts])
    return out


@register_attack("umid-sequential", family="text-only", target_kinds=("clip", "clap"), paper=PREDECESSORS,
                 config=SequentialConfig)
def run_sequential(target, texts: list[str], config: SequentialConfig, cache=None) -> MethodScores:
    """The predecessors' procedure (TUNI/USMID, before UMID arXiv 2603.14222): sequential restarts."""
    return sequential_scores(target, texts, config, cache=cache)


# family "text-only": it runs inside `mmia umid` as its biometric baseline (the per-pair CSA of
# `mmia attack` is registered there as a "contrastive" attack with the attack runner's signature)
@register_attack("umid-media-cosine", family="text-only", target_kinds=("clip", "clap"), paper=CSA_PAPER,
                 modalities=("image", "audio"))
def run_media_cosine(target, captions: list[str], media: list[Path]) -> MethodScores:
    """Cosine-similarity attack (Ko et al., ICCV 2023) with the person's real media: biometric access."""
    return media_cosine_scores(target, captions, media)
