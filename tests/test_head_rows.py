"""Statistics from the last hidden states, mmia applying the output head to the rows it needs,
equal those of the model's full logits (float32, CPU) on several architectures; a model whose
logits are not its head's (a logit scale) keeps the full path; soft-capping is reproduced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_seq2seq_target import _save_whisper
from tiny_models import make_tokenizer, tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.data import load_dataset
from mmia.engine import iter_token_stats
from mmia.targets import load_target
from mmia.targets.token_stats import STAT_NAMES, stats_from_rows

torch.set_num_threads(1)


def _same(a, b, tol=1e-5):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["codes"], y["codes"])
        for k in STAT_NAMES:
            np.testing.assert_array_equal(np.isnan(x[k]), np.isnan(y[k]), err_msg=k)
            np.testing.assert_allclose(x[k], y[k], rtol=tol, atol=tol, err_msg=k)


def _check_head_path(t, samples):
    batch = t.encode_batch(samples)
    out = t.forward_batch(batch)
    # Hidden states (B, T, H) come out of the forward pass, never (B, T, V) logits.
    assert out.logits is None and out.head is not None
    assert tuple(out.hidden.shape[:2]) == (len(batch), max(len(e) for e in batch))
    assert out.hidden.shape[2] != out.head.vocab
    new = t.reduce_batch(out, batch)
    _same(new, t.reduce_logits(t.logits(batch)[0], batch))
    return new


def _audio_data(root):
    import json

    import soundfile as sf

    from mmia.testbeds.audio_captions import SR, make_clip, render_clip

    rows = []
    for i in range(4):
        c = make_clip(0, "head-test", i)
        sf.write(root / f"{i}.wav", render_clip(c)[: SR // 2 + 800 * i], SR)
        rows.append({"id": c.id, "audio": f"{i}.wav", "label": i % 2, "prompt": c.prompt, "answer": c.answer})
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_dataset(root / "a.jsonl")


@pytest.mark.parametrize("name", ["causal_lm", "gpt2", "llava", "qwen2vl"])
def test_head_rows_equal_full_logits(tiny_dir, tmp_path, name):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=4))
    t = load_target(tiny_dir(name))
    new = _check_head_path(t, ds.samples)
    full = load_target(tiny_dir(name))
    full.stats_path = "full"
    _same(new, full.token_stats(full.encode_batch(ds.samples)))


def test_head_rows_of_an_encoder_decoder(tmp_path):
    t = load_target(_save_whisper(tmp_path / "whisper", 0))
    _check_head_path(t, _audio_data(tmp_path).samples)


def test_the_engine_pipeline_passes_hidden_states(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6))
    t, full = load_target(tiny_dir("llava")), load_target(tiny_dir("llava"))
    full.stats_path = "full"
    got = list(iter_token_stats(t, ds.samples, batch_size=4))
    want = list(iter_token_stats(full, ds.samples, batch_size=4))
    assert [i for i, _ in got] == [i for i, _ in want]
    _same([s for _, s in got], [s for _, s in want])
    assert t.__dict__["_head"] and not full.__dict__.get("_head")


def test_head_rows_in_small_groups_change_nothing(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    import mmia.targets.generative as G

    ds = load_dataset(write_media_dataset(tmp_path / "d", n=4))
    t = load_target(tiny_dir("llava"))
    batch = t.encode_batch(ds.samples)
    out = t.forward_batch(batch)
    monkeypatch.setattr(t, "_stats_group", lambda src, vocab: (1 << 30, None))
    want = t.reduce_batch(out, batch)
    work = G.stats_workspace()
    monkeypatch.setattr(t, "_stats_group", lambda src, vocab: (5, work))
    # The head's product over 5 rows may round differently from one over all of them (the
    # matrix library blocks by the row count): equal to float32 rounding, not bit for bit.
    _same(t.reduce_batch(out, batch), want, tol=1e-6)


def _save_text_model(out, cls_name, cfg_name, **kw):
    import transformers as tf

    tok = make_tokenizer()
    torch.manual_seed(0)
    cfg = getattr(tf, cfg_name)(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=0,
                                bos_token_id=1, eos_token_id=2, max_position_embeddings=256, **kw)
    getattr(tf, cls_name)(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_final_soft_capping_is_reproduced(tmp_path):
    # A cap small enough to bend a random model's logits visibly (Gemma 2 ships 30).
    path = _save_text_model(tmp_path / "g2", "Gemma2ForCausalLM", "Gemma2Config", final_logit_softcapping=0.05)
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=3))
    t = load_target(path)
    _check_head_path(t, ds.samples)
    assert t.__dict__["_head"][1].softcap == 0.05


def test_a_logit_scale_keeps_the_full_logits(tmp_path):
    path = _save_text_model(tmp_path / "cohere", "CohereForCausalLM", "CohereConfig", logit_scale=0.5)
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=3))
    t = load_target(path)
    batch = t.encode_batch(ds.samples)
    first = t.forward_batch(batch)  # the check on the first batch finds the scale, and falls back
    assert first.logits is not None and t.__dict__["_head"] is False
    assert t.forward_batch(batch).logits is not None  # for good
    _same(t.reduce_batch(first, batch), t.reduce_logits(t.logits(batch)[0], batch), tol=0)


def test_statistics_upcast_bf16_logits_before_log_softmax():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(12, 300, generator=g) * 4).to(torch.bfloat16)
    y = torch.randint(0, 300, (12,), generator=g)
    got, want = stats_from_rows(x, y[:7], 7), stats_from_rows(x.float(), y[:7], 7)
    for k in STAT_NAMES:
        assert got[k].dtype == torch.float32
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
