"""Whisper-style audio encoder-decoders as `mmia attack` targets: kind detection, offline loading,
per-token statistics against a direct forward pass, the CLI, a reference with another tokenizer."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from mmia.data import load_dataset
from mmia.targets import ANSWER, OTHER, PROMPT, detect_kind, load_target

torch.set_num_threads(1)


def _save_whisper(out, seed: int, reverse_vocab: bool = False):
    """A tiny random WhisperForConditionalGeneration with the audio testbed's word-level tokenizer
    (its vocabulary in reverse order when asked: the same words, other token ids)."""
    from tiny_models import save_whisper

    tok = None
    if reverse_vocab:
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        from mmia.testbeds.audio_captions import SPECIALS, _vocab

        words = SPECIALS + sorted(set(_vocab()) - set(SPECIALS), reverse=True)
        tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                      unk_token="<unk>")
    return save_whisper(out, seed=seed, d_model=16, tok=tok)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("whisper")
    return {"target": _save_whisper(root / "target", 0), "other_tok": _save_whisper(root / "ref", 1, True)}


@pytest.fixture(scope="module")
def audio_data(tmp_path_factory):
    """Sixteen labelled caption rows of the audio testbed's kind, the last a text row (no prompt)."""
    from tiny_models import write_audio_captions

    return write_audio_captions(tmp_path_factory.mktemp("audio"), "seq2seq-test", unequal=True, text_last=True)


def test_kind_detection(models, tmp_path):
    assert detect_kind(models["target"]) == "audio-lm"
    # transformers lists Whisper among causal LMs; an encoder-decoder with an audio feature
    # extractor is still an audio LM whatever its model_type says
    cfg = json.loads((models["target"] / "config.json").read_text())
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({**cfg, "model_type": "my_asr",
                                                 "architectures": ["MyAsrForConditionalGeneration"]}))
    (odd / "preprocessor_config.json").write_text((models["target"] / "preprocessor_config.json").read_text())
    assert detect_kind(odd) == "audio-lm"
    (odd / "preprocessor_config.json").unlink()  # no feature extractor: not an audio model
    with pytest.raises(Exception, match="cannot tell"):
        detect_kind(odd)


