"""Peak memory of the statistics: the model's full logits vs the hidden states with mmia's head
applied to groups of rows, on CPU, side by side in one run.

A random Llama with Qwen2's vocabulary (152,064) and a small hidden size (so the logits, not
the weights, are what a batch costs) scores the same rows twice, each in a fresh process
(`stats_path` "full", then "auto"): peak resident memory above the process's memory just
before scoring (ru_maxrss; the model is built and warmed up first), the wall and CPU time
(the CPU time is what other jobs on the machine do not change), and the ratio full / hidden.
The results of the two paths are compared too. What scores the rows:
- `--what stats` (default): the score attacks' statistics, text rows through `iter_token_stats`;
- `--what fimmia`: FiMMIA's generic scorer (`TargetScorer.losses`), prompt + answer rows, the
  loss over each answer (as it scores an original and its neighbours).

Usage: python benchmarks/head_memory.py [--what stats|fimmia] [--rows 16] [--words 200] [--batch-size 8]
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


def child(mode: str, what: str, rows: int, words: int, batch_size: int, out: str) -> None:
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
    texts = [" ".join(rng.choice(WORDS, size=words - i)) for i in range(rows)]
    if what == "fimmia":
        from mmia.fimmia.scoring_target import TargetScorer

        scorer = TargetScorer("bench", target=t, batch_size=batch_size)
        samples = [Sample(id=f"r{i}", row=i + 1, prompt="describe it", answer=x) for i, x in enumerate(texts)]

        def run(part, size):
            scorer.batch_size = size
            return {"loss": np.asarray(scorer.losses(part, [None] * len(part)))}
    else:
        samples = [Sample(id=f"r{i}", row=i + 1, text=x) for i, x in enumerate(texts)]

        def run(part, size):
            stats = [s for _, s in iter_token_stats(t, part, batch_size=size)]
            return {f"{i}:{k}": v for i, s in enumerate(stats) for k, v in s.items()}

    run(samples[:1], 1)  # warm-up: kernels, buffers of one row
    before = _rss()
    t0, c0 = time.perf_counter(), time.process_time()
    result = run(samples, batch_size)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.savez(out, **result)
    print(json.dumps({"peak_above": peak - before, "seconds": seconds, "cpu_seconds": cpu,
                      "tokens": sum(len(t.encode(s)) for s in samples)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", choices=("stats", "fimmia"), default="stats")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.what, args.rows, args.words, args.batch_size, args.out)
    import tempfile

    import numpy as np

    res, arrays = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("full", "auto"):
            out = str(Path(tmp) / f"{mode}.npz")
            cmd = [sys.executable, __file__, "--child", mode, "--what", args.what, "--rows", str(args.rows),
                   "--words", str(args.words), "--batch-size", str(args.batch_size), "--out", out]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            arrays[mode] = dict(np.load(out))
    diff = max(float(np.nanmax(np.abs(arrays["full"][k] - arrays["auto"][k]), initial=0.0)) for k in arrays["full"])
    mib = 2**20
    full_logits = args.batch_size * (args.words + 1) * VOCAB * 4
    scored = "FiMMIA's generic scorer (answer losses)" if args.what == "fimmia" else "the attacks' statistics"
    print(f"{scored}: {args.rows} rows of {args.words - args.rows + 1}-{args.words} words, batch {args.batch_size}, "
          f"vocabulary {VOCAB:,}, hidden 64, float32 on CPU, 1 thread (a batch's full logits: about "
          f"{full_logits / mib:,.0f} MiB)")
    for mode, label in (("full", "full logits"), ("auto", "hidden states + head on row groups")):
        r = res[mode]
        print(f"  {label:<36} peak RSS above start {r['peak_above'] / mib:8,.0f} MiB   {r['seconds']:6.2f} s "
              f"({r['cpu_seconds']:.2f} s CPU)")
    print(f"peak memory full / hidden: {res['full']['peak_above'] / max(res['auto']['peak_above'], 1):.1f}x; "
          f"time full / hidden: {res['full']['seconds'] / res['auto']['seconds']:.2f}x wall, "
          f"{res['full']['cpu_seconds'] / res['auto']['cpu_seconds']:.2f}x CPU (wall time counts other jobs' load)")
    print(f"largest {'loss' if args.what == 'fimmia' else 'statistic'} difference between the two paths: {diff:.2e}")


if __name__ == "__main__":
    main()
