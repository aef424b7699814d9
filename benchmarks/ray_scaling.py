"""What `mmia attack --engine ray` costs and gains on one machine, on a small causal LM.

The same data and attacks, scored three ways, each from scratch (fresh cache and results folder):
the local engine (1 torch thread), Ray with 1 worker x 1 thread, Ray with 2 workers x 1 thread,
on a local Ray cluster of 2 CPUs started once beforehand (its start-up is printed apart). Prints
the wall time of each, Ray's overhead at 1 worker (ray-1 / local), the 2-worker speedup
(ray-1 / ray-2), the peak resident memory of each worker (from the shards' metadata) and the
largest score difference from the local engine. The workers' own scoring time (the sum of their
blocks' seconds, from the shards) is printed beside the wall time: the difference is Ray's
start-up, the actors' model loads and the driver's pass over the data.

The model is a random Llama (hidden 256, 4 layers, vocabulary 2,000) with a tokenizer trained on
the data, built in a temporary folder; nothing is downloaded.

Usage: python benchmarks/ray_scaling.py [--n 800] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("the a red blue small large cat dog bird horse man woman child park street river sky field house "
         "sits runs flies jumps walks looks plays sleeps under over near beside with on in at").split()


def build(root: Path, n: int) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmia.testbeds.tokenizers_small import train_tokenizer

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(12, 60)))) for _ in range(n)]
    tok = train_tokenizer("llava", texts, vocab_size=2000)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model_dir = root / "lm"
    LlamaForCausalLM(cfg).eval().save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "text": t, "label": i % 2}) + "\n"
                            for i, t in enumerate(texts)), encoding="utf-8")
    return model_dir, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import pyarrow.parquet as pq
    import torch

    torch.set_num_threads(1)
    from mmia import progress
    from mmia.attacks.runner import run_attack

    progress.set_quiet(True)
    attacks = ["loss", "zlib", "min_k", "min_k_pp"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, data = build(root, args.n)
        t0 = time.perf_counter()
        _, local = run_attack(data, model_dir, attacks=attacks, out_dir=root / "local", cache_dir=root / "c",
                              batch_size=args.batch_size)
        seconds = {"local": time.perf_counter() - t0}

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        start = time.perf_counter() - t0
        peaks, scoring, cpu_s, overlap = {}, {}, {}, {}
        diff = 0.0
        for workers in (1, 2):
            name = f"ray-{workers}"
            t0 = time.perf_counter()
            res, table = run_attack(data, model_dir, attacks=attacks, out_dir=root / name, batch_size=args.batch_size,
                                    engine="ray", workers=workers, cpus_per_worker=1)
            seconds[name] = time.perf_counter() - t0
            by_pid: dict[int, float] = {}
            busy: dict[int, float] = {}
            cpu: dict[int, float] = {}
            spans = []
            for p in Path(res.settings["ray"]["shards"]).glob("rows-*.parquet"):
                meta = json.loads(pq.read_schema(p).metadata[b"mmia"])
                by_pid[meta["pid"]] = max(by_pid.get(meta["pid"], 0.0), meta["peak_rss_mib"] or 0.0)
                busy[meta["pid"]] = busy.get(meta["pid"], 0.0) + meta["block_seconds"]
                cpu[meta["pid"]] = cpu.get(meta["pid"], 0.0) + meta["block_cpu_seconds"]
                spans.append((meta["started"], meta["finished"]))
            peaks[name] = sorted(by_pid.values())
            scoring[name] = max(busy.values())
            cpu_s[name] = sum(cpu.values())
            # the workers' blocks overlap in time when the workers run side by side
            span = max(f for _, f in spans) - min(s for s, _ in spans)
            overlap[name] = sum(busy.values()) / span
            for col, want in local.columns.items():
                diff = max(diff, float(np.nanmax(np.abs(table.columns[col] - want))))
        ray.shutdown()

    print(f"{args.n} samples, batch {args.batch_size}, attacks {','.join(attacks)}; Ray cluster start {start:.1f} s")
    for name, s in seconds.items():
        mem = (f"; busiest worker scoring {scoring[name]:.1f} s, workers' CPU {cpu_s[name]:.1f} s, "
               f"workers busy at once {overlap[name]:.2f}; peak RSS per worker "
               f"{', '.join(f'{m:.0f}' for m in peaks[name])} MiB") if name in peaks else ""
        print(f"  {name:8s} {s:7.1f} s  {args.n / s:7.1f} samples/s{mem}")
    print(f"Ray overhead at 1 worker (ray-1 / local): {seconds['ray-1'] / seconds['local']:.2f}x")
    print(f"2-worker speedup (ray-1 / ray-2): {seconds['ray-1'] / seconds['ray-2']:.2f}x wall, "
          f"{scoring['ray-1'] / scoring['ray-2']:.2f}x in the workers' scoring (start-up and model load left out)")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"largest score difference from the local engine: {diff:.2e}")


if __name__ == "__main__":
    main()
