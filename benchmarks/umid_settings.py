"""UMID's inversion settings chosen leave-one-build-out, on several builds of one testbed.

    PYTHONPATH=src python benchmarks/umid_settings.py --builds tbA tbB tbC [--grid clip|clap] [--cache DIR]

Each build (a clip-identities or clap-voices testbed folder) is audited at every setting of the
grid: UMID's ensemble, its single signals, and the no-inversion control (the name-reference
control is left out: it doubles the inversions). Then for each build held out, the setting with
the best mean `umid` AUC on the other builds is scored on the held-out one, beside the default
setting, the best single signal of that setting and the no-inversion control, with 95% intervals.
Inversions are cached per query and setting (the mmia cache), so a rerun reads them back.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

GRIDS = {
    # name -> UmidConfig overrides; the first is the default
    "clip": {
        "pixels 8x60 (default)": {},
        "pixels 8x120": {"steps": 120},
        "pixels 4x30": {"restarts": 4, "steps": 30},
        "latent 4x4 8x60": {"param": "latent", "grid": 4},
        "pixels 8x60, 200 references": {"reference_size": 200},
    },
    # CLAP waveform inversion costs ~9x CLIP's per step: the demo's 4x30 is the base here
    "clap": {
        "waveform 4x30 (demo)": {"restarts": 4, "steps": 30, "reference_size": 50},
        "waveform 4x60": {"restarts": 4, "steps": 60, "reference_size": 50},
        "latent log-mel 4x4 4x30": {"restarts": 4, "steps": 30, "reference_size": 50, "param": "latent", "grid": 4},
        "latent log-mel 8x8 4x30": {"restarts": 4, "steps": 30, "reference_size": 50, "param": "latent", "grid": 8},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=Path, nargs="+", required=True)
    ap.add_argument("--grid", choices=list(GRIDS), default="clip")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from mmia.cache import Cache, default_cache_dir
    from mmia.testbeds.base import Testbed
    from mmia.umid.api import audit_queries, to_results
    from mmia.umid.audit import UmidConfig

    grid = GRIDS[args.grid]
    res: dict[str, dict[str, dict]] = {}
    t0 = time.time()
    with Cache(args.cache or default_cache_dir()) as cache:
        for d in args.builds:
            tb = Testbed.from_dir(d)
            name = f"{d.name} (seed {tb.manifest['seed']})"
            res[name] = {}
            for setting, over in grid.items():
                t1 = time.time()
                cfg = UmidConfig(seed=tb.manifest["seed"], **over)
                out = audit_queries(tb.split_for("names"), tb.targets["target"], cfg, cache=cache)
                section, _ = to_results(out, name=name, queries=tb.split_for("names"), target=tb.targets["target"])
                entries = {e.name: e for e in section.attacks}
                res[name][setting] = entries
                u, c = entries["umid"], entries["umid-embedding-control"]
                print(f"{name:28s} {setting:30s} umid {u.auc:.3f} control {c.auc:.3f} ({time.time() - t1:.0f} s)",
                      flush=True)
    default = next(iter(grid))

    def fmt(e):
        lo, hi = e.auc_ci95
        return f"{e.auc:.3f} [{lo:.2f}, {hi:.2f}]"

    def best_signal(entries):
        sig = [e for n, e in entries.items() if n.startswith("umid:") and n != "umid:two-sided"]
        return max(sig, key=lambda e: e.auc)

    print("\n| build | setting | umid | best single signal | no-inversion control |")
    print("|---|---|---|---|---|")
    for b, by_setting in res.items():
        for setting, e in by_setting.items():
            sig = best_signal(e)
            print(f"| {b} | {setting} | {fmt(e['umid'])} | {sig.name.split(':', 1)[1]} {fmt(sig)} | "
                  f"{fmt(e['umid-embedding-control'])} |")
    print("\n| held out | setting chosen on the others | its umid | default umid | best single signal "
          "(chosen setting) | no-inversion control |")
    print("|---|---|---|---|---|---|")
    for held in res:
        others = [b for b in res if b != held]
        if not others:
            break
        chosen = max(grid, key=lambda s: sum(res[b][s]["umid"].auc for b in others))
        e = res[held][chosen]
        b = best_signal(e)
        print(f"| {held} | {chosen} | {fmt(e['umid'])} | {fmt(res[held][default]['umid'])} | "
              f"{b.name.split(':', 1)[1]} {fmt(b)} | {fmt(e['umid-embedding-control'])} |")
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
