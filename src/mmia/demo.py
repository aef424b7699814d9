"""`mmia demo`: build (or reuse) every demo testbed and run every registered demo step on it.

The demo names no method: method families add themselves with
`mmia.attacks.registry.register_demo_step`, and each step returns the sections (and per-sample
scores) it produced for a testbed, or nothing when it does not apply.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mmia.attacks.registry import list_demo_steps
from mmia.results import RunResult, ScoreTable, Section, write_results
from mmia.testbeds.base import DemoContext, Testbed, list_testbeds
from mmia.testbeds.build import build_testbed, default_cache_dir, is_cached


@dataclass
class DemoOutcome:
    result: RunResult
    out_dir: Path
    testbeds: list[Testbed] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    n_steps: int = 0


def _build_quietly(name: str, seed: int, cache_dir: str, quick: bool) -> str:
    """Worker: build one testbed (its own process, one torch thread, no progress bars)."""
    from mmia import progress

    progress.set_quiet(True)
    return str(build_testbed(name, seed=seed, cache_dir=cache_dir, quick=quick).root)


class TestbedBuilds:
    """Build (or reuse) testbeds, yielding each as soon as it is ready.

    Cached testbeds come first; the others are built `jobs` at a time in worker processes, the
    costliest first and then the cheapest first, and are yielded as they finish,
    so the demo's steps can run on one testbed while others still train. Each build trains with
    one thread. With a `failures` list, a testbed whose build fails is reported there and left
    out; without one, the error propagates.
    """

    def __init__(self, names: list[str], *, seed: int, cache_dir: Path, quick: bool, jobs: int = 2, log=print,
                 failures: list[str] | None = None):
        self.names, self.seed, self.root, self.quick = list(names), seed, Path(cache_dir), quick
        self.jobs, self.log, self.failures = jobs, log, failures
        self.pending = 0  # builds submitted and not finished (the demo gives its steps fewer threads meanwhile)

    def _fail(self, name: str, exc: Exception) -> None:
        if self.failures is None:
            raise exc
        first = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        self.failures.append(f"testbed {name}: {first}")
        self.log(f"testbed {name} failed to build: {first}")

    def _load(self, name: str) -> Testbed | None:
        try:
            return build_testbed(name, seed=self.seed, cache_dir=self.root, quick=self.quick)
        except Exception as exc:
            self._fail(name, exc)
            return None

    def __iter__(self):
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        specs = {s.name: s for s in list_testbeds()}
        todo = [n for n in self.names if not is_cached(specs[n], seed=self.seed, cache_dir=self.root,
                                                       quick=self.quick)]
        for n in self.names:
            if n not in todo and (tb := self._load(n)) is not None:
                self.log(f"testbed {n}: reused from the cache ({tb.root})")
                yield tb
        # The costliest build first (it is the critical path: its steps wait for it), then the
        # others cheapest first, so the demo's steps start on them while the long one trains.
        todo.sort(key=lambda n: specs[n].cost)
        if todo:
            todo.insert(0, todo.pop())
        t = time.perf_counter()
        if len(todo) <= 1 or self.jobs <= 1:
            for n in todo:
                t1 = time.perf_counter()
                if (tb := self._load(n)) is not None:
                    self.log(f"testbed {n}: built in {time.perf_counter() - t1:.1f} s")
                    yield tb
            return
        self.log(f"building {len(todo)} testbeds, {self.jobs} at a time: {', '.join(todo)}")
        ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=ctx) as pool:
            running = {pool.submit(_build_quietly, n, self.seed, str(self.root), self.quick): n for n in todo}
            self.pending = len(running)
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: todo.index(running[f])):
                    n = running.pop(fut)
                    self.pending = len(running)
                    try:
                        fut.result()
                    except Exception as exc:
                        self._fail(n, exc)
                        continue
                    self.log(f"testbed {n}: built ({time.perf_counter() - t:.1f} s since start)")
                    if (tb := self._load(n)) is not None:
                        yield tb


def build_all(names: list[str], *, seed: int, cache_dir: Path, quick: bool, jobs: int = 2, log=print,
              failures: list[str] | None = None) -> list[Testbed]:
    """Every testbed of `names` that builds, in the order given (see TestbedBuilds)."""
    built = {tb.name: tb for tb in TestbedBuilds(names, seed=seed, cache_dir=cache_dir, quick=quick, jobs=jobs,
                                                  log=log, failures=failures)}
    return [built[n] for n in names if n in built]


@contextmanager
def _threads_while_building(builds: TestbedBuilds):
    """Steps run with one torch thread while builds still occupy the cores, then with the default."""
    import torch

    before = torch.get_num_threads()
    if builds.pending:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name} ({k})", k + 1
    taken.add(candidate)
    return candidate


def _testbed_summary(tb: Testbed) -> dict:
    signal = (tb.manifest.get("member_signal") or {}).get("loss")
    return {
        "root": str(tb.root),
        "seed": tb.manifest.get("seed"),
        "target_kind": tb.target_kind,
        "splits": sorted(tb.splits),
        "targets": sorted(tb.targets),
        "build_time_loss_auc": None if not signal else signal["auc"],
        "build_time_loss_auc_ci95": None if not signal else signal["auc_ci95"],
    }


def run_demo(
    out_dir: str | Path = "demo-out",
    *,
    quick: bool = False,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    jobs: int = 2,
    log=print,
) -> DemoOutcome:
    """Build the testbeds, run the demo steps, write results.json, scores.parquet and report.html."""
    from mmia.report import render_report

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    t0 = time.perf_counter()
    failures: list[str] = []
    timings: dict[str, dict[str, float]] = {}
    names = [s.name for s in list_testbeds() if s.in_demo]
    builds = TestbedBuilds(names, seed=seed, cache_dir=cache_root, quick=quick, jobs=jobs, log=log,
                           failures=failures)
    steps = list_demo_steps()
    if not steps:
        log("no demo steps are registered yet: method families add themselves with "
            "mmia.attacks.registry.register_demo_step; writing the testbeds' summary only")
    ctx = DemoContext(out_dir=out / "work", cache_dir=cache_root / "values", seed=seed, quick=quick)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    by_testbed: dict[str, list[tuple[Section, ScoreTable | None]]] = {}
    built: dict[str, Testbed] = {}
    for tb in builds:  # steps run on each testbed as soon as it is ready, while the others still build
        built[tb.name] = tb
        produced_here = by_testbed.setdefault(tb.name, [])
        for step in steps:
            t, c = time.perf_counter(), time.process_time()
            try:
                with _threads_while_building(builds):
                    produced = step.run(tb, ctx) or []
            except Exception as exc:  # one broken step must not lose the others' results
                first = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
                failures.append(f"{tb.name} · {step.name}: {first}")
                log(f"step {step.name} failed on {tb.name}: {first}")
                produced_here.append((Section(name=f"{tb.name} · {step.name}", command=step.name,
                                              verdict="error", notes=first,
                                              verdict_detail=traceback.format_exc(limit=3)), None))
                continue
            for section, _ in produced:
                if not section.name.startswith(f"{tb.name}/"):
                    section.name = f"{tb.name}/{section.name}"
                section.command = section.command or step.name
            produced_here.extend(produced)
            if produced:
                took = time.perf_counter() - t
                # CPU time too (this process): on a shared machine it says what a step costs
                timings[f"{step.name} on {tb.name}"] = {"wall": round(took, 1),
                                                        "cpu": round(time.process_time() - c, 1)}
                log(f"step {step.name} on {tb.name}: {len(produced)} section(s) in {took:.1f} s "
                    f"({time.process_time() - c:.1f} s CPU)")
    testbeds = [built[n] for n in names if n in built]
    sections: list[Section] = []
    tables: list[ScoreTable] = []
    taken: set[str] = set()
    for failure in failures:  # testbeds that did not build: listed, never silently dropped
        if failure.startswith("testbed "):
            name, _, why = failure.partition(": ")
            sections.append(Section(name=_unique(f"{name.removeprefix('testbed ')} · build", taken),
                                    verdict="error", notes=why))
    for tb in testbeds:  # a fixed order, whichever testbed finished building first
        for section, table in by_testbed[tb.name]:
            section.name = _unique(section.name, taken)
            sections.append(section)
            if table is not None:
                table.section = section.name
                tables.append(table)
    result = RunResult(
        name="demo",
        command="demo",
        sections=sections,
        settings={
            "seed": seed,
            "quick": quick,
            "cache_dir": str(cache_root),
            "steps": [s.name for s in steps],
            "testbeds": {tb.name: _testbed_summary(tb) for tb in testbeds},
            "seconds": round(time.perf_counter() - t0, 1),
            "seconds_by_part": timings,  # wall (and CPU) seconds of each step that produced sections
        },
        notes=_notes(testbeds, steps),
    )
    write_results(out, result, tables or None)
    if not tables:
        _write_empty_scores(out)
    render_report(out)
    return DemoOutcome(result=result, out_dir=out, testbeds=testbeds, failures=failures, n_steps=len(steps))


def _notes(testbeds: list[Testbed], steps) -> str:
    """The report's opening line: which testbeds ran, with their build-time member signal."""
    parts = []
    for tb in testbeds:
        info = _testbed_summary(tb)
        if info["build_time_loss_auc"] is None:
            parts.append(f"{tb.name} ({'data only' if tb.target_kind is None else tb.target_kind})")
        else:
            lo, hi = info["build_time_loss_auc_ci95"]
            parts.append(f"{tb.name} ({tb.target_kind}; loss-attack AUC measured at build time "
                         f"{info['build_time_loss_auc']:.3f}, 95% CI {lo:.3f}-{hi:.3f})")
    text = "Testbeds: " + "; ".join(parts) + "."
    if not steps:
        text += " No demo steps are registered yet, so no method has been run."
    return text


