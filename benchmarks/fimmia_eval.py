"""FiMMIA against the score attacks on a built testbed: the `mmia demo` FiMMIA step, alone (K=24 here).

Trains on half of the matched split (protocol (a) labelled, and (b) two-model when the testbed
has a base model), reports on the disjoint other half, with the ablation (loss / +text / +media)
and the best score attack on the same held-out samples.

    PYTHONPATH=src python benchmarks/fimmia_eval.py TESTBED_DIR --out DIR [--k 24] [--labelled-only]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testbed", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=24, help="neighbours per sample")
    ap.add_argument("--quick", action="store_true", help="short training")
    ap.add_argument("--labelled-only", action="store_true", help="skip the two-model protocol")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from mmia.demo.steps import DemoContext
    from mmia.fimmia.demo_step import run_on_testbed
    from mmia.report import save_run
    from mmia.results import RunResult
    from mmia.testbeds.base import Testbed

    tb = Testbed.from_dir(args.testbed)
    ctx = DemoContext(out_dir=args.out, cache_dir=args.cache or args.out / "cache", seed=args.seed, quick=args.quick)
    t0 = time.perf_counter()
    parts = run_on_testbed(tb, ctx, k=args.k, two_model=not args.labelled_only)
    result = RunResult(
        name="fimmia-eval",
        command="fimmia eval",
        sections=[s for s, _ in parts],
        settings={"testbed": str(args.testbed), "seconds": round(time.perf_counter() - t0, 1)},
    )
    save_run(args.out, result, [t for _, t in parts])
    for section, _ in parts:
        print(f"\n{section.name}  ({section.notes})")
        print(f"{'attack':<40}{'AUC':>7}{'95% CI':>18}{'TPR@1%':>9}{'TPR@5%':>9}")
        for e in section.attacks:
            ci = f"[{e.auc_ci95[0]:.3f}, {e.auc_ci95[1]:.3f}]"
            print(f"{e.name:<40}{e.auc:>7.3f}{ci:>18}{e.tpr_at_fpr['0.01']:>9.3f}{e.tpr_at_fpr['0.05']:>9.3f}")


if __name__ == "__main__":
    main()
