"""FiMMIA end to end on a random tiny LLaVA: reuse paths equal scratch, CLI train/score, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mmia.cli import app
from mmia.data.schema import Sample
from mmia.perturb import NeighbourConfig, NeighbourMaker

WORDS = "red green blue circle square star small large top left right there is a at the and".split()


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    from random_llava import build_random_llava

    torch.set_num_threads(1)
    return build_random_llava(tmp_path_factory.mktemp("llava") / "m", image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
        frames = root / f"v{i}"
        frames.mkdir()
        for t in range(4):
            Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(frames / f"{t}.png")
        answer = " ".join(rng.choice(WORDS, size=int(rng.integers(8, 14))))
        rows.append({"id": f"r{i}", "prompt": "describe the picture", "answer": answer, "image": f"{i}.png",
                     "label": i % 2})
    (root / "img.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    vid = [{**{k: v for k, v in r.items() if k != "image"}, "video": f"v{i}"} for i, r in enumerate(rows)]
    (root / "vid.jsonl").write_text("\n".join(json.dumps(r) for r in vid) + "\n")
    return root


@pytest.mark.parametrize(
    "field,template",
    [("answer", "{media}{prompt}"), ("prompt", "{media}{prompt}"), ("media", "{media}{prompt}"),
     ("answer+media", "{media}{prompt}"), ("prompt", "{prompt} {media}"), ("answer", "{prompt} {media}")],
)
def test_reuse_paths_equal_scratch(llava, data, field, template):
    from mmia.fimmia.scoring_llava import LlavaScorer
    from mmia.perturb.neighbours import decode_media

    s = Sample(id="x", row=1, prompt="describe the red picture at the top", answer="there is a small red circle "
               "at the top left and a large blue star", image=data / "0.png")
    nbs = NeighbourMaker(NeighbourConfig(k=6, field=field, text_techniques=("delete", "duplicate", "swap"))).make(s)
    img = decode_media(s, "image")
    fast_scorer = LlavaScorer(llava, reuse=True, batch_size=4, prompt_template=template)
    if template.startswith("{prompt}") and field == "prompt":  # no shared prefix holds the media tokens
        rows = fast_scorer._rows(s, [(s.prompt, s.answer, s.text), *((n.prompt, n.answer, n.text) for n in nbs)],
                                 img, "image", with_pixels=False)
        assert fast_scorer.score_on_shared_prefix(rows) is None  # -> the vision-feature path is taken
    fast = fast_scorer.score_sample(s, nbs, img, "image")
    slow = LlavaScorer(llava, reuse=False, batch_size=4, prompt_template=template).score_sample(s, nbs, img, "image")
    assert fast[0] == pytest.approx(slow[0], abs=1e-4)
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-4)
    assert np.ptp(fast[1]) > 0  # neighbours really differ


def test_video_neighbours_score(llava, data):
    from mmia.fimmia.scoring_llava import LlavaScorer
    from mmia.perturb.neighbours import decode_media

    s = Sample(id="v", row=1, prompt="describe the video", answer="a red circle moving", video=data / "v0")
    nbs = NeighbourMaker(NeighbourConfig(k=4, field="answer+media")).make(s)
    frames = decode_media(s, "video")
    assert {len(nb.media) for nb in nbs if nb.media is not None} <= {3, 4}
    fast = LlavaScorer(llava, reuse=True).score_sample(s, nbs, frames, "video")
    slow = LlavaScorer(llava, reuse=False).score_sample(s, nbs, frames, "video")
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-4)


def _train_args(data_file, llava, out, cache, extra=()):
    return ["fimmia", "train", str(data_file), "--target", str(llava), "--out", str(out), "--k", "4",
            "--field", "answer+media", "--holdout", "0.5", "--cache-dir", str(cache), *extra]


def test_cli_train_and_score(llava, data, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["-q", *_train_args(data / "img.jsonl", llava, tmp_path / "atk", tmp_path / "c")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "atk" / "config.json").read_text())
    held = json.loads((tmp_path / "atk" / "holdout" / "results.json").read_text())
    held_ids = set(__import__("pandas").read_parquet(tmp_path / "atk" / "holdout" / "scores.parquet")["id"])
    # training and evaluation ids never overlap
    assert set(cfg["train_ids"]).isdisjoint(held_ids) and len(cfg["train_ids"]) + len(held_ids) == 24
    names = [a["name"] for a in held["attacks"]]
    assert names[0] == "fimmia" and "loss" in names
    assert held["dataset"]["n_members"] == 6 and held["dataset"]["n_nonmembers"] == 6

    # scoring the training file is refused with an InputError (exit 2 from `mmia`), naming the file
    res = runner.invoke(app, ["-q", "fimmia", "score", str(data / "img.jsonl"), "--target", str(llava),
                              "--attack-model", str(tmp_path / "atk"), "--out", str(tmp_path / "s"),
                              "--cache-dir", str(tmp_path / "c")])
    from mmia.errors import InputError

    assert isinstance(res.exception, InputError) and res.exception.exit_code == 2
    assert "trained the attack model" in str(res.exception) and "img.jsonl" in str(res.exception)

    # scoring the held-out samples works, from the cache, and matches the holdout run
    import pandas as pd

    rows = [json.loads(line) for line in (data / "img.jsonl").read_text().splitlines()]
    (tmp_path / "held.jsonl").write_text("\n".join(json.dumps(r) for r in rows if r["id"] in held_ids) + "\n")
    for r in rows:
        r["image"] = str(data / r["image"])
    (tmp_path / "held.jsonl").write_text("\n".join(json.dumps(r) for r in rows if r["id"] in held_ids) + "\n")
    from mmia.fimmia import pipeline

    calls = []
    orig = pipeline.FeatureExtractor.compute
    monkeypatch.setattr(pipeline.FeatureExtractor, "compute", lambda self, s: calls.append(s.id) or orig(self, s))
    res = runner.invoke(app, ["-q", "fimmia", "score", str(tmp_path / "held.jsonl"), "--target", str(llava),
                              "--attack-model", str(tmp_path / "atk"), "--out", str(tmp_path / "s"),
                              "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert calls == []  # every sample's losses came from the cache
    a = pd.read_parquet(tmp_path / "s" / "scores.parquet").set_index("id").sort_index()
    b = pd.read_parquet(tmp_path / "atk" / "holdout" / "scores.parquet").set_index("id").sort_index()
    np.testing.assert_allclose(a["fimmia"], b["fimmia"])
    assert (tmp_path / "s" / "report.html").exists()


def test_cli_video_two_model(llava, data, tmp_path):
    from random_llava import build_random_llava

    base = build_random_llava(tmp_path / "base", image_size=32, patch_size=8, seed=1)
    res = CliRunner().invoke(app, ["-q", *_train_args(data / "vid.jsonl", llava, tmp_path / "atk", tmp_path / "c",
                                                      ["--base", str(base)])])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "atk" / "config.json").read_text())
    assert cfg["settings"]["protocol"] == "two-model"
    # two-model protocol trains on the known members of the training part only
    assert len(cfg["train_ids"]) == 6


def test_two_model_with_loss_variant_and_one_media_encoder(llava, data, tmp_path):
    """fimmia+loss in the two-model protocol reads the base's loss on every scored sample; the
    base's rows take their media embeddings from the target's encoder, not the base's."""
    import pandas as pd
    from random_llava import build_random_llava

    from mmia.data import load_dataset
    from mmia.fimmia.api import base_extractor
    from mmia.fimmia.pipeline import FeatureExtractor, FimmiaConfig
    from mmia.perturb.neighbours import decode_media

    base = build_random_llava(tmp_path / "base", image_size=32, patch_size=8, seed=1)
    res = CliRunner().invoke(app, ["-q", *_train_args(data / "img.jsonl", llava, tmp_path / "atk", tmp_path / "c",
                                                      ["--base", str(base), "--with-loss"])])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "atk" / "config.json").read_text())
    assert cfg["net"]["loss_inputs"] == 3 and cfg["settings"]["variant"] == "fimmia+loss"
    held = json.loads((tmp_path / "atk" / "holdout" / "results.json").read_text())
    assert [a["name"] for a in held["attacks"]][0] == "fimmia+loss"
    assert pd.read_parquet(tmp_path / "atk" / "holdout" / "scores.parquet")["fimmia+loss"].notna().all()

    fcfg = FimmiaConfig(neighbours=NeighbourConfig(k=2, field="media"))
    target_x = FeatureExtractor(llava, fcfg, None)
    base_x = base_extractor(base, fcfg, None, target_x)
    sample = load_dataset(data / "img.jsonl").samples[0]
    image = decode_media(sample, "image")
    own_base = FeatureExtractor(base, fcfg, None)._media_emb([image], "image")
    np.testing.assert_array_equal(base_x._media_emb([image], "image"), target_x._media_emb([image], "image"))
    assert not np.allclose(own_base, target_x._media_emb([image], "image"))
    # the base's own losses, though: one original loss per sample, as its features have it
    ds = load_dataset(data / "img.jsonl").subset(range(3))
    np.testing.assert_allclose(base_x.original_losses(ds), base_x.features(ds).original_loss, rtol=1e-6)


