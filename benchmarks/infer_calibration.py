"""Calibration and power of `mmia infer` (dataset inference) on the testbeds.

Per testbed, every score-attack column is computed once for every row of its `membership` split
(the score attacks' engine and cache; the base model as reference where the testbed has one);
for `NAME/names`, UMID's signals of every name of a contrastive testbed's `names` split.
Then, on those features:
- calibration: R null splits, each drawing two disjoint sets of non-members (a pseudo-suspect
  set and a validation set, n each) and a fresh split seed; the rates of p < 0.05 and p < 0.01
  (aims: 2-8% and at most 2%), with their binomial 95% intervals;
- power: for suspect sizes 10, 25, 50, 100, 250 (those the testbed has members for), S seeds of
  n members against n non-members; the median p and the share of seeds at p < 0.01, and the
  smallest size found at p < 0.01 in >= 90% of seeds.

    .venv/bin/python benchmarks/infer_calibration.py [--testbeds vlm,audio,clip-identities,clap-voices,
        clip-identities/names,clap-voices/names]
        [--null 400] [--seeds 50] [--out .mmia-bench/infer]

Testbeds are built (or reused from the mmia cache) with `build_testbed`. Prints markdown
tables; writes calibration.json and p_vs_size.png under --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmia.infer.run import SIZES


def _features(testbed) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, rows, labels) of the testbed's membership split (the one the demo step uses)."""
    import dataclasses

    from mmia.attacks.runner import score_samples, select_attacks
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.data.schema import Dataset
    from mmia.targets import load_target

    ds = load_dataset(testbed.split_for("membership"))
    labels = ds.labels()
    unlabelled = Dataset(ds.path, [dataclasses.replace(s, label=None) for s in ds], [])
    target = load_target(testbed.targets["target"])
    generative = target.kind in ("causal-lm", "vlm", "audio-lm")
    reference = load_target(testbed.targets["base"]) if generative and "base" in testbed.targets else None
    specs = select_attacks(None, target.kind, ds.modalities, reference is not None)
    with Cache() as cache:
        scored = score_samples(unlabelled, target, specs, reference=reference, cache=cache)
    if len(scored.ids) != len(ds):
        keep = np.isin(ds.ids, scored.ids)
        labels = labels[keep]
    names = [c for c, v in scored.columns.items() if np.isfinite(v).any()]
    return names, np.column_stack([scored.columns[c] for c in names]), labels


