"""Known-answer tests for the pure feature functions of the blind checks."""

import numpy as np
import scipy.sparse as sp

from mmia.shift.dates import FEATURE_NAMES, count_dates, date_features, years_mentioned
from mmia.shift.image_features import (
    FEATURE_BLOCKS,
    BagOfVisualWords,
    colour_histogram,
    dct_features,
    global_image_features,
    keypoint_descriptors,
    lbp_histogram,
)
from mmia.shift.models import DenseThenSeen, SeenColumns, SliceColumns
from mmia.shift.ngrams import GreedyNgramClassifier, first_rank, greedy_select, ngram_matrix
from mmia.shift.text_format import FORMAT_FEATURE_NAMES, format_features


def test_years_and_dates():
    assert years_mentioned("This May 12, 2019 photo, taken in 1850") == [2019, 1850]
    assert years_mentioned("call 555-2019-1234 or v1.2019") == []  # not years inside numbers
    assert years_mentioned("on 12/05/98 and 01/02/07") == [1998, 2007]
    assert count_dates("May 12, 2019; 2021-03-04; 12 March 2020; nothing") == 3
    assert count_dates("the year 2019 alone") == 0
    f = dict(zip(FEATURE_NAMES, date_features("From March 2020 to 2022-01-05"), strict=True))
    assert f == {"n_years": 2, "max_year": 2022, "min_year": 2020, "n_dates": 2, "n_month_words": 1,
                 "has_year": 1, "has_date": 1}
    assert date_features("no date here").tolist() == [0, 0, 0, 0, 0, 0, 0]


def test_greedy_selection_on_hand_built_corpus():
    # Columns: 0 "sunset" (members only, 3 docs), 1 "the" (everywhere), 2 "vintage" (2 members, 1 non-member),
    # 3 "2023" (non-members only, 3 docs).
    members = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0]]))
    nonmembers = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 1, 1, 1], [0, 1, 0, 1], [0, 1, 0, 0]]))
    chosen = greedy_select(members, nonmembers, min_count=1, min_ratio=0.0)
    # Step 1: "sunset" has ratio 3/(0+1) = 3, best; it covers member docs 0-2.
    # Step 2: uncovered members: doc 3 ("the", "vintage"); "vintage" 1/(1+1)=0.5 vs "the" 1/(4+1)=0.2.
    assert chosen == [(0, 3, 0), (2, 1, 1)]
    # min_ratio stops the path once the best ratio is no longer above it.
    assert greedy_select(members, nonmembers, min_count=1, min_ratio=1.0) == [(0, 3, 0)]
    # The non-member side picks "2023" first.
    assert greedy_select(nonmembers, members, min_count=1, min_ratio=1.0) == [(3, 3, 0)]
    # min_count: no column reaches 4 member documents except "the" (ratio 4/5 < 1).
    assert greedy_select(members, nonmembers, min_count=4, min_ratio=0.5) == [(1, 4, 4)]


def test_greedy_classifier_scores_by_first_selected_ngram():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0],
                                [0, 1, 0, 1], [0, 1, 1, 1], [0, 1, 0, 1], [0, 1, 0, 0]]))
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    clf = GreedyNgramClassifier(min_count=1, min_ratio=1.0).fit(X, y)
    new = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 1]]))
    assert clf.decision_function(new).tolist() == [1.0, -1.0, 0.0, 0.0]
    assert first_rank(new, np.array([np.inf, np.inf, np.inf, 0.0])).tolist() == [np.inf, 0, np.inf, 0]
    # score="ratio": log of the selection ratio instead of the rank ("sunset" and "2023": 3/(0+1)).
    by_ratio = GreedyNgramClassifier(min_count=1, min_ratio=1.0, score="ratio").fit(X, y)
    assert np.allclose(by_ratio.decision_function(new), [np.log(3), -np.log(3), 0.0, 0.0])


def test_ngram_matrix_is_binary_and_stateless():
    a = ngram_matrix(["abab", "xyz"], ngram_range=(1, 2))
    b = ngram_matrix(["xyz"], ngram_range=(1, 2))
    assert set(a.data.tolist()) == {1.0}
    assert a[0].nnz == 4  # a, b, ab, ba (each once: binary)
    assert (a[1] != b[0]).nnz == 0  # the same text maps to the same columns in any batch


