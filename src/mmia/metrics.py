"""Membership-inference metrics, one documented convention.

Scores: higher means "more likely a member". Labels: 1 member, 0 non-member.
- AUC-ROC is the Mann-Whitney statistic with ties counted one half.
- The 95% interval is a percentile bootstrap over 1,000 stratified resamples (members and
  non-members resampled separately, keeping their counts), seeded, computed vectorised.
- TPR at x% FPR is the highest TPR over thresholds t (predict member when score >= t) whose FPR
  is at most x, with no interpolation; FPR exactly equal to the budget is allowed. When no
  threshold but "nobody is a member" meets the budget, TPR is 0.
- ROC points are taken at every distinct score (tied scores move the curve diagonally).
"""

from __future__ import annotations

import numpy as np

FPR_BUDGETS = (0.001, 0.01, 0.05)


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be 1-D of one length (got {y.shape} and {s.shape})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    y = y.astype(np.int64)
    n1 = int(y.sum())
    if n1 == 0 or n1 == len(y):
        raise ValueError(
            f"metrics need both members and non-members (got {n1} members, {len(y) - n1} non-members)"
        )
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} score(s) are NaN")
    return y, s


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), from (0, 0) at threshold +inf to (1, 1), one point per distinct score."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores: a threshold admits a whole tie group at once.
    ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[ends]
    fp = (ends + 1) - tp
    n1, n0 = int(y.sum()), len(y) - int(y.sum())
    fpr = np.r_[0.0, fp / n0]
    tpr = np.r_[0.0, tp / n1]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return fpr, tpr, thresholds


def auc(labels, scores) -> float:
    y, s = _check(labels, scores)
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks: ties count one half
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def tpr_at_fpr(labels, scores, budgets=FPR_BUDGETS) -> dict[str, float]:
    """Highest TPR at a threshold whose FPR is at most each budget; keys "0.001", "0.01", ..."""
    fpr, tpr, _ = roc_points(labels, scores)
    return _tprs(fpr, tpr, budgets)


def _tprs(fpr: np.ndarray, tpr: np.ndarray, budgets) -> dict[str, float]:
    # The tolerance keeps an FPR of exactly the budget (e.g. 1/100 at 0.01) admissible.
    return {format(b, "g"): float(tpr[fpr <= b + 1e-12].max()) for b in budgets}


def bootstrap_auc(labels, scores, n_resamples: int = 1000, seed: int = 0, chunk: int = 64) -> np.ndarray:
    """AUCs of `n_resamples` stratified bootstrap resamples, vectorised.

    Scores are mapped to the indices of their distinct values once; each resample's negatives
    become a histogram over those values, whose cumulative sum gives, for every positive, the
    count of sampled negatives below it (ties one half). No per-resample sort.
    """
    y, s = _check(labels, scores)
    uniq, inv = np.unique(s, return_inverse=True)
    pos_bins, neg_bins = inv[y == 1], inv[y == 0]
    n1, n0, u = len(pos_bins), len(neg_bins), len(uniq)
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        neg = neg_bins[rng.integers(0, n0, size=(b, n0))]
        pos = pos_bins[rng.integers(0, n1, size=(b, n1))]
        offsets = (np.arange(b) * u)[:, None]
        counts = np.bincount((neg + offsets).ravel(), minlength=b * u).reshape(b, u).astype(np.float64)
        below = np.cumsum(counts, axis=1) - counts
        credit = below + 0.5 * counts
        out[start : start + b] = np.take_along_axis(credit, pos, axis=1).sum(axis=1) / (n1 * n0)
    return out


def evaluate(
    labels,
    scores,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    budgets=FPR_BUDGETS,
    with_roc: bool = True,
) -> dict:
    """The metrics of one attack: the dict used for each results.json entry.

    Returns `auc`, `auc_ci95` (percentile bootstrap), `tpr_at_fpr` (keys "0.001", "0.01",
    "0.05"), `n_members`, `n_nonmembers` and, with `with_roc`, `roc` ({"fpr", "tpr"} lists).
    Raises ValueError for a single class, NaN scores or mismatched lengths.
    """
    y, s = _check(labels, scores)
    boots = bootstrap_auc(y, s, n_resamples=n_resamples, seed=seed)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    fpr, tpr, _ = roc_points(y, s)
    result = {
        "auc": auc(y, s),
        "auc_ci95": [float(lo), float(hi)],
        "tpr_at_fpr": _tprs(fpr, tpr, budgets),
        "n_members": int(y.sum()),
        "n_nonmembers": int(len(y) - y.sum()),
    }
    if with_roc:
        result["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return result
