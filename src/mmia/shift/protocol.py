"""The cross-validation protocol of the blind checks: every fitted step is fit inside the fold.

A method hands the protocol a `Plan`: per-sample inputs `X` (an array, a sparse matrix, a list
of per-sample arrays or a DataFrame) and a factory returning a fresh, unfitted sklearn estimator
(usually a Pipeline whose steps include the vocabulary, k-means, PCA, scaler and classifier).
The protocol splits with a seeded stratified k-fold, fits a fresh estimator on each training
part only, and scores the held-out part, so every score is out-of-fold. Per-sample features that
are not fitted (hashing, colour histograms, MFCCs, a frozen sentence embedder) may be computed
once for all rows; anything learnt from the data must live in the estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Plan:
    """What a blind method hands the protocol: inputs, an estimator factory, and facts to report."""

    X: object
    make_model: Callable[[], object]
    params: dict = field(default_factory=dict)


def take(X, idx: np.ndarray):
    """Rows `idx` of any supported input (numpy, scipy sparse, pandas, list)."""
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if isinstance(X, list):
        return [X[i] for i in idx]
    return X[idx]


def member_score(model, X) -> np.ndarray:
    """Higher = member: decision_function when the model has one, else P(member)."""
    if hasattr(model, "decision_function"):
        s = model.decision_function(X)
    else:
        proba = model.predict_proba(X)
        classes = list(getattr(model, "classes_", [0, 1]))
        s = proba[:, classes.index(1)]
    return np.asarray(s, dtype=np.float64).ravel()


def folds_of(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold splits; `folds` is lowered to the size of the smaller class."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    smaller = int(min(y.sum(), len(y) - y.sum()))
    k = max(2, min(folds, smaller))
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % (2**32))
    return list(skf.split(np.zeros(len(y)), y))


def out_of_fold_scores(plan: Plan, labels, folds: int = 5, seed: int = 0, splits=None) -> np.ndarray:
    """Out-of-fold member scores: a fresh `plan.make_model()` fit on each training part only."""
    y = np.asarray(labels, dtype=np.int64)
    scores = np.full(len(y), np.nan)
    for train, test in splits if splits is not None else folds_of(y, folds, seed):
        model = plan.make_model()
        model.fit(take(plan.X, train), y[train])
        scores[test] = member_score(model, take(plan.X, test))
    if np.isnan(scores).any():
        raise RuntimeError("some samples were never scored out of fold")
    return scores
