"""Training-free scores per perturbation technique, and a technique subset chosen on training rows.

The neighbourhood score (mean neighbour-minus-original loss) restricted to the neighbours of one
(field, technique) says which edits carry membership signal on a target. The subset is chosen on
the attack's training rows only, then reported on the disjoint evaluation samples, like every
other FiMMIA entry.
"""

from __future__ import annotations

import numpy as np

from mmia.fimmia.features import FeatureSet


def technique_scores(fs: FeatureSet, plans: list[list[tuple[str, str, int]]]) -> dict[str, np.ndarray]:
    """Per "field/technique": each sample's mean loss delta over its neighbours of that technique
    (NaN for a sample with none). `plans`: per sample, `NeighbourMaker.plan` (one entry per neighbour)."""
    if len(plans) != len(fs) or any(len(p) != fs.loss.shape[1] for p in plans):
        raise ValueError("one plan per sample, one entry per neighbour")
    names = sorted({f"{field}/{tech}" for p in plans for field, tech, _ in p})
    out = {}
    for name in names:
        mask = np.array([[f"{field}/{tech}" == name for field, tech, _ in p] for p in plans])
        n = mask.sum(axis=1)
        total = np.where(mask, fs.loss, 0.0).sum(axis=1)
        out[name] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out


def choose_techniques(scores: dict[str, np.ndarray], labels: np.ndarray) -> tuple[list[str], dict[str, float]]:
    """The techniques whose training-free AUC on these (training) rows is above 0.5, best first;
    the single best when none is. Returns (chosen, AUC per technique)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    aucs = {}
    for name, col in scores.items():
        ok = np.isfinite(col)
        if ok.sum() >= 2 and len(np.unique(labels[ok])) == 2:
            aucs[name] = float(roc_auc_score(labels[ok], col[ok]))
    ranked = sorted(aucs, key=lambda n: -aucs[n])
    chosen = [n for n in ranked if aucs[n] > 0.5] or ranked[:1]
    return chosen, aucs


def subset_score(scores: dict[str, np.ndarray], chosen: list[str]) -> np.ndarray:
    """Mean over the chosen techniques' per-sample scores (those a sample has)."""
    return np.nanmean(np.stack([scores[n] for n in chosen]), axis=0)
