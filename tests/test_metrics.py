"""Known answers computed by hand, plus agreement with scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from mmia.metrics import auc, bootstrap_auc, evaluate, roc_points, tpr_at_fpr


def test_auc_by_hand():
    # Pairs (member, non-member): (0.9,0.6) win, (0.9,0.1) win, (0.4,0.6) loss, (0.4,0.1) win -> 3/4.
    assert auc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]) == pytest.approx(0.75)


def test_auc_ties_count_half():
    # (0.5 vs 0.5) tie -> 0.5, (0.5 vs 0.2) win -> 1: (0.5 + 1) / 2.
    assert auc([1, 0, 0], [0.5, 0.5, 0.2]) == pytest.approx(0.75)


def test_perfect_and_inverted():
    assert auc([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    assert auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0


def test_constant_scores_give_chance_and_zero_low_fpr_tpr():
    r = evaluate([1, 0, 1, 0, 1, 0], [0.3] * 6)
    assert r["auc"] == 0.5
    assert r["tpr_at_fpr"] == {"0.001": 0.0, "0.01": 0.0, "0.05": 0.0}
    assert r["auc_ci95"] == [0.5, 0.5]
    assert r["roc"] == {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}


def test_single_class_is_a_clear_error():
    with pytest.raises(ValueError, match="both members and non-members"):
        evaluate([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        evaluate([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="one length"):
        evaluate([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 \\(non-member\\) or 1"):
        evaluate([1, 2], [0.1, 0.2])


def test_roc_points_by_hand():
    fpr, tpr, thr = roc_points([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    # thresholds: inf -> (0,0); 0.9 -> (0, .5); 0.8 (tie of a member and a non-member) -> (.5, 1); 0.1 -> (1, 1)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert thr.tolist() == [np.inf, 0.9, 0.8, 0.1]


def test_tpr_at_fpr_by_hand():
    # 100 non-members with scores 0..99, 10 members with scores 100..109 except one member at 50.5.
    neg = np.arange(100, dtype=float)
    pos = np.r_[np.arange(100, 109, dtype=float), 50.5]
    y = np.r_[np.ones(10), np.zeros(100)]
    s = np.r_[pos, neg]
    r = tpr_at_fpr(y, s, budgets=(0.001, 0.01, 0.5))
    # FPR <= 0.001 allows no false positive: the 9 members above every non-member -> 0.9.
    assert r["0.001"] == pytest.approx(0.9)
    # FPR <= 0.01 allows exactly 1 false positive (99): still 0.9 (50.5 needs 49 false positives).
    assert r["0.01"] == pytest.approx(0.9)
    # FPR <= 0.5 allows 50 false positives (scores 50..99): 50.5 is admitted -> 1.0.
    assert r["0.5"] == pytest.approx(1.0)


def test_tpr_budget_boundary_is_inclusive():
    # FPR exactly 1/100 is allowed at the 1% budget.
    y = np.r_[np.ones(5), np.zeros(100)]
    s = np.r_[[200, 150, 120, 98.5, 10], np.arange(100)]
    r = tpr_at_fpr(y, s, budgets=(0.01,))
    # threshold 98.5 admits the non-member at 99 only (FPR 0.01) and 4 members.
    assert r["0.01"] == pytest.approx(0.8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 0.7 * y
    s = np.round(s, 1)  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_points(y, s)
    sk_fpr, sk_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    for b, v in tpr_at_fpr(y, s).items():
        assert v == pytest.approx(sk_tpr[sk_fpr <= float(b) + 1e-12].max())


def test_bootstrap_matches_a_plain_loop_and_is_seeded():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(30), np.zeros(50)].astype(int)
    s = np.round(rng.normal(size=80) + y, 1)
    fast = bootstrap_auc(y, s, n_resamples=200, seed=3)
    # Same resampling scheme written as a loop with scikit-learn's AUC.
    rng2 = np.random.default_rng(3)
    pos, neg = s[y == 1], s[y == 0]
    slow = []
    for start in range(0, 200, 64):
        b = min(64, 200 - start)
        ni = rng2.integers(0, len(neg), size=(b, len(neg)))
        pi = rng2.integers(0, len(pos), size=(b, len(pos)))
        for k in range(b):
            yy = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            slow.append(roc_auc_score(yy, np.r_[pos[pi[k]], neg[ni[k]]]))
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    np.testing.assert_array_equal(fast, bootstrap_auc(y, s, n_resamples=200, seed=3))
    assert not np.array_equal(fast, bootstrap_auc(y, s, n_resamples=200, seed=4))


def test_evaluate_shape_and_interval():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(200)].astype(int)
    s = rng.normal(size=400) + 0.5 * y
    r = evaluate(y, s)
    assert set(r) == {"auc", "auc_ci95", "tpr_at_fpr", "n_members", "n_nonmembers", "roc"}
    lo, hi = r["auc_ci95"]
    assert lo < r["auc"] < hi
    assert 0.05 < hi - lo < 0.2  # n=400 gives an interval of about +-0.055
    assert list(r["tpr_at_fpr"]) == ["0.001", "0.01", "0.05"]
    assert r["n_members"] == 200 and r["n_nonmembers"] == 200
