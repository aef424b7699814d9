"""Each target kind with a tiny saved model: kind detection, slices, batching, known losses."""

import numpy as np
import pytest
import torch
from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.data import load_dataset
from mmia.targets import ANSWER, AUDIO, IMAGE, PROMPT, detect_kind, load_target

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def media_data(tmp_path_factory):
    return load_dataset(write_media_dataset(tmp_path_factory.mktemp("data"), n=4, image=True, audio=True))


@pytest.mark.parametrize("name,kind,media_code", [("causal_lm", "causal-lm", None), ("gpt2", "causal-lm", None),
                                                  ("llava", "vlm", IMAGE), ("qwen2vl", "vlm", IMAGE),
                                                  ("qwen2audio", "audio-lm", AUDIO)])
def test_generative_target(tiny_dir, media_data, name, kind, media_code):  # noqa: F811
    path = tiny_dir(name)
    assert detect_kind(path) == kind
    t = load_target(path)
    assert t.kind == kind and t.device == "cpu" and t.dtype == torch.float32
    enc = [t.encode(s) for s in media_data]
    for s, e in zip(media_data, enc, strict=True):
        # The answer slice decodes to exactly the answer; the prompt slice to the prompt.
        assert t.tokenizer.decode(e.input_ids[e.codes == ANSWER]).strip() == s.answer
        prompt = t.tokenizer.decode(e.input_ids[e.codes == PROMPT]).strip()
        if t._chat_owner() is None:
            assert prompt == s.prompt
        else:  # the chat template's scaffolding is prompt too (Qwen2-Audio's processor has one)
            assert s.prompt in prompt and s.answer not in prompt
        if media_code is not None:
            assert (e.codes == media_code).sum() > 0
            assert (e.codes == media_code).sum() == (e.input_ids == t.media_token_id).sum()
    # Encoding a batch at once (one processor call where possible) gives the same as one by one.
    for a, b in zip(t.encode_batch(list(media_data)), enc, strict=True):
        assert (a.input_ids == b.input_ids).all() and (a.codes == b.codes).all()
        assert a.extras.keys() == b.extras.keys()
        for k in a.extras:
            torch.testing.assert_close(a.extras[k], b.extras[k])
    # One padded batch gives the same statistics as each sample alone (padding changes nothing).
    together = t.token_stats(enc)
    alone = [t.token_stats([e])[0] for e in enc]
    for a, b, e in zip(together, alone, enc, strict=True):
        assert a["logp"].shape == (len(e) - 1,) and a["codes"].shape == (len(e),)
        for k in ("logp", "entropy", "renyi_2", "gap", "mod_renyi_1"):
            np.testing.assert_allclose(a[k], b[k], atol=2e-4, rtol=1e-4)


def test_causal_lm_logp_matches_the_model_loss(tiny_dir):  # noqa: F811
    t = load_target(tiny_dir("causal_lm"))
    from mmia.data.schema import Sample

    s = Sample(id="x", row=1, text="The quick brown fox")
    e = t.encode(s)
    st = t.token_stats([e])[0]
    ids = torch.from_numpy(e.input_ids)[None]
    with torch.no_grad():
        loss = t.model(input_ids=ids, labels=ids).loss.item()
    assert -st["logp"].mean() == pytest.approx(loss, abs=1e-5)
    assert (e.codes[1:] == ANSWER).all()  # a text row: everything after BOS is the scored text


def test_lowercase_transform_changes_text_not_media(tiny_dir, media_data):  # noqa: F811
    t = load_target(tiny_dir("llava"))
    s = media_data[0]
    e = t.encode(s, str.lower)
    assert t.tokenizer.decode(e.input_ids[e.codes == ANSWER]).strip() == s.answer.lower()
    assert (e.codes == IMAGE).sum() == (t.encode(s).codes == IMAGE).sum()


@pytest.mark.parametrize("name,kind", [("clip", "clip"), ("clap", "clap")])
def test_contrastive_target(tiny_dir, media_data, name, kind):  # noqa: F811
    path = tiny_dir(name)
    assert detect_kind(path) == kind
    t = load_target(path)
    media = [t.load_media(getattr(s, t.media_kind)) for s in media_data]
    texts = [s.answer for s in media_data]
    te, me = t.embed_text(texts), t.embed_media(media)
    np.testing.assert_allclose(np.linalg.norm(te, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(me, axis=1), 1, atol=1e-5)
    sims = t.pair_similarity(texts, media)
    np.testing.assert_allclose(sims, np.sum(te * me, axis=1), atol=1e-6)
    np.testing.assert_allclose(t.embed_media(media[:1])[0], me[0], atol=1e-5)  # batch-invariant


def test_dtype_override_and_bad_dir(tiny_dir, tmp_path):  # noqa: F811
    t = load_target(tiny_dir("causal_lm"), dtype="bfloat16")
    assert t.dtype == torch.bfloat16 and ":bfloat16:" in t.fingerprint
    from mmia.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_target(tmp_path)


def test_unknown_tokens_are_scored_as_answer_text(tmp_path):
    """A word the vocabulary lacks becomes the unknown token: it is answer text (the model's own
    loss scores it), so an answer of unknown words still has a finite loss."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from mmia.data.schema import Sample
    from mmia.engine.run_generative import answer_losses

    words = ["<pad>", "<s>", "</s>", "<unk>", "describe", "the", "sound", "a", "long", "hum"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "m")
    fast.save_pretrained(tmp_path / "m")
    t = load_target(tmp_path / "m")
    s = Sample(id="x", row=1, prompt="describe the sound", answer="shorter calm clap")  # all unknown
    e = t.encode(s)
    assert (e.input_ids[e.codes == ANSWER] == 3).sum() == 3
    [loss] = answer_losses(t, [s])
    ids = torch.from_numpy(e.input_ids)[None]
    labels = torch.where(torch.from_numpy(e.codes == ANSWER)[None], ids, -100)
    with torch.no_grad():
        own = t.model(input_ids=ids, labels=labels).loss.item()
    assert np.isfinite(loss) and loss == pytest.approx(own, rel=1e-5)
