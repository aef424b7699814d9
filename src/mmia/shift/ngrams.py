"""Greedy selection of n-grams that occur in one class only (Das, Zhang, Tramèr 2024).

Blind-MIA's strongest attack at low FPR: among the training members, greedily pick the n-gram
with the best ratio (members still uncovered that contain it) / (non-members still uncovered
that contain it + 1), mark the documents holding it as covered, and repeat; an n-gram that occurs
in members only thus comes first. We run the same selection for the other class as well, and turn
the selection into a continuous score for held-out documents: the earlier the first selected
member n-gram a document holds, the higher its score; the earlier its first non-member n-gram,
the lower. The reference implementation stops its greedy path using the test split's FPR; here
the path is fit on the training part alone and the TPR at a given FPR is read from the
out-of-fold scores.

N-grams are hashed (character n-grams by default, as in the reference), which is stateless: the
hashing needs no fitting, and the "vocabulary" is whatever the training part holds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin

N_HASH_FEATURES = 2**22


def ngram_matrix(texts, analyzer: str = "char", ngram_range=(1, 5), n_features: int = N_HASH_FEATURES):
    """Binary documents x hashed n-grams matrix (CSR); no fitting, the same for any split."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hv = HashingVectorizer(
        analyzer=analyzer,
        ngram_range=tuple(ngram_range),
        n_features=n_features,
        alternate_sign=False,
        norm=None,
        binary=True,
        lowercase=False,
        dtype=np.float32,
    )
    X = hv.transform(list(texts)).tocsr()
    X.data[:] = 1.0
    return X


def greedy_select(pos: sp.csr_matrix, neg: sp.csr_matrix, *, min_count: int = 2, min_ratio: float = 1.0,
                  max_steps: int = 5000) -> list[tuple[int, int, int]]:
    """Greedy n-gram selection for the class whose documents are the rows of `pos`.

    Returns the chosen columns in order with their marginal counts `(column, pos_covered,
    neg_covered)`: at each step, among columns held by at least `min_count` still-uncovered
    `pos` documents, the one maximising pos / (neg + 1) over still-uncovered documents; its
    documents (of both classes) become covered. Stops when that ratio falls to `min_ratio` or
    below, or after `max_steps`. Pure function of its inputs.
    """
    pos = sp.csr_matrix(pos, dtype=np.float32)
    neg = sp.csr_matrix(neg, dtype=np.float32)
    if pos.shape[1] != neg.shape[1]:
        raise ValueError("pos and neg must have the same columns")
    p = np.asarray((pos > 0).sum(axis=0)).ravel().astype(np.int64)
    cand = np.flatnonzero(p >= min_count)
    if len(cand) == 0:
        return []
    # Work on the candidate columns only (a few percent of the hashed space).
    remap = np.full(pos.shape[1], -1, dtype=np.int64)
    remap[cand] = np.arange(len(cand))
    P = _restrict(pos, cand)
    N = _restrict(neg, cand)
    pc = np.asarray(P.sum(axis=0)).ravel().astype(np.float64)
    nc = np.asarray(N.sum(axis=0)).ravel().astype(np.float64)
    Pc, Nc = P.tocsc(), N.tocsc()
    cov_p = np.zeros(P.shape[0], dtype=bool)
    cov_n = np.zeros(N.shape[0], dtype=bool)
    ratio = np.where(pc >= min_count, pc / (nc + 1.0), -np.inf)
    chosen: list[tuple[int, int, int]] = []
    for _ in range(max_steps):
        j = int(np.argmax(ratio))
        if not ratio[j] > min_ratio:
            break
        rows_p = Pc.indices[Pc.indptr[j] : Pc.indptr[j + 1]]
        rows_p = rows_p[~cov_p[rows_p]]
        rows_n = Nc.indices[Nc.indptr[j] : Nc.indptr[j + 1]]
        rows_n = rows_n[~cov_n[rows_n]]
        chosen.append((int(cand[j]), len(rows_p), len(rows_n)))
        cov_p[rows_p] = True
        cov_n[rows_n] = True
        touched = _drop_rows(pc, P, rows_p)
        touched = np.union1d(touched, _drop_rows(nc, N, rows_n))
        touched = np.union1d(touched, [j])
        ratio[touched] = np.where(pc[touched] >= min_count, pc[touched] / (nc[touched] + 1.0), -np.inf)
    return chosen


def _restrict(X: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    X = X[:, cols].tocsr()
    X.data[:] = 1.0
    return X


def _drop_rows(counts: np.ndarray, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Subtract the (binary) rows `rows` of X from column counts; return the touched columns."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    cols = np.concatenate([X.indices[X.indptr[r] : X.indptr[r + 1]] for r in rows])
    np.subtract.at(counts, cols, 1.0)
    return np.unique(cols)


def first_rank(X: sp.csr_matrix, rank_of_column: np.ndarray) -> np.ndarray:
    """Per row, the smallest rank among the row's columns (inf where it holds none)."""
    X = sp.csr_matrix(X)
    r = rank_of_column[X.indices]
    out = np.full(X.shape[0], np.inf)
    nonempty = np.flatnonzero(np.diff(X.indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.minimum.reduceat(r, X.indptr[nonempty])
    return out


class GreedyNgramClassifier(ClassifierMixin, BaseEstimator):
    """sklearn estimator over a binary n-gram matrix: greedy selection for both classes.

    Score of a document: 1/(1 + k_member) - 1/(1 + k_nonmember), with k the greedy rank of the
    first selected n-gram of that class the document holds (a term is 0 when it holds none).
    With `score="ratio"` a term is instead log(covered / (other + 1)) of that n-gram at its pick
    (measured no better on LAION-MI; docs/shift.md).
    """

    def __init__(self, min_count: int = 2, min_ratio: float = 1.0, max_steps: int = 5000, score: str = "rank"):
        self.min_count = min_count
        self.min_ratio = min_ratio
        self.max_steps = max_steps
        self.score = score

    def fit(self, X, y):
        X = sp.csr_matrix(X)
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        pos, neg = X[y == 1], X[y == 0]
        kw = dict(min_count=self.min_count, min_ratio=self.min_ratio, max_steps=self.max_steps)
        self.member_ngrams_ = greedy_select(pos, neg, **kw)
        self.nonmember_ngrams_ = greedy_select(neg, pos, **kw)
        self.member_rank_ = _ranks(self.member_ngrams_, X.shape[1], self.score)
        self.nonmember_rank_ = _ranks(self.nonmember_ngrams_, X.shape[1], self.score)
        return self

    def decision_function(self, X):
        km = first_rank(X, self.member_rank_)
        kn = first_rank(X, self.nonmember_rank_)
        if self.score == "ratio":
            # -log(ratio) was stored as the rank: the best ratio a document holds, per class.
            return np.where(np.isfinite(km), -km, 0.0) - np.where(np.isfinite(kn), -kn, 0.0)
        return 1.0 / (1.0 + km) - 1.0 / (1.0 + kn)

    def predict(self, X):
        return (self.decision_function(X) > 0).astype(np.int64)


def _ranks(chosen, n_columns: int, score: str = "rank") -> np.ndarray:
    """Per column, its greedy rank ("rank") or -log of its covered/(other + 1) ratio ("ratio")."""
    rank = np.full(n_columns, np.inf)
    for k, (col, p, n) in enumerate(chosen):
        value = -np.log(p / (n + 1.0)) if score == "ratio" else k
        rank[col] = min(rank[col], value)
    return rank
