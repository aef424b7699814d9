"""The score-based attacks on generative targets, registered for `mmia attack` and the demo.

Each entry point maps one sample's record to a dict {column suffix: score}; "" is the attack's
own column. The record holds the views the attack declares (`views=`; the target's token
statistics, "stats", unless it says otherwise; `mmia.attacks.views`). The arithmetic lives in
`mmia.attacks.score_functions` (pure, known-answer tested).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from mmia.attacks import score_functions as S
from mmia.attacks.records import SampleRecord, slice_text, slice_values, sorted_values
from mmia.attacks.registry import register_attack
from mmia.targets.base import GENERATIVE_KINDS

GEN = GENERATIVE_KINDS
TextSlice = Literal["prompt", "answer"]
AnySlice = Literal["image", "audio", "prompt", "answer"]
CARLINI = "Carlini et al., Extracting Training Data from Large Language Models, USENIX Security 2021"
VLMIA = "Li et al., Membership Inference Attacks against Large Vision-Language Models (VL-MIA), NeurIPS 2024"


class SliceConfig(BaseModel):
    slice: TextSlice = Field("answer", description="token slice scored: the answer (or whole text) or the prompt")


class KConfig(SliceConfig):
    k: float = Field(0.2, gt=0, le=1, description="fraction of lowest-scoring tokens averaged")


class ReferenceConfig(SliceConfig):
    mode: Literal["ratio", "difference"] = "ratio"


class RenyiKConfig(BaseModel):
    alphas: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, float("inf")])
    k: float = Field(0.1, ge=0, le=1, description="fraction of tokens averaged; 0 = the single extreme token")
    slices: list[AnySlice] = Field(default_factory=lambda: ["image", "audio", "prompt", "answer"])


class ModRenyiConfig(BaseModel):
    alphas: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    slices: list[TextSlice] = Field(default_factory=lambda: ["prompt", "answer"])


class GapConfig(BaseModel):
    slices: list[AnySlice] = Field(default_factory=lambda: ["image", "audio", "prompt", "answer"])


def _alpha_stat(alpha: float) -> str:
    if alpha == 1:
        return "entropy"
    if alpha == float("inf"):
        return "renyi_inf"
    if alpha in (0.5, 2):
        return f"renyi_{alpha:g}"
    raise ValueError(f"Rényi alpha {alpha} is not computed (choose from 0.5, 1, 2, inf)")


def _alpha_name(alpha: float) -> str:
    return "inf" if alpha == float("inf") else f"{alpha:g}"


def _k_name(k: float) -> str:
    return f"{round(k * 100):d}"


@register_attack("loss", family="score", paper="Yeom et al., Privacy Risk in Machine Learning, CSF 2018",
                 config=SliceConfig, target_kinds=GEN)
def loss_attack(rec: SampleRecord, cfg: SliceConfig) -> dict:
    """Loss attack (Yeom et al. 2018): minus the mean negative log-likelihood of the slice."""
    return {"": S.loss_score(slice_values(rec, "logp", cfg.slice))}


@register_attack("zlib", family="score", paper=CARLINI, config=SliceConfig, target_kinds=GEN)
def zlib_attack(rec: SampleRecord, cfg: SliceConfig) -> dict:
    """zlib ratio (Carlini et al. 2021): the loss divided by the zlib-compressed length of the text."""
    return {"": S.zlib_score(slice_values(rec, "logp", cfg.slice), slice_text(rec.sample, cfg.slice))}


@register_attack("lowercase", family="score", paper=CARLINI, config=SliceConfig, target_kinds=GEN,
                 views=("stats", "lower"))
def lowercase_attack(rec: SampleRecord, cfg: SliceConfig) -> dict:
    """Lowercase ratio (Carlini et al. 2021): loss on the text over loss on its lowercased copy (a second pass)."""
    return {"": S.lowercase_score(slice_values(rec, "logp", cfg.slice), slice_values(rec, "logp", cfg.slice, "lower"))}


@register_attack("min_k", family="score", config=KConfig, target_kinds=GEN,
                 paper="Shi et al., Detecting Pretraining Data from Large Language Models, ICLR 2024")
def min_k_attack(rec: SampleRecord, cfg: KConfig) -> dict:
    """Min-K% Prob (Shi et al. 2024): mean log-probability of the k% least likely tokens."""
    return {"": S.min_k_prob(slice_values(rec, "logp", cfg.slice), cfg.k)}


@register_attack("min_k_pp", family="score", config=KConfig, target_kinds=GEN,
                 paper="Zhang et al., Min-K%++: Improved Baseline for Detecting Pre-Training Data from LLMs, 2024")
def min_k_pp_attack(rec: SampleRecord, cfg: KConfig) -> dict:
    """Min-K%++ (Zhang et al. 2024): Min-K% over token log-probabilities standardised by the model's distribution."""
    sl = cfg.slice
    mu = -slice_values(rec, "entropy", sl)
    return {"": S.min_k_plus_plus(slice_values(rec, "logp", sl), mu, slice_values(rec, "lp_std", sl), cfg.k)}


