import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmia.data import load_dataset
from mmia.demo import run_demo, steps
from mmia.report.console import summary_rows
from mmia.results import AttackEntry, ScoreTable, Section


@pytest.fixture
def no_steps(monkeypatch):
    monkeypatch.setattr(steps, "_STEPS", {})
    monkeypatch.setitem(steps._loaded, "done", True)


def test_quick_demo_with_no_steps_writes_outputs(tmp_path, no_steps, quick_cache):
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, log=lambda m: None)
    out = tmp_path / "out"
    for name in ("results.json", "scores.parquet", "report.html"):
        assert (out / name).exists(), name
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "demo" and res["sections"] == []
    assert {"scenes", "vlm"} <= set(res["settings"]["testbeds"])
    assert res["settings"]["testbeds"]["vlm"]["build_time_loss_auc"] is not None
    assert "section" in pd.read_parquet(out / "scores.parquet").columns
    assert outcome.n_steps == 0 and not outcome.failures
    assert "no method has been run" in (out / "report.html").read_text()


def _answer_length_step(tb, ctx):
    """A test-only step: scores each sample by its answer length (a blind statistic)."""
    out = []
    for split, path in sorted(tb.splits.items()):
        if "video" in split:
            continue
        ds = load_dataset(path)
        if not ds.n_members or not ds.n_nonmembers:  # e.g. a testbed's non-member-only calibration file
            continue
        scores = np.array([len(s.full_text) for s in ds], dtype=float)
        table = ScoreTable(ds.ids, ds.labels())
        table.add("answer_length", scores)
        section = Section(name=f"{split} · length", attacks=[AttackEntry.from_scores("answer_length", ds.labels(),
                                                                                       scores)])
        out.append((section, table))
    return out


def _broken_step(tb, ctx):
    if tb.name == "scenes":
        raise RuntimeError("boom")
    return []


def test_demo_runs_registered_steps(tmp_path, no_steps, quick_cache):
    steps.register_demo_step("length", order=10)(_answer_length_step)
    steps.register_demo_step("broken", order=20)(_broken_step)
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, jobs=2, log=lambda m: None)
    names = [s.name for s in outcome.result.sections]
    assert len(names) == len(set(names))
    assert "scenes/matched · length" in names and "vlm/shifted · length" in names
    assert outcome.failures and "boom" in outcome.failures[0]
    frame = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert set(frame["section"]) == {n for n in names if "length" in n}
    sub = frame[frame["section"] == "vlm/matched · length"]
    entry = next(s for s in outcome.result.sections if s.name == "vlm/matched · length").attacks[0]
    assert len(sub) == entry.n_members + entry.n_nonmembers
    rows = summary_rows(outcome.result)
    assert any(r[0] == "vlm/matched · length" and r[1] == "answer_length" for r in rows)
    assert "vlm/matched" in (tmp_path / "out" / "report.html").read_text()


def test_demo_cli_quick(tmp_path, quick_cache):
    proc = subprocess.run(
        [sys.executable, "-c", "from mmia.cli import main; main()", "demo", "--quick", "--out", str(tmp_path / "o"),
         "--cache", str(quick_cache)],
        capture_output=True,
        text=True,
    )
    err = proc.stderr
    assert proc.returncode == 0, err if len(err) < 6000 else err[:3000] + "\n...\n" + err[-3000:]
    assert "mmia demo" in proc.stdout and (tmp_path / "o" / "report.html").exists()


def test_parallel_builds_match_the_serial_ones(tmp_path, quick_cache):
    from mmia.demo import build_all

    built = build_all(["scenes", "vlm"], seed=0, cache_dir=tmp_path, quick=True, jobs=2, log=lambda m: None)
    serial = build_all(["scenes", "vlm"], seed=0, cache_dir=quick_cache, quick=True, jobs=1, log=lambda m: None)
    assert built[1].manifest["weights_sha256"] == serial[1].manifest["weights_sha256"]
    assert built[0].manifest["ids"] == serial[0].manifest["ids"]


def _broken_build(out_dir, *, seed, quick):
    raise RuntimeError("cannot build")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_testbed_that_fails_to_build_is_reported(tmp_path, no_steps, quick_cache, monkeypatch, jobs):
    from mmia.testbeds import base

    monkeypatch.setitem(base._TESTBEDS, "zz-broken", base.TestbedSpec("zz-broken", "x", _broken_build))
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, jobs=jobs, log=lambda m: None)
    assert outcome.failures == ["testbed zz-broken: RuntimeError: cannot build"]
    assert [s.name for s in outcome.result.sections] == ["zz-broken · build"]
    assert {tb.name for tb in outcome.testbeds} >= {"scenes", "vlm"}