def test_seen_columns_is_the_training_vocabulary():
    train = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 0]]))
    test = sp.csr_matrix(np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 5, 4]]))
    sc = SeenColumns().fit(train)
    assert sc.columns_.tolist() == [0, 1, 2]
    assert sc.transform(test).toarray().tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 5]]


def test_image_features_known_answers():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    h = colour_histogram(red, bins=4)
    assert h.shape == (24,)
    # R all in the top bin, G and B in the bottom bin; hue 0, saturation 1, value 1.
    assert h[:12].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0]
    assert h[12:].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    flat = np.full((32, 32, 3), 128, np.uint8)
    d = dct_features(flat, size=32, keep=4)
    assert d[0] > 0 and np.allclose(d[1:], 0, atol=1e-9)  # a flat image has only the DC term
    lbp = lbp_histogram(flat)
    assert lbp.sum() == 1.0 and lbp.argmax() == 8  # uniform pattern "all neighbours >= centre"
    g = global_image_features(red)
    assert g.shape[0] == FEATURE_BLOCKS["lbp"][1]
    desc = keypoint_descriptors(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert desc.ndim == 2 and desc.shape[0] > 0


def test_bag_of_visual_words_histograms():
    rng = np.random.default_rng(0)
    sets = [rng.normal(loc=(i % 2) * 10, size=(20, 4)).astype(np.float32) for i in range(10)]
    bovw = BagOfVisualWords(n_words=2, seed=0).fit(sets)
    H = bovw.transform(sets)
    assert H.shape == (10, 2) and np.allclose(H.sum(axis=1), 1.0)
    # The two clusters are far apart: each set falls wholly in one visual word, alternating.
    assert set(H.max(axis=1).tolist()) == {1.0}
    assert H[0].argmax() != H[1].argmax()


def test_audio_features_shape_and_tone():
    from mmia.shift.audio_features import audio_features

    t = np.arange(16000) / 16000
    low = audio_features(np.sin(2 * np.pi * 300 * t).astype(np.float32))
    high = audio_features(np.sin(2 * np.pi * 3000 * t).astype(np.float32))
    assert low.shape == high.shape and np.isfinite(low).all()
    centroid_mean = 40  # after 20 MFCC means and 20 MFCC stds
    assert high[centroid_mean] > 5 * low[centroid_mean]
    assert low[-1] == 1.0  # duration in seconds


def test_format_features_known_answers():
    text = "Hello WORLD 2019, see www.example.com..."
    f = dict(zip(FORMAT_FEATURE_NAMES, format_features([text])[0], strict=True))
    assert f["chars"] == 40 and f["tokens"] == 5
    assert f["digits"] == 4 and f["numbers"] == 1 and f["longest_number"] == 4 and f["latest_year"] == 2019
    assert f["upper_share_of_letters"] == 6 / 26  # H + WORLD among 26 letters
    assert f["title_token_share"] == 2 / 5 and f["all_caps_token_share"] == 1 / 5
    assert f["has_url"] == 1.0 and f["ellipsis"] == 1.0 and f["ends_period"] == 1.0 and f["starts_upper"] == 1.0
    assert f["count[,]"] == 1 and f["count[.]"] == 5 and f["punctuation"] == 6
    assert f["mean_token_length"] == (5 + 5 + 5 + 3 + 18) / 5 and f["max_token_length"] == 18
    cjk = dict(zip(FORMAT_FEATURE_NAMES, format_features(["  間取り図 ab"])[0], strict=True))
    assert cjk["cjk_hangul_share"] == 4 / 9 and cjk["non_ascii_tokens"] == 1 and cjk["outer_whitespace"] == 1.0
    assert cjk["latest_year"] == 0 and cjk["has_url"] == 0.0
    assert format_features([]).shape == (0, len(FORMAT_FEATURE_NAMES))


def test_format_columns_stay_first_and_ngrams_get_the_fold_vocabulary():
    dense = np.array([[7.0, 1.0], [8.0, 0.0], [9.0, 2.0]])
    ngrams = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 0]]))
    X = sp.hstack([sp.csr_matrix(dense), ngrams]).tocsr()
    t = DenseThenSeen(2).fit(X[:2])  # training rows use n-gram columns 0 and 3 only
    out = t.transform(X).toarray()
    assert out.tolist() == [[7, 1, 1, 1], [8, 0, 0, 1], [9, 2, 1, 0]]
    assert SliceColumns(0, 2, dense=True).transform(X).tolist() == dense.tolist()
    assert (SliceColumns(2).transform(X) != ngrams).nnz == 0
