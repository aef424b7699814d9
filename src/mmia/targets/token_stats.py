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
STATS_VERSION = "1"


def stats_from_logits(logits, targets):
    """Statistics of next-token distributions: `logits` (..., V), `targets` (...) -> dict of (...) float32.

    Works on torch tensors; computes in float32 whatever the model's dtype.
    """
    import torch

    lp = torch.log_softmax(logits.float(), dim=-1)
    p = lp.exp()
    logp = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p_y = logp.exp()
    plp = p * lp
    entropy = -plp.sum(-1)
    second = (plp * lp).sum(-1)  # E_p[(log p)^2]
    lp_std = (second - entropy * entropy).clamp_min(0).sqrt()
    top2 = p.topk(2, dim=-1).values if p.shape[-1] > 1 else torch.cat([p, torch.zeros_like(p)], -1)
    out = {
        "logp": logp,
        "entropy": entropy,
        "renyi_0.5": 2.0 * torch.logsumexp(0.5 * lp, dim=-1),
        "renyi_2": -torch.logsumexp(2.0 * lp, dim=-1),
        "renyi_inf": -lp.max(-1).values,
        "lp_std": lp_std,
        "gap": top2[..., 0] - top2[..., 1],
    }
    # Modified Rényi: sums over i != y are the full sums minus the y term.
    one_m = (1.0 - p).clamp_min(0)
    one_m_y = (1.0 - p_y).clamp_min(0)
    log1m = torch.log1p(-p.clamp_max(1 - 1e-7))
    log1m_y = torch.log1p(-p_y.clamp_max(1 - 1e-7))
    s1 = (p * log1m).sum(-1) - p_y * log1m_y
    out["mod_renyi_1"] = -(one_m_y * logp) - s1
    for a, b in ((0.5, 0.5), (2, 1.0)):
        s = (p * one_m.pow(b) - p).sum(-1) - (p_y * one_m_y.pow(b) - p_y)
        out[f"mod_renyi_{a}"] = -(one_m_y * p_y.pow(b) - one_m_y + s) / b
    return out
