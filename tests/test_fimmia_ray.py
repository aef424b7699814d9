"""`mmia fimmia score --engine ray`: FiMMIA's features from Ray Data actors, scores equal to the local
engine's, kept in shards a rerun reuses (conftest's 2-CPU `ray_cluster`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmia.fimmia import api
from mmia.fimmia.network import TrainConfig
from mmia.fimmia.pipeline import FimmiaConfig
from mmia.perturb import NeighbourConfig

pytest.importorskip("ray")

WORDS = "red green blue circle square star small large top left right there is a at the and".split()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A random tiny LLaVA, an attack model trained on 12 rows and 10 other rows to score."""
    from random_llava import build_random_llava

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fimmia-ray")
    llava = build_random_llava(root / "m", image_size=32, patch_size=8)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(22):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
        rows.append({"id": f"r{i}", "prompt": "describe the picture", "label": i % 2, "image": f"{i}.png",
                     "answer": " ".join(rng.choice(WORDS, size=int(rng.integers(8, 14))))})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    (root / "score.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[12:]))
    cfg = FimmiaConfig(neighbours=NeighbourConfig(k=4, field="answer+media"), text_embedder=None)
    api.train(root / "train.jsonl", llava, root / "atk", cfg=cfg, train_cfg=TrainConfig(max_epochs=20),
              cache_dir=root / "c")
    local = api.score(root / "score.jsonl", llava, root / "atk", root / "local", cache_dir=root / "c2")
    return root, llava, local


def test_fimmia_score_on_ray_equals_local_and_a_rerun_reuses_the_shards(trained, ray_cluster, tmp_path):
    root, llava, local = trained
    out = tmp_path / "out"
    res = api.score(root / "score.jsonl", llava, root / "atk", out, engine="ray", workers=2, block_rows=3)
    assert res.settings["engine_kind"] == "ray" and res.settings["ray"]["computed"] == 10
    assert res.settings["ray"]["blocks"] == 4
    want = pd.read_parquet(root / "local" / "scores.parquet")
    got = pd.read_parquet(out / "scores.parquet")
    assert list(got["id"]) == list(want["id"]) == [f"r{i}" for i in range(12, 22)]
    assert list(got.columns) == list(want.columns) and "fimmia" in got.columns
    for col in want.columns.drop(["id", "label"]):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), atol=1e-5, rtol=0,
                                   err_msg=col)
    assert [e.name for e in res.attacks] == [e.name for e in local.attacks]
    for a, b in zip(res.attacks, local.attacks, strict=True):
        assert a.auc == pytest.approx(b.auc, abs=1e-9), a.name

    # the command line, on the same --out: every sample's features come from the shards
    from typer.testing import CliRunner

    from mmia.cli import app

    r = CliRunner().invoke(app, ["-q", "fimmia", "score", str(root / "score.jsonl"), "--target", str(llava),
                                 "--attack-model", str(root / "atk"), "--out", str(out), "--engine", "ray",
                                 "--workers", "2"])
    assert r.exit_code == 0, r.output
    again = json.loads((out / "results.json").read_text())
    assert again["settings"]["ray"]["reused"] == 10 and again["settings"]["ray"]["computed"] == 0
    np.testing.assert_allclose(pd.read_parquet(out / "scores.parquet")["fimmia"], want["fimmia"], atol=1e-5, rtol=0)


