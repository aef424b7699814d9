"""UMID on three clip-identities builds, and its decision rule chosen leave-one-build-out.

    PYTHONPATH=src python benchmarks/umid_builds.py --dir DIR

Builds (or reuses, in DIR) clip-identities seed 1 and a variant of other shapes (seed 2: another
name pool and drawing; towers of width 128 and 3 layers instead of 96 and 2); seed 0 is the cached
demo build. Each is audited as `mmia demo` audits it (default settings, the controls). Then, for
each build held out, the decision rule (the ensemble, its two-sided form or one signal) with the
best mean AUC on the other two builds is scored on the held-out one, beside `umid` itself and the
no-inversion and name-likeness controls.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

VARIANT = dict(width=128, layers=3, heads=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from mmia.cache import default_cache_dir
    from mmia.demo.steps import DemoContext
    from mmia.testbeds.base import Testbed
    from mmia.testbeds.build import build_testbed
    from mmia.testbeds.clip_identities import build_clip_identities
    from mmia.umid.demo_step import umid_demo_step

    def built(name, seed, **overrides):
        d = args.dir / name
        return Testbed.from_dir(d) if (d / "manifest.json").exists() else build_clip_identities(d, seed=seed,
                                                                                                **overrides)

    builds = {
        "seed 0": (build_testbed("clip-identities", seed=0), default_cache_dir(), 0),
        "seed 1": (built("seed1", 1), args.dir / "cache", 1),
        "variant (seed 2, width 128, 3 layers)": (built("variant", 2, **VARIANT), args.dir / "cache", 2),
    }
    aucs = {}
    for name, (tb, cache, seed) in builds.items():
        ctx = DemoContext(out_dir=args.dir / "out", cache_dir=cache, seed=seed, quick=False)
        [(section, _)] = umid_demo_step(tb, ctx)
        aucs[name] = {e.name: (e.auc, e.auc_ci95) for e in section.attacks}
        print(name, {k: round(v[0], 3) for k, v in aucs[name].items()}, flush=True)
    rules = [r for r in aucs["seed 0"] if r == "umid" or r.startswith("umid:")]
    for held in builds:
        others = [b for b in builds if b != held]
        best = max(rules, key=lambda r: sum(aucs[b][r][0] for b in others))
        auc, (lo, hi) = aucs[held][best]
        a = aucs[held]
        print(f"held out {held}: chosen on the others {best} {auc:.3f} [{lo:.2f}, {hi:.2f}]; umid {a['umid'][0]:.3f}; "
              f"no-inversion control {a['umid-embedding-control'][0]:.3f}; name control "
              f"{a['umid-name-control'][0]:.3f}")


if __name__ == "__main__":
    main()