def _write_empty_scores(out: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"section": pd.Series([], dtype=str), "id": pd.Series([], dtype=str),
                          "label": pd.array([], dtype="Int64")})
    tmp = out / "scores.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(out / "scores.parquet")


def summary_rows(result: RunResult) -> list[tuple[str, str, str, str, str, str]]:
    """(section, best method, AUC, CI, TPR@1%FPR, verdict) per section, for the printed table."""
    rows = []
    for s in result.sections:
        best = max((a for a in s.attacks if a.auc is not None), key=lambda a: a.auc, default=None)
        if best is None:
            rows.append((s.name, "–", "–", "–", "–", s.verdict or (s.notes or "")))
            continue
        ci = f"[{best.auc_ci95[0]:.3f}, {best.auc_ci95[1]:.3f}]" if best.auc_ci95 else "–"
        tpr = best.tpr_at_fpr.get("0.01")
        rows.append((s.name, best.name, f"{best.auc:.3f}", ci, "–" if tpr is None else f"{tpr:.3f}",
                     s.verdict or ""))
    return rows


def print_summary(outcome: DemoOutcome, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    tbs = Table(title="testbeds (member signal measured when each was built)")
    for col in ("testbed", "target", "build-time loss AUC", "95% CI", "folder"):
        tbs.add_column(col)
    for name, info in outcome.result.settings["testbeds"].items():
        auc, ci = info["build_time_loss_auc"], info["build_time_loss_auc_ci95"]
        tbs.add_row(name, info["target_kind"] or "data only", "–" if auc is None else f"{auc:.3f}",
                    "–" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]", info["root"])
    console.print(tbs)
    table = Table(title=f"mmia demo: {len(outcome.result.sections)} section(s) from {outcome.n_steps} step(s)")
    for col in ("section", "best method", "AUC", "95% CI", "TPR@1%FPR", "verdict"):
        table.add_column(col)
    for row in summary_rows(outcome.result):
        table.add_row(*row)
    if not outcome.result.sections:
        table.add_row("(none)", "no demo steps registered", "–", "–", "–", "")
    console.print(table)
    console.print(f"wrote {outcome.out_dir / 'results.json'}, scores.parquet and report.html")
    for f in outcome.failures:
        console.print(f"[red]failed:[/red] {f}", markup=True)
