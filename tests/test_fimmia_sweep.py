"""The neighbour sweep: candidates, the training-row choice, and its use of labelled rows only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmia.data import load_dataset
from mmia.errors import InputError
from mmia.fimmia.features import FeatureSet
from mmia.fimmia.sweep import (
    EDIT_SETTINGS,
    candidates,
    choose,
    neighbourhood_auc,
    sweep_fields,
    sweep_neighbours,
)
from mmia.perturb import NeighbourConfig
from mmia.perturb.text import edit_count


def test_candidates_cover_fields_and_edit_budgets():
    base = NeighbourConfig(k=8, field="answer+media", seed=3)
    c = candidates(base)
    assert list(c)[0] == "base: answer+media" and c["base: answer+media"] is base
    texts = {f"{f} x{e}" for f in ("answer", "prompt") for e in EDIT_SETTINGS}
    assert set(c) == {"base: answer+media", "media"} | texts
    # every candidate keeps K and the seed; the edit budget is what the name says
    assert all(nc.k == 8 and nc.seed == 3 for nc in c.values())
    one = c["answer x1"]
    assert (edit_count(12, one.edit_fraction, one.min_edits, one.max_edits),
            edit_count(300, one.edit_fraction, one.min_edits, one.max_edits)) == (1, 1)
    ten = c["prompt x10%"]
    assert ten.field == "prompt"
    assert [edit_count(n, ten.edit_fraction, ten.min_edits, ten.max_edits) for n in (4, 30, 1000)] == [1, 3, 40]
    # distinct settings are distinct cache entries
    assert len({nc.fingerprint() for nc in c.values()}) == len(c)


def test_neighbourhood_auc_known_answer():
    deltas = np.array([[3.0, 1.0], [0.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])  # means 2, 0, 1, -0.5
    assert neighbourhood_auc(deltas, np.array([1, 0, 1, 0])) == 1.0
    assert neighbourhood_auc(deltas, np.array([0, 1, 0, 1])) == 0.0
    assert neighbourhood_auc(deltas, np.array([1, 1, 0, 0])) == pytest.approx(0.75)


def test_choose_best_training_auc_first_on_ties_and_ignores_nan():
    cfgs = {n: NeighbourConfig(seed=i) for i, n in enumerate("abcd")}
    r = choose({"a": 0.6, "b": 0.7, "c": 0.7, "d": float("nan")}, cfgs, {"d": "no prompt"})
    assert (r.chosen, r.config.seed) == ("b", 1)
    assert r.as_dict()["skipped"] == {"d": "no prompt"}
    with pytest.raises(ValueError):
        choose({"a": float("nan")}, cfgs)


def _labelled(tmp_path, labels):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps({"id": f"s{i}", "text": f"t {i}", "label": int(y)}) + "\n"
                         for i, y in enumerate(labels)))
    return load_dataset(p)


def test_sweep_scores_every_candidate_on_the_training_rows(tmp_path):
    labels = np.arange(40) % 2
    ds = _labelled(tmp_path, labels)
    rng = np.random.default_rng(0)
    signal = {"answer": 2.0, "prompt": 0.3}  # answer neighbours separate members, prompt ones barely
    seen = []

    def features_of(nc):
        seen.append(nc.field)
        if nc.field == "media":
            raise InputError("a sample has no media field", ds.path, 1)
        loss = rng.normal(0, 1, (40, 4)) + signal[nc.field] * labels[:, None]
        return FeatureSet(ids=ds.ids, loss=loss, labels=labels)

    cfgs = candidates(NeighbourConfig(k=4, field="answer"), edits=("1",), keep_base=False)
    result, feats = sweep_neighbours(cfgs, features_of)
    assert seen == ["answer", "prompt", "media"]
    assert result.chosen == "answer x1" and result.train_auc["answer x1"] > 0.9
    assert 0.5 < result.train_auc["prompt x1"] < result.train_auc["answer x1"]
    assert np.isnan(result.train_auc["media"]) and "no media" in result.skipped["media"]
    assert set(feats) == {"answer x1", "prompt x1"}


def test_sweep_fields_are_those_every_sample_has(tmp_path):
    p = tmp_path / "d.jsonl"
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (4, 4)).save(img)
    rows = [{"id": "a", "prompt": "q", "answer": "x y", "image": "a.png", "label": 1},
            {"id": "b", "prompt": "", "answer": "z", "image": "a.png", "label": 0}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert sweep_fields(load_dataset(p).samples) == (("answer",), True)
    assert sweep_fields(_labelled(tmp_path, [1, 0]).samples) == (("text",), False)


def test_sweep_refuses_one_class_rows(tmp_path):
    ds = _labelled(tmp_path, [1, 1, 1])
    cfgs = candidates(NeighbourConfig(k=2), edits=("1",), fields=("text",), media=False)
    with pytest.raises(InputError, match="two classes"):
        sweep_neighbours(cfgs, lambda nc: FeatureSet(ids=ds.ids, loss=np.zeros((3, 2)), labels=ds.labels()))
