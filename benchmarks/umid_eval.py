"""Build (or reuse) a UMID testbed and audit it with UMID, its controls and baselines.

    python benchmarks/umid_eval.py clip-identities --dir tb/clip --out results/clip [--seed 0]

What `mmia demo` runs for these testbeds, on its own: prints AUC and TPR@1%FPR per method
and writes results.json, scores.parquet and report.html into --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testbed", choices=["clip-identities", "clap-voices"])
    ap.add_argument("--dir", type=Path, required=True, help="testbed directory (built here if empty)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from mmia.demo.steps import DemoContext
    from mmia.report import save_run
    from mmia.results import RunResult
    from mmia.testbeds.base import Testbed

    torch.set_num_threads(1)
    t0 = time.time()
    if (args.dir / "manifest.json").exists():
        tb = Testbed.from_dir(args.dir)
    elif args.testbed == "clip-identities":
        from mmia.testbeds.clip_identities import build_clip_identities

        tb = build_clip_identities(args.dir, seed=args.seed, quick=args.quick)
    else:
        from mmia.testbeds.clap_voices import build_clap_voices

        tb = build_clap_voices(args.dir, seed=args.seed, quick=args.quick)
    built = time.time() - t0
    from mmia.umid.demo_step import umid_demo_step

    ctx = DemoContext(out_dir=args.out, cache_dir=args.out / "cache", seed=args.seed, quick=args.quick)
    [(section, table)] = umid_demo_step(tb, ctx)
    run = RunResult(name=section.name, command="umid", sections=[section],
                    settings={"testbed": tb.manifest.get("build_time_signal"), "build_seconds": round(built, 1),
                              "audit_seconds": round(time.time() - t0 - built, 1)})
    save_run(args.out, run, table)
    print(f"{tb.name} (seed {tb.manifest['seed']}): build-time signal {tb.manifest['build_time_signal']}")
    print(f"{'method':34s} {'AUC':>6s} {'95% CI':>15s} {'TPR@1%':>7s} {'TPR@5%':>7s}  votes TPR/FPR")
    for e in section.attacks:
        ci = f"[{e.auc_ci95[0]:.2f}, {e.auc_ci95[1]:.2f}]" if e.auc_ci95 else ""
        extra = getattr(e, "vote_tpr", None)
        votes = f"  {extra:.2f}/{getattr(e, 'vote_fpr', 0):.2f}" if extra is not None else ""
        print(f"{e.name:34s} {e.auc:6.3f} {ci:>15s} {e.tpr_at_fpr['0.01']:7.3f} {e.tpr_at_fpr['0.05']:7.3f}{votes}")
    print(f"build {built:.0f} s, audit {time.time() - t0 - built:.0f} s; report: {args.out / 'report.html'}")


if __name__ == "__main__":
    main()
