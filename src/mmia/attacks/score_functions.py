"""Pure numpy scoring functions of the score-based attacks: higher = more likely a member.

Each takes per-token arrays of one sample (already restricted to one slice) and returns one
float; each has a known-answer test in tests/test_attack_scoring.py. The papers:

- loss: Yeom et al., "Privacy Risk in Machine Learning", CSF 2018 (the negative mean NLL).
- zlib, lowercase, reference: Carlini et al., "Extracting Training Data from Large Language
  Models", USENIX Security 2021.
- Min-K% Prob: Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024.
- Min-K%++: Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from
  Large Language Models", 2024 (ICLR 2025).
- Max-/Min-K% Rényi, modified Rényi, max-probability gap: Li et al., "Membership Inference
  Attacks against Large Vision-Language Models" (VL-MIA), NeurIPS 2024.
- CSA and AEA: Ko et al., "Practical Membership Inference Attacks Against Large-Scale
  Multi-Modal Models: A Pilot Study", ICCV 2023.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

NAN = float("nan")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def _mean(x: np.ndarray):
    """`x.mean()` of a non-empty float64 array, bit for bit (the same sum over the same count),
    without np.mean's per-call overhead: the attacks take thousands of small means per batch."""
    return np.add.reduce(x) / x.size


def loss_score(logp) -> float:
    """Mean log-probability of the tokens (= minus the loss); NaN for no tokens."""
    lp = _arr(logp)
    return float(_mean(lp)) if lp.size else NAN


def zlib_bytes(text: str) -> int:
    """Length of the zlib-compressed UTF-8 text (level 9), Carlini et al.'s entropy proxy."""
    return len(zlib.compress(text.encode("utf-8"), 9))


def zlib_score(logp, text: str) -> float:
    """-(loss / zlib length): low loss relative to how compressible the text is means member."""
    lp = _arr(logp)
    if not lp.size or not text:
        return NAN
    return float(_mean(lp) / zlib_bytes(text))  # = -(loss / zlib)


def lowercase_score(logp, logp_lower) -> float:
    """-(loss(original) / loss(lowercased)): the model prefers the exact casing it trained on."""
    a, b = _arr(logp), _arr(logp_lower)
    if not a.size or not b.size or _mean(b) == 0:
        return NAN
    return float(-(_mean(a) / _mean(b)))


def reference_score(loss_target: float, loss_reference: float, mode: str = "ratio") -> float:
    """Target loss calibrated by a reference model's loss on the same text.

    ratio: -(loss_t / loss_ref) (Carlini et al.'s ratio of log-perplexities);
    difference: loss_ref - loss_t (Watson et al.'s calibrated loss).
    Each loss is a per-sample mean over that model's own tokens, so the two models' tokenisers
    need not agree.
    """
    if not (math.isfinite(loss_target) and math.isfinite(loss_reference)):
        return NAN
    if mode == "difference":
        return float(loss_reference - loss_target)
    if mode != "ratio":
        raise ValueError(f"unknown mode {mode!r}")
    return float(-(loss_target / loss_reference)) if loss_reference != 0 else NAN


def _n_of(k: float, n: int) -> int:
    """How many of n values K% selects: int(k * n), at least one.

    The reference code of Min-K% (Shi et al.), Min-K%++ (Zhang et al.) and VL-MIA's K% Rényi
    all take `int(len * ratio)` tokens (VL-MIA at least one; the other two average an empty
    selection into NaN), so this follows them, float rounding of k * n included.
    """
    return max(1, int(k * n))


def min_k_prob(logp, k: float = 0.2) -> float:
    """Mean of the lowest k fraction of token log-probabilities (Min-K% Prob)."""
    lp = _arr(logp)
    if not lp.size:
        return NAN
    return float(_mean(np.sort(lp)[: _n_of(k, lp.size)]))


def min_k_plus_plus(logp, mu, sigma, k: float = 0.2) -> float:
    """Min-K%++: mean of the lowest k fraction of (log p(x_t) - mu_t) / sigma_t.

    mu_t and sigma_t are the mean and standard deviation of log p(z) under z ~ p(.|x_<t), the
    model's own next-token distribution (mu_t = minus its entropy).
    """
    lp, m, s = _arr(logp), _arr(mu), _arr(sigma)
    if not lp.size:
        return NAN
    z = (lp - m) / np.maximum(s, 1e-8)
    return float(_mean(np.sort(z)[: _n_of(k, z.size)]))


def k_renyi(entropies, k: float = 0.1, largest: bool = True) -> float:
    """Max-K% (largest=True) or Min-K% Rényi: minus the mean of the k fraction of largest (or
    smallest) per-token entropies; k=0 takes the single extreme value. Members are predicted
    with lower entropy, hence the minus."""
    return k_renyi_sorted(np.sort(_arr(entropies)), k, largest)


def k_renyi_sorted(s: np.ndarray, k: float = 0.1, largest: bool = True) -> float:
    """`k_renyi` of entropies already sorted ascending as float64 (several attacks share the sort)."""
    if not s.size:
        return NAN
    n = _n_of(k, s.size)  # k = 0: the single extreme value
    chosen = s[-n:] if largest else s[:n]
    return float(-_mean(chosen))


def mod_renyi_score(values) -> float:
    """Minus the mean modified Rényi entropy over the tokens (VL-MIA's ModRényi)."""
    v = _arr(values)
    return float(-_mean(v)) if v.size else NAN


def max_prob_gap_score(gaps) -> float:
    """Mean gap between the two most probable next tokens: members are predicted confidently."""
    g = _arr(gaps)
    return float(_mean(g)) if g.size else NAN


def cosine(a, b) -> float:
    a, b = _arr(a), _arr(b)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def csa_score(text_emb, media_emb) -> float:
    """Cosine similarity of a text and its paired media (CSA)."""
    return cosine(text_emb, media_emb)


def aea_score(text_emb, media_emb, aug_embs, mode: str = "mean") -> float:
    """Augmentation-enhanced attack over augmented copies of the media.

    mean: the cosine similarity averaged over the original and its augmentations (a
    lower-variance CSA); drop: CSA(original) minus the mean CSA of the augmentations (members'
    similarity falls more under augmentation, as Ko et al. observe).
    """
    base = csa_score(text_emb, media_emb)
    augs = np.atleast_2d(np.asarray(aug_embs, dtype=np.float64))
    if augs.size == 0:
        return base
    sims = [cosine(text_emb, a) for a in augs]
    if mode == "mean":
        return float(np.mean([base, *sims]))
    if mode == "drop":
        return float(base - np.mean(sims))
    raise ValueError(f"unknown mode {mode!r}")
