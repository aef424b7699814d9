"""Min-K%++'s sigma (`lp_std`) against a float64 reference: near-uniform, peaked and mixed rows,
bf16 logits, and a row on which the one-pass form E[(log p)^2] - H^2 keeps none of its digits."""

import pytest
import torch

from mmia.targets.token_stats import stats_from_logits, stats_from_rows, stats_workspace


def _sigma64(logits):
    lp = torch.log_softmax(logits.double(), -1)
    p = lp.exp()
    mu = (p * lp).sum(-1, keepdim=True)
    return (p * (lp - mu) ** 2).sum(-1).sqrt()


def _one_pass(logits):
    """The old form, in float32 as the engine computed it: what this file guards against."""
    lp = torch.log_softmax(logits.float(), -1)
    p = lp.exp()
    h = -(p * lp).sum(-1)
    return ((p * lp * lp).sum(-1) - h * h).clamp_min(0).sqrt()


def _rel(a, ref):
    return float(((a.double() - ref).abs() / ref).max())


def _rows(kind: str, vocab: int, n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, vocab, generator=g)
    if kind == "near-uniform":
        return z * 0.01 + 7.0  # sigma ~1e-2, with an offset the softmax must ignore
    if kind == "peaked":
        x = z * 2.0
        x[torch.arange(n), torch.randint(0, vocab, (n,), generator=g)] += 25.0  # p_max ~1 - 1e-6
        return x
    if kind == "mixed":  # every scale in one group, as a real batch holds them
        scales = torch.logspace(-3, 1, n).unsqueeze(-1)
        return z * scales
    raise ValueError(kind)


@pytest.mark.parametrize("vocab", [300, 4096, 32000])
@pytest.mark.parametrize("kind", ["near-uniform", "peaked", "mixed"])
def test_sigma_matches_float64_reference(kind, vocab):
    x = _rows(kind, vocab)
    y = torch.zeros(len(x), dtype=torch.long)
    ref = _sigma64(x)
    assert float(ref.min()) > 0
    assert _rel(stats_from_logits(x, y)["lp_std"], ref) <= 1e-5
    # The engine's path: reused buffers, a target prefix of the group.
    work = stats_workspace()
    for _ in range(2):
        got = stats_from_rows(x, y[:10], 10, work)["lp_std"]
        assert got.shape == (10,) and _rel(got, ref[:10]) <= 1e-5


def test_sigma_on_a_row_where_the_one_pass_form_fails():
    # sigma ~1e-3 at V = 300: E[(log p)^2] ~ 32.5 and H^2 agree in every float32 digit that
    # sigma^2 ~1e-6 would need.
    x = _rows("near-uniform", 300, n=4) * 0.1
    ref = _sigma64(x)
    assert _rel(_one_pass(x), ref) > 0.1  # the row is as hard as claimed
    assert _rel(stats_from_logits(x, torch.zeros(4, dtype=torch.long))["lp_std"], ref) <= 1e-5


def test_sigma_of_bf16_logits_is_that_of_their_values():
    # On a GPU the logits arrive in bf16; the statistics run in float32 on exactly those values.
    x = _rows("mixed", 4096).bfloat16()
    got = stats_from_logits(x, torch.zeros(len(x), dtype=torch.long))["lp_std"]
    assert got.dtype == torch.float32 and _rel(got, _sigma64(x.float())) <= 1e-5


def test_sigma_is_zero_on_a_uniform_row_and_exact_at_large_logits():
    y = torch.zeros(2, dtype=torch.long)
    flat = torch.full((2, 1000), 3.25)
    assert stats_from_logits(flat, y)["lp_std"].tolist() == [0.0, 0.0]
    shifted = _rows("mixed", 1000, n=2) + 40.0  # large logits: the centring must not lose sigma
    got = stats_from_logits(shifted, y)["lp_std"]
    assert _rel(got, _sigma64(shifted)) <= 1e-5
