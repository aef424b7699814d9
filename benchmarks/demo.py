"""Time `mmia demo` twice: a first run with an empty cache (testbeds trained) and a cached rerun.

Prints the wall time of each, the peak memory (largest single process, from getrusage of the
children, and the peak summed RSS of the demo's process tree, sampled from /proc), the machine's
core count and load, and the targets: first run <= 10 min, cached rerun <= 3 min, peak < 4 GiB.

    python benchmarks/demo.py            # default settings (minutes)
    python benchmarks/demo.py --quick    # miniature testbeds (a smoke test of this script)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 1024**3
TARGETS = {"first": 600.0, "cached": 180.0, "memory": 4 * GIB}


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of `pid` and its descendants, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(args: list[str]) -> tuple[float, int, int, float]:
    """(wall seconds, peak summed tree RSS, return code, CPU seconds of the run's processes)."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        print(output[-3000:])
    return wall, peak[0], proc.returncode, _children_cpu() - cpu0


def _print_parts(results: Path) -> None:
    """Where the first run's time went (the demo records each step's wall and CPU seconds)."""
    import json

    if not results.exists():
        return
    settings = json.loads(results.read_text())["settings"]
    parts = dict(settings.get("seconds_by_part", {}), total={"wall": settings["seconds"]})
    print("first run by job (wall s / CPU s of the worker process that ran it; jobs run side by side):")
    for name, t in parts.items():
        cpu = f"{t['cpu']:8.1f}" if "cpu" in t else " " * 8
        print(f"  {name:<32} {t['wall']:8.1f} {cpu}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="miniature testbeds (smoke test)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the cache and outputs in this folder")
    opts = ap.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="mmia-bench-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    base = [sys.executable, "-m", "mmia.cli", "--quiet", "demo", "--cache", str(cache)]
    if opts.quick:
        base.append("--quick")
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f} (shared machines inflate wall "
          "times; CPU times below do not depend on the load)")
    first = run_once([*base, "--out", str(work / "first")])
    cached = run_once([*base, "--out", str(work / "cached")])
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    peak = max(first[1], cached[1], maxrss)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    rows = [
        ("first run (empty cache, trains testbeds)", f"{first[0]:.1f} s", f"<= {TARGETS['first']:.0f} s",
         first[0] <= TARGETS["first"]),
        ("cached rerun", f"{cached[0]:.1f} s", f"<= {TARGETS['cached']:.0f} s", cached[0] <= TARGETS["cached"]),
        ("cached / first", f"{cached[0] / first[0]:.2f}", "", True),
        ("CPU time, first run (all processes)", f"{first[3]:.1f} s", "", True),
        ("CPU time, cached rerun", f"{cached[3]:.1f} s", "", True),
        ("peak RSS, largest process", f"{maxrss / GIB:.2f} GiB", "", True),
        ("peak RSS, process tree", f"{peak / GIB:.2f} GiB", f"< {TARGETS['memory'] / GIB:.0f} GiB",
         peak < TARGETS["memory"]),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target, ok in rows:
        flag = "" if not target else ("ok" if ok else "MISSED")
        print(f"{name:<{width}}  {value:>10}  {target:>9}  {flag}")
    if first[2] or cached[2]:
        print(f"demo exit status: first {first[2]}, cached {cached[2]}")
    _print_parts(work / "first" / "results.json")
    print(f"outputs and cache in {work}")
    return 0 if not (first[2] or cached[2]) else 1


if __name__ == "__main__":
    sys.exit(main())
