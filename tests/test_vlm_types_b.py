"""LLaVA-OneVision, SmolVLM and Mllama targets through the public paths: `mmia attack`, the answer
loss against a direct computation with the model and its own processor, and FiMMIA train/score."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import fimmia_train_then_score, write_media_dataset
from typer.testing import CliRunner

from mmia.cli import app
from mmia.data import load_dataset
from mmia.engine.run_generative import answer_losses
from mmia.targets import ANSWER, load_target

torch.set_num_threads(1)

TYPES = ["llava_onevision", "smolvlm", "mllama"]

# How each chat template lays out a one-image row: (text before the answer, the answer, text after
# it). SmolVLM's template writes "Assistant: " + answer: the space goes with the answer, whose first
# token holds it in a BPE vocabulary (the text before the answer must tokenise to a prefix of the row).
LAYOUT = {
    "llava_onevision": ("<|im_start|>user <image>\n{prompt}<|im_end|><|im_start|>assistant\n", "{answer}", ""),
    "smolvlm": ("<|im_start|>User:<image>{prompt}<end_of_utterance>\nAssistant:", " {answer}",
                "<end_of_utterance>\n"),
    "mllama": ("<s><|start_header_id|>user<|end_header_id|>\n\n<|image|>{prompt}<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n", "{answer}", "<|eot_id|>"),
}


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    import tiny_vlms_b

    built = {}
    root = tmp_path_factory.mktemp("vlms-b")

    def get(name):
        if name not in built:
            built[name] = getattr(tiny_vlms_b, f"save_{name}")(root / name)
        return built[name]

    return get


def _reference_processor(path):
    """The checkpoint's processor built from its saved files with transformers alone (the video
    processor from its saved settings, as `tiny_vlms_b` builds it): mmia's loader not involved."""
    import importlib

    import transformers as tf
    from tiny_vlms_b import _video_processor_accepted

    cfg = json.loads((path / "processor_config.json").read_text())
    cls = getattr(tf, cfg.pop("processor_class"))
    parts = {"image_processor": tf.AutoImageProcessor.from_pretrained(path),
             "tokenizer": tf.AutoTokenizer.from_pretrained(path)}
    if "video_processor" in cls.get_attributes():
        vcfg = dict(cfg.pop("video_processor"))
        vname = vcfg.pop("video_processor_type")
        module = importlib.import_module(f"transformers.models.{cls.__module__.split('.')[-2]}."
                                         f"video_processing_{cls.__module__.split('.')[-2]}")
        parts["video_processor"] = getattr(module, vname)(**vcfg)
    cfg.pop("image_processor", None)
    with _video_processor_accepted():
        return cls(**parts, **cfg)


def _direct_answer_loss(model, proc, name, sample, image):
    """Mean cross-entropy of the answer tokens: the processor on the laid-out text, labels -100
    outside the answer (HF's own shifted loss)."""
    head, answer, tail = LAYOUT[name]
    prompt_part = head.format(prompt=sample.prompt)
    upto = prompt_part + answer.format(answer=sample.answer)
    ids = {t: proc(text=[t], images=[[image]], return_tensors="pt") for t in (prompt_part, upto, upto + tail)}
    full = ids[upto + tail]
    n_p, n_u = ids[prompt_part]["input_ids"].shape[1], ids[upto]["input_ids"].shape[1]
    assert torch.equal(full["input_ids"][0, :n_u], ids[upto]["input_ids"][0])  # parts are prefixes
    assert torch.equal(full["input_ids"][0, :n_p], ids[prompt_part]["input_ids"][0])
    labels = torch.full_like(full["input_ids"], -100)
    labels[0, n_p:n_u] = full["input_ids"][0, n_p:n_u]
    with torch.no_grad():
        return float(model(**full, labels=labels).loss)


@pytest.mark.parametrize("name", TYPES)
def test_attack_cli_scores_every_row(vlm_dir, tmp_path, name):
    data = write_media_dataset(tmp_path / "d", n=6)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["-q", "attack", str(data), "--target", str(vlm_dir(name)), "--attacks", "loss",
                                   "--out", str(out), "--cache", str(tmp_path / "c"), "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert [a["name"] for a in results["attacks"]] == ["loss"] and results["dataset"]["n_members"] == 3
    df = pd.read_parquet(out / "scores.parquet")
    assert list(df["id"]) == [f"s{i}" for i in range(6)] and np.isfinite(df["loss"]).all()


@pytest.mark.parametrize("name", TYPES)
def test_answer_loss_is_the_direct_cross_entropy(vlm_dir, tmp_path, name):
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    path = vlm_dir(name)
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6))
    target = load_target(path, device="cpu")
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    proc = _reference_processor(path)
    images = [Image.open(s.image).convert("RGB") for s in ds]
    ref = np.array([_direct_answer_loss(model, proc, name, s, im) for s, im in zip(ds, images, strict=True)])
    # the media count: the same text with another row's image has another loss
    assert abs(_direct_answer_loss(model, proc, name, ds.samples[0], images[3]) - ref[0]) > 1e-4
    np.testing.assert_allclose(answer_losses(target, ds.samples, batch_size=4), ref, rtol=0, atol=1e-5)
    # rows encoded one by one (separate processor calls: crops/tiles per image differ) and then
    # collated into one padded batch give the same losses
    stats = target.token_stats([target.encode(s) for s in ds])
    one_by_one = [-float(st["logp"][st["codes"][1:] == ANSWER].mean()) for st in stats]
    np.testing.assert_allclose(one_by_one, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", TYPES)
def test_fimmia_train_score_and_media_embedding(vlm_dir, tmp_path, name):
    from mmia.fimmia.scoring_target import TargetScorer
    from mmia.perturb.neighbours import decode_media

    data = write_media_dataset(tmp_path / "d", n=12)
    target = vlm_dir(name)
    train, _, held_ids, res, out = fimmia_train_then_score(data, target, tmp_path)
    assert train.exit_code == 0, train.output
    assert res.exit_code == 0, res.output
    assert out["attacks"][0]["name"] == "fimmia"
    scored = pd.read_parquet(tmp_path / "s" / "scores.parquet")
    assert set(scored["id"]) == held_ids and np.isfinite(scored["fimmia"]).all()

    ds = load_dataset(data)
    scorer = TargetScorer(target, device="cpu")
    a, b = (scorer.media_embedding_of(decode_media(ds.samples[i], "image"), "image") for i in (0, 1))
    assert a.ndim == 1 and a.shape == b.shape and np.isfinite(a).all() and not np.allclose(a, b, atol=1e-4)


def test_smolvlm_without_num2words_is_refused_in_one_line(vlm_dir, monkeypatch):
    # transformers' SmolVLM processor will not build without num2words (a dependency of mmia's):
    # load_target says so in one line, naming the directory.
    import transformers.models.smolvlm.processing_smolvlm as smol

    from mmia.errors import ModelNotFoundError

    path = vlm_dir("smolvlm")
    monkeypatch.setattr(smol, "num2words", None)
    with pytest.raises(ModelNotFoundError) as exc:
        load_target(path, device="cpu")
    msg = str(exc.value)
    assert "\n" not in msg and "num2words" in msg and str(path) in msg
