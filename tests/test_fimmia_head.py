"""FiMMIA's generic scorer (`TargetScorer`) on the hidden states: the output head applied to the
loss spans' positions only, never the model's (B, T, V) logits; losses equal those of the full
logits (float32 and bf16), soft-capping reproduced, a logit scale kept on the full path; a token
budget changes the batches, not the losses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_head_rows import _save_text_model
from tiny_models import record_batch_widths, tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.data import load_dataset
from mmia.fimmia.scoring_target import TargetScorer
from mmia.perturb import NeighbourConfig, NeighbourMaker
from mmia.perturb.neighbours import decode_media
from mmia.targets import load_target

torch.set_num_threads(1)


def _full_logits_losses(scorer, rows, media) -> list[float]:
    """The scorer's losses as it computed them before the hidden-state path: the model's full
    logits per batch of `batch_size` rows, cross-entropy over each row's loss span."""
    out = []
    for s in range(0, len(rows), scorer.batch_size):
        enc = scorer.target.encode_batch(rows[s : s + scorer.batch_size], None, media[s : s + scorer.batch_size])
        with torch.inference_mode():
            logits, _ = scorer.target.logits(enc)
        for i, e in enumerate(enc):
            start, stop = scorer.layout.loss_span(e)
            if stop <= start:
                out.append(float("nan"))
                continue
            pos = torch.arange(start - 1, stop - 1)
            tgt = torch.from_numpy(e.input_ids[start:stop])
            out.append(float(torch.nn.functional.cross_entropy(logits[i, pos].float(), tgt).item()))
    return out


def _recorded(scorer):
    """The scorer with the (rows, media) of every `losses` call recorded."""
    calls, inner = [], scorer.losses

    def losses(rows, media):
        calls.append((rows, media))
        return inner(rows, media)

    scorer.losses = losses
    return calls


def _no_full_logits(target):
    def refuse(*_a, **_k):
        raise AssertionError("the scorer asked for the model's full logits")

    target.logits = refuse


def _work(tmp_path, n=3, k=5):
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=n))
    maker = NeighbourMaker(NeighbourConfig(k=k, field="answer", text_techniques=("delete", "swap")))
    return [(s, maker.make(s), decode_media(s, "image")) for s in ds]


def _check_against_full_logits(path, tmp_path, tol=1e-5, dtype=None, **scorer_kw):
    """Score through the hidden-state path (target.logits refused) and compare every `losses`
    call with the full-logits computation on a second copy of the model; returns the scorer."""
    scorer = TargetScorer(path, target=load_target(path, device="cpu", dtype=dtype), **scorer_kw)
    _no_full_logits(scorer.target)
    ref = TargetScorer(path, target=load_target(path, device="cpu", dtype=dtype), **scorer_kw)
    calls = _recorded(scorer)
    for s, nbs, img in _work(tmp_path):
        orig, nb = scorer.score_sample(s, nbs, img, "image")
        rows, media = calls[-1]
        want = _full_logits_losses(ref, rows, media)
        np.testing.assert_allclose([orig, *nb], want, rtol=0, atol=tol)
        assert np.ptp(nb) > 0
    return scorer


@pytest.mark.parametrize("model", ["qwen2vl", "causal_lm", "gpt2"])
def test_losses_from_hidden_states_equal_the_full_logits(tiny_dir, tmp_path, model):  # noqa: F811
    scorer = _check_against_full_logits(tiny_dir(model), tmp_path, batch_size=4)
    assert scorer.target.__dict__["_head"], "the hidden-state path was not taken"


@pytest.mark.parametrize("kind", ["llava_next", "qwen2_5_vl", "idefics3", "gemma3", "llava_onevision", "smolvlm",
                                  "mllama"])
def test_every_vlm_type_on_the_hidden_states(tiny_dir, tmp_path, kind):  # noqa: F811
    import tiny_vlms_b

    own = getattr(tiny_vlms_b, f"save_{kind}", None)
    path = own(tmp_path / kind) if own is not None else tiny_dir(kind)
    scorer = _check_against_full_logits(path, tmp_path, batch_size=4)
    assert scorer.target.__dict__["_head"], "the hidden-state path was not taken"


