"""FiMMIA in two regimes beside the demo's, at the demo's size (400 samples, K=8).

    PYTHONPATH=src python benchmarks/fimmia_regimes.py weak --dir DIR   # target fine-tuned 1 epoch, not 4
    PYTHONPATH=src python benchmarks/fimmia_regimes.py cross --dir DIR  # train on seed 0's build, score seed 1's

`weak` builds (or reuses) a vlm testbed whose target memorises less and runs the demo's FiMMIA
step on it (both protocols). `cross` builds (or reuses) a seed-1 vlm testbed in DIR and scores
it with `fimmia` and `fimmia+loss` trained on the seed-0 build (`mmia testbed vlm`, the cached
one) with that build's target: the reference's intended use, an attack trained once and applied
to another model. Prints AUC [95% CI] and TPR@1%FPR per entry.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def _print(entries) -> None:
    for a in entries:
        if a.name.startswith("neighbourhood:") and a.name != "neighbourhood:chosen":
            continue
        lo, hi = a.auc_ci95
        print(f"  {a.name:40s} {a.auc:.3f} [{lo:.2f}, {hi:.2f}] TPR@1%FPR {a.tpr_at_fpr['0.01']:.3f}", flush=True)


def weak(root: Path, cache_dir: Path) -> None:
    from mmia.demo.steps import DemoContext
    from mmia.fimmia.demo_step import DEMO_K, DEMO_SAMPLES, run_on_testbed
    from mmia.testbeds.base import Testbed
    from mmia.testbeds.vlm import Stage, VlmSettings, build_vlm

    if (root / "manifest.json").exists():
        tb = Testbed.from_dir(root)
    else:
        tb = build_vlm(root, seed=0, settings=VlmSettings(target=Stage(epochs=1, lr=1e-3, batch=16)))
    ctx = DemoContext(out_dir=root / "out", cache_dir=cache_dir, seed=0, quick=False)
    for section, _ in run_on_testbed(tb, ctx, k=DEMO_K, max_samples=DEMO_SAMPLES):
        print(section.name, flush=True)
        _print(section.attacks)


def cross(root: Path, cache_dir: Path) -> None:
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.fimmia.api import _entries, train_model
    from mmia.fimmia.demo_step import DEMO_K, DEMO_SAMPLES, balanced_subset
    from mmia.fimmia.network import TrainConfig
    from mmia.fimmia.pipeline import FeatureExtractor, config_for_testbed
    from mmia.perturb import NeighbourConfig
    from mmia.testbeds.base import Testbed
    from mmia.testbeds.build import build_testbed
    from mmia.testbeds.vlm import build_vlm

    tb1 = Testbed.from_dir(root) if (root / "manifest.json").exists() else build_vlm(root, seed=1)
    tb0 = build_testbed("vlm", seed=0, cache_dir=cache_dir)
    cfg = config_for_testbed(tb0.manifest, neighbours=NeighbourConfig(k=DEMO_K, field="answer+media", seed=0))
    ds0 = balanced_subset(load_dataset(tb0.split_for("membership")), DEMO_SAMPLES, 0)
    ds1 = balanced_subset(load_dataset(tb1.split_for("membership")), DEMO_SAMPLES, 1)
    if set(ds0.ids) & set(ds1.ids):
        raise SystemExit("the two builds share sample ids: not a transfer")
    with Cache(cache_dir) as cache:
        f0 = FeatureExtractor(tb0.targets["target"], cfg, cache).features(ds0, "seed-0 build")
        f1 = FeatureExtractor(tb1.targets["target"], cfg, cache).features(ds1, "seed-1 build")
    tc = TrainConfig(seed=0)
    common = dict(protocol="labelled", target=tb0.targets["target"], train_cfg=tc)
    models = {"fimmia": train_model(f0, cfg, **common), "fimmia+loss": train_model(f0, cfg, use_loss=True, **common)}
    entries, _ = _entries(f1, models, 0.0)
    print(f"cross-build: trained on {len(ds0)} samples of seed 0's build, scored on {len(ds1)} of seed 1's")
    _print(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("regime", choices=["weak", "cross"])
    ap.add_argument("--dir", type=Path, required=True, help="where the regime's testbed is built (or reused)")
    ap.add_argument("--cache", type=Path, default=None, help="mmia cache folder (default: the user cache)")
    args = ap.parse_args()
    from mmia.cache import default_cache_dir

    torch.set_num_threads(1)
    t0 = time.time()
    (weak if args.regime == "weak" else cross)(args.dir, args.cache or default_cache_dir())
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
