"""Scoring throughput: mmia's pipeline vs a per-sample loop vs raw batched forward passes.

Scores the same samples three ways in one run and prints the ratios:
1. pipeline: `score_samples` with every single-pass attack that applies (one length-sorted,
   padded forward pass per batch serving all of them, statistics reduced in the batch, each
   batch written to a fresh cache): everything from the loaded data set to the scores;
2. per-sample loop: as the reference implementations do, batch size 1 and one forward pass
   per attack (each attack re-encodes the sample and re-runs the model);
3. raw: the model's batched forward passes alone, on inputs encoded beforehand (same batches);
   also printed: encoding (media decoding, processor, tokeniser) plus those forward passes, the
   least work any scorer must do, so the ratio to it is mmia's own overhead.

Usage:
    python benchmarks/scoring.py                      # the vlm testbed (built and cached)
    python benchmarks/scoring.py --testbed-dir DIR    # an already built vlm testbed
    python benchmarks/scoring.py --model DIR --data FILE
Options: --n N samples (default 64), --batch-size B (default 16), --rounds R (default 3: the ways
run in turn R times, the median of each is shown), --no-loop (skip the slow per-sample loop).
Each way's wall time, the process's CPU time (time.process_time, all threads) and its minor
page faults (getrusage; each costs the kernel ~1 us of CPU here, see docs/attacks.md) are
printed, with the ratios of wall and CPU time and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _vlm_testbed(testbed_dir: str | None):
    from mmia.testbeds.base import Testbed, list_testbeds

    if testbed_dir:
        return Testbed.from_dir(testbed_dir)
    spec = next((s for s in list_testbeds() if s.name == "vlm"), None)
    if spec is None:
        raise SystemExit("no 'vlm' testbed is registered here: pass --testbed-dir DIR or --model DIR --data FILE")
    from mmia.cache import default_cache_dir

    return spec.build(default_cache_dir() / "testbeds" / "vlm", seed=0, quick=False)


def add_target_args(ap: argparse.ArgumentParser, n: int) -> None:
    """The options that say what to score (shared with scoring_memory.py)."""
    ap.add_argument("--testbed-dir")
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--batch-size", type=int, default=16)


def target_and_data(args) -> tuple[Path, Path]:
    """(model dir, data file): --model and --data, else the vlm testbed's target and membership split."""
    if args.model:
        return Path(args.model), Path(args.data)
    tb = _vlm_testbed(args.testbed_dir)
    return tb.targets["target"], tb.split_for("membership") or next(iter(tb.splits.values()))


def single_pass_specs(target, modalities):
    """Single-pass attacks: all but lowercase (its own second pass) and reference (another model)."""
    from mmia.attacks.runner import select_attacks

    return [s for s in select_attacks(None, target.kind, modalities, has_reference=False) if "lower" not in s.views]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(ap, n=64)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median of each way is shown")
    ap.add_argument("--no-loop", dest="loop", action="store_false", help="skip the (slow) per-sample loop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from mmia import progress
    from mmia.attacks.records import SampleRecord
    from mmia.attacks.runner import score_samples
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.engine.run_generative import length_order
    from mmia.targets import load_target

    progress.set_quiet(True)
    model_dir, data = target_and_data(args)
    ds = load_dataset(data)
    ds = ds.subset(range(min(args.n, len(ds))))
    target = load_target(model_dir, device=args.device)
    specs = single_pass_specs(target, ds.modalities)
    cfgs = {s.name: s.make_config() for s in specs}
    n, bs = len(ds), args.batch_size

    def pipeline():
        with tempfile.TemporaryDirectory() as d, Cache(d) as cache:
            score_samples(ds, target, specs, cache=cache, batch_size=bs, progress=False)

    def loop():
        for s in specs:
            for sample in ds:
                st = target.token_stats([target.encode(sample)])[0]
                s.run(SampleRecord(sample, {"stats": st}), cfgs[s.name])

    order = length_order(ds.samples)
    batches = [[target.encode(ds[i]) for i in order[k : k + bs]] for k in range(0, n, bs)]
    inputs = [target.collate(b) for b in batches]

    def raw():
        with torch.inference_mode():
            for inp in inputs:
                x = {k: v.to(target.device, target.dtype) if v.is_floating_point() else v.to(target.device)
                     for k, v in inp.items()}
                target.model(**x, use_cache=False)

    def encode_and_raw():
        with torch.inference_mode():
            for k in range(0, n, bs):
                enc = target.encode_batch([ds[i] for i in order[k : k + bs]])
                x = {k2: v.to(target.device, target.dtype) if v.is_floating_point() else v.to(target.device)
                     for k2, v in target.collate(enc).items()}
                target.model(**x, use_cache=False)

    ways = {"raw": raw, "enc": encode_and_raw, "pipe": pipeline}
    if args.loop:
        ways["loop"] = loop
    raw()  # warm-up
    pipeline()
    # Interleaved rounds, the median of each way: the machine is shared and its load changes
    # from second to second; alternating the ways within a round exposes each to the same load.
    # Wall time is what a user waits; the process's CPU time (all its threads, time.process_time)
    # is the work done, which other processes' load barely changes.
    wall = {k: [] for k in ways}
    cpu = {k: [] for k in ways}
    faults = {k: [] for k in ways}
    for _ in range(args.rounds):
        for k, f in ways.items():
            f0, c0, t0 = _minor_faults(), time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            faults[k].append(_minor_faults() - f0)
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"model: {model_dir} ({target.kind}, {sum(p.numel() for p in target.model.parameters()):,} parameters)")
    print(f"samples: {n} from {data}; batch size {bs}; {len(specs)} single-pass attacks "
          f"({', '.join(s.name for s in specs)}); torch threads {args.threads}; device {target.device}")
    print(f"median of {args.rounds} interleaved rounds; load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    names = {"raw": "raw batched forward passes", "enc": "encoding + raw forward", "pipe": "mmia pipeline",
             "loop": "per-sample loop"}
    print(f"{'':27s}  {'wall s':>8s}  {'cpu s':>8s}  {'samples/s (wall)':>16s}  {'page faults':>11s}")
    for k in ways:
        print(f"{names[k]:27s}  {w[k]:8.3f}  {c[k]:8.3f}  {n / w[k]:16.1f}  {statistics.median(faults[k]):11.0f}")

    def ratio(label, a, b, aim=""):
        print(f"{label:27s}  {w[a] / w[b]:7.2f}x  {c[a] / c[b]:7.2f}x  {aim}")

    print(f"{'ratios':27s}  {'wall':>8s}  {'cpu':>8s}")
    ratio("pipeline / raw forward", "pipe", "raw", "(aim: <= 1.15)")
    ratio("pipeline / (encoding + raw)", "pipe", "enc")
    if args.loop:
        ratio("loop / pipeline", "loop", "pipe", "(aim: >= 1.0 on CPU, >= 4 on CUDA)")

if __name__ == "__main__":
    main()
