"""UMID speed on the clip-identities testbed: per-query cost and batched vs sequential restarts.

Measures, side by side in one run and on the same queries and settings:
- batched: all R restarts of a batch of queries optimised as one tensor (UMID's way);
- sequential: each restart optimised alone, one after another (the predecessors' loop);
and prints the per-query seconds of each, their ratio, and that both reach the same cosines
(Adam is elementwise, so batching changes speed, not results).

    .venv/bin/python benchmarks/umid.py [--testbed DIR | --target DIR] [--queries N] [--seq-queries M]

Without --target the full clip-identities testbed is built (a few minutes) into --testbed
(default .mmia-bench/clip-identities) and reused afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, help="a CLIP/CLAP model directory (default: the clip-identities testbed)")
    ap.add_argument("--testbed", type=Path, default=Path(".mmia-bench/clip-identities"),
                    help="clip-identities testbed directory, built there if missing")
    ap.add_argument("--queries", type=int, default=64, help="queries timed in batched mode")
    ap.add_argument("--seq-queries", type=int, default=8, help="queries timed in both modes (the ratio)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="override the default steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mmia.data.ids import stable_seed
    from mmia.umid.audit import DEFAULT_TEMPLATES, UmidConfig
    from mmia.umid.invert import invert
    from mmia.umid.target import load_contrastive, text_embeddings

    target_dir = args.target
    names: list[str]
    if target_dir is None:
        root = args.testbed
        if not (root / "manifest.json").exists():
            from mmia.testbeds.clip_identities import build_clip_identities

            print("building the clip-identities testbed (once) ...", flush=True)
            build_clip_identities(root)
        target_dir = root / "model"
        rows = [json.loads(x) for x in (root / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
        names = [r["text"] for r in rows]
    else:
        from mmia.umid.gibberish import gibberish

        names = gibberish(max(args.queries, args.seq_queries), seed=1, generators=("pseudowords",))

    cfg = UmidConfig() if args.steps is None else UmidConfig(steps=args.steps)
    st = cfg.settings()
    target = load_contrastive(target_dir)
    tmpl = cfg.template or DEFAULT_TEMPLATES[target.kind]
    print(f"target {target_dir} ({target.kind}), settings {st.key()}, batch {cfg.batch_size} queries, "
          f"{args.threads} thread(s)")

    def run(texts: list[str], sequential: bool) -> tuple[float, float, np.ndarray]:
        # wall time, and this process's CPU time: on a shared machine the second says what the
        # work costs, the first what it took beside everyone else's
        t0, c0 = time.perf_counter(), time.process_time()
        cos = []
        for i in range(0, len(texts), cfg.batch_size):
            chunk = texts[i : i + cfg.batch_size]
            emb = text_embeddings(target, [tmpl.format(t) for t in chunk])
            seeds = [stable_seed("umid-start", cfg.seed, t) for t in chunk]
            cos.append(invert(target, emb, seeds, st, sequential=sequential)["cos"])
        return time.perf_counter() - t0, time.process_time() - c0, np.concatenate(cos)

    qs = names[: args.queries]
    t_batch, c_batch, _ = run(qs, sequential=False)
    print(f"batched, {len(qs)} queries: {t_batch / len(qs):.3f} s per query wall, {c_batch / len(qs):.3f} s CPU "
          f"({cfg.restarts} restarts x {st.steps} steps); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    few = names[: args.seq_queries]
    # batched, sequential, batched again: the two batched runs bracket the sequential one, so
    # drifting machine load does not favour either side
    w1, c1, cb = run(few, sequential=False)
    ts, cs_, cs = run(few, sequential=True)
    w2, c2, _ = run(few, sequential=False)
    tb, cb_ = (w1 + w2) / 2, (c1 + c2) / 2
    print(f"same {len(few)} queries: batched restarts {tb / len(few):.3f} s/query ({cb_ / len(few):.3f} CPU), "
          f"sequential restarts {ts / len(few):.3f} s/query ({cs_ / len(few):.3f} CPU)")
    print(f"speedup of batched over sequential restarts: {ts / tb:.1f}x wall, {cs_ / cb_:.1f}x CPU")
    print(f"largest difference in final cosine between the two: {np.abs(cb - cs).max():.2e}")
    ref = cfg.reference_size
    amort = (t_batch / len(qs) * (1 + ref / 200), c_batch / len(qs) * (1 + ref / 200))
    print(f"per query including a {ref}-query gibberish reference amortised over 200 queries: "
          f"{amort[0]:.3f} s wall, {amort[1]:.3f} s CPU")


if __name__ == "__main__":
    main()
