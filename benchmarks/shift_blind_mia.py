"""Blind shift checks on the published Blind-MIA text sets, side by side with the published figures.

Runs `mmia.shift.run_shift` on multi_web.jsonl and laion_mi.jsonl (text methods, 5 folds,
`--seed`, default 0) and prints, per method, AUC and TPR@1%FPR next to the published blind results
(Das, Zhang, Tramèr 2024, Table in ../shared/data/blind-mia/README.md), the ratio to them, and
the wall and CPU time of the whole text check against its 3-minute budget (the machine's other
load is printed too: on shared cores, wall time measures the neighbours as much as this code).

    PYTHONPATH=src .venv/bin/python benchmarks/shift_blind_mia.py [--data DIR] [--threads 1] [--methods a,b]
        [--seed 0] [--half all|A|B]

`--half A` (or `B`) keeps one fixed random half of each set (a seeded permutation, the same on
every run): recipes are chosen on half A with one CV seed and reported on half B with another,
so the reported figures are not the ones the choices were tuned on (docs/shift.md).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

PUBLISHED = {  # set -> (metric, published blind value)
    "multi_web": {"auc": 0.980, "tpr@1%": 0.930},
    "laion_mi": {"tpr@1%": 0.089},
}
BUDGET_S = {"laion_mi": 180.0}
HALF_SEED = 20261123  # the fixed permutation that defines halves A and B


def half_of(dataset, half: str):
    """Half A or B of a dataset (a fixed seeded permutation), or the whole set for "all"."""
    import numpy as np

    if half == "all":
        return dataset
    perm = np.random.default_rng(HALF_SEED).permutation(len(dataset))
    cut = len(dataset) // 2
    return dataset.subset(np.sort(perm[:cut] if half == "A" else perm[cut:]).tolist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/blind-mia"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="bag_of_words,greedy_ngrams,text_format,date_detection")
    ap.add_argument("--seed", type=int, default=0, help="seed of the stratified folds")
    ap.add_argument("--half", choices=("all", "A", "B"), default="all")
    ap.add_argument("--sets", default="multi_web,laion_mi")
    args = ap.parse_args()

    from mmia import progress
    from mmia.data import load_dataset
    from mmia.shift import run_shift

    progress.set_quiet(True)
    methods = [m for m in args.methods.split(",") if m]
    print(f"cpus visible: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, threads: {args.threads}")
    for name in args.sets.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        ds = half_of(load_dataset(args.data / f"{name}.jsonl", require_labels=True), args.half)
        section, _ = run_shift(ds, methods, folds=5, seed=args.seed, threads=args.threads)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        pub = PUBLISHED.get(name, {})
        print(f"\n{name} (half {args.half}, fold seed {args.seed}): {len(ds)} rows, verdict: {section.verdict}")
        print(f"{'method':28s} {'AUC':>6s} {'95% CI':>13s} {'TPR@1%':>7s} {'TPR@0.1%':>8s} {'s':>6s}")
        for e in section.attacks:
            lo, hi = e.auc_ci95
            print(f"{e.name:28s} {e.auc:6.3f} {lo:6.3f}-{hi:5.3f} {e.tpr_at_fpr['0.01']:7.3f} "
                  f"{e.tpr_at_fpr['0.001']:8.3f} {e.seconds:6.1f}")
        best_auc = max(e.auc for e in section.attacks)
        best_tpr = max(e.tpr_at_fpr["0.01"] for e in section.attacks)
        if "auc" in pub:
            print(f"best AUC {best_auc:.3f} vs published {pub['auc']:.3f}: ratio {best_auc / pub['auc']:.3f}")
        if "tpr@1%" in pub:
            ratio = best_tpr / pub["tpr@1%"]
            print(f"best TPR@1%FPR {best_tpr:.3f} vs published {pub['tpr@1%']:.3f}: ratio {ratio:.3f}")
        budget = BUDGET_S.get(name)
        extra = f" vs budget {budget:.0f} s: ratio {wall / budget:.2f}" if budget else ""
        print(f"whole check (load + features + {len(methods)} methods x 5 folds): {wall:.1f} s wall{extra}; "
              f"{cpu:.1f} s CPU (this process; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
