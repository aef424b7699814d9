"""Build a registered testbed once per (name, seed, version), into a cache, atomically.

A build writes into a temporary folder beside its cache entry and is renamed into place only
when the builder returned, so an interrupted build never leaves a half-written testbed that a
later run would reuse. `--out` gets a copy of the cached entry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from mmia.cache import default_cache_dir
from mmia.errors import InputError
from mmia.testbeds.base import Testbed, TestbedSpec, list_testbeds

COMPLETE = ".complete"  # written last inside the temp folder; an entry without it is never used


def get_spec(name: str) -> TestbedSpec:
    specs = {s.name: s for s in list_testbeds()}
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none registered"
        raise InputError(f"unknown testbed '{name}' (known: {known})")
    return specs[name]


def entry_name(spec: TestbedSpec, seed: int, quick: bool) -> str:
    return f"{spec.name}-{seed}-{spec.version}" + ("-quick" if quick else "")


def _is_complete(path: Path) -> bool:
    return (path / COMPLETE).exists() and (path / "manifest.json").exists()


def is_cached(spec: TestbedSpec, *, seed: int, cache_dir: str | Path | None, quick: bool) -> bool:
    root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "testbeds"
    return _is_complete(root / entry_name(spec, seed, quick))


def build_testbed(
    name: str | TestbedSpec,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    quick: bool = False,
    rebuild: bool = False,
) -> Testbed:
    """Return the testbed `name` for `seed`, building it into the cache if it is not there yet.

    `cache_dir` is mmia's cache root (default: the user cache dir); builds go to its `testbeds/`
    folder as `<name>-<seed>-<version>`. With `out`, the cached testbed is copied to `out` and the
    handle points there. `name` may be the spec itself (the demo's worker processes get specs, so
    that a testbed registered at run time builds there too).
    """
    spec = name if isinstance(name, TestbedSpec) else get_spec(name)
    root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "testbeds"
    root.mkdir(parents=True, exist_ok=True)
    final = root / entry_name(spec, seed, quick)
    if rebuild and final.exists():
        shutil.rmtree(final)
    if not _is_complete(final):
        if final.exists():
            shutil.rmtree(final)  # not ours to trust: no completion mark
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
        try:
            t0 = time.perf_counter()
            spec.build(tmp, seed=seed, quick=quick)
            (tmp / COMPLETE).write_text(f"built in {time.perf_counter() - t0:.1f} s\n", encoding="utf-8")
            try:
                os.rename(tmp, final)
            except OSError:
                if not _is_complete(final):  # lost a race to a builder that finished first: use theirs
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    if out is None:
        return Testbed.from_dir(final)
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise InputError("output folder exists and is not a testbed; give an empty or new folder", out)
    shutil.copytree(final, out, dirs_exist_ok=True)
    return Testbed.from_dir(out)