def test_loads_offline_and_slices(models, audio_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = load_target(models["target"])
    assert type(t).__name__ == "SpeechSeq2SeqTarget" and t.kind == "audio-lm" and t.dtype == torch.float32
    assert t.max_positions == 64
    ds = load_dataset(audio_data)
    for s in ds:
        e = t.encode(s)
        assert e.input_ids[0] == 1 and e.codes[0] == OTHER  # the decoder start
        assert t.tokenizer.decode(e.input_ids[e.codes == ANSWER]) == (s.answer if s.prompt else s.text)
        assert t.tokenizer.decode(e.input_ids[e.codes == PROMPT]) == (s.prompt or "")
        assert e.extras["input_features"].shape == (1, 40, 200)


def test_logp_equals_a_direct_forward(models, audio_data):
    """Known answer: the engine's per-token log-probs (padded batch of unequal lengths) are the
    model's own log-softmax at the decoder positions, computed here by hand."""
    import soundfile as sf
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration

    from mmia.engine import iter_token_stats

    path = models["target"]
    ds = load_dataset(audio_data)
    stats = dict(iter_token_stats(load_target(path), ds.samples, batch_size=4))
    model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    tok, fe = AutoTokenizer.from_pretrained(path), AutoFeatureExtractor.from_pretrained(path)
    for i, s in enumerate(ds):
        prompt_ids = tok(s.prompt, add_special_tokens=False).input_ids if s.prompt else []
        answer_ids = tok((" " if s.prompt else "") + (s.answer or s.text), add_special_tokens=False).input_ids
        ids = [1] + prompt_ids + answer_ids
        wave = sf.read(audio_data.parent / f"{i}.wav", dtype="float32")[0]
        feats = fe([wave], sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            lp = torch.log_softmax(model(input_features=feats, decoder_input_ids=torch.tensor([ids])).logits[0], -1)
        expect = lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()
        np.testing.assert_allclose(stats[i]["logp"], expect, atol=1e-5)
        sel = stats[i]["codes"][1:] == ANSWER
        assert sel.sum() == len(answer_ids)
        entropy = -(lp.exp() * lp).sum(-1)[: len(ids) - 1].numpy()
        np.testing.assert_allclose(stats[i]["entropy"], entropy, atol=1e-5)


def test_fimmia_whisper_loss_equals_the_engine_answer_loss(models, audio_data):
    from mmia.engine import answer_losses
    from mmia.fimmia.scoring_audio import WhisperScorer
    from mmia.perturb.neighbours import decode_media

    ds = load_dataset(audio_data).subset(range(4))
    engine = answer_losses(load_target(models["target"]), ds.samples)
    scorer = WhisperScorer(models["target"], device="cpu")
    ours = [scorer.score_sample(s, [], decode_media(s, "audio"), "audio")[0] for s in ds]
    np.testing.assert_allclose(ours, engine, atol=1e-5)


def test_cli_attack_writes_results(models, audio_data, tmp_path):
    from typer.testing import CliRunner

    from mmia.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["-q", "attack", str(audio_data), "--target", str(models["target"]),
                                   "--out", str(out), "--cache", str(tmp_path / "c"), "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["settings"]["target_kind"] == "audio-lm" and r["dataset"]["n_members"] == 8
    names = {a["name"] for a in r["attacks"]}
    assert {"loss", "zlib", "lowercase", "min_k", "min_k_pp", "max_prob_gap@answer", "mod_renyi_a1@answer"} <= names
    assert not any(n.endswith("@audio") for n in names)  # no decoder position holds the audio
    for a in r["attacks"]:
        assert 0 <= a["auc"] <= 1 and len(a["auc_ci95"]) == 2
    assert r["settings"]["engine"]["target"]["computed"] == 16


def test_sample_without_audio_is_a_clear_error(models, tmp_path, capsys, monkeypatch):
    from mmia import cli

    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": "x", "text": "a loud tone", "label": 1}) + "\n")
    monkeypatch.setattr(sys, "argv", ["mmia", "attack", str(data), "--target", str(models["target"]),
                                      "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "t.jsonl, row 1" in errors[0] and "no audio" in errors[0]


def test_reference_with_another_tokenizer_compares_own_losses(models, audio_data, tmp_path):
    """The reference's vocabulary has other ids for the same words: each model's loss is its mean
    over its own tokens (never aligned across models), checked against direct forwards."""
    import soundfile as sf
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration

    from mmia.attacks.runner import run_attack

    ds = load_dataset(audio_data)
    losses = {}
    for name in ("target", "other_tok"):
        path = models[name]
        model = WhisperForConditionalGeneration.from_pretrained(path).eval()
        tok, fe = AutoTokenizer.from_pretrained(path), AutoFeatureExtractor.from_pretrained(path)
        out = []
        for i, s in enumerate(ds):
            p = tok(s.prompt, add_special_tokens=False).input_ids if s.prompt else []
            a = tok((" " if s.prompt else "") + (s.answer or s.text), add_special_tokens=False).input_ids
            wave = sf.read(audio_data.parent / f"{i}.wav", dtype="float32")[0]
            feats = fe([wave], sampling_rate=16000, return_tensors="pt").input_features
            labels = torch.tensor([[-100] * len(p) + a])
            with torch.no_grad():
                out.append(model(input_features=feats, decoder_input_ids=torch.tensor([[1] + p + a[:-1]]),
                                 labels=labels).loss.item())
        losses[name] = np.array(out)
    s0 = ds[0]
    t_tok, r_tok = (AutoTokenizer.from_pretrained(models[k]) for k in ("target", "other_tok"))
    assert t_tok(s0.answer).input_ids != r_tok(s0.answer).input_ids  # same words, other ids
    _, table = run_attack(ds, models["target"], attacks=["loss", "reference"], reference_dir=models["other_tok"],
                          cache_dir=tmp_path / "c")
    np.testing.assert_allclose(table.columns["loss"], -losses["target"], atol=1e-5)
    np.testing.assert_allclose(table.columns["reference"], -(losses["target"] / losses["other_tok"]), atol=1e-5)


def test_fimmia_demo_step_compares_with_the_best_score_attack_on_audio(models, audio_data, tmp_path):
    """FiMMIA's testbed run on an audio (Whisper-style) testbed now has its score-attack baseline,
    computed by the engine on the same evaluation samples."""
    from mmia.demo.steps import DemoContext
    from mmia.fimmia.demo_step import run_on_testbed
    from mmia.testbeds.base import Testbed

    rows = [json.loads(line) for line in audio_data.read_text().splitlines()][:12]  # rows with an answer
    for r in rows:
        r["audio"] = str(audio_data.parent / r["audio"])
    (tmp_path / "matched.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tb = Testbed(name="tiny-audio", root=tmp_path, target_kind="audio-lm", modalities=("audio", "text"),
                 splits={"matched": tmp_path / "matched.jsonl"}, roles={"membership": "matched"},
                 targets={"target": models["target"]})
    [(section, table)] = run_on_testbed(tb, DemoContext(out_dir=tmp_path / "o", cache_dir=tmp_path / "c",
                                                        quick=True), k=2)
    best = [a for a in section.attacks if a.name.startswith("best score attack")]
    assert len(best) == 1 and 0 <= best[0].auc <= 1
    assert len(table.columns[best[0].name]) == len(table.ids) == 6
