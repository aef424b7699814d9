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

from scoring import add_target_args, single_pass_specs, target_and_data  # benchmarks/ is the script's folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(ap, n=250)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from mmia import progress
    from mmia.attacks.runner import score_samples
    from mmia.data import load_dataset
    from mmia.targets import load_target

    progress.set_quiet(True)
    model_dir, data = target_and_data(args)
    full = load_dataset(data)
    target = load_target(model_dir)
    specs = single_pass_specs(target, full.modalities)
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
