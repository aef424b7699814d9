"""The cross-validation protocol cannot leak, and the verdict follows its documented rule."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mmia.data import load_dataset
from mmia.metrics import auc
from mmia.shift import run_shift
from mmia.shift.ngrams import GreedyNgramClassifier, first_rank, greedy_select, ngram_matrix
from mmia.shift.protocol import Plan, folds_of, out_of_fold_scores
from mmia.shift.verdict import NO_SHIFT, SHIFTED, decide, holm, mann_whitney_p


def _random_label_set(tmp_path, n=120, seed=0):
    """Texts and noise images whose labels are coin flips; every text holds a word of its own.

    A model fit on all rows memorises each row's unique word (or image), so anything fit outside
    the folds scores the held-out rows almost perfectly; inside the folds the unique words never
    reach the training part and only chance remains.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    words = ["photo", "view", "city", "river", "house", "street", "portrait", "garden", "night", "market"]
    media = tmp_path / "img"
    media.mkdir()
    rows = []
    labels = rng.permutation(np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)])
    for i in range(n):
        unique = "".join(rng.choice(list("qwxzjkv"), size=9))
        text = " ".join(rng.choice(words, size=5)) + f" {unique}"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(media / f"{i}.png")
        rows.append({"id": f"r{i}", "text": text, "image": f"img/{i}.png", "label": int(labels[i])})
    path = tmp_path / "random.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, labels


def test_random_labels_give_chance_auc_for_every_method(tmp_path):
    path, _ = _random_label_set(tmp_path)
    ds = load_dataset(path, require_labels=True)
    methods = ["bag_of_words", "greedy_ngrams", "text_format", "date_detection", "colour_histogram", "dct", "lbp",
               "image_features", "bag_of_visual_words", "joint"]
    section, scores = run_shift(ds, methods, folds=4, seed=0, cache=None)
    assert [e.name for e in section.attacks] == [f"blind:{m}" for m in methods]
    for e in section.attacks:
        # 120 rows: the AUC's standard deviation under chance is about 0.053.
        assert abs(e.auc - 0.5) < 0.2, (e.name, e.auc)
    assert section.verdict == NO_SHIFT
    assert not np.isnan(np.column_stack(list(scores.columns.values()))).any()


def test_fitting_outside_the_folds_would_be_caught():
    """Selection fit on all rows gives a high AUC on random labels; the protocol gives chance.

    Every text is a word of its own: fit outside the folds, the greedy selection picks each
    member's word (it occurs in that class only) and then recognises the same rows; inside the
    folds the held-out words were never seen.
    """
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("qwxzjkvbnm"), size=10)) for _ in range(100)]
    y = rng.permutation(np.r_[np.ones(50, int), np.zeros(50, int)])
    X = ngram_matrix(texts, analyzer="word", ngram_range=(1, 1))

    # Leaky: the n-gram selection is fit on every row, then every row is scored with it.
    chosen = greedy_select(X[y == 1], X[y == 0], min_count=1, min_ratio=0.5)
    rank = np.full(X.shape[1], np.inf)
    for k, (col, _, _) in enumerate(chosen):
        rank[col] = k
    assert auc(y, 1.0 / (1.0 + first_rank(X, rank))) > 0.95

    # Leaky: vocabulary, selection and scoring fit on all rows (train = test).
    leaky_model = GreedyNgramClassifier(min_count=1, min_ratio=0.5).fit(X, y)
    assert auc(y, leaky_model.decision_function(X)) > 0.95

    # The protocol: the same estimator, fit inside the folds, is at chance.
    oof = out_of_fold_scores(Plan(X, lambda: GreedyNgramClassifier(min_count=1, min_ratio=0.5)), y, folds=4, seed=0)
    assert abs(auc(y, oof) - 0.5) < 0.1


