"""Known answers of the pure scoring functions and of the per-token statistics (hand-built logits)."""

import math

import numpy as np
import pytest
import torch

from mmia.attacks import score_functions as S
from mmia.attacks.records import SampleRecord, values
from mmia.attacks.registry import get_attack, list_attacks
from mmia.data.schema import Sample
from mmia.targets.base import ANSWER, AUDIO, IMAGE, OTHER, PROMPT, slice_rows
from mmia.targets.token_stats import STAT_NAMES, stats_from_logits

LN2 = math.log(2)
P = [0.5, 0.25, 0.125, 0.125]


def _stats(p, target):
    logits = torch.log(torch.tensor([p], dtype=torch.float64)) + 3.0  # a shift must not matter
    st = stats_from_logits(logits, torch.tensor([target]))
    return {k: float(v[0]) for k, v in st.items()}


def test_token_stats_known_answers():
    st = _stats(P, 0)
    assert set(st) == set(STAT_NAMES)
    assert st["logp"] == pytest.approx(-LN2, abs=1e-6)
    assert st["entropy"] == pytest.approx(1.75 * LN2, abs=1e-6)
    assert st["renyi_2"] == pytest.approx(-math.log(0.25 + 0.0625 + 2 * 0.015625), abs=1e-6)
    assert st["renyi_inf"] == pytest.approx(LN2, abs=1e-6)
    assert st["renyi_0.5"] == pytest.approx(2 * math.log(sum(math.sqrt(x) for x in P)), abs=1e-6)
    assert st["lp_std"] == pytest.approx(math.sqrt(3.75 - 1.75**2) * LN2, abs=1e-5)
    assert st["gap"] == pytest.approx(0.25, abs=1e-6)
    # Modified entropy (alpha=1) with y=0: -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i)
    assert st["mod_renyi_1"] == pytest.approx(-(0.5 * math.log(0.5)) - (0.25 * math.log(0.75)
                                               + 2 * 0.125 * math.log(0.875)), abs=1e-6)
    # alpha=2 (|a-1|=1): -[(1-p_y)p_y - (1-p_y) + sum_{i!=y}(p_i(1-p_i) - p_i)] = 0.34375 by hand
    assert st["mod_renyi_2"] == pytest.approx(0.34375, abs=1e-6)
    b = 0.5
    by_hand = -((0.5 * 0.5**b - 0.5) + sum(x * (1 - x) ** b - x for x in P[1:])) / b
    assert st["mod_renyi_0.5"] == pytest.approx(by_hand, abs=1e-6)


def test_token_stats_target_dependence_and_uniform():
    # A less likely true token: lower log-prob, higher modified entropy; uniform: entropy log V, gap 0.
    assert _stats(P, 3)["logp"] == pytest.approx(-3 * LN2, abs=1e-6)
    assert _stats(P, 3)["mod_renyi_1"] > _stats(P, 0)["mod_renyi_1"]
    u = _stats([0.25] * 4, 1)
    for k in ("entropy", "renyi_0.5", "renyi_2", "renyi_inf"):
        assert u[k] == pytest.approx(math.log(4), abs=1e-6)
    assert u["gap"] == pytest.approx(0.0, abs=1e-7) and u["lp_std"] == pytest.approx(0.0, abs=1e-3)


def test_scores_known_answers():
    assert S.loss_score([-1, -2, -3]) == -2
    assert math.isnan(S.loss_score([]))
    assert S.zlib_bytes("aaaa") == 12
    assert S.zlib_score([-2, -2], "aaaa") == pytest.approx(-2 / 12)
    assert S.lowercase_score([-1, -1], [-2, -2]) == pytest.approx(-0.5)
    assert S.reference_score(1.0, 2.0, "ratio") == pytest.approx(-0.5)
    assert S.reference_score(1.0, 2.0, "difference") == pytest.approx(1.0)
    assert S.min_k_prob([-1, -2, -3, -4, -5], 0.4) == pytest.approx(-4.5)
    assert S.min_k_prob([-1, -2, -3, -4, -5], 0.01) == pytest.approx(-5)  # at least one token
    # K% of n is int(k * n), as in the papers' code: 20% of 7 tokens is one token (ceil: two).
    assert S.min_k_prob([-1, -2, -3, -4, -5, -6, -7], 0.2) == pytest.approx(-7)
    assert S.min_k_plus_plus([-1, -2, -3, -4, -5, -6, -7, -8, -9], [0] * 9, [1] * 9, 0.2) == pytest.approx(-9)
    assert S.k_renyi(list(range(19)), 0.1, largest=True) == pytest.approx(-18)
    assert S.min_k_prob(list(range(-30, 0)), 0.1) == pytest.approx(-29)  # 0.1 * 30 = 3.0000000000000004: 3
    assert S.min_k_plus_plus([-1, -2], [-1.5, -1.5], [0.5, 0.5], 0.5) == pytest.approx(-1.0)
    assert S.k_renyi([1, 2, 3, 4], 0.5, largest=True) == pytest.approx(-3.5)
    assert S.k_renyi([1, 2, 3, 4], 0.5, largest=False) == pytest.approx(-1.5)
    assert S.k_renyi([1, 2, 3, 4], 0.0, largest=True) == pytest.approx(-4)
    assert S.mod_renyi_score([1, 3]) == pytest.approx(-2)
    assert S.max_prob_gap_score([0.1, 0.3]) == pytest.approx(0.2)
    assert S.csa_score([1, 0], [2, 0]) == pytest.approx(1) and S.csa_score([1, 0], [0, 1]) == pytest.approx(0)
    assert S.aea_score([1, 0], [1, 0], [[0, 1]], "mean") == pytest.approx(0.5)
    assert S.aea_score([1, 0], [1, 0], [[0, 1], [1, 0]], "drop") == pytest.approx(0.5)


