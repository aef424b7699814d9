"""Miniature clip-identities / clap-voices testbeds, inversion on them, and `mmia umid` end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mmia.cli import app
from mmia.testbeds.base import Testbed as Bed
from mmia.testbeds.base import list_testbeds
from mmia.umid.invert import InversionSettings, invert
from mmia.umid.target import load_contrastive, media_file_embeddings, text_embeddings


@pytest.fixture(scope="module")
def clip_tb(tmp_path_factory) -> Bed:
    from mmia.testbeds.clip_identities import build_clip_identities

    return build_clip_identities(tmp_path_factory.mktemp("clip"), seed=0, quick=True)


@pytest.fixture(scope="module")
def clap_tb(tmp_path_factory) -> Bed:
    from mmia.testbeds.clap_voices import build_clap_voices

    return build_clap_voices(tmp_path_factory.mktemp("clap"), seed=0, quick=True)


def test_registered():
    names = {t.name for t in list_testbeds()}
    assert {"clip-identities", "clap-voices"} <= names


@pytest.mark.parametrize("which", ["clip_tb", "clap_tb"])
def test_manifest_and_name_splits(which, request):
    tb = request.getfixturevalue(which)
    m = tb.manifest
    members, ev, cal = set(m["members"]), set(m["nonmembers_eval"]), set(m["nonmembers_calibration"])
    assert members and ev and cal
    assert not (members & ev) and not (members & cal) and not (ev & cal)
    rows = [json.loads(line) for line in tb.splits["queries"].read_text().splitlines()]
    assert {r["text"] for r in rows if r["label"] == 1} == members
    assert {r["text"] for r in rows if r["label"] == 0} == ev
    assert (tb.targets["target"] / "model.safetensors").exists()
    sig = m["build_time_signal"]
    assert 0.0 <= next(iter(sig.values())) <= 1.0
    assert m["training"]["steps"] > 0
    # the builder's people are the shared random split of one name pool (tests/test_testbeds_names.py)
    from mmia.testbeds.names import identity_split

    sizes = m["sizes"]
    split = identity_split(tb.name, m["seed"], sizes["n_members"], sizes["n_calibration"], sizes["n_eval_nonmembers"])
    assert (m["members"], m["nonmembers_calibration"], m["nonmembers_eval"]) == split


def test_clip_processor_matches_training_normalisation(clip_tb):
    from PIL import Image

    t = load_contrastive(clip_tb.targets["target"])
    img = next((clip_tb.root / "photos").glob("*.png"))
    arr = np.asarray(Image.open(img).convert("RGB"), dtype=np.float32) / 255.0
    via_proc = media_file_embeddings(t, [img])
    direct = t.embed_pixels(torch.from_numpy(arr.transpose(2, 0, 1).copy())[None])
    assert torch.allclose(via_proc, direct, atol=1e-5)


def test_clap_torch_logmel_matches_feature_extractor(clap_tb):
    from mmia.data.media import load_audio

    t = load_contrastive(clap_tb.targets["target"])
    wav = next((clap_tb.root / "recordings").glob("*.wav"))
    w = load_audio(wav, 16000)
    ref = np.asarray(t.processor.feature_extractor([w], sampling_rate=16000, return_tensors="np")["input_features"])
    mine = t.logmel(torch.from_numpy(w)[None]).numpy()
    assert np.abs(ref[0, 0] - mine[0]).max() < 1e-3


@pytest.mark.parametrize("which,param", [("clip_tb", "latent"), ("clip_tb", "pixels"), ("clap_tb", "latent"),
                                         ("clap_tb", "pixels")])
def test_restarts_differ_and_batched_equals_sequential(which, param, request):
    tb = request.getfixturevalue(which)
    t = load_contrastive(tb.targets["target"])
    emb = text_embeddings(t, ["Anna Kowalska", "Jean Dupont"])
    st = InversionSettings(restarts=3, steps=4, lr=0.1, param=param, grid=4)
    batched = invert(t, emb, [1, 2], st)
    assert batched["z"].shape[:2] == (2, 3)
    for q in range(2):  # the R final embeddings of one query are not copies of one another
        z = batched["z"][q]
        assert min(np.abs(z[i] - z[j]).max() for i in range(3) for j in range(i + 1, 3)) > 1e-4
    seq = invert(t, emb, [1, 2], st, sequential=True)
    assert np.allclose(batched["cos"], seq["cos"], atol=1e-4)


def _run(args):
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.mark.parametrize("which,media", [("clip_tb", "photos"), ("clap_tb", "recordings")])
def test_cli_end_to_end(which, media, request, tmp_path):
    tb = request.getfixturevalue(which)
    out = tmp_path / "out"
    res = _run([
        "--quiet", "umid", str(tb.splits["queries"]), "--target", str(tb.targets["target"]), "--out", str(out),
        "--restarts", "2", "--steps", "3", "--reference-size", "10", "--control-names", str(tb.splits["calibration"]),
        "--media", str(tb.splits[media]), "--sequential", "--cache-dir", str(tmp_path / "cache"),
    ])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    names = {a["name"] for a in result["attacks"]}
    assert {"umid", "umid:two-sided", "umid:similarity", "umid:variability", "umid-name-control",
            "umid-embedding-control", "umid-embedding-control:names", "umid-media-cosine", "umid-sequential"} <= names
    for a in result["attacks"]:
        assert 0.0 <= a["auc"] <= 1.0 and "0.01" in a["tpr_at_fpr"]
    control = next(a for a in result["attacks"] if a["name"] == "umid-name-control")
    assert control["params"]["n_excluded"] == 0  # no query text is among the control's reference names
    scores = pd.read_parquet(out / "scores.parquet")
    query_ids = [json.loads(line)["id"] for line in tb.splits["queries"].read_text().splitlines()]
    assert not set(scores["id"]) & set(query_ids)  # hashed
    html = (out / "report.html").read_text()
    assert all(q not in html for q in query_ids)
    assert all(n not in html for n in tb.manifest["members"])
    # a rerun reads the cached inversions and gives identical scores
    res2 = _run(["--quiet", "umid", str(tb.splits["queries"]), "--target", str(tb.targets["target"]), "--out",
                 str(tmp_path / "out2"), "--restarts", "2", "--steps", "3", "--reference-size", "10",
                 "--show-queries", "--cache-dir", str(tmp_path / "cache")])
    assert res2.exit_code == 0, res2.output
    again = pd.read_parquet(tmp_path / "out2" / "scores.parquet")
    assert set(again["id"]) == set(query_ids)
    assert np.allclose(again["umid"].to_numpy(), scores["umid"].to_numpy())


def test_cli_bad_query_row(clip_tb, tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "text": "Anna Kowalska", "label": 1}\n{"id": "b", "text": "  ", "label": 0}\n')
    res = CliRunner().invoke(app, ["umid", str(bad), "--target", str(clip_tb.targets["target"]), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code != 0
    assert isinstance(res.exception, Exception) and "row 2" in str(res.exception)


def test_registry_and_demo_step(clip_tb, tmp_path):
    from mmia.attacks.registry import list_attacks
    from mmia.demo.steps import DemoContext, list_demo_steps
    from mmia.umid.demo_step import umid_demo_step as demo_step

    names = {s.name for s in list_attacks(target_kind="clip")}
    assert {"umid", "umid-name-control", "umid-sequential", "umid-media-cosine"} <= names
    by_name = {s.name: s for s in list_attacks(family="text-only")}
    assert all("2603.14222" in by_name[n].paper for n in ("umid", "umid-name-control", "umid-sequential"))
    assert "umid-media-cosine" not in {s.name for s in list_attacks(family="contrastive")}  # not for mmia attack
    assert "umid" in {s.name for s in list_demo_steps()}
    ctx = DemoContext(out_dir=tmp_path, cache_dir=tmp_path / "cache", seed=0, quick=True)
    [(section, table)] = demo_step(clip_tb, ctx)
    got = {a.name for a in section.attacks}
    assert {"umid", "umid-name-control", "umid-embedding-control", "umid-media-cosine"} <= got  # sequential: above
    assert set(table.columns) >= got
    assert demo_step(type(clip_tb)(name="other", root=tmp_path, target_kind=None, modalities=()), ctx) == []


def test_load_contrastive_refuses_other_model_kinds(tmp_path):
    from mmia.errors import InputError

    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}')
    with pytest.raises(InputError, match="causal-lm model, not a CLIP- or CLAP-style model"):
        load_contrastive(tmp_path)


_REBUILD = """
import hashlib, sys
from pathlib import Path
from mmia.testbeds.{module} import {fn}
tb = {fn}(Path(sys.argv[1]), seed=0, quick=True)
for f in ("model.safetensors", "tokenizer.json"):
    print(f, hashlib.sha256((tb.root / "model" / f).read_bytes()).hexdigest())
"""


@pytest.mark.parametrize("which,module,fn", [("clip_tb", "clip_identities", "build_clip_identities"),
                                             ("clap_tb", "clap_voices", "build_clap_voices")])
def test_build_is_the_same_in_another_process(which, module, fn, request, tmp_path):
    """Same seed, another process with another hash seed: the same tokenizer and weights (version-1
    clip-identities builds differed here: the tokenizer trainer's numbering followed hash order)."""
    import hashlib
    import os
    import subprocess
    import sys

    tb = request.getfixturevalue(which)
    proc = subprocess.run([sys.executable, "-c", _REBUILD.format(module=module, fn=fn), str(tmp_path / "again")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    mine = "".join(f"{f} {hashlib.sha256((tb.root / 'model' / f).read_bytes()).hexdigest()}\n"
                   for f in ("model.safetensors", "tokenizer.json"))
    theirs = "".join(f"{line}\n" for line in proc.stdout.splitlines() if line.startswith(("model.", "tokenizer.")))
    assert theirs == mine