def test_bf16_forward_gives_float32_losses(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    # The model runs in bf16; each group's logits are upcast before the cross-entropy, as the
    # full-logits path upcast the model's bf16 logits: the same losses.
    import mmia.targets.generative as G

    seen = []
    inner = G._Generative.position_nll

    def recording(self, out, index, targets):
        nll = inner(self, out, index, targets)
        seen.append((out.hidden.dtype if out.hidden is not None else None, nll.dtype))
        return nll

    monkeypatch.setattr(G._Generative, "position_nll", recording)
    scorer = _check_against_full_logits(tiny_dir("causal_lm"), tmp_path, tol=1e-5, dtype=torch.bfloat16)
    assert scorer.target.model.dtype == torch.bfloat16 and scorer.target.__dict__["_head"]
    assert seen and all(d == (torch.bfloat16, torch.float32) for d in seen)


def test_soft_capping_is_reproduced(tmp_path):
    path = _save_text_model(tmp_path / "g2", "Gemma2ForCausalLM", "Gemma2Config", final_logit_softcapping=0.05)
    scorer = _check_against_full_logits(path, tmp_path)
    assert scorer.target.__dict__["_head"][1].softcap == 0.05


def test_a_logit_scale_keeps_the_full_logits(tmp_path):
    path = _save_text_model(tmp_path / "cohere", "CohereForCausalLM", "CohereConfig", logit_scale=0.5)
    scorer = _check_against_full_logits(path, tmp_path)
    assert scorer.target.__dict__["_head"] is False  # the check on the first batch fell back, for good


def test_head_groups_bound_the_vocabulary_sized_work(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    # One position a group: the same losses as one group for everything.
    path = tiny_dir("causal_lm")
    (s, nbs, _), = _work(tmp_path, n=1)
    whole = TargetScorer(path, target=load_target(path, device="cpu")).score_sample(s, nbs, None, None)
    scorer = TargetScorer(path, target=load_target(path, device="cpu"))
    groups = []
    monkeypatch.setattr(scorer.target, "_stats_group", lambda src, vocab: (groups.append(vocab) or 1, None))
    got = scorer.score_sample(s, nbs, None, None)
    assert groups
    np.testing.assert_allclose([got[0], *got[1]], [whole[0], *whole[1]], rtol=0, atol=1e-6)


def test_a_token_budget_changes_the_batches_not_the_losses(tiny_dir, tmp_path):  # noqa: F811
    path = tiny_dir("qwen2vl")
    work = _work(tmp_path, n=2, k=7)
    plain = TargetScorer(path, target=load_target(path, device="cpu"), batch_size=8)
    budget = 3 * 40
    packed = TargetScorer(path, target=load_target(path, device="cpu"), batch_size=8, max_batch_tokens=budget)
    a, b = record_batch_widths(plain.target), record_batch_widths(packed.target)
    for s, nbs, img in work:
        x, y = plain.score_sample(s, nbs, img, "image"), packed.score_sample(s, nbs, img, "image")
        np.testing.assert_allclose([y[0], *y[1]], [x[0], *x[1]], rtol=0, atol=1e-5)
    assert [n for n, _ in a] == [8, 8]  # 1 + 7 rows a sample: one batch each without a budget
    assert len(b) > len(a) and sum(n for n, _ in b) == 16
    assert all(n * w <= budget or n == 1 for n, w in b)


def test_rows_without_an_answer_are_nan(tiny_dir):  # noqa: F811
    from mmia.data.schema import Sample

    path = tiny_dir("causal_lm")
    scorer = TargetScorer(path, target=load_target(path, device="cpu"))
    s = Sample(id="a", row=1, prompt="Describe the image:", answer="a red square")
    empty = dataclasses.replace(s, answer="")
    got = scorer.losses([s, empty, s], [None] * 3)
    assert np.isfinite(got[0]) and np.isnan(got[1]) and got[2] == pytest.approx(got[0], abs=1e-6)
    assert np.isnan(scorer.losses([empty], [None])).all()


def test_whisper_scorer_reads_the_decoders_hidden_states(tmp_path):
    # The encoder-decoder scorer shares the encoder states between rows and runs its decoder
    # through the same head capture: (B, 1, V) logits out of the model, the losses of its full
    # logits, also under a token budget on the decoder tokens.
    from tiny_models import save_whisper, write_audio_captions

    from mmia.data.schema import Sample
    from mmia.fimmia.scoring_audio import WhisperScorer

    path = save_whisper(tmp_path / "w", seed=0, d_model=32)
    (tmp_path / "a").mkdir()
    clip = write_audio_captions(tmp_path / "a", "t", n=1).parent / "0.wav"
    s = Sample(id="s", row=1, prompt="what do you hear", answer="a loud high tone then a short quiet hiss", audio=clip)
    nbs = NeighbourMaker(NeighbourConfig(k=6, field="answer+media", text_techniques=("delete", "swap"))).make(s)
    wave = decode_media(s, "audio")
    kw = dict(batch_size=4, answer_template=" {answer}</s>")
    full = WhisperScorer(path, **kw)
    full.target.stats_path = "full"
    want = full.score_sample(s, nbs, wave, "audio")
    calls = {}
    for budget in (None, 40):
        scorer = WhisperScorer(path, max_batch_tokens=budget, **kw)
        widths = calls[budget] = []
        scorer.model.register_forward_hook(lambda _m, _i, out, w=widths: w.append(out.logits.shape[1]))
        got = scorer.score_sample(s, nbs, wave, "audio")
        np.testing.assert_allclose([got[0], *got[1]], [want[0], *want[1]], rtol=0, atol=1e-5)
        assert scorer.target.__dict__["_head"] and set(widths) == {1}
    assert len(calls[None]) == 2 < len(calls[40])  # 7 rows: batches of 4, or of what fits 40 tokens


@pytest.mark.parametrize("reuse", [True, False])
def test_llava_scorer_under_a_token_budget(tiny_dir, tmp_path, reuse):  # noqa: F811
    # LLaVA's own paths (packed tails on the shared prefix, full rows) cut by the same budget:
    # more forward passes, the same losses.
    from mmia.fimmia.scoring_llava import LlavaScorer

    path = tiny_dir("llava")
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=2))
    maker = NeighbourMaker(NeighbourConfig(k=6, field="answer+media", text_techniques=("delete", "swap")))
    passes = {}
    results = {}
    for budget in (None, 60):
        scorer = LlavaScorer(path, device="cpu", reuse=reuse, batch_size=8, max_batch_tokens=budget)
        n = passes[budget] = []
        scorer.model.model.register_forward_hook(lambda _m, _i, _o, n=n: n.append(1))
        results[budget] = [scorer.score_sample(s, maker.make(s, decode_media(s, "image")), decode_media(s, "image"),
                                               "image") for s in ds]
    for (a0, a), (b0, b) in zip(results[None], results[60], strict=True):
        np.testing.assert_allclose([b0, *b], [a0, *a], rtol=0, atol=1e-5)
    assert len(passes[60]) > len(passes[None])


