"""Known-answer tests of UMID's pure parts: gibberish, signals, directional decision, ranks."""

import numpy as np
import pytest

from mmia.umid import decide
from mmia.umid.decide import fit_reference, rank_normalise, score_queries
from mmia.umid.gibberish import GENERATORS, gibberish
from mmia.umid.invert import draw_starts
from mmia.umid.signals import SIGNAL_NAMES, SIGNALS, compute_signals, oriented


def test_gibberish_is_seeded_and_mixes_generators():
    a = gibberish(30, seed=3)
    assert a == gibberish(30, seed=3)
    assert a != gibberish(30, seed=4)
    assert len(set(a)) == 30
    # chars (10 printable characters), letters and pseudo-words (two capitalised words) in turn
    assert len(a[0]) == 10
    assert all(len(s.split(" ")) == 2 and s.split(" ")[0][0].isupper() for s in a[1:3])
    only_chars = gibberish(10, seed=3, generators=("chars",))
    assert all(len(s) == 10 for s in only_chars)
    with pytest.raises(ValueError):
        gibberish(5, generators=("names",))
    assert set(GENERATORS) == {"chars", "letters", "pseudowords"}


def test_starts_are_independent_per_restart_and_per_query_seeded():
    s = draw_starts([11, 12], restarts=4, shape=(3, 4, 4))
    assert s.shape == (8, 3, 4, 4)
    flat = s.reshape(8, -1).numpy()
    # every pair of restarts differs
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(8) for j in range(i + 1, 8)) > 0.1
    # a query's starts depend on its own seed only, not on its batch neighbours
    alone = draw_starts([12], restarts=4, shape=(3, 4, 4))
    assert np.array_equal(alone.numpy(), s[4:].numpy())


def test_signals_known_answers():
    text = np.array([[1.0, 0.0, 0.0]])
    # all restarts land on the same embedding: no dispersion, centroid aligned with it
    z = np.tile(np.array([0.6, 0.8, 0.0]), (1, 4, 1))
    cos = np.array([[0.6, 0.6, 0.6, 0.6]])
    traj = np.array([[[0.1, 0.3, 0.5, 0.6]] * 4])
    anchors = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    s = dict(zip(SIGNAL_NAMES, compute_signals(z, cos, traj, text, anchors)[0], strict=True))
    assert s["similarity"] == pytest.approx(0.6)
    assert s["variability"] == pytest.approx(0.0)
    assert s["early_similarity"] == pytest.approx(0.3)
    assert s["best_similarity"] == pytest.approx(0.6)
    assert s["centroid_alignment"] == pytest.approx(0.6)
    assert s["specificity"] == pytest.approx(0.6 - (0.0 + 0.8) / 2)
    # two opposite embeddings: each is at distance 1 from their mean (the origin)
    z2 = np.array([[[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]])
    s2 = compute_signals(z2, np.zeros((1, 2)), np.zeros((1, 2, 2)), text, anchors)[0]
    assert s2[SIGNAL_NAMES.index("variability")] == pytest.approx(1.0)
    # orientation: variability is negated (lower = member), similarity kept
    o = oriented(np.array([[1.0] * len(SIGNAL_NAMES)]))[0]
    assert o[SIGNAL_NAMES.index("variability")] == -1.0 and o[SIGNAL_NAMES.index("similarity")] == 1.0
    assert SIGNALS["variability"][0] == -1


def test_rank_normalise_known_values():
    ref = np.array([1.0, 2.0, 3.0])
    r = rank_normalise(np.array([0.0, 2.5, 10.0]), ref)
    assert r.tolist() == pytest.approx([1 / 6, 4 / 6, 6 / 6])


def test_directional_decision_points_one_way_two_sided_both():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, size=(200, 2))
    queries = np.array([[4.0, -4.0], [-4.0, 4.0], [0.0, 0.0]])  # member-like, anti-member-like, ordinary
    dirs = [+1, -1]  # first signal higher = member, second lower = member
    d = score_queries(fit_reference(ref, dirs, directional=True, seed=0), queries)
    assert d.score[0] > 0.95
    assert d.score[1] < 0.7 and d.score[0] > d.score[1]
    assert d.member.tolist() == [True, False, False]
    two = score_queries(fit_reference(ref, dirs, directional=False, seed=0), queries)
    # the two-sided rule calls both far points members: the inversion the prototype found
    assert two.member.tolist() == [True, True, False]
    assert two.score[1] > 0.95


