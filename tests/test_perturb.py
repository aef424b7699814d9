"""Neighbour generation: deterministic per sample id, edit counts respected, every modality."""

from __future__ import annotations

import numpy as np
import pytest

from mmia.data.schema import Sample
from mmia.perturb import NeighbourConfig, NeighbourMaker
from mmia.perturb.audio import perturb_audio
from mmia.perturb.image import IMAGE_TECHNIQUES, perturb_image
from mmia.perturb.text import (
    EmbeddingSubstituter,
    delete_words,
    duplicate_words,
    edit_count,
    perturb_text,
    swap_words,
)
from mmia.perturb.video import perturb_video

LONG = " ".join(f"w{i}" for i in range(120))  # 120 distinct words


@pytest.fixture(scope="module")
def embedding_sub():
    return EmbeddingSubstituter()


def test_edit_count_clamps():
    assert edit_count(12) == 5  # 10% = 1, raised to 5
    assert edit_count(120) == 12  # 10%
    assert edit_count(1000) == 40  # capped
    assert edit_count(3) == 3  # never more than the words
    assert edit_count(0) == 0
    assert edit_count(100, fraction=0.2, lo=1, hi=10) == 10


def test_word_ops_respect_counts():
    words = LONG.split()
    rng = np.random.default_rng(0)
    assert len(delete_words(words, 12, rng)) == 108
    assert len(delete_words(["a", "b"], 5, rng)) == 1  # never empty
    dup = duplicate_words(words, 12, rng)
    assert len(dup) == 132 and set(dup) == set(words)
    sw = swap_words(words, 12, rng)
    assert sorted(sw) == sorted(words) and sw != words
    assert 2 <= sum(a != b for a, b in zip(sw, words, strict=True)) <= 24


def test_perturb_text_reports_edits(embedding_sub):
    for tech in ("delete", "duplicate", "swap", "substitute"):
        new, n = perturb_text(LONG, tech, np.random.default_rng(1), substituter=embedding_sub)
        assert n == 12, tech
        assert new != LONG
    new, n = perturb_text(LONG, "substitute", np.random.default_rng(1), substituter=embedding_sub)
    assert sum(a != b for a, b in zip(new.split(), LONG.split(), strict=True)) == 12


def test_embedding_substitution_is_semantic(embedding_sub):
    near = embedding_sub.nearest("dog")
    assert "dog" not in near and len(near) == 8
    # a real embedding space puts animals near "dog"; a random one would not
    assert set(near) & {"dogs", "puppy", "cat", "canine", "pet", "hound", "puppies"}


def _sample(i=0, **kw):
    base = dict(id=f"s{i}", row=i + 1, prompt="Describe the picture.", answer=LONG)
    base.update(kw)
    return Sample(**base)


def test_neighbours_deterministic_and_spread(embedding_sub):
    maker = NeighbourMaker(NeighbourConfig(k=24))
    maker._substituter = embedding_sub
    a = maker.make(_sample())
    b = maker.make(_sample())
    assert [n.answer for n in a] == [n.answer for n in b]
    assert [n.perturbation_id for n in a] == [n.perturbation_id for n in b]
    assert len({n.perturbation_id for n in a}) == 24
    techs = [n.technique for n in a]
    assert all(techs.count(t) == 6 for t in ("delete", "duplicate", "swap", "substitute"))
    assert all(n.prompt == "Describe the picture." and n.field == "answer" for n in a)
    # another sample id gives other neighbours; the seed is per sample, not per call order
    c = maker.make(_sample(1))
    assert [n.answer for n in c] != [n.answer for n in a]
    again = NeighbourMaker(NeighbourConfig(k=24))
    again._substituter = embedding_sub
    assert [n.answer for n in again.make(_sample(1))] == [n.answer for n in c]


def test_prompt_field_and_missing_field():
    maker = NeighbourMaker(NeighbourConfig(k=3, field="prompt", text_techniques=("delete", "swap", "duplicate")))
    ns = maker.make(_sample(prompt="one two three four five six seven"))
    assert all(n.answer == LONG for n in ns)
    assert all(n.prompt != "one two three four five six seven" for n in ns)
    from mmia.errors import InputError

    with pytest.raises(InputError, match="no 'prompt'"):
        NeighbourMaker(NeighbourConfig(field="prompt")).make(Sample(id="x", row=3, text="a b c"))


def test_image_neighbours(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    for tech in IMAGE_TECHNIQUES:
        out = perturb_image(img, tech, np.random.default_rng(5))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert not np.array_equal(out, img), tech
        # small change: mean absolute difference well below a random image's
        assert np.abs(out.astype(int) - img).mean() < 90
    Image.fromarray(img).save(tmp_path / "a.png")
    s = Sample(id="img1", row=1, prompt="p", answer="a b c", image=tmp_path / "a.png")
    maker = NeighbourMaker(NeighbourConfig(k=10, field="media"))
    ns, ns2 = maker.make(s), maker.make(s)
    assert [n.perturbation_id for n in ns][:5] == [f"image:{t}:0" for t in IMAGE_TECHNIQUES]
    assert all(np.array_equal(x.media, y.media) for x, y in zip(ns, ns2, strict=True))
    assert all(n.answer == "a b c" for n in ns)


def test_audio_and_video_neighbours():
    rng = np.random.default_rng(0)
    wave = (np.sin(np.arange(16000) / 8) * 0.5).astype(np.float32)
    sil = perturb_audio(wave, "silence", np.random.default_rng(1))
    assert len(sil) > len(wave) and (sil == 0).sum() >= 320
    g = perturb_audio(wave, "gain", np.random.default_rng(1))
    ratio = np.abs(g).max() / np.abs(wave).max()
    assert 10 ** (-6 / 20) - 1e-4 <= ratio <= 10 ** (6 / 20) + 1e-4 and abs(ratio - 1) > 0.1
    for tech in ("noise", "shift"):
        out = perturb_audio(wave, tech, np.random.default_rng(1))
        assert out.shape == wave.shape and not np.array_equal(out, wave)
    frames = (rng.random((8, 16, 16, 3)) * 255).astype(np.uint8)
    dropped = perturb_video(frames, "drop", np.random.default_rng(2))
    assert 6 <= len(dropped) < 8
    changed = perturb_video(frames, "frames", np.random.default_rng(2))
    n_changed = sum(not np.array_equal(a, b) for a, b in zip(changed, frames, strict=True))
    assert changed.shape == frames.shape and 1 <= n_changed <= 4


def test_masked_lm_substitution(tmp_path):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from mmia.perturb.text import MaskedLMSubstituter
    from mmia.targets.sentences import default_sentence_model_dir

    tok = AutoTokenizer.from_pretrained(default_sentence_model_dir())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=512)
    BertForMaskedLM(cfg).save_pretrained(tmp_path / "mlm")
    tok.save_pretrained(tmp_path / "mlm")
    sub = MaskedLMSubstituter(str(tmp_path / "mlm"))
    maker = NeighbourMaker(NeighbourConfig(k=2, text_techniques=("substitute",), fill_mask_model=str(tmp_path / "mlm")))
    maker._substituter = sub
    ns = maker.make(_sample(answer="the cat sat on the mat and looked at the small dog, happily."))
    for n in ns:
        words, orig = n.answer.split(), "the cat sat on the mat and looked at the small dog, happily.".split()
        assert len(words) == len(orig)
        assert sum(a != b for a, b in zip(words, orig, strict=True)) == 5
        assert all(w.strip(",.").isalpha() for w in words)