def test_fimmia_train_two_model_on_ray_equals_local_and_a_rerun_reuses_the_shards(trained, ray_cluster, tmp_path):
    """`fimmia train --base --holdout --with-loss --engine ray`: the target's and the base's training
    features from actors (the base's with the target's media encoder, as locally), the network
    trained here on them, the held-out evaluation's features from actors too."""
    from random_llava import build_random_llava

    from mmia.engine.ray_cluster import RayOptions
    from mmia.fimmia.network import FimmiaModel

    root, llava, _ = trained
    base = build_random_llava(tmp_path / "base", image_size=32, patch_size=8, seed=1)
    cfg = FimmiaConfig(neighbours=NeighbourConfig(k=4, field="answer+media"), text_embedder=None)
    kw = dict(base=base, cfg=cfg, train_cfg=TrainConfig(max_epochs=20), holdout=0.25, use_loss=True)
    local, local_res = api.train(root / "train.jsonl", llava, tmp_path / "local", cache_dir=tmp_path / "c", **kw)
    ray_opts = RayOptions(workers=1, block_rows=3)
    model, res = api.train(root / "train.jsonl", llava, tmp_path / "ray", engine="ray", ray=ray_opts, **kw)
    runs = model.settings["ray"]
    assert [r["features"] for r in runs] == ["target", "base"]
    members = runs[0]["computed"]  # protocol (b): the training part's members only, by the target and the base
    assert runs[1]["computed"] == members and 0 < members < 9
    assert model.train_ids == local.train_ids
    want, got = local.net.state_dict(), model.net.state_dict()
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), atol=1e-5, rtol=0, err_msg=name)
    assert res.settings["engine_kind"] == "ray" and res.settings["ray"]["computed"] == res.dataset.n_samples == 4
    assert [e.name for e in res.attacks] == [e.name for e in local_res.attacks]
    for a, b in zip(res.attacks, local_res.attacks, strict=True):
        assert a.auc == pytest.approx(b.auc, abs=1e-9), a.name
    held_want = pd.read_parquet(tmp_path / "local" / "holdout" / "scores.parquet")
    held_got = pd.read_parquet(tmp_path / "ray" / "holdout" / "scores.parquet")
    for col in held_want.columns.drop(["id", "label"]):
        np.testing.assert_allclose(held_got[col], held_want[col], atol=1e-5, rtol=0, err_msg=col)

    # a rerun on the same --out computes nothing: every feature is in the shards
    again, _ = api.train(root / "train.jsonl", llava, tmp_path / "ray", engine="ray", ray=ray_opts, **kw)
    assert [r["computed"] for r in again.settings["ray"]] == [0, 0]
    assert [r["reused"] for r in again.settings["ray"]] == [r["computed"] for r in runs]
    saved = FimmiaModel.load(tmp_path / "ray")
    for name, w in saved.net.state_dict().items():
        np.testing.assert_allclose(w.numpy(), got[name].numpy(), atol=1e-6, rtol=0, err_msg=name)


def test_fimmia_features_on_ray_under_a_token_budget(tmp_path, ray_cluster, monkeypatch):
    """The budget reaches the actors' scorers beside the config (no dump holds it): the local
    features, and the shard key of a run without it (a rerun without the budget reuses them)."""
    from tiny_models import save_causal_lm, write_media_dataset

    from mmia import progress
    from mmia.data import load_dataset
    from mmia.fimmia.pipeline import FeatureExtractor
    from mmia.fimmia.ray_features import FeatureWorker, features_on_ray

    target = save_causal_lm(tmp_path / "lm")
    data = write_media_dataset(tmp_path / "d", n=4, image=False)
    ds = load_dataset(data)
    cfg = FimmiaConfig(neighbours=NeighbourConfig(k=3, field="answer"), text_embedder=None, media_embedder=None,
                       batch_size=4)
    budgeted = cfg.model_copy(update={"max_batch_tokens": 25})
    # what an actor builds from the driver's kwargs (here, without Ray: its scorer is the point)
    monkeypatch.setattr(progress, "set_quiet", lambda _on: None)
    monkeypatch.setattr(progress, "quiet_libraries", lambda: None)
    worker = FeatureWorker(path=str(data), target=str(target), cfg=budgeted.model_dump(mode="json"), threads=1,
                           max_batch_tokens=25)
    assert worker.extractor.scorer.max_batch_tokens == 25
    want = FeatureExtractor(target, cfg, None).features(ds)
    got, info = features_on_ray(ds, target, budgeted, tmp_path / "out")
    assert info["computed"] == 4
    np.testing.assert_allclose(got.loss, want.loss, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.original_loss, want.original_loss, rtol=0, atol=1e-5)
    _, again = features_on_ray(ds, target, cfg, tmp_path / "out")
    assert again["reused"] == 4 and again["computed"] == 0