def test_detectors_are_fit_on_reference_rows_only(monkeypatch):
    seen = []
    real = decide.make_detector

    def recording(name, seed, n_reference):
        det = real(name, seed, n_reference)
        fit = det.fit

        def spy(x, y=None):
            seen.append(np.array(x, copy=True))
            return fit(x)

        det.fit = spy
        return det

    monkeypatch.setattr(decide, "make_detector", recording)
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, size=(50, 3))
    queries = rng.normal(3, 1, size=(20, 3))
    fitted = fit_reference(ref, [1, 1, -1], seed=0)
    score_queries(fitted, queries)
    assert len(seen) == len(decide.DETECTORS)
    for x in seen:
        assert np.array_equal(x, fitted.transform(ref))


def test_a_querys_outlier_score_does_not_depend_on_the_other_queries():
    # PyOD's ECOD/COPOD pool the rows they score with their training rows: scored as one batch,
    # a query among many shifted ones would read differently than alone.
    from pyod.models.ecod import ECOD

    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, size=(50, 3))
    queries = np.vstack([rng.normal(1, 1, size=(1, 3)), rng.normal(3, 1, size=(40, 3))])
    fitted = fit_reference(ref, [1, 1, 1], seed=0)
    x = fitted.transform(queries)
    pooled = ECOD().fit(fitted.transform(ref)).decision_function(x)[0]
    for name, det in fitted.detectors.items():
        together = decide.outlier_scores(det, name, x)
        alone = decide.outlier_scores(det, name, x[:1])
        assert np.isclose(together[0], alone[0], rtol=1e-9), name
        if name == "ecod":
            assert not np.isclose(pooled, alone[0], rtol=1e-3)  # the batch call would have moved it


class _FixedTextTower:
    """A stand-in contrastive target whose text embeddings are a fixed geometry: texts starting
    with 'far' sit away from every other text's cluster (which the reference shares)."""

    kind = "clip"

    def embed_text(self, texts):
        from mmia.data.ids import stable_seed

        out = []
        for t in texts:
            rng = np.random.default_rng(stable_seed("tower", 0, t))
            centre = np.random.default_rng(1 if t.startswith("far") else 0).standard_normal(16)
            v = centre / np.linalg.norm(centre) + 0.05 * rng.standard_normal(16)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def test_embedding_control_known_answer():
    from sklearn.metrics import roc_auc_score

    from mmia.umid.audit import UmidConfig, embedding_control_scores
    from mmia.umid.methods import run_embedding_control

    texts = [f"near {i}" for i in range(20)] + [f"far {i}" for i in range(20)]
    y = np.array([0] * 20 + [1] * 20)
    cfg = UmidConfig(reference_size=30)
    out = embedding_control_scores(_FixedTextTower(), texts, cfg)  # gibberish sits in the 'near' cluster
    assert out.name == "umid-embedding-control" and out.scores.shape == (40,)
    assert roc_auc_score(y, out.scores) == 1.0
    assert out.votes[20:].all() and out.votes[:20].mean() < 0.3
    # with names as the reference, queries among them are masked out of the evaluation
    names = [f"near {i}" for i in range(10)] + [f"near ref {i}" for i in range(20)]
    ctrl = run_embedding_control(_FixedTextTower(), texts, cfg, names)
    assert ctrl.name == "umid-embedding-control:names" and int((~ctrl.mask).sum()) == 10
    assert roc_auc_score(y[ctrl.mask], ctrl.scores[ctrl.mask]) == 1.0
