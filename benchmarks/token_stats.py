"""Cost of Min-K%++'s sigma (`lp_std`) in the statistics' hot path, three ways side by side.

sigma is the standard deviation of log p(z) under the model's own next-token distribution. Timed
on the same rows and the same reused buffers, one after another in each round:
1. one-pass: sqrt(E[(log p)^2] - H^2), the form mmia used before (loses sigma's digits on
   near-uniform rows);
2. centred on log p: sum_i p_i (log p_i + H)^2, with the two-pass correction;
3. centred on the logits: sum_i p_i (x_i - E_p[x])^2, with the correction (what mmia uses).
Each is also shown as a share of one whole `stats_from_rows` call (every statistic) on the same
rows, and its worst relative error against a float64 reference on those rows is printed.

Usage: python benchmarks/token_stats.py [--rounds R] [--vocab V ...] [--scale S]
Rows per call are what the CPU engine uses (about 2^19 logits, at least 8 rows); logits are
N(0, S^2), S = 0.1 by default (a near-uniform row, where the one-pass form goes wrong).
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--vocab", type=int, nargs="+", default=[512, 32000, 152064])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), logits N(0, {args.scale}^2), "
          f"median of {args.rounds} rounds")

    for vocab in args.vocab:
        _measure(vocab, args.rounds, args.scale)


def _measure(vocab: int, rounds: int, scale: float) -> None:
    import torch

    from mmia.targets.generative import _stats_group_cpu
    from mmia.targets.token_stats import stats_from_rows, stats_workspace

    n, _ = _stats_group_cpu(vocab)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, vocab, generator=g) * scale
    y = torch.randint(0, vocab, (n,), generator=g)
    lp, p, plp, d, pd, prod = (torch.empty(n, vocab) for _ in range(6))
    torch.log_softmax(x, -1, out=lp)
    torch.exp(lp, out=p)
    torch.mul(p, lp, out=plp)
    entropy = -plp.sum(-1)

    def dot(a, b):
        return torch.mul(a, b, out=prod).sum(-1)

    def one_pass():
        return (dot(plp, lp) - entropy * entropy).clamp_min(0).sqrt()

    def centred_lp():
        torch.add(lp, entropy.unsqueeze(-1), out=d)
        torch.mul(p, d, out=pd)
        c = pd.sum(-1)
        return (dot(pd, d) - c * c).clamp_min(0).sqrt()

    def centred_logits():
        xbar = dot(p, x)
        torch.sub(x, xbar.unsqueeze(-1), out=d)
        torch.mul(p, d, out=pd)
        c = pd.sum(-1)
        return (dot(pd, d) - c * c).clamp_min(0).sqrt()

    work = stats_workspace()

    def whole():
        return stats_from_rows(x, y, n, work)

    ways = {"one-pass": one_pass, "centred on log p": centred_lp, "centred on logits": centred_logits,
            "all statistics": whole}
    times = {k: [] for k in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            fn()  # warm: buffers touched, caches filled
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            times[name].append((time.perf_counter() - t0) / 5)
    med = {k: statistics.median(v) for k, v in times.items()}

    x64 = x.double()
    lp64 = torch.log_softmax(x64, -1)
    p64 = lp64.exp()
    ref = (p64 * (lp64 - (p64 * lp64).sum(-1, keepdim=True)) ** 2).sum(-1).sqrt()
    whole_ms = med["all statistics"] * 1e3
    print(f"\nV = {vocab}, {n} rows a call; all statistics {whole_ms:.3f} ms a call")
    for name in ("one-pass", "centred on log p", "centred on logits"):
        err = float(((ways[name]().double() - ref).abs() / ref).max())
        print(f"  {name:<18} {med[name] * 1e3:7.3f} ms  ({med[name] / med['all statistics']:5.1%} of all) "
              f" max rel. error {err:.1e}")
    extra = (med["centred on logits"] - med["one-pass"]) / (med["all statistics"] - med["centred on logits"]
                                                            + med["one-pass"])
    print(f"  all statistics, centred on logits vs one-pass: {1 + extra:.3f}x")



if __name__ == "__main__":
    main()
