"""The decision: PyOD detectors fit on the reference only, directional or two-sided.

`fit_reference` sees the reference's signal matrix and nothing else (no query, no label);
`score_queries` then turns each detector's outlier score into a rank-normalised member score
and a vote at the reference's own threshold.

Directional (the default): signals are oriented (larger = member-like), robustly standardised
by the reference's median and MAD, and clipped below at the reference median, so a query that
is unusual in the non-member direction (less aligned, less consistent than gibberish) looks
ordinary instead of anomalous. Two-sided (the predecessors' rule): raw standardised signals,
where any deviation from the reference counts as "member".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DETECTORS = ("iforest", "lof", "ocsvm", "ecod", "copod", "knn")
# PyOD's ECOD and COPOD score new rows by pooling them with the training rows (their empirical
# CDFs and skewness are recomputed on reference + the rows given): a batch of queries would move
# each other's scores, and many members together would hide one another. They score one query at
# a time, with the reference alone.
POOLING_DETECTORS = ("ecod", "copod")
PREDECESSOR_DETECTORS = ("iforest", "lof", "ocsvm")


def make_detector(name: str, seed: int, n_reference: int):
    """A PyOD detector with settings fixed in advance (no tuning on any query)."""
    k = max(2, min(20, n_reference // 5))
    if name == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=200, random_state=seed % (2**31))
    if name == "lof":
        from pyod.models.lof import LOF

        return LOF(n_neighbors=k, novelty=True)
    if name == "ocsvm":
        from pyod.models.ocsvm import OCSVM

        return OCSVM(kernel="rbf", nu=0.1, gamma="scale")
    if name == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if name == "copod":
        from pyod.models.copod import COPOD

        return COPOD()
    if name == "knn":
        from pyod.models.knn import KNN

        return KNN(n_neighbors=k)
    raise ValueError(f"unknown detector {name!r}; one of {DETECTORS}")


@dataclass
class FittedReference:
    directions: np.ndarray  # +1/-1 per signal (all +1 when two-sided: raw signals)
    centre: np.ndarray
    scale: np.ndarray
    directional: bool
    detectors: dict = field(default_factory=dict)  # name -> fitted PyOD detector
    reference_scores: dict = field(default_factory=dict)  # name -> outlier scores of the reference
    thresholds: dict = field(default_factory=dict)  # name -> vote threshold
    n_reference: int = 0

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) * self.directions - self.centre) / self.scale
        return np.maximum(z, 0.0) if self.directional else z


@dataclass
class Decision:
    score: np.ndarray  # (n,) mean rank-normalised member score, higher = member
    detector_scores: dict  # name -> (n,) rank-normalised score
    votes: np.ndarray  # (n, n_detectors) bool: detector says "member"
    member: np.ndarray  # (n,) bool: majority of votes


def fit_reference(
    reference: np.ndarray,
    directions,
    *,
    directional: bool = True,
    detectors=DETECTORS,
    contamination: float = 0.05,
    seed: int = 0,
) -> FittedReference:
    """Fit the detectors on the reference's signals (n_ref, k): the only data they ever see."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or len(ref) < 5:
        raise ValueError(f"the reference needs at least 5 rows of signals (got shape {ref.shape})")
    dirs = np.asarray(directions, dtype=np.float64) if directional else np.ones(ref.shape[1])
    oriented = ref * dirs
    centre = np.median(oriented, axis=0)
    mad = np.median(np.abs(oriented - centre), axis=0) * 1.4826
    scale = np.where(mad > 1e-12, mad, np.maximum(oriented.std(axis=0), 1e-12))
    fitted = FittedReference(dirs, centre, scale, directional, n_reference=len(ref))
    x = fitted.transform(ref)
    for name in detectors:
        det = make_detector(name, seed, len(ref))
        det.fit(x)
        s = np.asarray(det.decision_function(x), dtype=np.float64)
        fitted.detectors[name] = det
        fitted.reference_scores[name] = s
        fitted.thresholds[name] = float(np.quantile(s, 1.0 - contamination))
    return fitted


def rank_normalise(query_scores: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """Ranks of query scores among reference and query scores pooled, in (0, 1]; ties averaged."""
    from scipy.stats import rankdata

    pooled = np.concatenate([reference_scores, query_scores])
    ranks = rankdata(pooled)[len(reference_scores) :]
    return ranks / len(pooled)


def outlier_scores(detector, name: str, x: np.ndarray) -> np.ndarray:
    """A fitted detector's raw outlier scores of rows `x` (transformed), each row's independent
    of the others (`POOLING_DETECTORS` one row at a time)."""
    if name in POOLING_DETECTORS:
        return np.array([detector.decision_function(x[i : i + 1])[0] for i in range(len(x))], dtype=np.float64)
    return np.asarray(detector.decision_function(x), dtype=np.float64)


def score_queries(fitted: FittedReference, signals: np.ndarray) -> Decision:
    """Member scores and votes for queries' signals (n, k), from a reference fit."""
    x = fitted.transform(signals)
    names = list(fitted.detectors)
    per, votes = {}, []
    for name in names:
        raw = outlier_scores(fitted.detectors[name], name, x)
        per[name] = rank_normalise(raw, fitted.reference_scores[name])
        votes.append(raw > fitted.thresholds[name])
    vote_mat = np.stack(votes, axis=1)
    score = np.mean([per[n] for n in names], axis=0)
    return Decision(score=score, detector_scores=per, votes=vote_mat, member=vote_mat.sum(1) * 2 > len(names))