def _name_features(testbed) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, rows, labels) of a contrastive testbed's names (its `names` split): UMID's
    oriented signals at the demo's UMID settings, through infer's own code path and cache."""
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.infer.inputs import unlabelled
    from mmia.infer.names import inversion_target, umid_columns
    from mmia.targets import load_target
    from mmia.umid.audit import UmidConfig
    from mmia.umid.demo_step import demo_settings

    ds = load_dataset(testbed.split_for("names"))
    config = UmidConfig(seed=0, **demo_settings(testbed.target_kind, quick=False))
    target = inversion_target(load_target(testbed.targets["target"]))
    with Cache() as cache:
        columns, _ = umid_columns(unlabelled(ds), target, config, cache=cache, side="all")
    names = list(columns)
    return names, np.column_stack([columns[c] for c in names]), ds.labels()


def _rate_ci(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def calibration(names, x, y, n_null: int, size: int) -> dict:
    from mmia.infer.statistics import split_test

    non = np.flatnonzero(y == 0)
    size = min(size, len(non) // 2)
    ps = []
    for r in range(n_null):
        rng = np.random.default_rng([r, 7])
        pick = rng.permutation(non)[: 2 * size]
        ps.append(split_test(x[pick[:size]], x[pick[size:]], names, seed=r).p_value)
    ps = np.asarray(ps)
    out = {"splits": n_null, "size": size}
    for a in (0.05, 0.01):
        k = int((ps < a).sum())
        out[f"rate_{a}"] = k / n_null
        out[f"ci_{a}"] = _rate_ci(k, n_null)
    out["ks_uniform_p"] = float(__import__("scipy.stats", fromlist=["kstest"]).kstest(ps, "uniform").pvalue)
    return out


def power(names, x, y, n_seeds: int) -> dict:
    from mmia.infer.statistics import split_test

    mem, non = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = {}
    for n in SIZES:
        if n > len(mem) or n > len(non):
            continue
        ps = []
        for s in range(n_seeds):
            rng = np.random.default_rng([s, n, 11])
            ps.append(split_test(x[rng.choice(mem, n, replace=False)], x[rng.choice(non, n, replace=False)],
                                 names, seed=s).p_value)
        ps = np.asarray(ps)
        rows[n] = {"median_p": float(np.median(ps)), "share_p_lt_0.01": float((ps < 0.01).mean()),
                   "share_p_lt_0.05": float((ps < 0.05).mean())}
    smallest = next((n for n, r in rows.items() if r["share_p_lt_0.01"] >= 0.9), None)
    return {"seeds": n_seeds, "sizes": rows, "smallest_size_90pct_at_0.01": smallest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbeds", default="vlm,audio,clip-identities,clap-voices,clip-identities/names,"
                    "clap-voices/names", help="testbeds; NAME/names: a contrastive testbed's names (UMID's signals)")
    ap.add_argument("--null", type=int, default=400, help="null splits per testbed (>= 200)")
    ap.add_argument("--null-size", type=int, default=100, help="rows per side of a null split")
    ap.add_argument("--seeds", type=int, default=50, help="seeds per suspect size")
    ap.add_argument("--out", type=Path, default=Path(".mmia-bench/infer"))
    args = ap.parse_args()

    import torch

    from mmia.report.plots import p_value_plot
    from mmia.testbeds.build import build_testbed

    torch.set_num_threads(2)
    results, curves = {}, {}
    for entry in [t.strip() for t in args.testbeds.split(",") if t.strip()]:
        # NAME/names: the contrastive testbed's names alone, featured by UMID's signals
        name, _, part = entry.partition("/")
        tb = build_testbed(name, seed=0)
        names, x, y = _name_features(tb) if part == "names" else _features(tb)
        name = entry
        cal = calibration(names, x, y, args.null, args.null_size)
        pw = power(names, x, y, args.seeds)
        results[name] = {"features": len(names), "members": int((y == 1).sum()), "nonmembers": int((y == 0).sum()),
                         "calibration": cal, "power": pw}
        sizes = sorted(pw["sizes"])
        curves[name] = (np.asarray(sizes), np.asarray([pw["sizes"][n]["median_p"] for n in sizes]))
        print(f"{name}: {len(names)} features, {results[name]['members']} members / "
              f"{results[name]['nonmembers']} non-members", flush=True)

    print("\n| testbed | null splits (n per side) | p < 0.05 | 95% CI | p < 0.01 | 95% CI | KS vs uniform p |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        c = r["calibration"]
        print(f"| {name} | {c['splits']} ({c['size']}) | {c['rate_0.05']:.3f} | {c['ci_0.05'][0]:.3f}-"
              f"{c['ci_0.05'][1]:.3f} | {c['rate_0.01']:.3f} | {c['ci_0.01'][0]:.3f}-{c['ci_0.01'][1]:.3f} | "
              f"{c['ks_uniform_p']:.2f} |")
    print(f"\n| testbed | {' | '.join(f'n={n}' for n in SIZES)} | smallest n at p<0.01 in >=90% |")
    print("|---|" + "---|" * (len(SIZES) + 1))
    for name, r in results.items():
        cells = []
        for n in SIZES:
            s = r["power"]["sizes"].get(n)
            cells.append("-" if s is None else f"{s['median_p']:.2g} ({100 * s['share_p_lt_0.01']:.0f}%)")
        print(f"| {name} | {' | '.join(cells)} | {r['power']['smallest_size_90pct_at_0.01'] or 'none'} |")
    print("\n(cells: median p over seeds, and the share of seeds at p < 0.01)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    p_value_plot(curves, 0.01, "dataset inference: median p against suspect size", args.out / "p_vs_size.png")
    print(f"\nwrote {args.out / 'calibration.json'} and {args.out / 'p_vs_size.png'}")


if __name__ == "__main__":
    main()
