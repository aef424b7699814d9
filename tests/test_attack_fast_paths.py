"""The scoring hot path's shortcuts give exactly what the slow path gives: vectorised image
preprocessing and tokenisation (checked against the processor, off after a mismatch),
statistics computed only at the rows a slice scores, and the attacks' means."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import tiny_dir  # noqa: F401  (fixture)

from mmia.attacks import score_functions as S
from mmia.attacks.records import SampleRecord
from mmia.attacks.runner import select_attacks
from mmia.data import load_dataset
from mmia.targets import load_target
from mmia.targets.fast_pixels import FastPixels
from mmia.targets.generative import stat_rows
from mmia.targets.token_stats import DIST_STATS, STAT_NAMES, TARGET_STATS, stats_from_logits

torch.set_num_threads(1)
ANSWERS = ["a red square on the left", "two blue circles", "the green one is at the top right corner",
           "nothing but a grey wall", "three small crosses in a row", "a yellow triangle"]


def _dataset(root, shapes, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, shape in enumerate(shapes):
        pix = rng.integers(0, 256, shape, dtype=np.uint8)
        pix[0, 0] = 0
        pix[-1, -1] = 255  # both ends of the range
        Image.fromarray(pix).save(root / f"im{i}.png")
        rows.append({"id": f"s{i}", "image": f"im{i}.png", "label": i % 2,
                     "prompt": ["Describe the image:", "What is shown?"][i % 2], "answer": ANSWERS[i % len(ANSWERS)]})
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_dataset(path)


def _same_encodings(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.input_ids, y.input_ids) and np.array_equal(x.codes, y.codes)
        assert x.extras.keys() == y.extras.keys() and x.token_extras.keys() == y.token_extras.keys()
        for k in x.extras:
            assert x.extras[k].shape == y.extras[k].shape and x.extras[k].dtype == y.extras[k].dtype
            torch.testing.assert_close(x.extras[k], y.extras[k], rtol=0, atol=1e-6)


def _processor_only(path):
    t = load_target(path)
    t._fast_off = True
    return t


def test_fast_pixels_equal_the_processor(tiny_dir):  # noqa: F811
    from transformers import CLIPImageProcessorPil

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    images[0][:2] = 0
    images[0][2:4] = 255
    settings = [{}, {"do_normalize": False}, {"do_rescale": False}, {"do_rescale": False, "do_normalize": False}]
    for kw in settings:
        ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, **kw)
        fast = FastPixels(ip)
        assert fast.usable and fast.identity_shape(32, 32)
        ref = ip(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
        mine = fast(images)
        assert mine.shape == ref.shape and mine.dtype == ref.dtype
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
    # Shapes the processor resizes or crops are not for the fast path.
    assert not fast.identity_shape(24, 30) and not fast.identity_shape(32, 40) and not fast.identity_shape(64, 64)
    # Nor are processors that patchify (Qwen2-VL's).
    from transformers import Qwen2VLImageProcessorPil

    assert not FastPixels(Qwen2VLImageProcessorPil(patch_size=8, merge_size=2)).usable


def test_vlm_fast_encoding_equals_the_processor(tiny_dir, tmp_path):  # noqa: F811
    path = tiny_dir("llava")
    ds = _dataset(tmp_path, [(32, 32, 3)] * 6 + [(24, 30, 3), (32, 32, 3)])
    t, ref = load_target(path), _processor_only(path)
    calls = []
    real = t._processor_batch
    t._processor_batch = lambda texts, medias: calls.append(len(texts)) or real(texts, medias)
    first = t.encode_batch(ds.samples[0:3])  # the processor, checked against the fast path
    assert calls == [3] and t._fast_shapes == {(32, 32, 3): 64 // 4} and not t._fast_off
    second = t.encode_batch(ds.samples[3:6])  # the fast path alone
    assert calls == [3]
    _same_encodings(first + second, ref.encode_batch(ds.samples[0:3]) + ref.encode_batch(ds.samples[3:6]))
    # A batch with an unchecked shape goes to the processor; a lone sample takes the fast path.
    mixed = t.encode_batch(ds.samples[5:8])
    assert calls == [3, 3]
    _same_encodings(mixed, ref.encode_batch(ds.samples[5:8]))
    _same_encodings([t.encode(ds[1], str.lower)], [ref.encode(ds[1], str.lower)])
    assert calls == [3, 3]
    # The statistics (and so every score) follow from the encodings: the same.
    for a, b in zip(t.token_stats(second), ref.token_stats(ref.encode_batch(ds.samples[3:6])), strict=True):
        for k in STAT_NAMES:
            np.testing.assert_array_equal(a[k], b[k])


def test_fast_path_switches_off_after_a_mismatch(tiny_dir, tmp_path):  # noqa: F811
    path = tiny_dir("llava")
    ds = _dataset(tmp_path, [(32, 32, 3)] * 4)
    t = load_target(path)
    honest = t._fast_pixels.__call__
    t._fast_pixels = type("Off", (), {"__call__": lambda self, arrays: honest(arrays) + 1e-4,
                                      "identity_shape": lambda self, h, w: True})()
    out = t.encode_batch(ds.samples[:2])
    assert t._fast_off and not t._fast_shapes
    _same_encodings(out + t.encode_batch(ds.samples[2:]), _processor_only(path).encode_batch(ds.samples))


def _full_stats(target, batch):
    """The statistics as computed before rows were selected: every row, every statistic."""
    logits, _ = target.logits(batch)
    width = logits.shape[1]
    targets = torch.zeros((len(batch), width - 1), dtype=torch.long)
    for i, e in enumerate(batch):
        targets[i, : len(e) - 1] = torch.from_numpy(e.input_ids[1:])
    with torch.inference_mode():
        st = {k: v.float().numpy() for k, v in stats_from_logits(logits[:, : width - 1], targets).items()}
    return [{**{k: v[i, : len(e) - 1] for k, v in st.items()}, "codes": e.codes} for i, e in enumerate(batch)]


@pytest.mark.parametrize("name", ["llava", "causal_lm"])
def test_stats_only_at_scored_rows_change_no_score(tiny_dir, tmp_path, name):  # noqa: F811
    ds = _dataset(tmp_path, [(32, 32, 3)] * 3 + [(24, 30, 3)] * 2)
    t = load_target(tiny_dir(name))
    batch = t.encode_batch(ds.samples)
    new, old = t.reduce_logits(t.logits(batch)[0], batch), _full_stats(t, batch)
    for a, b, e in zip(new, old, batch, strict=True):
        need_t, need_d = stat_rows(e.codes)
        assert need_t.any() and (need_d & ~need_t).any() == (name == "llava")
        if name == "llava":
            assert not need_d.all()  # rows predicting the placeholder or special tokens are skipped
        for k in STAT_NAMES:
            rows = need_t if k in TARGET_STATS else need_d
            assert k in TARGET_STATS or k in DIST_STATS
            np.testing.assert_allclose(a[k][rows], b[k][rows], rtol=1e-6, atol=1e-6)
            assert np.isnan(a[k][~rows]).all()
    # Every single-pass attack scores the same from either.
    specs = [s for s in select_attacks(None, t.kind, ds.modalities, has_reference=False) if "lower" not in s.views]
    assert len(specs) >= 8
    for smp, a, b in zip(ds.samples, new, old, strict=True):
        for s in specs:
            cfg = s.make_config()
            got, want = s.run(SampleRecord(smp, {"stats": a}), cfg), s.run(SampleRecord(smp, {"stats": b}), cfg)
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[c] for c in got], [want[c] for c in got], rtol=1e-5, atol=1e-6,
                                       err_msg=s.name)


def test_attack_means_are_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        x = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)
        assert S._mean(x) == x.mean()


def test_row_groups_and_reused_buffers_change_no_statistic(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    """Statistics in small row groups through the per-thread buffers (reused from batch to
    batch) equal those of one group in fresh tensors, bit for bit."""
    import mmia.targets.generative as G

    ds = _dataset(tmp_path, [(32, 32, 3)] * 5)
    t = load_target(tiny_dir("llava"))
    batches = [t.encode_batch(ds.samples[:3]), t.encode_batch(ds.samples[3:])]
    logits = [t.logits(b)[0] for b in batches]
    monkeypatch.setattr(t, "_stats_group", lambda lg, vocab: (1 << 30, None))
    want = [t.reduce_logits(lg, b) for lg, b in zip(logits, batches, strict=True)]
    work = G.stats_workspace()
    for rows in (3, 7, 1000):
        monkeypatch.setattr(t, "_stats_group", lambda lg, vocab, rows=rows: (rows, work))
        got = [t.reduce_logits(lg, b) for lg, b in zip(logits, batches, strict=True)]
        for g, w in zip(sum(got, []), sum(want, []), strict=True):
            assert g.keys() == w.keys()
            for k in g:
                np.testing.assert_array_equal(g[k], w[k], err_msg=f"{k} in groups of {rows}")


def test_shared_slices_and_sorts_give_each_attacks_own_scores(tiny_dir, tmp_path):  # noqa: F811
    """MaxRényi-K% and MinRényi-K% read sorted slices memoised on one record: the same scores, bit
    for bit, as sorting each slice afresh."""
    from mmia.attacks.records import values

    ds = _dataset(tmp_path, [(32, 32, 3)] * 4)
    t = load_target(tiny_dir("llava"))
    specs = {s.name: s for s in select_attacks(None, t.kind, ds.modalities, has_reference=False)}
    for smp, st in zip(ds.samples, t.token_stats(t.encode_batch(ds.samples)), strict=True):
        rec = SampleRecord(smp, {"stats": st})  # both attacks on the same record, as the runner does
        for name, largest in (("max_k_renyi", True), ("min_k_renyi", False)):
            cfg = specs[name].make_config()
            got = specs[name].run(rec, cfg)
            for a in cfg.alphas:
                stat = {1.0: "entropy", float("inf"): "renyi_inf"}.get(a, f"renyi_{a:g}")
                for sl in cfg.slices:
                    want = S.k_renyi(values(st, stat, sl), cfg.k, largest)
                    col = f"_k{round(cfg.k * 100):d}_a{'inf' if a == float('inf') else f'{a:g}'}@{sl}"
                    assert (np.isnan(got[col]) and np.isnan(want)) or got[col] == want, (name, col)
        assert rec.memo  # the record did hold the shared slices


def test_top_gap_equals_topk_bit_for_bit():
    from mmia.targets.token_stats import _top_gap

    torch.manual_seed(0)
    p = torch.softmax(torch.randn(64, 50) * torch.logspace(-3, 2, 64).unsqueeze(1), -1)
    p[0] = 1 / 50  # uniform: every entry ties
    p[1, 7] = p[1].max()  # the maximum twice
    p[2] = 0.0
    p[2, 3] = 1.0  # one-hot
    p[3, :2] = torch.tensor([0.5, 0.5 - 2**-25])  # the two largest one float apart
    top2 = p.topk(2, dim=-1).values
    p_max, gap = _top_gap(p, torch.empty_like(p), torch.empty_like(p))
    assert torch.equal(p_max, top2[:, 0]) and torch.equal(gap, top2[:, 0] - top2[:, 1])
    assert gap[0] == 0 and gap[1] == 0 and gap[2] == 1 and gap[3] > 0
