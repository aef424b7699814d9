"""Peak memory of the statistics: the model's full logits vs the hidden states with mmia's head
applied to groups of rows, on CPU, side by side in one run.

A random Llama with Qwen2's vocabulary (152,064) and a small hidden size (so the logits, not
the weights, are what a batch costs) scores the same text rows through `iter_token_stats`
twice, each in a fresh process (`stats_path` "full", then "auto"): peak resident memory above
the process's memory just before scoring (ru_maxrss; the model is built and warmed up first),
the time, and the ratio full / hidden. The statistics of the two paths are compared too.

Usage: python benchmarks/head_memory.py [--rows 16] [--words 200] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

VOCAB = 152064


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(mode: str, rows: int, words: int, batch_size: int, out: str) -> None:
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_engine import WORDS, _tokenizer

    from mmia import progress
    from mmia.data.schema import Sample
    from mmia.engine import iter_token_stats
    from mmia.targets.generative import CausalLMTarget

    torch.set_num_threads(1)
    progress.set_quiet(True)
    tok = _tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                      max_position_embeddings=4096)
    model = LlamaForCausalLM(cfg).eval()
    t = CausalLMTarget(Path("."), model, tok, "bench", "cpu", torch.float32)
    t.stats_path = mode
    rng = np.random.default_rng(0)
    samples = [Sample(id=f"r{i}", row=i + 1, text=" ".join(rng.choice(WORDS, size=words - i))) for i in range(rows)]
    list(iter_token_stats(t, samples[:1], batch_size=1))  # warm-up: kernels, buffers of one row
    before = _rss()
    t0 = time.perf_counter()
    stats = [s for _, s in iter_token_stats(t, samples, batch_size=batch_size)]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.savez(out, **{f"{i}:{k}": v for i, s in enumerate(stats) for k, v in s.items()})
    print(json.dumps({"peak_above": peak - before, "seconds": seconds,
                      "tokens": sum(len(tok(s.text).input_ids) for s in samples)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.rows, args.words, args.batch_size, args.out)
    import tempfile

    import numpy as np

    res, arrays = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("full", "auto"):
            out = str(Path(tmp) / f"{mode}.npz")
            cmd = [sys.executable, __file__, "--child", mode, "--rows", str(args.rows), "--words", str(args.words),
                   "--batch-size", str(args.batch_size), "--out", out]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            arrays[mode] = dict(np.load(out))
    diff = max(float(np.nanmax(np.abs(arrays["full"][k] - arrays["auto"][k]), initial=0.0)) for k in arrays["full"])
    mib = 2**20
    full_logits = args.batch_size * (args.words + 1) * VOCAB * 4
    print(f"{args.rows} rows of {args.words - args.rows + 1}-{args.words} words, batch {args.batch_size}, vocabulary "
          f"{VOCAB:,}, hidden 64, float32 on CPU, 1 thread (a batch's full logits: about {full_logits / mib:,.0f} MiB)")
    for mode, label in (("full", "full logits"), ("auto", "hidden states + head on row groups")):
        r = res[mode]
        print(f"  {label:<36} peak RSS above start {r['peak_above'] / mib:8,.0f} MiB   {r['seconds']:6.2f} s")
    print(f"peak memory full / hidden: {res['full']['peak_above'] / max(res['auto']['peak_above'], 1):.1f}x; "
          f"time full / hidden: {res['full']['seconds'] / res['auto']['seconds']:.2f}x")
    print(f"largest statistic difference between the two paths: {diff:.2e}")


if __name__ == "__main__":
    main()
