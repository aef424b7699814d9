"""Attacks on contrastive targets (CLIP, CLAP): the pair's cosine similarity and its
augmentation-enhanced form (Ko et al., ICCV 2023)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mmia.attacks import score_functions as S
from mmia.attacks.records import SampleRecord
from mmia.attacks.registry import register_attack

KO = ("Ko et al., Practical Membership Inference Attacks Against Large-Scale Multi-Modal Models: "
      "A Pilot Study, ICCV 2023")


class CSAConfig(BaseModel):
    """CSA has no settings."""


class AEAConfig(BaseModel):
    n_aug: int = Field(8, ge=1, le=256, description="augmented copies of each image or clip")
    mode: Literal["mean", "drop"] = "mean"
    seed: int = 0


@register_attack("csa", family="contrastive", paper=KO, config=CSAConfig, target_kinds=("clip", "clap"),
                 modalities=("image", "audio"))
def csa_attack(rec: SampleRecord, cfg: CSAConfig) -> dict:
    """Cosine-similarity attack (Ko et al. 2023): members' text and media embed closer together."""
    e = rec.view("embeddings")
    return {"": S.csa_score(e["text"], e["media"])}


@register_attack("aea", family="contrastive", paper=KO, config=AEAConfig, target_kinds=("clip", "clap"),
                 modalities=("image", "audio"), tags=("augment",))
def aea_attack(rec: SampleRecord, cfg: AEAConfig) -> dict:
    """Augmentation-enhanced attack (Ko et al. 2023): CSA aggregated over seeded augmentations of the media."""
    e = rec.view("embeddings")
    return {"": S.aea_score(e["text"], e["media"], e["aug"], cfg.mode)}
