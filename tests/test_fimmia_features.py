"""Known-answer tests: delta signs (neighbour minus original) and training-only normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from mmia.fimmia.features import FeatureNormaliser, FeatureSet, build_features, embedding_deltas, loss_deltas


def test_loss_delta_sign_is_neighbour_minus_original():
    d = loss_deltas(np.array([1.0, 2.0]), np.array([[1.5, 0.5, 1.0], [2.0, 4.0, 3.0]]))
    np.testing.assert_allclose(d, [[0.5, -0.5, 0.0], [0.0, 2.0, 1.0]])


def test_embedding_delta_sign():
    orig = np.array([[1.0, 0.0], [0.0, 1.0]])
    nb = np.array([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 3.0], [2.0, 1.0]]])
    np.testing.assert_allclose(embedding_deltas(orig, nb), [[[0, 1], [-1, 0]], [[0, 2], [2, 0]]])
    with pytest.raises(ValueError):
        embedding_deltas(orig, nb[:, :, :1])


def test_normaliser_known_answer():
    loss = np.array([[1.0, 3.0], [5.0, 7.0]])  # mean 4, sample std sqrt(20/3)
    text = np.array([[[3.0, 4.0], [0.0, 1.0]], [[0.0, 2.0], [6.0, 8.0]]])  # norms 5, 1, 2, 10 -> mean 4.5
    n = FeatureNormaliser.fit(loss, text)
    assert n.loss_mean == pytest.approx(4.0)
    assert n.loss_std == pytest.approx(np.sqrt(20 / 3))  # a real std, not the variance 6.667
    assert n.text_scale == pytest.approx(4.5)
    assert n.media_scale == 1.0
    z = n.loss(loss)
    assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std(ddof=1) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(n.text(text)[0, 0], [3 / 4.5, 4 / 4.5], rtol=1e-6)
    # statistics come from the rows given to fit only: new rows are transformed, not refit
    np.testing.assert_allclose(n.loss(np.array([4.0 + np.sqrt(20 / 3)])), [1.0], rtol=1e-6)
    assert FeatureNormaliser.from_dict(n.to_dict()) == n


def test_normaliser_constant_deltas_do_not_divide_by_zero():
    n = FeatureNormaliser.fit(np.full((3, 2), 0.5))
    assert n.loss_std == 1.0
    np.testing.assert_allclose(n.loss(np.array([0.5])), [0.0])


def test_feature_set_subset_and_concat():
    fs = build_features(
        ["a", "b", "c"],
        np.array([1.0, 2.0, 3.0]),
        np.array([[2.0, 1.0], [2.0, 2.0], [4.0, 5.0]]),
        np.zeros((3, 4)),
        np.ones((3, 2, 4)),
        labels=[1, 0, 1],
    )
    np.testing.assert_allclose(fs.loss, [[1, 0], [0, 0], [1, 2]])
    sub = fs.subset([2, 0])
    assert sub.ids == ["c", "a"] and sub.labels.tolist() == [1, 1]
    both = FeatureSet.concat([sub, fs.subset([1])])
    assert both.ids == ["c", "a", "b"] and both.text.shape == (3, 2, 4)


def test_a_neighbour_without_a_finite_loss_is_named(tmp_path):
    import json

    from mmia.data import load_dataset
    from mmia.errors import InputError
    from mmia.fimmia.pipeline import assemble

    rows = [{"id": f"s{i}", "prompt": "p", "answer": "a b", "label": i % 2} for i in range(3)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_dataset(tmp_path / "d.jsonl")
    values = [{"orig_loss": np.array([1.0]), "nb_loss": np.array([1.5, 2.0])} for _ in rows]
    assert assemble(ds, values).loss.shape == (3, 2)
    values[1] = {"orig_loss": np.array([1.0]), "nb_loss": np.array([1.5, np.nan])}
    with pytest.raises(InputError, match="sample 's1': its neighbour 1 has no finite answer loss") as err:
        assemble(ds, values)
    assert err.value.row == 2 and "d.jsonl" in str(err.value)
