"""Per-token statistics of next-token distributions, computed in the batch from the logits.

For each position t the model's distribution p over the vocabulary predicts token t+1. From p
we keep a handful of scalars per token and drop the vocabulary-sized tensor at once, so nothing
vocabulary-sized ever leaves the batch:

- `logp`      log p(x_{t+1}), the log-probability of the actual next token
- `entropy`   Shannon entropy H(p) (Rényi alpha=1); also -E_p[log p], the mean that Min-K%++ needs
- `renyi_0.5`, `renyi_2`, `renyi_inf`  Rényi entropies 1/(1-a) log sum p^a (inf: -log max p)
- `lp_std`    standard deviation of log p(z) under z ~ p (Min-K%++, Zhang et al. 2024)
- `gap`       max-probability gap p_(1) - p_(2) (VL-MIA, Li et al. 2024)
- `mod_renyi_0.5`, `mod_renyi_1`, `mod_renyi_2`  modified Rényi entropies of VL-MIA, which use the
  true next token y:  a=1: -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i);  a!=1, b=|a-1|:
  -1/b [ (1-p_y) p_y^b - (1-p_y) + sum_{i!=y} (p_i (1-p_i)^b - p_i) ]
"""

from __future__ import annotations

STAT_NAMES = (
    "logp",
    "entropy",
    "renyi_0.5",
    "renyi_2",
    "renyi_inf",
    "lp_std",
    "gap",
    "mod_renyi_0.5",
    "mod_renyi_1",
    "mod_renyi_2",
)
# What each statistic needs: the distribution alone (a media slice reads these at the media
# tokens' own positions, where there is no true next token) or also the true next token.
DIST_STATS = ("entropy", "renyi_0.5", "renyi_2", "renyi_inf", "gap")
TARGET_STATS = ("logp", "lp_std", "mod_renyi_0.5", "mod_renyi_1", "mod_renyi_2")
# 3: rows that no slice scores hold NaN (see `mmia.targets.generative.stat_rows`).
STATS_VERSION = "3"


def stats_from_logits(logits, targets):
    """Statistics of next-token distributions: `logits` (..., V), `targets` (...) -> dict of (...) float32.

    Works on torch tensors; computes in float32 whatever the model's dtype.
    """
    return stats_from_rows(logits, targets, None)


def stats_from_rows(logits, targets, n_target: int | None):
    """`stats_from_logits` where only the first `n_target` rows (of the leading dimension) need
    the target-dependent statistics (TARGET_STATS); the rest get DIST_STATS only. Returns
    {DIST_STATS: (...), TARGET_STATS: (n_target, ...)}; `targets` needs only its first n_target rows.

    Callers order the rows so the ones scored with their true next token come first, and
    skip the vocabulary-sized work of the target statistics everywhere else.
    """
    import torch

    # One log_softmax and one exp serve every statistic; sums over the vocabulary are dot
    # products (torch.linalg.vecdot), so few V-sized temporaries exist at once; p^2 and
    # sqrt(p) reuse p instead of exponentiating again.
    dot = torch.linalg.vecdot
    lp = torch.log_softmax(logits.float(), dim=-1)
    p = lp.exp()
    plp = p * lp
    entropy = -plp.sum(-1)
    sum_p2 = dot(p, p)
    if p.shape[-1] > 1:
        top2 = p.topk(2, dim=-1).values
        gap = top2[..., 0] - top2[..., 1]
        p_max = top2[..., 0]
    else:
        gap = p[..., 0]
        p_max = p[..., 0]
    out = {
        "entropy": entropy,
        "renyi_0.5": 2.0 * torch.log(p.sqrt().sum(-1)),
        "renyi_2": -torch.log(sum_p2),
        "renyi_inf": -torch.log(p_max),
        "gap": gap,
    }
    if n_target is not None:
        lp, p, plp, entropy, sum_p2 = lp[:n_target], p[:n_target], plp[:n_target], entropy[:n_target], sum_p2[:n_target]
        targets = targets[:n_target]
    logp = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p_y = logp.exp()
    second = dot(plp, lp)  # E_p[(log p)^2]
    del plp
    out["logp"] = logp
    out["lp_std"] = (second - entropy * entropy).clamp_min(0).sqrt()
    # Modified Rényi: sums over i != y are the full sums minus the y term.
    one_m = (1.0 - p).clamp_min_(0)
    one_m_y = (1.0 - p_y).clamp_min(0)
    log1m_y = torch.log1p(-p_y.clamp_max(1 - 1e-7))
    s1 = dot(p, torch.log(one_m.clamp_min(1e-7))) - p_y * log1m_y
    out["mod_renyi_1"] = -(one_m_y * logp) - s1
    # b = 0.5: sum_i p_i (1-p_i)^0.5 - p_i;  b = 1: sum_i p_i (1-p_i) - p_i = -sum_i p_i^2
    s05 = dot(p, one_m.sqrt_()) - 1.0 - (p_y * one_m_y.sqrt() - p_y)
    out["mod_renyi_0.5"] = -(one_m_y * p_y.sqrt() - one_m_y + s05) / 0.5
    s2 = -sum_p2 + p_y * p_y
    out["mod_renyi_2"] = -(one_m_y * p_y - one_m_y + s2)
    return out
