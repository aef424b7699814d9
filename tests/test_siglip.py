"""SigLIP as a contrastive target of the `clip` kind: its own text padding, CSA/AEA, `mmia umid`."""

import json

import numpy as np
import torch
import torch.nn.functional as F
from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)
from typer.testing import CliRunner

from mmia.cli import app
from mmia.targets import load_target
from mmia.targets.contrastive import SiglipTarget
from mmia.testbeds.build import build_testbed


def test_siglip_embeddings_are_the_models_own(tiny_dir):  # noqa: F811
    t = load_target(tiny_dir("siglip"))
    assert isinstance(t, SiglipTarget) and t.kind == "clip" and t.media_kind == "image"
    texts = ["a red cat", "the quick brown fox jumps over the lazy dog"]
    # SigLIP's own recipe: pad every text to the full length; the text tower pools the last position
    enc = t.processor.tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = F.normalize(t.model.get_text_features(**enc).pooler_output, dim=-1).numpy()
    got = t.embed_text(texts)
    assert got.shape == (2, t.embed_dim) and np.allclose(got, ref, atol=1e-6)
    # unpadded, the last position is another token: not the model's embedding
    short = t.processor.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        other = F.normalize(t.model.get_text_features(**short).pooler_output, dim=-1).numpy()
    assert not np.allclose(got[0], other[0], atol=1e-3)
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    pixels = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    np.testing.assert_allclose(t.embed_pixels(pixels).detach().numpy(), t.embed_media([img]), atol=1e-5)
    sim = t.pair_similarity(texts[:1], [img])
    assert sim.shape == (1,) and np.isclose(sim[0], float(got[0] @ t.embed_media([img])[0]), atol=1e-6)


def test_csa_and_aea_on_a_siglip_target(tiny_dir, tmp_path):  # noqa: F811
    data = write_media_dataset(tmp_path / "d", n=6, prompt=False)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["-q", "attack", str(data), "--target", str(tiny_dir("siglip")), "--out", str(out),
                                   "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    names = {a["name"] for a in result["attacks"]}
    assert {"csa", "aea"} <= names and result["settings"]["target_kind"] == "clip"
    for a in result["attacks"]:
        assert 0 <= a["auc"] <= 1


def test_umid_on_a_siglip_target(tiny_dir, tmp_path, quick_cache):  # noqa: F811
    tb = build_testbed("clip-identities", seed=0, quick=True, cache_dir=quick_cache)
    out = tmp_path / "u"
    res = CliRunner().invoke(app, ["-q", "umid", str(tb.splits["queries"]), "--target", str(tiny_dir("siglip")),
                                   "--out", str(out), "--restarts", "2", "--steps", "2", "--reference-size", "10",
                                   "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    assert "umid" in {a["name"] for a in result["attacks"]}
