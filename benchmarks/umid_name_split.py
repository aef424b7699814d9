"""Is an identity testbed's member/non-member name split separable from the names alone?

The blind `blind:sentence_embedding` check (MiniLM embeddings, logistic regression, seeded
stratified 5-fold, out-of-fold AUC) on the names of a testbed's `queries` split, compared with:
- its permutation null: the same pool of 300 names re-split at random `--resplits` times;
- the builders' own split (`mmia.testbeds.names.identity_split`) at seeds `--seeds A B`.
No model is trained; names are generated and split exactly as the builders do it.

    .venv/bin/python benchmarks/umid_name_split.py [--testbed clap-voices] [--seed 0] [--resplits 200] \
        [--seeds 0 50]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbed", default="clap-voices", choices=["clip-identities", "clap-voices"])
    ap.add_argument("--seed", type=int, default=0, help="the build whose split is put against its null")
    ap.add_argument("--resplits", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 50), metavar=("FIRST", "STOP"))
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from mmia import progress
    from mmia.data.ids import stable_seed
    from mmia.metrics import auc
    from mmia.shift.models import dense_classifier
    from mmia.shift.protocol import Plan, out_of_fold_scores
    from mmia.targets.sentences import embed_texts
    from mmia.testbeds.names import identity_split, person_names

    progress.set_quiet(True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    y = np.r_[np.ones(100), np.zeros(100)].astype(int)
    splits = {s: identity_split(args.testbed, s, 100, 100, 100) for s in {args.seed, *range(*args.seeds)}}
    pool = person_names(300, stable_seed(args.testbed, args.seed, "names") % (2**31))
    texts = sorted(set(pool).union(*(m + e for m, _, e in splits.values())))
    with threadpool_limits(1):  # one embedder load for every name
        emb = dict(zip(texts, embed_texts(texts), strict=True))

    def embedded(names: list[str]) -> np.ndarray:
        return np.stack([emb[n] for n in names])

    def blind_auc(E: np.ndarray) -> float:  # blind:sentence_embedding's model and folds (demo seed 0)
        return auc(y, out_of_fold_scores(Plan(E, lambda: dense_classifier(None, 1.0, 0)), y, 5, 0))

    with threadpool_limits(1):
        members, _, evaluation = splits[args.seed]
        real = blind_auc(embedded(members + evaluation))
        E = embedded(pool)
        rng = np.random.default_rng(12345)
        null = []
        for _ in range(args.resplits):
            p = rng.permutation(300)
            null.append(blind_auc(E[np.r_[p[:100], p[200:]]]))
        null = np.array(null)
        print(f"{args.testbed} seed {args.seed}: blind sentence-embedding AUC of the built split {real:.3f}")
        print(f"  {args.resplits} random re-splits of the same 300 names: mean {null.mean():.3f}, sd {null.std():.3f}, "
              f"95th pct {np.quantile(null, 0.95):.3f}, 99th {np.quantile(null, 0.99):.3f}; "
              f"share >= built split {(null >= real).mean():.3f}")
        per_seed = []
        for s in range(*args.seeds):
            m, _, e = splits[s]
            per_seed.append(blind_auc(embedded(m + e)))
        per_seed = np.array(per_seed)
        print(f"  the builders' split at seeds {args.seeds[0]}..{args.seeds[1] - 1}: mean {per_seed.mean():.3f} "
              f"(standard error {per_seed.std(ddof=1) / np.sqrt(len(per_seed)):.3f}), "
              f"min {per_seed.min():.3f}, max {per_seed.max():.3f}")
        print("  per seed:", " ".join(f"{a:.3f}" for a in per_seed))


if __name__ == "__main__":
    main()
