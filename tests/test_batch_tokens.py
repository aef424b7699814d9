"""Forward batches cut by a token budget: the packing function's known answers, and an engine run
whose statistics, cache and yields are those of a run without a budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import WORDS, record_batch_widths, tiny_dir, write_texts  # noqa: F401  (fixture)

from mmia.cache import Cache
from mmia.data import load_dataset
from mmia.engine import EngineCounts, iter_token_stats
from mmia.engine.packing import token_batches
from mmia.engine.run_generative import length_order
from mmia.targets import load_target
from mmia.targets.token_stats import STAT_NAMES

torch.set_num_threads(1)


def _spans(cuts):
    return [(s.start, s.stop) for s in cuts]


def test_token_batches_known_answers():
    # 2 x 3 = 6 fits 10; a third row makes 3 x 4 = 12; 2 x 5 = 10 fits; 9 alone.
    assert _spans(token_batches([3, 3, 4, 5, 9], 10, 8)) == [(0, 2), (2, 4), (4, 5)]
    # No budget: rows of max_rows, as the engine always cut them.
    assert _spans(token_batches([5, 1, 7, 2, 2], None, 2)) == [(0, 2), (2, 4), (4, 5)]
    # The row cap holds under a loose budget; the padded width is the longest row, not the last.
    assert _spans(token_batches([1] * 5, 1000, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert _spans(token_batches([6, 2, 2], 12, 8)) == [(0, 2), (2, 3)]  # 3 x 6 = 18 > 12
    # A row longer than the budget is a batch of its own; so is the row after it.
    assert _spans(token_batches([20, 1, 1], 10, 8)) == [(0, 1), (1, 3)]
    assert _spans(token_batches([4, 4], 8, 8)) == [(0, 2)]  # exactly the budget fits
    assert token_batches([], 10, 4) == []
    for bad in ((0, 4), (10, 0)):
        with pytest.raises(ValueError):
            token_batches([1, 2], *bad)


def _text_data(root: Path, n: int) -> Path:
    return write_texts(root, [" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(2 + (i * 7) % 13))
                              for i in range(n)])


def test_engine_with_a_token_budget_gives_the_same_statistics(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(_text_data(tmp_path, 24))
    t = load_target(tiny_dir("causal_lm"))
    seen = record_batch_widths(t)
    plain = list(iter_token_stats(t, ds.samples, batch_size=8))
    assert [n for n, _ in seen] == [8, 8, 8]
    seen.clear()
    budget, counts = 64, EngineCounts()
    with Cache(tmp_path / "cache") as cache:
        packed = list(iter_token_stats(t, ds.samples, batch_size=8, max_batch_tokens=budget, cache=cache,
                                       counts=counts))
        # The same samples, in the same (length-sorted) order as without a budget.
        assert [i for i, _ in packed] == [i for i, _ in plain] == length_order(ds.samples)
        for (_, a), (_, b) in zip(packed, plain, strict=True):
            assert a.keys() == b.keys()
            np.testing.assert_array_equal(a["codes"], b["codes"])
            for k in STAT_NAMES:
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
        # Every batch within the budget (or a lone row), none over the row cap, every row once.
        assert all(n <= 8 and (n * w <= budget or n == 1) for n, w in seen)
        assert sum(n for n, _ in seen) == 24 and len(seen) > 3
        assert counts.batches == len(seen) and counts.computed == 24 and counts.cached == 0
        # Rows carried across windows of 8: the batches are those of packing all rows at once,
        # fewer than packing each window alone.
        lengths = [len(e) for e in t.encode_batch([ds.samples[i] for i in length_order(ds.samples)])]
        assert seen == [(c.stop - c.start, max(lengths[c])) for c in token_batches(lengths, budget, 8)]
        windows = [token_batches(lengths[s : s + 8], budget, 8) for s in range(0, 24, 8)]
        assert len(seen) < sum(len(w) for w in windows)
        # The cache holds what a run without a budget would read back.
        again = EngineCounts()
        cached = dict(iter_token_stats(t, ds.samples, batch_size=8, cache=cache, counts=again))
        assert again.cached == 24 and again.batches == 0
        for i, st in plain:
            np.testing.assert_allclose(cached[i]["logp"], st["logp"], rtol=1e-5, atol=1e-6)


def test_a_budget_with_some_rows_cached_computes_only_the_others(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(_text_data(tmp_path, 12))
    t = load_target(tiny_dir("causal_lm"))
    with Cache(tmp_path / "cache") as cache:
        list(iter_token_stats(t, ds.samples[::3], batch_size=4, cache=cache))  # every third row cached
        seen, counts = record_batch_widths(t), EngineCounts()
        out = list(iter_token_stats(t, ds.samples, batch_size=4, max_batch_tokens=30, cache=cache, counts=counts))
    assert [i for i, _ in out] == length_order(ds.samples)
    assert counts.cached == 4 and counts.computed == 8 == sum(n for n, _ in seen)
    fresh = dict(iter_token_stats(t, ds.samples, batch_size=1))
    for i, st in out:
        np.testing.assert_allclose(st["logp"], fresh[i]["logp"], rtol=1e-5, atol=1e-6)
