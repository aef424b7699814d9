"""The demo's work as jobs: testbed builds and (testbed, step) pairs, run on a pool of processes.

Each worker process runs one job at a time on one torch thread, so `jobs` workers keep `jobs`
cores busy from the first build to the last step; steps start on a testbed as soon as it is
built, while other testbeds still train. Builds go first (they unlock steps), the costliest one
first since its steps wait for it, then the cheapest first; steps then run in the order their
testbeds became ready, except a step marked `after_others` (infer), which waits until the
testbed's other steps have finished, since it reuses the values they cache. With `jobs=1` the
same jobs run in this process, in the same order.

Workers get the spec and step objects themselves (pickled by reference to their functions), so
testbeds and steps registered at run time, e.g. by tests, run there too.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from mmia.demo.steps import DemoContext
from mmia.testbeds.base import Testbed, TestbedSpec
from mmia.testbeds.build import build_testbed, entry_name, is_cached


@dataclass
class JobResult:
    """What one job produced: a built testbed's folder, or a step's (Section, ScoreTable | None) pairs."""

    kind: str  # "build" or "step"
    testbed: str
    step: str | None = None
    root: str | None = None
    produced: list = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds of the process that ran the job, while it ran
    error: str | None = None  # first line of the exception, when the job failed
    detail: str | None = None  # a short traceback
    reused: bool = False  # a build found in the cache

    @property
    def name(self) -> str:
        return f"testbed {self.testbed}" if self.kind == "build" else f"step {self.step} on {self.testbed}"


def _first_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}".splitlines()[0]


def _init_worker() -> None:
    import faulthandler

    import torch

    from mmia import progress

    faulthandler.enable()  # a native crash prints the Python stack it happened in
    torch.set_num_threads(1)
    progress.set_quiet(True)
    progress.quiet_libraries()


def _build_job(spec: TestbedSpec, seed: int, cache_dir: str, quick: bool) -> JobResult:
    t, c = time.perf_counter(), time.process_time()
    res = JobResult("build", spec.name)
    try:
        res.root = str(build_testbed(spec, seed=seed, cache_dir=cache_dir, quick=quick).root)
    except Exception as exc:
        res.error, res.detail = _first_line(exc), traceback.format_exc(limit=3)
    res.wall, res.cpu = time.perf_counter() - t, time.process_time() - c
    return res


def _step_job(step, testbed: Testbed, ctx: DemoContext) -> JobResult:
    t, c = time.perf_counter(), time.process_time()
    res = JobResult("step", testbed.name, step=step.name)
    try:
        res.produced = list(step.run(testbed, ctx) or [])
    except Exception as exc:  # one broken step must not lose the others' results
        res.error, res.detail = _first_line(exc), traceback.format_exc(limit=3)
    res.wall, res.cpu = time.perf_counter() - t, time.process_time() - c
    return res


class DemoJobs:
    """Iterate over the results of every build and step job, as each finishes.

    `specs` are the testbeds to build or reuse, `steps` the demo steps to run on each. Cached
    testbeds are loaded here and reported first (a build result with no timing); a testbed that
    fails to build (or to load) is reported with its error and gets no step jobs.
    """

    def __init__(self, specs: list[TestbedSpec], steps: list, *, seed: int, cache_dir: Path, quick: bool,
                 ctx: DemoContext | None = None, jobs: int = 2, log=print):
        self.specs, self.steps, self.seed, self.cache_dir = list(specs), list(steps), seed, Path(cache_dir)
        self.quick, self.ctx, self.jobs, self.log = quick, ctx, max(1, jobs), log
        self.testbeds: dict[str, Testbed] = {}
        # per testbed: its steps still to finish before its `after_others` steps, and those steps
        self._pending: dict[str, int] = {}
        self._held: dict[str, list] = {}

    def _ready(self, name: str, root: str | Path, queue: deque) -> JobResult | None:
        """Load a built testbed and queue its steps; a load failure comes back as a failed build."""
        try:
            self.testbeds[name] = Testbed.from_dir(Path(root))
        except Exception as exc:
            return JobResult("build", name, error=_first_line(exc), detail=traceback.format_exc(limit=3))
        first = [s for s in self.steps if not s.after_others]
        self._held[name] = [s for s in self.steps if s.after_others]
        self._pending[name] = len(first)
        queue.extend(("step", step, self.testbeds[name]) for step in first)
        self._release(name, queue)
        return None

    def _release(self, name: str, queue: deque) -> None:
        """Queue a testbed's `after_others` steps once its other steps have all finished."""
        if self._pending.get(name) == 0 and self._held.get(name):
            queue.extend(("step", step, self.testbeds[name]) for step in self._held.pop(name))

    def __iter__(self):
        queue: deque = deque()
        todo = []
        for spec in self.specs:
            if is_cached(spec, seed=self.seed, cache_dir=self.cache_dir, quick=self.quick):
                root = self.cache_dir / "testbeds" / entry_name(spec, self.seed, self.quick)
                yield self._ready(spec.name, root, queue) or JobResult("build", spec.name, root=str(root), reused=True)
            else:
                todo.append(spec)
        # The costliest build first (its steps wait for it), then the cheapest first, so that
        # steps start early on the small testbeds.
        todo.sort(key=lambda s: s.cost)
        if todo:
            todo.insert(0, todo.pop())
            self.log(f"building {len(todo)} testbed(s): {', '.join(s.name for s in todo)}")
        builds = deque(("build", spec) for spec in todo)
        yield from (self._inline if self.jobs == 1 else self._pooled)(builds, queue)

    def _next(self, builds: deque, queue: deque):
        return builds.popleft() if builds else queue.popleft()

    def _call(self, job) -> tuple:
        """(function, arguments) that run a job, here or in a worker."""
        if job[0] == "build":
            return _build_job, (job[1], self.seed, str(self.cache_dir), self.quick)
        return _step_job, (job[1], job[2], self.ctx)

    def _finish(self, res: JobResult, queue: deque) -> JobResult:
        """Every job's result passes here, failed or not: a build queues its testbed's steps, a
        step that ends (even by failing) may release the steps held back for it."""
        if res.kind == "build" and res.error is None:
            return self._ready(res.testbed, res.root, queue) or res
        if res.kind == "step" and not any(s.name == res.step and s.after_others for s in self.steps):
            self._pending[res.testbed] -= 1
            self._release(res.testbed, queue)
        return res

    def _inline(self, builds: deque, queue: deque):
        while builds or queue:
            fn, args = self._call(self._next(builds, queue))
            yield self._finish(fn(*args), queue)

    def _pooled(self, builds: deque, queue: deque):
        """Run the jobs `self.jobs` at a time; a worker that dies costs only the jobs it may have run.

        When a worker process dies (a native crash, the kernel's out-of-memory killer), the pool
        breaks and every job running on it fails. A fresh pool takes over, and those jobs run
        again one at a time: a job that kills its worker a second time, alone, is the culprit and
        fails with the worker's exit status; the others get their results.
        """
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pool = self._new_pool()
        retry: deque = deque()  # jobs that were running when a worker died, to run alone
        running: dict = {}  # future -> (job, ran alone)
        try:
            while builds or queue or retry or running:
                while not running and retry:
                    job = retry.popleft()
                    running[pool.submit(*self._submission(job))] = (job, True)
                while not retry and (builds or queue) and len(running) < self.jobs:
                    job = self._next(builds, queue)
                    try:
                        fut = pool.submit(*self._submission(job))
                    except BrokenProcessPool:  # it broke since the last wait; the job never ran
                        (builds if job[0] == "build" else queue).appendleft(job)
                        break
                    running[fut] = (job, False)
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                died: list = []  # (job, ran alone) of the jobs that were on the broken pool
                for fut in done:
                    job, alone = running.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        died.append((job, alone))
                        continue
                    except Exception as exc:  # the job or its result could not be sent
                        res = _failed(job, exc)
                    yield self._finish(res, queue)
                if died:
                    died += list(running.values())
                    running.clear()
                    workers = list((getattr(pool, "_processes", None) or {}).values())
                    pool.shutdown(wait=True, cancel_futures=True)  # joins the workers: their exit codes are set
                    status = _exit_status(workers)
                    for job, alone in died:
                        if alone:
                            yield self._finish(_failed(job, None, why=f"its worker process died ({status})"), queue)
                        else:
                            retry.append(job)
                    if retry:
                        self.log(f"a worker process died ({status}); running "
                                 f"{', '.join(_job_name(j) for j in retry)} again, one at a time")
                    pool = self._new_pool()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=_init_worker)

    def _submission(self, job) -> tuple:
        fn, args = self._call(job)
        return (fn, *args)


def _job_name(job: tuple) -> str:
    return f"testbed {job[1].name}" if job[0] == "build" else f"step {job[1].name} on {job[2].name}"


def _exit_status(workers: list) -> str:
    """How a broken pool's dead worker ended, e.g. 'killed by SIGKILL' (the out-of-memory killer's signal)."""
    import signal

    codes = [p.exitcode for p in workers]
    # The pool ends the surviving workers with SIGTERM: the other codes are the dead one's.
    codes.sort(key=lambda c: c == -signal.SIGTERM)
    for code in codes:
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        if code:
            return f"exit status {code}"
    return "exit status unknown"


def _failed(job: tuple, exc: BaseException | None, why: str | None = None) -> JobResult:
    res = JobResult("build", job[1].name) if job[0] == "build" else JobResult("step", job[2].name, step=job[1].name)
    res.error = why or _first_line(exc)
    res.detail = traceback.format_exc(limit=3) if exc is not None else None
    return res