@register_attack("reference", family="score", paper=CARLINI, config=ReferenceConfig, target_kinds=GEN,
                 views=("stats", "reference"))
def reference_attack(rec: SampleRecord, cfg: ReferenceConfig) -> dict:
    """Reference-model ratio (Carlini et al. 2021): target loss calibrated by a reference model's loss.

    Each model's loss is its mean over its own tokenisation of the same slice text, so the
    reference may use another tokenizer; tokens are never compared across models.
    """
    lt = -S.loss_score(slice_values(rec, "logp", cfg.slice))
    lr = -S.loss_score(slice_values(rec, "logp", cfg.slice, "reference"))
    return {"": S.reference_score(lt, lr, cfg.mode)}


def _renyi_k(rec: SampleRecord, cfg: RenyiKConfig, largest: bool) -> dict:
    # Each slice's rows are found once per sample and each (statistic, slice) sorted once, shared
    # by MaxRényi-K% and MinRényi-K% (`sorted_values`); columns keep the alpha-major order.
    empty = np.zeros(0)
    out = {}
    for a in cfg.alphas:
        stat = _alpha_stat(a)
        head = f"_k{_k_name(cfg.k)}_a{_alpha_name(a)}@"
        for sl in cfg.slices:
            s = sorted_values(rec, stat, sl) if rec.view("stats") is not None else empty
            out[head + sl] = S.k_renyi_sorted(s, cfg.k, largest)
    return out


@register_attack("max_k_renyi", family="score", paper=VLMIA, config=RenyiKConfig, target_kinds=GEN)
def max_k_renyi_attack(rec: SampleRecord, cfg: RenyiKConfig) -> dict:
    """MaxRényi-K% (Li et al. 2024, VL-MIA): minus the mean of the K% largest token Rényi entropies, per slice."""
    return _renyi_k(rec, cfg, largest=True)


@register_attack("min_k_renyi", family="score", paper=VLMIA, config=RenyiKConfig, target_kinds=GEN)
def min_k_renyi_attack(rec: SampleRecord, cfg: RenyiKConfig) -> dict:
    """MinRényi-K% (Li et al. 2024, VL-MIA): minus the mean of the K% smallest token Rényi entropies, per slice."""
    return _renyi_k(rec, cfg, largest=False)


@register_attack("mod_renyi", family="score", paper=VLMIA, config=ModRenyiConfig, target_kinds=GEN)
def mod_renyi_attack(rec: SampleRecord, cfg: ModRenyiConfig) -> dict:
    """Modified Rényi entropy (Li et al. 2024, VL-MIA): uses the true next token; text slices only."""
    out = {}
    for a in cfg.alphas:
        if a not in (0.5, 1, 2):
            raise ValueError(f"modified Rényi alpha {a} is not computed (choose from 0.5, 1, 2)")
        for sl in cfg.slices:
            out[f"_a{_alpha_name(a)}@{sl}"] = S.mod_renyi_score(slice_values(rec, f"mod_renyi_{a:g}", sl))
    return out


@register_attack("max_prob_gap", family="score", paper=VLMIA, config=GapConfig, target_kinds=GEN)
def max_prob_gap_attack(rec: SampleRecord, cfg: GapConfig) -> dict:
    """Max-probability gap (Li et al. 2024, VL-MIA): mean gap between the two likeliest next tokens, per slice."""
    return {f"@{sl}": S.max_prob_gap_score(slice_values(rec, "gap", sl)) for sl in cfg.slices}
