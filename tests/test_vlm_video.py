"""The `vlm-video` testbed (a small LLaVA reading 4-frame clips as 4 images) and the audits that run on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_models import tiny_dir  # noqa: F401  (fixture)
from typer.testing import CliRunner

from mmia.cli import app
from mmia.testbeds.build import build_testbed
from mmia.testbeds.manifest import tree_hash, weights_hash

FORMAT = ["--prompt-template", "USER: {media}\n{prompt}\nASSISTANT:", "--answer-template", " {answer}</s>"]


@pytest.fixture(scope="module")
def vv(tmp_path_factory):
    return build_testbed("vlm-video", seed=0, quick=True, cache_dir=tmp_path_factory.mktemp("vv-cache"))


def test_registered_outside_the_demo():
    from mmia.testbeds.build import get_spec

    spec = get_spec("vlm-video")
    assert spec.in_demo is False  # its build does not fit the demo's 10-minute budget


def test_manifest_and_clips(vv):
    m = vv.manifest
    assert vv.target_kind == "vlm" and set(vv.targets) == {"target", "base"}
    assert set(vv.splits) == {"matched", "shifted"} and vv.splits["matched"].name == "matched_video.jsonl"
    assert m["format"]["frames"] == m["frames_per_video"] == 4 and m["model"]["image_tokens"] == 16
    rows = [json.loads(line) for line in vv.splits["matched"].read_text().splitlines()]
    assert sorted(r["id"] for r in rows if r["label"] == 1) == m["ids"]["matched"]["members"]
    assert len(m["ids"]["matched"]["members"]) == m["sizes"]["members"] == len(m["ids"]["matched"]["nonmembers"])
    assert m["ids"]["matched"]["members"] == m["ids"]["shifted"]["members"]
    assert not set(m["ids"]["matched"]["nonmembers"]) & set(m["ids"]["shifted"]["nonmembers"])
    clip = vv.root / rows[0]["video"]
    assert sorted(p.name for p in clip.iterdir()) == [f"frame_{t:02d}.png" for t in range(4)]
    sig = m["member_signal"]["loss"]
    lo, hi = sig["auc_ci95"]
    assert 0.0 <= lo <= sig["auc"] <= hi <= 1.0 and sig["n_members"] == m["sizes"]["members"]
    assert m["weights_sha256"]["target"] != m["weights_sha256"]["base"]
    assert set(m["media_reliance"]) >= {"base_nonmember_loss_own_clips", "base_nonmember_loss_reversed_clips"}
    assert m["training"]["threads"] == 1 and m["training"]["target"]["epochs"] >= 1


def test_build_is_deterministic(vv, tmp_path):
    again = build_testbed("vlm-video", seed=0, quick=True, cache_dir=tmp_path / "c1")
    other = build_testbed("vlm-video", seed=1, quick=True, cache_dir=tmp_path / "c2")
    assert again.manifest["weights_sha256"] == vv.manifest["weights_sha256"]
    assert weights_hash(again.targets["target"]) == vv.manifest["weights_sha256"]["target"]
    assert tree_hash(again.root, "*.jsonl") == tree_hash(vv.root, "*.jsonl")
    assert tree_hash(again.root / "media_video_64_4f") == tree_hash(vv.root / "media_video_64_4f")
    assert again.manifest["member_signal"] == vv.manifest["member_signal"]
    assert other.manifest["weights_sha256"]["target"] != vv.manifest["weights_sha256"]["target"]
    assert tree_hash(other.root, "*.jsonl") != tree_hash(vv.root, "*.jsonl")


def test_loads_offline_with_auto_classes(vv, monkeypatch):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmia.data import load_dataset
    from mmia.data.media import load_video

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sample = load_dataset(vv.splits["matched"])[0]
    frames = list(load_video(sample.video))
    fmt = vv.manifest["format"]
    for role in ("target", "base"):
        model = AutoModelForImageTextToText.from_pretrained(vv.targets[role], use_safetensors=True)
        proc = AutoProcessor.from_pretrained(vv.targets[role])
        assert type(model).__name__ == "LlavaForConditionalGeneration"
        want = fmt["prompt"].format(media="<image>" * 4, prompt=sample.prompt) + fmt["answer"].format(
            answer=sample.answer)
        for media in ([{"type": "image"}] * 4, [{"type": "video"}]):  # frames as images, or one video part
            msgs = [
                {"role": "user", "content": [*media, {"type": "text", "text": sample.prompt}]},
                {"role": "assistant", "content": [{"type": "text", "text": sample.answer}]},
            ]
            assert proc.apply_chat_template(msgs, tokenize=False) == want
        enc = proc(text=want, images=frames, return_tensors="pt")
        assert enc["pixel_values"].shape[0] == 4
        assert int((enc["input_ids"] == model.config.image_token_index).sum()) == 4 * 16
        with torch.no_grad():
            assert torch.isfinite(model(**enc, labels=enc["input_ids"]).loss)


def test_score_engine_reads_video_rows_as_frames(vv):
    """`mmia attack`'s adapter feeds a video row's frames as images, in the model's chat format."""
    from dataclasses import replace

    from mmia.data import load_dataset
    from mmia.engine.run_generative import answer_losses
    from mmia.targets import load_target
    from mmia.targets.base import IMAGE

    target = load_target(vv.targets["target"])
    ds = load_dataset(vv.splits["matched"])
    enc = target.encode(ds[0])
    assert tuple(enc.extras["pixel_values"].shape) == (4, 3, 64, 64)
    assert int((enc.codes == IMAGE).sum()) == 4 * 16
    text = target.tokenizer.decode(enc.input_ids)
    assert text.startswith("<s>USER: " + "<image>" * 64 + "\n" + ds[0].prompt)
    # The frames matter: the same rows with each other's clips score differently.
    rows = ds.samples[:6]
    swapped = [replace(s, video=rows[(i + 1) % len(rows)].video) for i, s in enumerate(rows)]
    own, other = answer_losses(target, rows), answer_losses(target, swapped)
    assert np.isfinite(own).all() and not np.allclose(own, other)