def test_steps_in_worker_processes_match_steps_in_this_process(tmp_path, no_steps, quick_cache):
    """The pool changes where and when steps run, never what they produce or the order of sections."""
    steps.register_demo_step("length", order=10)(_answer_length_step)
    steps.register_demo_step("broken", order=20)(_broken_step)
    pooled = run_demo(tmp_path / "pooled", quick=True, cache_dir=quick_cache, jobs=2, log=lambda m: None)
    inline = run_demo(tmp_path / "inline", quick=True, cache_dir=quick_cache, jobs=1, log=lambda m: None)
    assert [s.name for s in pooled.result.sections] == [s.name for s in inline.result.sections]
    assert pooled.failures == inline.failures
    a = pd.read_parquet(tmp_path / "pooled" / "scores.parquet")
    b = pd.read_parquet(tmp_path / "inline" / "scores.parquet")
    pd.testing.assert_frame_equal(a, b)
    timed = pooled.result.settings["seconds_by_part"]
    assert "length on vlm" in timed and timed["length on vlm"]["cpu"] >= 0


def test_jobs_start_with_the_costliest_build_then_the_cheapest(tmp_path):
    from mmia.demo.jobs import DemoJobs
    from mmia.testbeds.base import TestbedSpec

    specs = [TestbedSpec(f"t{cost}", "x", _broken_build, cost=cost) for cost in (5, 50, 1, 20)]
    logged = []
    results = list(DemoJobs(specs, [], seed=0, cache_dir=tmp_path, quick=True, jobs=1, log=logged.append))
    assert [r.testbed for r in results] == ["t50", "t1", "t5", "t20"]
    assert all(r.kind == "build" and r.error == "RuntimeError: cannot build" for r in results)
    assert logged == ["building 4 testbed(s): t50, t1, t5, t20"]


def _worker_killing_step(tb, ctx):
    """Kills its own process on the vlm testbed, as a native crash or the out-of-memory killer would."""
    import os
    import signal

    if tb.name == "vlm":
        os.kill(os.getpid(), signal.SIGKILL)
    return _answer_length_step(tb, ctx)


def _once_killing_step(tb, ctx):
    """Kills its process the first time it runs on vlm only (a crash that does not come back)."""
    import os
    import signal

    marker = ctx.out_dir / "killed-once"
    if tb.name == "vlm" and not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return _answer_length_step(tb, ctx)


def test_a_dead_worker_costs_only_its_own_job(tmp_path, no_steps, quick_cache):
    steps.register_demo_step("killer", order=10)(_worker_killing_step)
    steps.register_demo_step("length", order=20)(_answer_length_step)
    logged = []
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, jobs=2, log=logged.append)
    assert outcome.failures == ["vlm · killer: its worker process died (killed by SIGKILL)"]
    names = {s.name for s in outcome.result.sections}
    assert "vlm/matched · length" in names and "scenes/matched · length" in names
    assert any("a worker process died (killed by SIGKILL)" in m and "step killer on vlm" in m for m in logged)


def test_a_job_whose_worker_died_once_runs_again(tmp_path, no_steps, quick_cache):
    steps.register_demo_step("flaky", order=10)(_once_killing_step)
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, jobs=2, log=lambda m: None)
    assert not outcome.failures
    (tmp_path / "inline" / "work").mkdir(parents=True)
    (tmp_path / "inline" / "work" / "killed-once").write_text("x")  # or it would kill this process
    inline = run_demo(tmp_path / "inline", quick=True, cache_dir=quick_cache, jobs=1, log=lambda m: None)
    assert [s.name for s in outcome.result.sections] == [s.name for s in inline.result.sections]
    assert "vlm/matched · length" in {s.name for s in outcome.result.sections}


def _marking_step(tb, ctx):
    """Leaves a marker for its testbed after a pause, so a step that should wait for it would see none."""
    import time

    time.sleep(0.3)
    (ctx.out_dir / f"mark-{tb.name}-{time.monotonic_ns()}").touch()
    if tb.name == "scenes":
        raise RuntimeError("boom after marking")
    return []


def _counting_step(tb, ctx):
    """An `after_others` step: how many markers of its testbed exist when it starts."""
    n = len(list(ctx.out_dir.glob(f"mark-{tb.name}-*")))
    return [(Section(name=f"{tb.name} · count", notes=str(n)), None)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_after_others_step_waits_for_every_other_step_of_its_testbed(tmp_path, no_steps, quick_cache, jobs):
    """The infer step reuses values the other steps cache: it must start after them on its testbed
    (also after one that failed), whatever the number of jobs, and it must still run."""
    steps.register_demo_step("count", order=5, after_others=True)(_counting_step)
    for name in ("mark-a", "mark-b"):
        steps.register_demo_step(name, order=10)(_marking_step)
    outcome = run_demo(tmp_path / "out", quick=True, cache_dir=quick_cache, jobs=jobs, log=lambda m: None)
    counts = {s.name: s.notes for s in outcome.result.sections if s.name.endswith("· count")}
    assert counts and set(counts.values()) == {"2"}, counts
    assert sorted(counts) == sorted(f"{tb.name}/{tb.name} · count" for tb in outcome.testbeds)  # one per testbed
    assert sorted(outcome.failures) == ["scenes · mark-a: RuntimeError: boom after marking",
                                        "scenes · mark-b: RuntimeError: boom after marking"]


def test_the_infer_step_runs_after_the_others():
    assert [s.name for s in steps.list_demo_steps() if s.after_others] == ["infer"]
