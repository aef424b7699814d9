"""Memory of `mmia attack` scoring against the number of samples (should stay flat).

Scores the first n and then 4n samples of a data set with every single-pass attack (no cache)
and prints the peak memory traced by tracemalloc (Python objects and numpy arrays: the
per-token statistics, records and score columns; torch's own buffers are per batch) and their
ratio. Flat means the ratio stays near 1 while the samples grow 4x.

Usage: python benchmarks/scoring_memory.py --testbed-dir DIR [--n 250]
       python benchmarks/scoring_memory.py --model DIR --data FILE [--n 250]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testbed-dir")
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--n", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from mmia import progress
    from mmia.attacks.runner import score_samples, select_attacks
    from mmia.data import load_dataset
    from mmia.targets import load_target

    progress.set_quiet(True)
    if args.testbed_dir:
        from mmia.testbeds.base import Testbed

        tb = Testbed.from_dir(args.testbed_dir)
        model_dir, data = tb.targets["target"], tb.splits["matched"]
    else:
        model_dir, data = Path(args.model), Path(args.data)
    full = load_dataset(data)
    target = load_target(model_dir)
    specs = [s for s in select_attacks(None, target.kind, full.modalities, False) if "lower" not in s.tags]
    peaks = {}
    for n in (args.n, 4 * args.n):
        ds = full.subset(range(min(n, len(full))))
        tracemalloc.start()
        t0 = time.perf_counter()
        score_samples(ds, target, specs, cache=None, batch_size=args.batch_size, progress=False)
        peaks[len(ds)] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{len(ds):6d} samples: peak traced memory {peaks[len(ds)] / 2**20:7.2f} MiB "
              f"({time.perf_counter() - t0:.1f} s)")
    (a, pa), (b, pb) = sorted(peaks.items())
    print(f"samples x{b / a:.1f} -> peak memory x{pb / pa:.2f}")


if __name__ == "__main__":
    main()
