"""`mmia demo`: build (or reuse) every demo testbed and run every demo step on it.

Each step (`mmia.demo.steps`) returns the sections (and per-sample scores) it produced for a
testbed, or nothing when it does not apply; the run is saved and printed as every command's is.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from mmia.cache import default_cache_dir
from mmia.demo.jobs import DemoJobs
from mmia.demo.steps import DemoContext, list_demo_steps
from mmia.progress import progress_bar
from mmia.results import RunResult, ScoreTable, Section
from mmia.testbeds.base import Testbed, list_testbeds


@dataclass
class DemoOutcome:
    result: RunResult
    out_dir: Path
    testbeds: list[Testbed] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    n_steps: int = 0


def build_all(names: list[str], *, seed: int, cache_dir: Path, quick: bool, jobs: int = 2, log=print,
              failures: list[str] | None = None) -> list[Testbed]:
    """Every testbed of `names` that builds, in the order given, built `jobs` at a time (see DemoJobs).

    With a `failures` list, a testbed that fails to build is reported there and left out; without
    one, the first failure raises.
    """
    specs = {s.name: s for s in list_testbeds()}
    runner = DemoJobs([specs[n] for n in names], [], seed=seed, cache_dir=cache_dir, quick=quick, jobs=jobs, log=log)
    for res in runner:
        if res.error is not None:
            if failures is None:
                raise RuntimeError(f"testbed {res.testbed} failed to build: {res.error}")
            failures.append(f"testbed {res.testbed}: {res.error}")
    return [runner.testbeds[n] for n in names if n in runner.testbeds]


def _collect(res, failures: list[str], timings: dict, produced_by: dict, log, t0: float) -> None:
    """File one job's result: failures, timings and the sections it produced."""
    if res.kind == "build":
        if res.error is not None:
            failures.append(f"testbed {res.testbed}: {res.error}")
            log(f"testbed {res.testbed} failed to build: {res.error}")
        elif not res.reused:
            timings[f"build {res.testbed}"] = {"wall": round(res.wall, 1), "cpu": round(res.cpu, 1)}
            log(f"testbed {res.testbed}: built in {res.wall:.1f} s ({time.perf_counter() - t0:.1f} s since start)")
        else:
            log(f"testbed {res.testbed}: reused from the cache ({res.root})")
        return
    if res.error is not None:
        failures.append(f"{res.testbed} · {res.step}: {res.error}")
        log(f"step {res.step} failed on {res.testbed}: {res.error}")
        produced_by[res.testbed, res.step] = [(Section(name=f"{res.testbed} · {res.step}", command=res.step,
                                                       verdict="error", notes=res.error,
                                                       verdict_detail=res.detail), None)]
        return
    for section, _ in res.produced:
        if not section.name.startswith(f"{res.testbed}/"):
            section.name = f"{res.testbed}/{section.name}"
        section.command = section.command or res.step
    produced_by[res.testbed, res.step] = res.produced
    if res.produced:
        # CPU time of the worker that ran it: on a shared machine it says what a step costs
        timings[f"{res.step} on {res.testbed}"] = {"wall": round(res.wall, 1), "cpu": round(res.cpu, 1)}
        log(f"step {res.step} on {res.testbed}: {len(res.produced)} section(s) in {res.wall:.1f} s "
            f"({res.cpu:.1f} s CPU)")


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
    jobs: int | None = None,
    log=print,
) -> DemoOutcome:
    """Build the testbeds, run the demo steps, write results.json, scores.parquet and report.html.

    `jobs` worker processes (default: the cores, at most 4, as each holds a model in memory) run
    the builds and steps side by side; 1 runs them all in this process.
    """
    from mmia.report import save_run

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    t0 = time.perf_counter()
    jobs = jobs or min(os.cpu_count() or 1, 4)
    failures: list[str] = []
    timings: dict[str, dict[str, float]] = {}
    specs = [s for s in list_testbeds() if s.in_demo]
    names = [s.name for s in specs]
    steps = list_demo_steps()
    if not steps:
        log("no demo steps are registered (mmia.demo.steps); writing the testbeds' summary only")
    ctx = DemoContext(out_dir=out / "work", cache_dir=cache_root / "values", seed=seed, quick=quick)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    produced_by: dict[tuple[str, str], list[tuple[Section, ScoreTable | None]]] = {}
    runner = DemoJobs(specs, steps, seed=seed, cache_dir=cache_root, quick=quick, ctx=ctx, jobs=jobs, log=log)
    # Builds and steps run side by side in worker processes; results come back as each finishes.
    # The bar counts jobs (a build or reuse per testbed, a step per testbed); with one job at a
    # time the steps run here and show their own bars instead.
    bar_cm = progress_bar("demo", len(specs) * (1 + len(steps)), unit="jobs") if jobs > 1 else nullcontext()
    with bar_cm as bar:
        for res in runner:
            _collect(res, failures, timings, produced_by, log, t0)
            if bar is not None:
                bar.advance(1 + (len(steps) if res.kind == "build" and res.error else 0))
    built = runner.testbeds
    testbeds = [built[n] for n in names if n in built]
    sections: list[Section] = []
    tables: list[ScoreTable] = []
    taken: set[str] = set()
    for failure in failures:  # testbeds that did not build: listed, never silently dropped
        if failure.startswith("testbed "):
            name, _, why = failure.partition(": ")
            sections.append(Section(name=_unique(f"{name.removeprefix('testbed ')} · build", taken),
                                    verdict="error", notes=why))
    for tb in testbeds:  # a fixed order, whichever job finished first
        for section, table in (pair for step in steps for pair in produced_by.get((tb.name, step.name), [])):
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
            "seconds_by_part": timings,  # wall and CPU seconds of each build and of each step that produced sections
        },
        notes=_notes(testbeds, steps),
    )
    save_run(out, result, tables)
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


def print_summary(outcome: DemoOutcome, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from mmia.report import print_run

    console = console or Console()
    tbs = Table(title="testbeds (member signal measured when each was built)")
    for col in ("testbed", "target", "build-time loss AUC", "95% CI", "folder"):
        tbs.add_column(col)
    for name, info in outcome.result.settings["testbeds"].items():
        auc, ci = info["build_time_loss_auc"], info["build_time_loss_auc_ci95"]
        tbs.add_row(name, info["target_kind"] or "data only", "–" if auc is None else f"{auc:.3f}",
                    "–" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]", info["root"])
    console.print(tbs)
    print_run(outcome.result, title=f"mmia demo: {len(outcome.result.sections)} section(s) from "
              f"{outcome.n_steps} step(s)", console=console, empty="(none): no demo steps registered")
    console.print(f"wrote {outcome.out_dir / 'results.json'}, scores.parquet and report.html")
    for f in outcome.failures:
        console.print(f"[red]failed:[/red] {f}", markup=True)
