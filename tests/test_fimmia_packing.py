"""Packed neighbour tails on the original's KV cache: the mask, and equality with scoring from scratch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmia.fimmia.packing import choose_width, common_prefix_len, hidden_index, pack_tails


@pytest.mark.parametrize("width", [None, 4, 9])
def test_pack_tails_mask_positions_and_slots(width):
    tails = [[], [7, 8, 9], [5], [6, 6], [1, 2, 3]]
    shared = [10, 4, 9, 0, 6]
    p = pack_tails(tails, shared, pad_id=99, width=width)
    width = width or 3  # default: the longest tail
    assert p.ids.shape[1] == width and p.n_past == 9  # the longest prefix a non-empty tail needs
    assert p.allowed.shape == (p.n_bins, width, p.n_past + width)
    # first fit by decreasing length (3, 3, 2, 1): 3 | 3 | 2+1, 3+1 | 3 | 2, or all in one bin
    assert p.n_bins == {3: 3, 4: 3, 9: 1}[width]
    for i, (t, c) in enumerate(zip(tails, shared, strict=True)):
        if not t:
            continue
        b, q0 = divmod(p.flat_start[i], width)
        assert p.ids[b, q0 : q0 + len(t)].tolist() == t
        assert p.positions[b, q0 : q0 + len(t)].tolist() == list(range(c, c + len(t)))
        for q in range(len(t)):
            seen = np.flatnonzero(p.allowed[b, q0 + q])
            want = [*range(c), *range(p.n_past + q0, p.n_past + q0 + q + 1)]
            assert seen.tolist() == want  # the shared prefix, then its own tail up to itself
    assert p.allowed.any(axis=-1).all()  # no query without a key (SDPA would give NaN)
    used = {p.flat_start[i] + j for i, t in enumerate(tails) for j in range(len(t))}
    assert (p.ids.reshape(-1)[[k for k in range(p.ids.size) if k not in used]] == 99).all()


def test_choose_width_trades_fill_for_keys():
    lengths = [0, 10, 6, 6, 6]  # 28 tokens: 4 bins of 10 (40 slots), or one bin of 28
    assert choose_width(lengths, n_past=0, token_cost=1e6) == 28  # work per slot dominates: fill every slot
    assert choose_width(lengths, n_past=0, token_cost=0.0) == 10  # attention dominates: narrow bins
    assert choose_width([0, 0], n_past=5, token_cost=1.0) == 0
    with pytest.raises(ValueError):
        pack_tails([[1, 2, 3]], [4], pad_id=0, width=2)


def test_hidden_index_splits_at_the_shared_prefix():
    # row of length 8, answer from 5 (predicted by positions 4..6), shares 6 tokens with the reference
    # (12 hidden states), its tail starts at flat slot 20
    assert hidden_index(5, 8, 6, 12, 20) == [4, 5, 12 + 20 + 0]
    assert hidden_index(5, 8, 8, 12, 20) == [4, 5, 6]  # the whole row is shared: all from the reference
    assert hidden_index(5, 8, 2, 12, 20) == [12 + 20 + 2, 12 + 20 + 3, 12 + 20 + 4]
    assert common_prefix_len([1, 2, 3], [1, 2, 4, 5]) == 2 and common_prefix_len([1], [1]) == 1


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    from random_llava import build_random_llava

    torch.set_num_threads(1)
    return build_random_llava(tmp_path_factory.mktemp("llava") / "m", image_size=32, patch_size=8)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
@pytest.mark.parametrize("token_cost", [0.0, 1e6])
def test_packed_tails_equal_scratch(llava, batch_size, token_cost):
    """Rows that share all, most, part or only the media of the original's tokens, one whose
    answer is empty and one that is a prefix of the original: losses as if each ran alone."""
    from mmia.fimmia.scoring_llava import LlavaScorer, Row

    sc = LlavaScorer(llava, batch_size=batch_size, device="cpu")
    sc._token_cost = token_cost  # here: tails in two bins 11 wide, or all in one bin 21 wide
    from pathlib import Path

    from mmia.data.schema import Sample

    img = np.full((24, 24, 3), 128, dtype=np.uint8)
    s = Sample(id="p", row=1, prompt="describe it", answer="a", image=Path("<decoded>"))
    mine, theirs = sc._rows(s, [("describe it", "a", None), ("describe that one", "a", None)], img, "image",
                            with_pixels=False)
    pv, prefix, other = mine.pixel_values, mine.prefix, theirs.prefix
    answer = [11, 12, 13, 14, 15, 16, 17, 18]
    answers = [answer, answer, answer[:5] + [30, 31], [40] + answer, answer[:3], [], answer[:7] + [2, 2, 2, 2], answer]
    rows = [Row(prefix, a, pv) for a in answers[:-1]] + [Row(other, answers[-1], pv)]
    fast = sc.score_on_shared_prefix(rows)
    slow = sc.score_rows(rows)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    assert np.isnan(fast[5]) and np.isnan(slow[5])
    assert len(set(np.round(fast[:5], 4))) == 4  # rows really differ (0 and 1 are the same row)


def test_rows_that_are_all_prefixes_of_the_original_need_no_packed_forward(llava):
    """Every neighbour a prefix of the original (e.g. its last answer word deleted): no row has a
    tail, so nothing is packed, and the losses come from the original's pass alone."""
    from pathlib import Path

    from mmia.data.schema import Sample
    from mmia.fimmia.packing import pack_tails
    from mmia.fimmia.scoring_llava import LlavaScorer, Row

    empty = pack_tails([[], []], [5, 3], pad_id=0, width=0)
    assert empty.n_bins == 0 and empty.allowed.shape[0] == 0
    sc = LlavaScorer(llava, batch_size=4, device="cpu")
    img = np.full((24, 24, 3), 128, dtype=np.uint8)
    s = Sample(id="p", row=1, prompt="describe it", answer="a", image=Path("<decoded>"))
    [mine] = sc._rows(s, [("describe it", "a", None)], img, "image", with_pixels=False)
    answer = [11, 12, 13, 14, 15, 16]
    rows = [Row(mine.prefix, a, mine.pixel_values) for a in (answer, answer[:5], answer[:3])]
    fast = sc.score_on_shared_prefix(rows)
    np.testing.assert_allclose(fast, sc.score_rows(rows), atol=1e-5)
    assert np.isfinite(fast).all() and len(set(np.round(fast, 4))) == 3


def test_head_groups_give_the_one_calls_losses(monkeypatch):
    """On an accelerator the lm_head runs on groups of positions (bounded by free memory): any
    group size gives the losses of the one call CPU makes, empty answers NaN."""
    from mmia.fimmia import scoring_llava

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    table = torch.randn(30, 8, generator=g)
    answers = [[1, 2, 3], [], [4], [5, 6, 7, 8, 9, 10, 11]]
    index, k = [], 0
    for a in answers:
        index.append(list(range(k, k + len(a))))
        k += len(a) + 2
    whole = scoring_llava.losses_at(head, table, index, answers)
    assert scoring_llava.head_group(torch.device("cpu"), 50, 11) == 11  # CPU: the one call
    for group in (1, 3, 100):
        monkeypatch.setattr(scoring_llava, "head_group", lambda device, vocab, n, group=group: group)
        got = scoring_llava.losses_at(head, table, index, answers)
        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)
        assert np.isnan(got[1])
    logp = torch.log_softmax(head(table[torch.tensor([*index[0]])]), -1)
    assert whole[0] == pytest.approx(-logp[[0, 1, 2], [1, 2, 3]].mean().item(), abs=1e-6)