def test_folds_are_stratified_seeded_and_cover_every_row():
    y = np.r_[np.ones(30, int), np.zeros(20, int)]
    a = folds_of(y, 5, seed=1)
    b = folds_of(y, 5, seed=1)
    c = folds_of(y, 5, seed=2)
    assert all((ta == tb).all() for (_, ta), (_, tb) in zip(a, b, strict=True))
    assert any((ta != tc).any() for (_, ta), (_, tc) in zip(a, c, strict=True))
    held = np.concatenate([t for _, t in a])
    assert sorted(held.tolist()) == list(range(50))
    assert all(y[t].sum() == 6 for _, t in a)  # 30 members / 5 folds
    assert len(folds_of(np.r_[np.ones(3, int), np.zeros(10, int)], 5, 0)) == 3  # capped by the smaller class


def test_out_of_fold_model_never_sees_its_test_rows():
    seen = []

    class Recorder:
        def fit(self, X, y):
            seen.append(set(X[:, 0].tolist()))
            return self

        def decision_function(self, X):
            return X[:, 0] * 0.0

    X = np.arange(20, dtype=float)[:, None]
    y = np.r_[np.ones(10, int), np.zeros(10, int)]
    splits = folds_of(y, 4, 0)
    out_of_fold_scores(Plan(X, Recorder), y, splits=splits)
    for (_, test), train_rows in zip(splits, seen, strict=True):
        assert not train_rows & set(test.tolist())


def test_holm_known_answers():
    # p sorted: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.5*1=0.5
    assert np.allclose(holm([0.03, 0.01, 0.5, 0.02]), [0.06, 0.04, 0.5, 0.06])
    assert np.allclose(holm([0.9, 0.8]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_mann_whitney_direction():
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    s = np.r_[np.arange(20) + 20.0, np.arange(20.0)]
    assert mann_whitney_p(y, s) < 1e-6
    assert mann_whitney_p(y, -s) > 0.999
    assert mann_whitney_p(y, np.zeros(40)) == 1.0


def _e(name, a, lo, hi, p):
    return {"name": name, "auc": a, "auc_ci95": (lo, hi), "p_value": p}


def test_verdict_rule():
    # Clear shift: interval above 0.55 and tiny p.
    v = decide([_e("blind:a", 0.9, 0.85, 0.95, 1e-9), _e("blind:b", 0.52, 0.45, 0.59, 0.3)])
    assert v.verdict == SHIFTED and v.best == "blind:a" and "confounded" in v.detail
    # Significant but inside the margin (0.53 > 0.5, but lower bound 0.51 < 0.55): no shift.
    v = decide([_e("blind:a", 0.53, 0.51, 0.55, 1e-4)])
    assert v.verdict == NO_SHIFT and "does not prove" in v.detail
    # Above the margin, but it does not survive Holm over 10 methods (0.002 * 10 = 0.02 > 0.01).
    entries = [_e("blind:a", 0.7, 0.56, 0.84, 0.002)] + [_e(f"blind:n{i}", 0.5, 0.4, 0.6, 0.5) for i in range(9)]
    assert decide(entries).verdict == NO_SHIFT
    # The same method alone survives (0.002 < 0.01).
    assert decide(entries[:1]).verdict == SHIFTED
    # The margin is a parameter.
    assert decide([_e("blind:a", 0.53, 0.51, 0.55, 1e-4)], margin=0.0).verdict == SHIFTED
    assert decide([]).verdict == NO_SHIFT


def test_unknown_or_inapplicable_method_is_an_input_error(tmp_path):
    from mmia.errors import InputError

    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"t {i}", "label": i % 2}) + "\n" for i in range(10)))
    ds = load_dataset(path)
    with pytest.raises(InputError, match="unknown blind method 'nope'"):
        run_shift(ds, ["nope"])
    with pytest.raises(InputError, match="needs image or video data"):
        run_shift(ds, ["colour_histogram"])


def test_sparse_inputs_are_indexed_by_rows():
    from mmia.shift.protocol import take

    X = sp.csr_matrix(np.eye(4))
    assert take(X, np.array([2, 0])).toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    assert take([10, 11, 12], np.array([2])) == [12]
