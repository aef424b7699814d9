"""Training-free scores per perturbation technique, and the subset chosen on training rows."""

from __future__ import annotations

import numpy as np
import pytest

from mmia.fimmia.features import FeatureSet
from mmia.fimmia.techniques import choose_techniques, subset_score, technique_scores


def test_technique_scores_known_answer():
    loss = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 2.0, 20.0]])
    plan = [("answer", "swap", 0), ("image", "blur", 0), ("answer", "swap", 1), ("image", "crop", 0)]
    fs = FeatureSet(ids=["a", "b"], loss=loss)
    out = technique_scores(fs, [plan, plan])
    assert set(out) == {"answer/swap", "image/blur", "image/crop"}
    np.testing.assert_array_equal(out["answer/swap"], [2.0, 1.0])
    np.testing.assert_array_equal(out["image/blur"], [2.0, 10.0])
    np.testing.assert_array_equal(out["image/crop"], [4.0, 20.0])
    # a sample whose plan has no neighbour of a technique reads NaN for it
    other = [("answer", "delete", 0)] * 4
    mixed = technique_scores(fs, [plan, other])
    assert np.isnan(mixed["answer/swap"][1]) and mixed["answer/delete"][1] == pytest.approx(8.0)
    with pytest.raises(ValueError):
        technique_scores(fs, [plan])


def test_choose_on_training_rows_then_score_the_subset():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    scores = {
        "answer/swap": y + rng.normal(0, 0.5, 200),  # carries the signal
        "image/blur": -y + rng.normal(0, 0.5, 200),  # points the wrong way
        "image/noise": rng.normal(0, 1, 200),  # nothing
    }
    chosen, aucs = choose_techniques(scores, y)
    assert chosen[0] == "answer/swap" and "image/blur" not in chosen
    assert aucs["answer/swap"] > 0.9 and aucs["image/blur"] < 0.1
    assert all(aucs[n] > 0.5 for n in chosen)
    # no technique above 0.5: the single best is kept
    worst = {k: v for k, v in scores.items() if k == "image/blur"}
    assert choose_techniques(worst, y)[0] == ["image/blur"]
    both = subset_score({"a": np.array([1.0, np.nan]), "b": np.array([3.0, 5.0])}, ["a", "b"])
    np.testing.assert_array_equal(both, [2.0, 5.0])