def test_original_loss_equals_engine_answer_loss(llava, data):
    """FiMMIA's loss of an original sample is the score attacks' engine's answer loss."""
    from mmia.data import load_dataset
    from mmia.engine.run_generative import answer_losses
    from mmia.fimmia.scoring_llava import LlavaScorer
    from mmia.perturb.neighbours import decode_media
    from mmia.targets import load_target

    ds = load_dataset(data / "img.jsonl").subset(range(4))
    engine = answer_losses(load_target(llava, device="cpu"), ds.samples)
    scorer = LlavaScorer(llava, device="cpu")
    maker = NeighbourMaker(NeighbourConfig(k=2, text_techniques=("swap",)))
    ours = [scorer.score_sample(s, maker.make(s), decode_media(s, "image"), "image")[0] for s in ds]
    np.testing.assert_allclose(ours, engine, atol=1e-4)


def test_registered_and_demo_step(llava, data, tmp_path):
    from mmia.attacks.registry import get_attack
    from mmia.demo.steps import DemoContext, list_demo_steps
    from mmia.testbeds.base import Testbed

    spec = get_attack("fimmia")
    assert spec.family == "neural" and "2512.02786" in spec.paper and "2406.10218" in spec.paper
    step = next(s for s in list_demo_steps() if s.name == "fimmia")
    assert step.order == 30
    rows = [json.loads(line) for line in (data / "img.jsonl").read_text().splitlines()]
    for r in rows:
        r["image"] = str(data / r["image"])
    (tmp_path / "matched.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    tb = Testbed(name="tiny", root=tmp_path, target_kind="vlm", modalities=("image", "text"),
                 splits={"matched": tmp_path / "matched.jsonl"}, roles={"membership": "matched"},
                 targets={"target": llava})
    out = step.run(tb, DemoContext(out_dir=tmp_path / "o", cache_dir=tmp_path / "c", quick=True))
    assert len(out) == 1
    section, table = out[0]
    names = [a.name for a in section.attacks]
    assert {"fimmia", "fimmia:loss", "fimmia:loss+text", "fimmia:loss+text+media", "fimmia+loss", "loss",
            "neighbourhood:chosen", "neighbourhood:answer/swap", "neighbourhood:image/blur"} <= set(names)
    assert set(table.columns) >= set(names)
    assert any(n.startswith("best score attack") for n in names)
    assert len(table.ids) == 12 and section.dataset.n_members == 6