def test_slice_rows():
    codes = np.array([OTHER, IMAGE, IMAGE, PROMPT, ANSWER, ANSWER], dtype=np.int8)
    st = {"codes": codes, "logp": np.arange(5, dtype=np.float32)}
    assert np.flatnonzero(slice_rows(codes, "answer")).tolist() == [3, 4]  # rows predicting answer tokens
    assert np.flatnonzero(slice_rows(codes, "prompt")).tolist() == [2]
    assert np.flatnonzero(slice_rows(codes, "image")).tolist() == [1, 2]  # outputs at image inputs
    assert values(st, "logp", "answer").tolist() == [3.0, 4.0]


def test_statistics_rows_are_the_slices_rows():
    """`stat_rows` (which rows the engine computes) reads the slices by the attacks' own rule."""
    from mmia.targets.generative import stat_rows

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 5, 40):
        codes = rng.choice([OTHER, IMAGE, PROMPT, ANSWER, AUDIO], size=n).astype(np.int8)
        need_t, need_d = stat_rows(codes)
        text = (codes[1:] == PROMPT) | (codes[1:] == ANSWER)  # the rule as it was written out before
        media = (codes[:-1] == IMAGE) | (codes[:-1] == AUDIO)
        np.testing.assert_array_equal(need_t, text)
        np.testing.assert_array_equal(need_d, text | media)
        assert need_t.dtype == need_d.dtype == np.bool_


def _record(logp_answer, entropy=1.0):
    n = len(logp_answer)
    codes = np.array([OTHER, IMAGE, PROMPT] + [ANSWER] * n, dtype=np.int8)
    rows = n + 2
    lp = np.r_[np.full(2, -9.0), logp_answer].astype(np.float32)
    st = {k: np.full(rows, entropy, np.float32) for k in STAT_NAMES}
    st.update(codes=codes, logp=lp, gap=np.full(rows, 1 - entropy / 10, np.float32))
    return st


@pytest.mark.parametrize("name", ["loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference", "max_k_renyi",
                                  "min_k_renyi", "mod_renyi", "max_prob_gap"])
def test_every_attack_ranks_a_memorised_sample_higher(name):
    """As TF Privacy's tests do: a sample the model predicts well must score above one it does not."""
    spec = get_attack(name)
    cfg = spec.make_config()
    sample = Sample(id="a", row=1, prompt="Describe", answer="a red cat")
    member = SampleRecord(sample, {"stats": _record([-0.1, -0.2, -0.1], entropy=0.5),
                                   "lower": _record([-2.0, -2.0, -2.0]), "reference": _record([-2.0, -2.0, -2.0])})
    st = member.view("stats")
    st["mod_renyi_0.5"][:] = st["mod_renyi_1"][:] = st["mod_renyi_2"][:] = 0.1
    other = SampleRecord(sample, {"stats": _record([-3.0, -4.0, -3.5], entropy=2.0),
                                  "lower": _record([-2.0, -2.0, -2.0]), "reference": _record([-2.0, -2.0, -2.0])})
    a, b = spec.run(member, cfg), spec.run(other, cfg)
    assert a.keys() == b.keys() and a
    compared = 0
    for key in a:
        if math.isnan(a[key]):
            assert math.isnan(b[key]) and "@audio" in key  # no audio tokens in these records
            continue
        assert a[key] > b[key], (name, key)
        compared += 1
    assert compared


def test_registry_lists_the_attacks_with_papers():
    names = {s.name for s in list_attacks(family="score")} | {s.name for s in list_attacks(family="contrastive")}
    assert {"loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference", "max_k_renyi", "min_k_renyi",
            "mod_renyi", "max_prob_gap", "csa", "aea"} <= names
    for n in names:
        spec = get_attack(n)
        assert spec.paper and spec.summary
    assert get_attack("reference").needs_reference
    contrastive = list_attacks(family="contrastive", target_kind="clip", modalities=("text", "image"))
    assert [s.name for s in contrastive] == ["aea", "csa"]
