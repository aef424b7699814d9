"""FiMMIA's neighbour sweep at the demo's size: chosen on the training half, reported on the other.

    PYTHONPATH=src python benchmarks/fimmia_sweep.py [--testbed vlm|audio] [--eval-all]

On the testbed's matched split (a balanced 400 samples, K=8, the demo's split into a training
and a disjoint evaluation half), every candidate of `mmia.fimmia.sweep.candidates` (each text
field at 1, 2, 5 edits and 10% of the words; the media alone; the demo's own answer+media) is
scored training-free on the training half; the best trains `fimmia` and `fimmia+loss`, which are
reported on the evaluation half beside the demo configuration's and the loss attack, with 95%
intervals. `--eval-all` also prints every candidate's evaluation-half neighbourhood AUC (a
diagnostic of how well the training-half choice tracks the held-out one; it plays no part in
the choice).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _line(name, labels, scores) -> str:
    from mmia.results import AttackEntry

    e = AttackEntry.from_scores(name, labels, scores)
    lo, hi = e.auc_ci95
    return f"  {name:34s} {e.auc:.3f} [{lo:.2f}, {hi:.2f}]  TPR@1%FPR {e.tpr_at_fpr['0.01']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbed", default="vlm", choices=["vlm", "audio"])
    ap.add_argument("--eval-all", action="store_true")
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from mmia.cache import Cache, default_cache_dir
    from mmia.data import load_dataset
    from mmia.fimmia.api import _entries, train_model
    from mmia.fimmia.demo_step import balanced_subset
    from mmia.fimmia.network import TrainConfig
    from mmia.fimmia.pipeline import FeatureExtractor, config_for_testbed
    from mmia.fimmia.protocols import split_parts
    from mmia.fimmia.sweep import candidates, neighbourhood_auc, sweep_neighbours
    from mmia.perturb import NeighbourConfig
    from mmia.testbeds.build import build_testbed

    t0 = time.time()
    tb = build_testbed(args.testbed, seed=0, cache_dir=default_cache_dir())
    ds = balanced_subset(load_dataset(tb.split_for("membership")), args.samples, 0)
    base = NeighbourConfig(k=args.k, field="answer+media", seed=0)  # the demo's
    cfg = config_for_testbed(tb.manifest, neighbours=base)
    train_ds, eval_ds = split_parts(ds, 0.5, seed=0)
    configs = candidates(base)
    target = tb.targets["target"]
    print(f"{tb.name}: {len(train_ds)} training and {len(eval_ds)} evaluation samples, K={args.k}", flush=True)
    with Cache(default_cache_dir()) as cache:
        scorer = FeatureExtractor(target, cfg, cache).scorer

        def extractor(nc):
            return FeatureExtractor(target, cfg.model_copy(update={"neighbours": nc}), cache, scorer=scorer)

        result, train_feats = sweep_neighbours(configs, lambda nc: extractor(nc).features(train_ds, nc.field))
        print("training-half neighbourhood AUC per candidate (the choice):")
        for name, auc in result.train_auc.items():
            mark = "  <- chosen" if name == result.chosen else ""
            why = f"  (left out: {result.skipped[name]})" if name in result.skipped else ""
            print(f"  {name:20s} {auc:.3f}{mark}{why}", flush=True)
        if args.eval_all:
            print("evaluation-half neighbourhood AUC per candidate (diagnostic only):")
            for name, nc in configs.items():
                if name in result.skipped:
                    continue
                fs = extractor(nc).features(eval_ds, nc.field)
                print(f"  {name:20s} {neighbourhood_auc(fs.loss, fs.labels):.3f}", flush=True)

        tc = TrainConfig(seed=0)
        base_name = next(iter(configs))
        for title, name in (("demo configuration", base_name), ("chosen on the training half", result.chosen)):
            nc = configs[name]
            ccfg = cfg.model_copy(update={"neighbours": nc})
            feats = train_feats[name]
            common = dict(protocol="labelled", target=target, train_cfg=tc,
                          use_text=feats.text is not None, use_media=feats.media is not None)
            models = {"fimmia": train_model(feats, ccfg, **common),
                      "fimmia+loss": train_model(feats, ccfg, use_loss=True, **common)}
            fs = extractor(nc).features(eval_ds, nc.field)
            _, cols = _entries(fs, models, 0.0)
            print(f"{title} ({name}), on the evaluation half:")
            for col in ("fimmia", "fimmia+loss", "neighbourhood", "loss"):
                print(_line(col, fs.labels, np.asarray(cols[col])), flush=True)
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