def test_attack_cli_on_video(vv, tmp_path):
    res = CliRunner().invoke(app, ["-q", "attack", str(vv.splits["matched"]), "--target", str(vv.targets["target"]),
                                   "--reference", str(vv.targets["base"]), "--attacks", "loss,reference",
                                   "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert {a["name"] for a in result["attacks"]} == {"loss", "reference"}
    n = len(vv.manifest["ids"]["matched"]["members"])
    assert result["dataset"]["n_members"] == n and result["dataset"]["n_nonmembers"] == n


def test_fimmia_train_and_score_held_out(vv, tmp_path, monkeypatch):
    runner = CliRunner()
    atk, cache = tmp_path / "atk", tmp_path / "c"
    data, target = str(vv.splits["matched"]), str(vv.targets["target"])
    res = runner.invoke(app, ["-q", "fimmia", "train", data, "--target", target, "--out", str(atk), "--k", "4",
                              "--field", "answer+media", "--holdout", "0.5", "--text-embedder", "none",
                              "--cache-dir", str(cache), *FORMAT])
    assert res.exit_code == 0, res.output
    cfg = json.loads((atk / "config.json").read_text())
    assert cfg["settings"]["fimmia"]["prompt_template"] == FORMAT[1]
    held = pd.read_parquet(atk / "holdout" / "scores.parquet")
    assert set(cfg["train_ids"]).isdisjoint(held["id"])

    # The whole split is refused, unless the samples the attack trained on are left out: then exactly
    # the held-out half is scored, every loss from the cache, and the scores equal the holdout run's.
    args = ["-q", "fimmia", "score", data, "--target", target, "--attack-model", str(atk), "--out",
            str(tmp_path / "s"), "--cache-dir", str(cache)]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "--skip-trained" in str(res.exception)
    from mmia.fimmia import pipeline

    calls = []
    orig = pipeline.FeatureExtractor.compute
    monkeypatch.setattr(pipeline.FeatureExtractor, "compute", lambda self, s: calls.append(s.id) or orig(self, s))
    res = runner.invoke(app, [*args, "--skip-trained"])
    assert res.exit_code == 0, res.output
    assert calls == []
    result = json.loads((tmp_path / "s" / "results.json").read_text())
    assert result["dataset"]["n_samples"] == len(held) and result["attacks"][0]["name"] == "fimmia"
    a = pd.read_parquet(tmp_path / "s" / "scores.parquet").set_index("id").sort_index()
    np.testing.assert_allclose(a["fimmia"], held.set_index("id").sort_index()["fimmia"])


@pytest.mark.parametrize("name", ["llava", "qwen2vl"])
def test_vlm_adapters_read_video_rows_frame_by_frame(tiny_dir, tmp_path, name):  # noqa: F811
    """Each frame of a video row takes what one image takes, with or without a usable processor
    (Qwen2-VL's placeholders are expanded here, one per frame)."""
    from PIL import Image

    from mmia.data.schema import Sample
    from mmia.targets import load_target
    from mmia.targets.base import ANSWER, IMAGE, PROMPT

    rng = np.random.default_rng(0)
    clip = tmp_path / "clip"
    clip.mkdir()
    for t in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(clip / f"f{t}.png")
    target = load_target(tiny_dir(name))
    one = target.encode(Sample(id="i", row=1, prompt="describe", answer="a red circle", image=clip / "f0.png"))
    three = target.encode(Sample(id="v", row=2, prompt="describe", answer="a red circle", video=clip))
    n_image = int((one.codes == IMAGE).sum())
    assert n_image > 0 and int((three.codes == IMAGE).sum()) == 3 * n_image
    stats = target.token_stats([one, three])
    # log-probs exist where prompt and answer are scored (image rows carry only distribution statistics)
    for enc, s in zip((one, three), stats, strict=True):
        text_rows = np.isin(np.asarray(enc.codes[1:]), (PROMPT, ANSWER))
        assert text_rows.sum() > 3 and np.isfinite(s["logp"][text_rows]).all()
