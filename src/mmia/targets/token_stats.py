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
# 4: lp_std from the centred second moment (`_lp_std`); caches of the one-pass form are stale.
STATS_VERSION = "4"


def stats_from_logits(logits, targets):
    """Statistics of next-token distributions: `logits` (..., V), `targets` (...) -> dict of (...) float32.

    Works on torch tensors; computes in float32 whatever the model's dtype.
    """
    return stats_from_rows(logits, targets, None)


def stats_from_rows(logits, targets, n_target: int | None, work: dict | None = None):
    """`stats_from_logits` where only the first `n_target` rows (of the leading dimension) need
    the target-dependent statistics (TARGET_STATS); the rest get DIST_STATS only. Returns
    {DIST_STATS: (...), TARGET_STATS: (n_target, ...)}; `targets` needs only its first n_target rows.

    Callers order the rows so the ones scored with their true next token come first, and
    skip the vocabulary-sized work of the target statistics everywhere else. `work` (a dict the
    caller keeps between calls, see `stats_workspace`) holds the vocabulary-sized temporaries:
    fresh multi-megabyte tensors cost a page fault per 4 KiB on CPU (glibc hands such blocks
    back to the kernel when several are freed at once), a sizeable part of the statistics'
    time; reused buffers cost nothing. The arithmetic is the same either way, bit for bit.
    """

    shape, vocab = logits.shape[:-1], logits.shape[-1]
    x = logits.reshape(-1, vocab)
    n = x.shape[0]
    k = n if n_target is None else n_target * (n // shape[0] if len(shape) and shape[0] else 1)
    out = _stats_2d(x, targets.reshape(-1)[:k], k, work)
    for key in out:
        lead = shape if key in DIST_STATS or n_target is None else (n_target, *shape[1:])
        out[key] = out[key].reshape(lead)
    return out


def stats_workspace() -> dict:
    """An empty workspace for `stats_from_rows` (its buffers grow to the largest group seen)."""
    return {}


def gather_rows(flat, index, work: dict | None):
    """`flat.index_select(0, index)`, into the workspace's input buffer where there is one."""
    import torch

    if work is None or flat.dtype != torch.float32:
        return flat.index_select(0, index)
    n, vocab = len(index), flat.shape[1]
    buf = work.get("rows")
    if buf is None or buf.shape[1] != vocab or buf.shape[0] < n or buf.device != flat.device:
        buf = work["rows"] = torch.empty((n, vocab), dtype=torch.float32, device=flat.device)
    return torch.index_select(flat, 0, index, out=buf[:n])


def _buffers(work: dict | None, n: int, vocab: int, like, count: int):
    """`count` (n, vocab) float32 tensors: views of the workspace's buffers, or fresh ones."""
    import torch

    if work is None:
        return [torch.empty((n, vocab), dtype=torch.float32, device=like.device) for _ in range(count)]
    bufs = work.get("bufs")
    if bufs is None or bufs[0].shape[1] != vocab or bufs[0].shape[0] < n or bufs[0].device != like.device:
        bufs = work["bufs"] = [torch.empty((n, vocab), dtype=torch.float32, device=like.device) for _ in range(count)]
    return [b[:n] for b in bufs]


def _stats_2d(x, targets, k: int, work: dict | None):
    """The statistics of rows `x` (n, V); the target ones for the first k rows only."""
    import torch

    # One log_softmax and one exp serve every statistic; sums over the vocabulary are dot
    # products, p^2 and sqrt(p) reuse p instead of exponentiating again. Every vocabulary-sized
    # result goes into a buffer (out=) instead of a fresh tensor; a dot product is the product
    # into a buffer, then its sum: what torch.linalg.vecdot computes, bit for bit, without
    # vecdot's own temporary.
    n, vocab = x.shape
    lp, p, plp, aux, one_m, prod = _buffers(work, n, vocab, x, 6)

    def dot(a, b):
        return torch.mul(a, b, out=prod[: a.shape[0]]).sum(-1)

    x = x.float()  # the same tensor when the logits are float32 already
    torch.log_softmax(x, dim=-1, out=lp)
    torch.exp(lp, out=p)
    torch.mul(p, lp, out=plp)
    entropy = -plp.sum(-1)
    sum_p2 = dot(p, p)
    sum_sqrt = torch.sqrt(p, out=aux).sum(-1)
    if vocab > 1:
        p_max, gap = _top_gap(p, aux, prod)
    else:
        gap = p[..., 0].clone()  # not a view of a buffer the next call overwrites
        p_max = gap
    out = {
        "entropy": entropy,
        "renyi_0.5": 2.0 * torch.log(sum_sqrt),
        "renyi_2": -torch.log(sum_p2),
        "renyi_inf": -torch.log(p_max),
        "gap": gap,
    }
    lp, p, aux, one_m = lp[:k], p[:k], aux[:k], one_m[:k]
    entropy, sum_p2 = entropy[:k], sum_p2[:k]
    logp = lp.gather(-1, targets[:k].unsqueeze(-1)).squeeze(-1)
    p_y = logp.exp()
    out["logp"] = logp
    out["lp_std"] = _lp_std(x[:k], p, aux, one_m, dot)  # one_m is free until the modified Rényi
    # Modified Rényi: sums over i != y are the full sums minus the y term.
    torch.neg(p, out=one_m).add_(1.0).clamp_min_(0)  # 1 - p, exactly: -p + 1 rounds as 1 - p does
    one_m_y = (1.0 - p_y).clamp_min(0)
    log1m_y = torch.log1p(-p_y.clamp_max(1 - 1e-7))
    torch.clamp_min(one_m, 1e-7, out=aux).log_()
    s1 = dot(p, aux) - p_y * log1m_y
    out["mod_renyi_1"] = -(one_m_y * logp) - s1
    # b = 0.5: sum_i p_i (1-p_i)^0.5 - p_i;  b = 1: sum_i p_i (1-p_i) - p_i = -sum_i p_i^2
    s05 = dot(p, one_m.sqrt_()) - 1.0 - (p_y * one_m_y.sqrt() - p_y)
    out["mod_renyi_0.5"] = -(one_m_y * p_y.sqrt() - one_m_y + s05) / 0.5
    s2 = -sum_p2 + p_y * p_y
    out["mod_renyi_2"] = -(one_m_y * p_y - one_m_y + s2)
    return out


def _lp_std(x, p, d, pd, dot):
    """Standard deviation of log p(z), z ~ p, for rows of logits `x` with probabilities `p`.

    log p = x - logsumexp(x), so the spread of log p under p is the spread of the logits
    themselves: Var = sum_i p_i (x_i - xbar)^2 with xbar = E_p[x], a sum of non-negative terms.
    The one-pass E[(log p)^2] - H^2 subtracts two numbers near (log V)^2 and, on near-uniform
    rows, keeps few of sigma's digits (~5e-4 relative at sigma 0.1, none at 1e-3, V = 300):
    enough for another batch shape to move Min-K%++ by 1e-4. Centring on the logits (exact
    inputs) rather than on log p (rounded near log V) also keeps the digits at sigma ~1e-3.
    The correction (sum_i p_i d_i)^2 removes what rounding left in xbar (the corrected
    two-pass form). `d`, `pd`: (k, V) buffers this overwrites; `dot` sums a product.
    """
    import torch

    xbar = dot(p, x)
    torch.sub(x, xbar.unsqueeze(-1), out=d)
    torch.mul(p, d, out=pd)
    drift = pd.sum(-1)
    return (dot(pd, d) - drift * drift).clamp_min(0).sqrt()


def _top_gap(p, aux, scratch):
    """(p_(1), p_(1) - p_(2)) per row, as `p.topk(2)` gives them, bit for bit, at about half its cost.

    With m = max p: m - p_j >= 0, zero at the maxima; the gap is the smallest positive m - p_j
    (float subtraction is monotone, so this is m - p_(2) rounded as topk's difference is), or 0
    when the maximum occurs twice (topk's second value is then the maximum). `aux` and `scratch`
    are (n, V) buffers this overwrites.
    """
    import torch

    p_max = p.amax(-1)
    s = torch.sub(p_max.unsqueeze(-1), p, out=scratch)
    torch.sign(s, out=aux)  # 1 below the maximum, 0 at it
    n_max = p.shape[-1] - aux.sum(-1)  # a sum of 0s and 1s: exact below 2^24 entries
    s.add_(aux.neg_().add_(1.0), alpha=2.0)  # the maxima move to 2 (> any m - p_j); the rest stay as they are
    return p_max, s.amin(-1).masked_fill_(n_max > 1, 0.0)
