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
