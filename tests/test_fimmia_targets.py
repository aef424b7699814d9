"""FiMMIA through the targets layer (`TargetScorer`): any generative target `load_target` accepts,
laid out as the score attacks lay it out; full forward passes, said so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tiny_models import fimmia_train_then_score, tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.data import load_dataset
from mmia.engine.run_generative import answer_losses
from mmia.fimmia.scoring_target import TargetScorer
from mmia.perturb import NeighbourConfig, NeighbourMaker
from mmia.perturb.neighbours import decode_media
from mmia.targets import load_target

torch.set_num_threads(1)


def _as_sample(s, nb):
    return dataclasses.replace(s, prompt=nb.prompt, answer=nb.answer, text=nb.text)


@pytest.mark.parametrize("model", ["qwen2vl", "causal_lm"])
def test_losses_are_the_engines_answer_losses(tiny_dir, tmp_path, model):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=3))
    target = load_target(tiny_dir(model), device="cpu")
    scorer = TargetScorer(tiny_dir(model), target=target, batch_size=4)
    maker = NeighbourMaker(NeighbourConfig(k=5, field="answer", text_techniques=("delete", "swap")))
    for s in ds:
        nbs = maker.make(s)
        orig, nb_losses = scorer.score_sample(s, nbs, decode_media(s, "image"), "image")
        # the engine scores each neighbour as a sample of its own: the same layout, the same losses
        ref = answer_losses(target, [s, *(_as_sample(s, nb) for nb in nbs)])
        np.testing.assert_allclose([orig, *nb_losses], ref, rtol=0, atol=1e-5)
        assert np.ptp(nb_losses) > 0  # the neighbours really differ


def test_media_neighbours_are_read_by_the_target(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=1))
    s = ds.samples[0]
    scorer = TargetScorer(tiny_dir("qwen2vl"), batch_size=4)
    nbs = NeighbourMaker(NeighbourConfig(k=4, field="media")).make(s, decode_media(s, "image"))
    orig, nb_losses = scorer.score_sample(s, nbs, decode_media(s, "image"), "image")
    assert np.isfinite(orig) and np.all(np.isfinite(nb_losses)) and np.all(nb_losses != orig)
    emb = scorer.media_embedding_of(decode_media(s, "image"), "image")
    other = scorer.media_embedding_of(nbs[0].media, "image")
    assert emb.ndim == 1 and emb.shape == other.shape and not np.allclose(emb, other)


def test_llava_through_the_targets_layer_equals_the_llava_scorer(tiny_dir, tmp_path):  # noqa: F811
    # Where the two layouts agree (a LLaVA without a chat template: placeholder, prompt, space,
    # answer), the generic path gives the reuse path's losses and media embedding.
    from mmia.fimmia.scoring_llava import LlavaScorer

    ds = load_dataset(write_media_dataset(tmp_path / "d", n=2))
    generic = TargetScorer(tiny_dir("llava"), batch_size=4)
    assert generic.target._chat_owner() is None
    llava = LlavaScorer(tiny_dir("llava"), device="cpu")
    maker = NeighbourMaker(NeighbourConfig(k=4, field="answer+media", text_techniques=("delete", "swap")))
    for s in ds:
        media = decode_media(s, "image")
        nbs = maker.make(s, media)
        a = generic.score_sample(s, nbs, media, "image")
        b = llava.score_sample(s, nbs, media, "image")
        np.testing.assert_allclose([a[0], *a[1]], [b[0], *b[1]], rtol=0, atol=1e-5)
        np.testing.assert_allclose(generic.media_embedding_of(media, "image"), llava.media_embedding_of(media, "image"),
                                   rtol=0, atol=1e-5)


def test_cli_train_and_score_on_a_qwen2vl_target(tiny_dir, tmp_path):  # noqa: F811
    data = write_media_dataset(tmp_path / "d", n=12)
    target = tiny_dir("qwen2vl")
    train, cfg, held_ids, res, out = fimmia_train_then_score(data, target, tmp_path)
    assert train.exit_code == 0, train.output
    assert "full forward pass" in train.output
    assert res.exit_code == 0, res.output
    assert out["attacks"][0]["name"] == "fimmia" and len(cfg["train_ids"]) + len(held_ids) == 12


def test_audio_language_model(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=2, image=False, audio=True))
    target = load_target(tiny_dir("qwen2audio"), device="cpu")
    scorer = TargetScorer(tiny_dir("qwen2audio"), target=target)
    maker = NeighbourMaker(NeighbourConfig(k=4, field="answer+audio", text_techniques=("swap",)))
    for s in ds:
        clip = decode_media(s, "audio")
        nbs = maker.make(s, clip)
        orig, nb_losses = scorer.score_sample(s, nbs, clip, "audio")
        text_nbs = [nb for nb in nbs if nb.media is None]
        ref = answer_losses(target, [s, *(_as_sample(s, nb) for nb in text_nbs)])
        got = [orig, *(nb_losses[i] for i, nb in enumerate(nbs) if nb.media is None)]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        assert np.all(np.isfinite(nb_losses)) and scorer.media_embedding_of(clip, "audio").ndim == 1


def test_llava_scorer_lays_out_as_the_target_does(quick_cache):
    # The vlm testbed's LLaVA has a chat template: by default FiMMIA's losses are the score attacks'
    # answer losses under it; with the testbed's own templates (answer + closing </s> in the loss,
    # as in training) the reuse path and the generic full-pass path agree.
    import json as _json

    from mmia.fimmia.pipeline import config_for_testbed
    from mmia.fimmia.scoring_llava import LlavaScorer
    from mmia.testbeds.build import build_testbed

    tb = build_testbed("vlm", seed=0, quick=True, cache_dir=quick_cache)
    ds = load_dataset(tb.splits["matched"]).subset(range(3))
    target = load_target(tb.targets["target"], device="cpu")
    default = LlavaScorer(tb.targets["target"], device="cpu")
    maker = NeighbourMaker(NeighbourConfig(k=4, field="answer+media", text_techniques=("delete", "swap")))
    work = [(s, decode_media(s, "image")) for s in ds]
    work = [(s, m, maker.make(s, m)) for s, m in work]
    ours = [default.score_sample(s, nbs, m, "image")[0] for s, m, nbs in work]
    np.testing.assert_allclose(ours, answer_losses(target, ds.samples), rtol=0, atol=1e-5)
    cfg = config_for_testbed(_json.loads((tb.root / "manifest.json").read_text()))
    assert cfg.answer_template and "</s>" in cfg.answer_template
    kw = dict(prompt_template=cfg.prompt_template, answer_template=cfg.answer_template)
    reuse, generic = LlavaScorer(tb.targets["target"], device="cpu", **kw), TargetScorer(tb.targets["target"], **kw)
    for s, m, nbs in work:
        a, b = reuse.score_sample(s, nbs, m, "image"), generic.score_sample(s, nbs, m, "image")
        np.testing.assert_allclose([a[0], *a[1]], [b[0], *b[1]], rtol=0, atol=1e-5)
    s, m, nbs = work[0]
    assert not np.isclose(reuse.score_sample(s, nbs, m, "image")[0], ours[0])  # </s> is in this loss


def test_loss_span_starts_where_the_prompt_part_ends():
    # A neighbour's answer can begin with a word the tokenizer does not know (a special token,
    # coded `other`): it is still the answer's first token and its loss counts, as in training.
    from mmia.fimmia.layout import FimmiaLayout
    from mmia.targets import ANSWER, OTHER, PROMPT
    from mmia.targets.base import Encoded

    codes = np.array([OTHER, PROMPT, PROMPT, OTHER, ANSWER, ANSWER, OTHER], dtype=np.int8)
    enc = Encoded(np.arange(7), codes, answer_start=3)
    assert FimmiaLayout().loss_span(enc) == (3, 6)  # the answer's tokens, the closing </s> not
    assert FimmiaLayout(answer_template=" {answer}</s>").loss_span(enc) == (3, 7)  # the template's too
    assert FimmiaLayout().loss_span(Encoded(np.arange(7), codes)) == (4, 6)  # start unknown: first answer code
    assert FimmiaLayout().loss_span(Encoded(np.arange(3), codes[:3], answer_start=3)) == (0, 0)  # no answer