def test_cli_fimmia_train_and_score_take_a_token_budget(tiny_dir, tmp_path):  # noqa: F811
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from mmia.cli import app

    data = write_media_dataset(tmp_path / "d", n=12, image=False)
    target, atk, runner = tiny_dir("causal_lm"), tmp_path / "atk", CliRunner()
    common = ["--target", str(target), "--max-batch-tokens", "40"]
    res = runner.invoke(app, ["-q", "fimmia", "train", str(data), *common, "--out", str(atk), "--k", "3",
                              "--field", "answer", "--text-embedder", "none", "--media-embedder", "none",
                              "--holdout", "0.5", "--batch-size", "4", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    saved = json.loads((atk / "config.json").read_text())
    assert "max_batch_tokens" not in saved["settings"]["fimmia"]  # how it was batched is not the attack
    held = json.loads((atk / "holdout" / "results.json").read_text())
    assert held["settings"]["max_batch_tokens"] == 40
    want = pd.read_parquet(atk / "holdout" / "scores.parquet")
    # Scored again from scratch (a fresh cache) under another budget: the same scores.
    res = runner.invoke(app, ["-q", "fimmia", "score", str(data), *common[:2], "--max-batch-tokens", "25",
                              "--attack-model", str(atk), "--out", str(tmp_path / "s"), "--skip-trained",
                              "--cache-dir", str(tmp_path / "c2")])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "s" / "results.json").read_text())
    assert out["settings"]["max_batch_tokens"] == 25
    got = pd.read_parquet(tmp_path / "s" / "scores.parquet")
    assert list(got["id"]) == list(want["id"])
    for col in ("fimmia", "loss", "neighbourhood"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-5, err_msg=col)
    # Without the option the results record no budget, as before.
    res = runner.invoke(app, ["-q", "fimmia", "score", str(data), *common[:2], "--attack-model", str(atk),
                              "--out", str(tmp_path / "s0"), "--skip-trained", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "max_batch_tokens" not in json.loads((tmp_path / "s0" / "results.json").read_text())["settings"]