def test_cli_train_sweep_chooses_on_training_rows_and_scoring_follows(llava, data, tmp_path, monkeypatch):
    """`--sweep`: every candidate is featurised on the training rows only, the chosen neighbours are
    saved with the model, and scoring the held-out rows makes those neighbours (from the cache)."""
    from mmia.fimmia import pipeline
    from mmia.fimmia.sweep import candidates

    seen = []
    orig = pipeline.FeatureExtractor.compute
    monkeypatch.setattr(pipeline.FeatureExtractor, "compute",
                        lambda self, s: seen.append((self.cfg.neighbours.fingerprint(), s.id)) or orig(self, s))
    res = CliRunner().invoke(app, _train_args(data / "img.jsonl", llava, tmp_path / "atk", tmp_path / "c",
                                              ["--sweep", "--k", "2", "--text-embedder", "none"]))
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "atk" / "config.json").read_text())
    sw = cfg["settings"]["sweep"]
    held_ids = set(__import__("pandas").read_parquet(tmp_path / "atk" / "holdout" / "scores.parquet")["id"])
    expected = candidates(NeighbourConfig(k=2, field="answer+media"), fields=("answer", "prompt"))
    assert set(sw["train_auc"]) == set(expected) and sw["skipped"] == {}
    assert all(0.0 <= a <= 1.0 for a in sw["train_auc"].values())
    assert sw["chosen"] == max(sw["train_auc"], key=lambda n: (sw["train_auc"][n], -list(expected).index(n)))
    assert cfg["settings"]["fimmia"]["neighbours"] == sw["neighbours"] == expected[sw["chosen"]].model_dump(mode="json")
    assert f"neighbours chosen on the training rows: {sw['chosen']}" in res.output
    # the sweep featurised every candidate on the 12 training rows; only the chosen one touched held-out rows
    chosen_fp = expected[sw["chosen"]].fingerprint()
    by_cfg = {}
    for fp, sid in seen:
        by_cfg.setdefault(fp, set()).add(sid)
    assert set(by_cfg) == {nc.fingerprint() for nc in expected.values()}
    assert all(ids.isdisjoint(held_ids) and len(ids) == 12 for fp, ids in by_cfg.items() if fp != chosen_fp)
    assert by_cfg[chosen_fp] == set(cfg["train_ids"]) | held_ids
