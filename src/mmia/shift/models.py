"""The fold-fitted estimators of the blind checks (vocabulary, k-means, PCA, scaler, classifier).

Every factory returns a fresh, unfitted sklearn estimator; the protocol fits one per fold.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin


class ColumnBlock(TransformerMixin, BaseEstimator):
    """Keep columns [start, stop) of a dense matrix (stateless)."""

    def __init__(self, start: int = 0, stop: int | None = None):
        self.start = start
        self.stop = stop

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.start : self.stop]


class SeenColumns(TransformerMixin, BaseEstimator):
    """Keep the sparse columns that occur in the training part (the fold's n-gram vocabulary).

    Hashed n-gram matrices span millions of columns; the vocabulary of a fold is the set of
    columns its training rows use, learnt in `fit` and applied to held-out rows in `transform`.
    """

    def fit(self, X, y=None):
        X = sp.csr_matrix(X)
        self.columns_ = np.unique(X.indices)
        self.n_input_ = X.shape[1]
        return self

    def transform(self, X):
        X = sp.csr_matrix(X)
        remap = np.full(self.n_input_, -1, dtype=np.int64)
        remap[self.columns_] = np.arange(len(self.columns_))
        new = remap[X.indices]
        keep = new >= 0
        counts = np.add.reduceat(keep.astype(np.int64), X.indptr[:-1]) if X.nnz else np.zeros(X.shape[0], int)
        counts[np.diff(X.indptr) == 0] = 0
        indptr = np.r_[0, np.cumsum(counts)]
        return sp.csr_matrix((X.data[keep], new[keep], indptr), shape=(X.shape[0], len(self.columns_)))


class SafePCA(TransformerMixin, BaseEstimator):
    """PCA keeping `variance` of the training variance, never more components than rows allow."""

    def __init__(self, variance: float = 0.95, max_components: int = 64, seed: int = 0):
        self.variance = variance
        self.max_components = max_components
        self.seed = seed

    def fit(self, X, y=None):
        from sklearn.decomposition import PCA

        X = np.asarray(X, dtype=np.float64)
        limit = max(1, min(self.max_components, X.shape[0] - 1, X.shape[1]))
        full = PCA(n_components=limit, random_state=self.seed).fit(X)
        keep = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), self.variance) + 1)
        self.n_components_ = min(keep, limit)
        self.pca_ = PCA(n_components=self.n_components_, random_state=self.seed).fit(X)
        return self

    def transform(self, X):
        return self.pca_.transform(np.asarray(X, dtype=np.float64))


class SafeSVD(TransformerMixin, BaseEstimator):
    """Truncated SVD of a sparse matrix with no more components than the training part allows."""

    def __init__(self, n_components: int = 64, seed: int = 0):
        self.n_components = n_components
        self.seed = seed

    def fit(self, X, y=None):
        from sklearn.decomposition import TruncatedSVD

        n = max(1, min(self.n_components, X.shape[1] - 1, X.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=n, random_state=self.seed).fit(X)
        return self

    def transform(self, X):
        return self.svd_.transform(X)


def dense_classifier(pca_variance: float | None = 0.95, C: float = 1.0, seed: int = 0, start: int = 0,
                     stop: int | None = None):
    """Scaler -> PCA -> logistic regression over a block of a dense feature matrix."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("block", ColumnBlock(start, stop)), ("scale", StandardScaler())]
    if pca_variance is not None:
        steps.append(("pca", SafePCA(variance=pca_variance, seed=seed)))
    steps.append(("clf", LogisticRegression(C=C, max_iter=2000, random_state=seed)))
    return Pipeline(steps)


class SliceColumns(TransformerMixin, BaseEstimator):
    """Keep columns [start, stop) of a sparse matrix, as sparse, or dense with `dense=True` (stateless)."""

    def __init__(self, start: int = 0, stop: int | None = None, dense: bool = False):
        self.start = start
        self.stop = stop
        self.dense = dense

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        Z = sp.csr_matrix(X)[:, self.start : self.stop]
        return Z.toarray() if self.dense else Z.tocsr()


class DenseThenSeen(TransformerMixin, BaseEstimator):
    """Keep the first `n_dense` columns (per-sample features) and the fold vocabulary of the rest.

    The n-gram vocabulary (`SeenColumns`) is learnt once per training part for all the stack's
    n-gram models; putting the dense block first keeps its column positions fixed whatever the
    vocabulary's size.
    """

    def __init__(self, n_dense: int = 0):
        self.n_dense = n_dense

    def fit(self, X, y=None):
        X = sp.csr_matrix(X)
        self.seen_ = SeenColumns().fit(X[:, self.n_dense :])
        return self

    def transform(self, X):
        X = sp.csr_matrix(X)
        return sp.hstack([X[:, : self.n_dense], self.seen_.transform(X[:, self.n_dense :])]).tocsr()


def format_classifier(seed: int = 0, max_iter: int = 200, learning_rate: float = 0.05):
    """Gradient boosting over caption format features (no early stopping: its split is random)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate, early_stopping=False,
                                          random_state=seed % 2**32)


def sparse_text_stack(seed: int = 0, alpha: float = 0.3, sgd_alpha: float = 2e-5, inner_folds: int = 3,
                      greedy_steps: int = 1500, n_format: int = 0, format_iter: int = 200):
    """The fold's n-gram vocabulary -> a stack of complement naive Bayes and logistic (SGD) on
    TF-IDF weights, the greedy one-class n-gram scorer when `greedy_steps` > 0, and gradient
    boosting on caption format features when `n_format` > 0.

    Input: the `n_format` dense format columns first, then the hashed n-gram columns. The
    stack's meta-learner is a logistic regression on the base models' inner cross-validated
    predictions (sklearn's StackingClassifier), all inside the outer fold. The greedy scorer is
    precise at very low FPR, the linear models rank the rest and the format model sees what
    n-grams miss (length, case, digits): together they beat each alone at 1% FPR on LAION-MI
    (docs/shift.md).
    """
    from sklearn.ensemble import StackingClassifier
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.model_selection import StratifiedKFold
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import make_pipeline

    from mmia.shift.ngrams import GreedyNgramClassifier

    nb = make_pipeline(SliceColumns(n_format), TfidfTransformer(sublinear_tf=True), ComplementNB(alpha=alpha))
    sgd = make_pipeline(
        SliceColumns(n_format),
        TfidfTransformer(sublinear_tf=True),
        SGDClassifier(loss="log_loss", alpha=sgd_alpha, max_iter=15, tol=None, random_state=seed % 2**32),
    )
    inner = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed % 2**32)
    bases = [("nb", nb), ("sgd", sgd)]
    if greedy_steps > 0:
        bases.append(("greedy", make_pipeline(SliceColumns(n_format), GreedyNgramClassifier(max_steps=greedy_steps))))
    if n_format > 0:
        bases.append(("format", make_pipeline(SliceColumns(0, n_format, dense=True),
                                              format_classifier(seed, format_iter))))
    stack = StackingClassifier(bases, final_estimator=LogisticRegression(), cv=inner)
    return make_pipeline(DenseThenSeen(n_format), stack)
