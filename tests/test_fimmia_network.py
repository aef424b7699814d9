"""Attack network: learns a planted signal, splits by sample, saves and reloads identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmia.fimmia.features import FeatureSet
from mmia.fimmia.network import AttackNet, FimmiaModel, NetConfig, TrainConfig, split_by_sample, train_attack
from mmia.metrics import evaluate


def _planted(n=120, k=6, dt=8, seed=0, shift=1.0):
    """Members' neighbours raise the loss more (delta mean +shift vs 0); text deltas are noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    loss = rng.normal(0, 1, size=(n, k)) + shift * labels[:, None]
    text = rng.normal(0, 0.1, size=(n, k, dt)).astype(np.float32)
    return FeatureSet(ids=[f"s{seed}_{i}" for i in range(n)], loss=loss, text=text, labels=labels)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_split_by_sample_is_stratified_disjoint_and_order_free():
    ids = [f"id{i}" for i in range(50)]
    labels = np.array([1] * 20 + [0] * 30)
    rest, held = split_by_sample(ids, labels, 0.2, seed=3)
    assert set(rest).isdisjoint(held) and len(rest) + len(held) == 50
    assert labels[held].sum() == 4 and (labels[held] == 0).sum() == 6
    perm = np.random.default_rng(0).permutation(50)
    rest2, held2 = split_by_sample([ids[i] for i in perm], labels[perm], 0.2, seed=3)
    assert {ids[perm[i]] for i in held2} == {ids[i] for i in held}


def test_split_keeps_rows_of_one_sample_together():
    # two-model protocol: every sample appears twice, once per label
    ids = [f"id{i}" for i in range(20)] * 2
    labels = np.array([0] * 20 + [1] * 20)
    rest, held = split_by_sample(ids, labels, 0.25, seed=0)
    held_ids = {ids[i] for i in held}
    assert len(held_ids) == 5 and len(held) == 10
    assert held_ids.isdisjoint({ids[i] for i in rest})


def test_no_activation_on_logits():
    net = AttackNet(NetConfig(text_dim=None))
    assert isinstance(net.head[-1], torch.nn.Linear)
    torch.manual_seed(0)
    out = net(torch.randn(200, 1) * 10)
    assert (out < 0).any()  # a ReLU on the logits would make this impossible


def test_learns_planted_signal_on_held_out_samples():
    model = train_attack(_planted(seed=0), train=TrainConfig(max_epochs=60, patience=10))
    test = _planted(seed=1)
    m = evaluate(test.labels, model.score(test), with_roc=False)
    assert m["auc"] > 0.85
    h = model.history
    assert h["n_fit_samples"] + h["n_val_samples"] == 120
    assert set(h["val_ids"]) <= set(model.train_ids)


def test_normaliser_fit_on_training_rows_only():
    fs = _planted(seed=0)
    model = train_attack(fs, train=TrainConfig(max_epochs=2, patience=1))
    val = set(model.history["val_ids"])
    fit_rows = np.concatenate([fs.loss[i] for i, s in enumerate(fs.ids) if s not in val])
    assert model.normaliser.loss_mean == pytest.approx(fit_rows.mean())
    assert model.normaliser.loss_std == pytest.approx(fit_rows.std(ddof=1))
    assert model.normaliser.n_rows == fit_rows.size


def test_save_load_scores_identically(tmp_path):
    model = train_attack(_planted(seed=0), train=TrainConfig(max_epochs=5, patience=5), settings={"field": "answer"})
    test = _planted(seed=2)
    before = model.score(test)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    again = FimmiaModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.score(test), before)
    assert again.settings == {"field": "answer"} and again.train_ids == model.train_ids
    assert again.normaliser == model.normaliser


def test_loss_only_ablation_has_no_text_branch():
    model = train_attack(_planted(seed=0), use_text=False, train=TrainConfig(max_epochs=3, patience=3))
    assert model.net.text_branch is None
    fs = _planted(seed=1)
    fs.text = None
    assert model.score(fs).shape == (120,)


def test_too_few_samples_for_a_validation_part_is_a_clear_input_error():
    from mmia.errors import InputError

    tiny = _planted(n=3)  # two non-members, one member: the member cannot also sit in the validation part
    with pytest.raises(InputError, match="at least 2 member and 2 non-member"):
        train_attack(tiny, train=TrainConfig(max_epochs=2))
    train_attack(_planted(n=4), train=TrainConfig(max_epochs=2))  # two of each: trains


def _loss_planted(n=160, k=6, seed=0, base=False):
    """Members have a LOWER original loss; the deltas carry nothing. With `base`, every sample's
    base loss is its difficulty and the target's loss is difficulty - 1 for members only: the
    original loss alone is blurred by the difficulty, the difference is not."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    difficulty = rng.normal(3.0, 2.0 if base else 0.3, size=n)
    original = difficulty - 1.0 * labels
    fs = FeatureSet(ids=[f"l{seed}_{i}" for i in range(n)], loss=rng.normal(0, 1, size=(n, k)), labels=labels,
                    original_loss=original)
    if base:
        fs.base_loss = difficulty
    return fs


def test_with_loss_variant_reads_the_original_loss_the_faithful_one_cannot():
    tc = TrainConfig(max_epochs=80, patience=15)
    test = _loss_planted(seed=1)
    faithful = train_attack(_loss_planted(seed=0), train=tc)
    variant = train_attack(_loss_planted(seed=0), train=tc, use_loss=True)
    assert variant.net.cfg.loss_inputs == 2 and faithful.net.cfg.loss_inputs == 1
    assert evaluate(test.labels, variant.score(test), with_roc=False)["auc"] > 0.9
    assert abs(evaluate(test.labels, faithful.score(test), with_roc=False)["auc"] - 0.5) < 0.15
    # the original-loss statistics are the fit rows' own
    val = set(variant.history["val_ids"])
    fit = np.array([o for i, o in zip(_loss_planted(seed=0).ids, _loss_planted(seed=0).original_loss, strict=True)
                    if i not in val])
    assert variant.normaliser.original_mean == pytest.approx(fit.mean())
    assert variant.normaliser.original_std == pytest.approx(fit.std(ddof=1))


def test_with_loss_variant_uses_the_base_loss_when_given(tmp_path):
    tc = TrainConfig(max_epochs=80, patience=15)
    test = _loss_planted(seed=1, base=True)
    model = train_attack(_loss_planted(seed=0, base=True), train=tc, use_loss=True)
    assert model.net.cfg.loss_inputs == 3
    auc = evaluate(test.labels, model.score(test), with_roc=False)["auc"]
    alone = evaluate(test.labels, -test.original_loss, with_roc=False)["auc"]
    assert auc > 0.9 and alone < 0.75  # the difference with the base is what separates here
    model.save(tmp_path / "m")
    again = FimmiaModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.score(test), model.score(test))
    test.base_loss = None
    with pytest.raises(ValueError, match="base model's loss"):
        model.score(test)


def test_a_model_saved_before_the_variant_loads_as_faithful(tmp_path):
    import json

    model = train_attack(_planted(seed=0), train=TrainConfig(max_epochs=3, patience=3))
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["net"].pop("loss_inputs")
    for key in ("original_mean", "original_std"):
        cfg["normaliser"].pop(key)
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    again = FimmiaModel.load(tmp_path / "m")
    assert again.net.cfg.loss_inputs == 1
    np.testing.assert_array_equal(again.score(_planted(seed=2)), model.score(_planted(seed=2)))
