"""What `mmia attack --engine ray` costs and gains on one machine: a small causal LM and the vlm testbed.

One run, two workloads, the same data scored three ways each, every configuration from scratch
(fresh cache and results folder): the local engine (1 torch thread), Ray with 1 worker x 1
thread, Ray with 2 workers x 1 thread, on one local Ray cluster of 2 CPUs started once, after
both workloads' local runs (its start-up is printed apart). For each configuration: its wall
time; when the first block started (all before it is start-up: the driver's pass over the
data, the actor's process and imports, its model load); the busiest worker's own scoring time
(its blocks' seconds, from the shards' metadata); the workers' summed CPU seconds and how many
were busy at once; the overhead (wall / local wall; aim at 1 worker <= 1.15x); the speedup over
1 worker in wall and in scoring time (aim at 2 workers >= 1.8x on 2 cores); each worker's peak
resident memory; the largest score difference from the local engine.

Workloads:
- `causal`: a random Llama (hidden 256, 4 layers, vocabulary 2,000) with a tokenizer trained on
  `--n` rows of 12-60 words, built in a temporary folder;
- `vlm`: the vlm testbed's `target` (a small LLaVA fine-tuned on the member scenes) on its
  `matched` split (1,000 image+text rows), built with `mmia.testbeds.build_testbed` into
  `--cache` (reused when there; its build time is printed apart). `--quick` uses the quick
  testbed (48 rows) and 200 causal rows: a smoke run, not a measurement.

Nothing is downloaded. Usage:
    python benchmarks/ray_scaling.py [--n 2000] [--batch-size 16] [--cache DIR] [--quick]
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
ATTACKS = ["loss", "zlib", "min_k", "min_k_pp"]
CONFIGS = ("local", "ray-1", "ray-2")


def build_causal(root: Path, n: int) -> tuple[Path, Path]:
    """A random Llama with a tokenizer trained on `n` random texts, and those texts as a data file."""
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


def build_vlm(cache: Path | None, quick: bool) -> tuple[Path, Path, float, bool]:
    """The vlm testbed's target and matched split (built into `cache` unless it is there), the
    seconds that took and whether it was built now."""
    from mmia.testbeds.base import list_testbeds
    from mmia.testbeds.build import build_testbed, is_cached

    spec = next(s for s in list_testbeds() if s.name == "vlm")
    cached = is_cached(spec, seed=0, cache_dir=cache, quick=quick)
    t0 = time.perf_counter()
    tb = build_testbed(spec, seed=0, cache_dir=cache, quick=quick)
    return tb.targets["target"], tb.splits["matched"], time.perf_counter() - t0, not cached


def worker_facts(shard_dir: Path, began: float) -> dict:
    """From a Ray run's shards: the seconds from `began` (the run's start, epoch) to the first
    block's start (the actor's start and model load, the driver's pass before), the busiest
    worker's scoring seconds, the workers' CPU seconds, how many were busy at once (their busy
    seconds over the span of all blocks), peak RSS per worker."""
    import pyarrow.parquet as pq

    peak: dict[int, float] = {}
    busy: dict[int, float] = {}
    cpu = 0.0
    spans = []
    for p in shard_dir.glob("rows-*.parquet"):
        meta = json.loads(pq.read_schema(p).metadata[b"mmia"])
        pid = meta["pid"]
        peak[pid] = max(peak.get(pid, 0.0), meta["peak_rss_mib"] or 0.0)
        busy[pid] = busy.get(pid, 0.0) + meta["block_seconds"]
        cpu += meta["block_cpu_seconds"]
        spans.append((meta["started"], meta["finished"]))
    span = max(f for _, f in spans) - min(s for s, _ in spans)
    return {"first": min(s for s, _ in spans) - began, "scoring": max(busy.values()), "cpu": cpu,
            "at_once": sum(busy.values()) / span, "peaks": sorted(peak.values())}


def max_diff(table, want) -> float:
    """Largest absolute score difference between two score tables of the same samples."""
    assert table.ids == want.ids, "the engines scored different samples"
    return max(float(np.nanmax(np.abs(table.columns[c] - v))) for c, v in want.columns.items())


def measure(config: str, data: Path, model_dir: Path, root: Path, batch_size: int, local=None) -> dict:
    """One configuration of one workload, from scratch; returns its row of the table (and the
    score table, for the local engine)."""
    from mmia.attacks.runner import run_attack

    out = root / config
    kwargs = ({"cache_dir": root / f"{config}-cache"} if config == "local"
              else {"engine": "ray", "workers": int(config.split("-")[1]), "cpus_per_worker": 1})
    t0, began = time.perf_counter(), time.time()
    res, table = run_attack(data, model_dir, attacks=ATTACKS, out_dir=out, batch_size=batch_size, **kwargs)
    row = {"wall": time.perf_counter() - t0, "n": len(table.ids), "table": table}
    if config != "local":
        row.update(worker_facts(Path(res.settings["ray"]["shards"]), began), blocks=res.settings["ray"]["blocks"],
                   diff=max_diff(table, local))
    return row


# The table's columns: header, width, and the cell of a Ray configuration's row r given the
# workload's ray-1 row and local row (the local engine's row has only wall, rows/s and overhead).
COLUMNS = [
    ("wall s", 7, lambda r, one, local: f"{r['wall']:.1f}"),
    ("rows/s", 7, lambda r, one, local: f"{r['n'] / r['wall']:.1f}"),
    ("1st block s", 11, lambda r, one, local: f"{r['first']:.1f}"),
    ("scoring s", 9, lambda r, one, local: f"{r['scoring']:.1f}"),
    ("CPU s", 6, lambda r, one, local: f"{r['cpu']:.1f}"),
    ("at once", 7, lambda r, one, local: f"{r['at_once']:.2f}"),
    ("overhead", 8, lambda r, one, local: f"{r['wall'] / local['wall']:.2f}x"),
    ("speedup wall/scoring", 20,
     lambda r, one, local: f"{one['wall'] / r['wall']:.2f}x / {one['scoring'] / r['scoring']:.2f}x"),
    ("blocks", 6, lambda r, one, local: str(r["blocks"])),
    ("peak RSS/worker MiB", 19, lambda r, one, local: ", ".join(f"{m:.0f}" for m in r["peaks"])),
    ("max |diff|", 10, lambda r, one, local: f"{r['diff']:.2e}"),
]
LOCAL_COLUMNS = ("wall s", "rows/s", "overhead")


def print_workload(name: str, rows: dict) -> None:
    local, one = rows["local"], rows["ray-1"]
    print(f"\n{name}: {local['n']} samples")
    print("  config  " + " ".join(f"{h:>{w}s}" for h, w, _ in COLUMNS))
    for config, r in rows.items():
        cells = [cell(r, one, local) if config != "local" or h in LOCAL_COLUMNS else "-" for h, _, cell in COLUMNS]
        print(f"  {config:7s} " + " ".join(f"{c:>{w}s}" for c, (_, w, _) in zip(cells, COLUMNS, strict=True)))
    print(f"  Ray overhead at 1 worker (ray-1 / local wall): {one['wall'] / local['wall']:.2f}x (aim <= 1.15x)")
    print(f"  2-worker speedup (ray-1 / ray-2): {one['wall'] / rows['ray-2']['wall']:.2f}x wall, "
          f"{one['scoring'] / rows['ray-2']['scoring']:.2f}x in the workers' scoring (aim >= 1.8x)")


def start_coordinator() -> None:
    """Ray Data's autoscaling coordinator, a detached actor of the cluster that the first dataset
    would start (a process of its own): started with the cluster, so that the first Ray
    configuration measured does not pay for it alone. Not a task: a task would leave an idle
    worker process, with Ray Data imported, that the next actor would take over (~4 s saved once)."""
    import ray

    try:
        from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
            get_or_create_autoscaling_coordinator,
        )
    except ImportError:  # another Ray: the first configuration starts it
        return
    ray.get(get_or_create_autoscaling_coordinator().__ray_ready__.remote())


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() \
        else f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="causal LM rows (default 2000; 200 with --quick)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cache", type=Path, default=None, help="mmia cache root for the vlm testbed (default: mmia's)")
    ap.add_argument("--quick", action="store_true", help="the quick vlm testbed and 200 causal rows: a smoke run")
    args = ap.parse_args()
    n = args.n or (200 if args.quick else 2000)

    from mmia import progress

    progress.set_quiet(True)
    progress.quiet_libraries()  # before transformers is imported: no bars from save_pretrained
    import torch

    torch.set_num_threads(1)
    print(f"load average (1, 5, 15 min) at the start: {load()} on {os.cpu_count()} CPUs")
    vlm_model, vlm_data, vlm_build, built = build_vlm(args.cache, args.quick)
    print(f"vlm testbed{' (quick)' if args.quick else ''}: {'built' if built else 'reused from the cache'} "
          f"in {vlm_build:.1f} s ({vlm_model.parent})")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        causal_model, causal_data = build_causal(root / "causal", n)
        workloads = {"causal": (causal_data, causal_model), "vlm": (vlm_data, vlm_model)}
        rows: dict[str, dict] = {name: {} for name in workloads}
        for name, (data, model) in workloads.items():
            rows[name]["local"] = measure("local", data, model, root / name, args.batch_size)

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        start_coordinator()
        start = time.perf_counter() - t0
        for config in CONFIGS[1:]:
            for name, (data, model) in workloads.items():
                rows[name][config] = measure(config, data, model, root / name, args.batch_size,
                                             local=rows[name]["local"]["table"])
        ray.shutdown()

    print(f"batch {args.batch_size}, attacks {','.join(ATTACKS)}, 1 torch thread per process; "
          f"Ray cluster of 2 CPUs (and Ray Data's coordinator actor) started once in {start:.1f} s "
          "(not in the figures below)")
    for name, r in rows.items():
        print_workload(name, r)
    print(f"\nload average (1, 5, 15 min) at the end: {load()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
