"""The dataset-inference test: one p-value for "the suspect set scores as members, the validation
set does not" (after Maini et al., "LLM Dataset Inference: Did you train on my dataset?",
arXiv 2406.06443).

Per-sample membership features of both sets (score-attack columns, higher = more member-like)
are split, seeded, into part A and part B of each set. On A, outliers are clipped at A's 1st and
99th percentiles, the features standardised by A's mean and spread, and a regularised logistic
regression learns suspect (1) against validation (0). B's samples are scored by that model and
a one-sided Mann-Whitney rank test asks whether suspect scores exceed validation scores.

Validity: nothing of B enters the fit, so when suspect and validation are drawn alike (the null),
B's scores are exchangeable between the two sets and the rank test's p-value is exact at every
level; Maini et al.'s t-test on the same scores is only approximately so. One seeded split is
used, not an average over splits: an average of split p-values is not a p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRAIN_FRACTION = 0.5
CLIP_PERCENTILES = (1.0, 99.0)
C_REGULARISATION = 0.1  # strong: part A holds few samples and the columns are correlated


@dataclass
class SplitTest:
    """The outcome of one split: the p-value and what it was computed on."""

    p_value: float
    n_train: tuple[int, int]  # (suspect, validation) in part A
    n_test: tuple[int, int]  # (suspect, validation) in part B
    test_auc: float  # suspect-vs-validation AUC of the held-out scores (0.5: none)
    weights: dict[str, float]  # the learned direction, per feature (standardised units)
    scores_suspect: np.ndarray  # held-out scores, for the report's histograms
    scores_validation: np.ndarray
    test_index_suspect: np.ndarray  # which suspect rows are in part B
    test_index_validation: np.ndarray


def split_index(n: int, rng: np.random.Generator, train_fraction: float = TRAIN_FRACTION):
    """(part A, part B) row indices of a set of n, each part at least one row."""
    order = rng.permutation(n)
    k = min(max(1, int(round(train_fraction * n))), n - 1)
    return np.sort(order[:k]), np.sort(order[k:])


def fit_transform(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip and standardise both by the training rows' statistics; NaN (a slice a row lacks) becomes
    the training mean. Returns (train, test, keep): `keep` marks the columns that vary in train."""
    lo, hi = np.nanpercentile(train, CLIP_PERCENTILES, axis=0)
    tr, te = np.clip(train, lo, hi), np.clip(test, lo, hi)
    mean = np.nanmean(tr, axis=0)
    std = np.nanstd(tr, axis=0)
    keep = np.isfinite(std) & (std > 1e-12)
    tr = (tr[:, keep] - mean[keep]) / std[keep]
    te = (te[:, keep] - mean[keep]) / std[keep]
    return np.nan_to_num(tr, nan=0.0), np.nan_to_num(te, nan=0.0), keep


def rank_p_value(suspect_scores: np.ndarray, validation_scores: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value that suspect scores exceed validation scores."""
    from scipy.stats import mannwhitneyu

    if np.ptp(np.concatenate([suspect_scores, validation_scores])) == 0:
        return 1.0
    return float(mannwhitneyu(suspect_scores, validation_scores, alternative="greater").pvalue)


def split_test(suspect: np.ndarray, validation: np.ndarray, features: list[str], seed: int = 0,
               train_fraction: float = TRAIN_FRACTION) -> SplitTest:
    """The p-value of one seeded split. `suspect` (n_s, F) and `validation` (n_v, F) feature rows."""
    from sklearn.linear_model import LogisticRegression

    from mmia.metrics import auc

    rng = np.random.default_rng(seed)
    a_s, b_s = split_index(len(suspect), rng, train_fraction)
    a_v, b_v = split_index(len(validation), rng, train_fraction)
    train = np.concatenate([suspect[a_s], validation[a_v]])
    test = np.concatenate([suspect[b_s], validation[b_v]])
    y = np.r_[np.ones(len(a_s)), np.zeros(len(a_v))]
    tr, te, keep = fit_transform(train, test)
    if tr.shape[1] == 0:
        scores = np.zeros(len(test))
        weights = {}
    else:
        model = LogisticRegression(C=C_REGULARISATION, class_weight="balanced", max_iter=1000)
        model.fit(tr, y)
        scores = te @ model.coef_[0]
        weights = {f: float(w) for f, w in zip(np.asarray(features)[keep], model.coef_[0], strict=True)}
    s_scores, v_scores = scores[: len(b_s)], scores[len(b_s) :]
    labels = np.r_[np.ones(len(b_s)), np.zeros(len(b_v))]
    return SplitTest(
        p_value=rank_p_value(s_scores, v_scores),
        n_train=(len(a_s), len(a_v)),
        n_test=(len(b_s), len(b_v)),
        test_auc=float(auc(labels, scores)) if np.ptp(scores) > 0 else 0.5,
        weights=weights,
        scores_suspect=s_scores,
        scores_validation=v_scores,
        test_index_suspect=b_s,
        test_index_validation=b_v,
    )


def control_test(validation: np.ndarray, features: list[str], seed: int = 0) -> SplitTest:
    """The control: the validation set split in two halves (seeded), tested one half against the
    other by the same procedure. Its p-value is uniform by construction; a small one says the
    validation set is not homogeneous (e.g. two sources), which weakens any verdict."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the main split's
    half_a, half_b = split_index(len(validation), rng, 0.5)
    return split_test(validation[half_a], validation[half_b], features, seed=seed)
