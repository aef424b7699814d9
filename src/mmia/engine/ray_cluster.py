"""Joining (or starting) the Ray cluster the `--engine ray` commands run on, and what each worker gets.

    with ray_session(address=None) as info:   # None: a local cluster of this machine's CPUs
        ...                                     # "auto": the cluster of `ray start --head`

Ray is imported only here and only when asked for, so the local engine never pays for it. The
workers are Ray Data actors; this module sizes them (CPUs and GPUs per worker, restarts) and
holds the fault hook the tests use to kill a worker mid-run.
"""

from __future__ import annotations

import logging
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from mmia.errors import InputError, MmiaError

# Fault injection for the tests (never set in normal use): "kill-once:MARKER" makes the first
# worker batch that finds no MARKER file create it and SIGKILL its own process; "kill-row:ROW"
# SIGKILLs the worker whenever a block holding item ROW starts (a poison row: every retry dies);
# "delay:SECONDS" makes every worker batch sleep first. The driver reads it and hands it to its
# workers, so it works on a cluster started elsewhere too.
FAULT_ENV = "MMIA_RAY_FAULTS"
DEFAULT_MAX_RETRIES = 3


class RayOptions(BaseModel):
    """Where and how wide an `--engine ray` run goes (the options every such command shares)."""

    address: str | None = Field(None, description="None: a local cluster; 'auto'; host:port")
    workers: int = Field(1, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0)
    cpus_per_worker: float | None = Field(None, ge=1)
    block_rows: int | None = Field(None, ge=1, description="items per block (None: sized from the work)")
    max_retries: int = Field(DEFAULT_MAX_RETRIES, ge=0,
                             description="times a block whose worker died is started again before the run fails")

    def as_kwargs(self) -> dict:
        """The keyword arguments of `run_attack` and `fimmia.api.score` that these options stand for."""
        return {"ray_address": self.address, "workers": self.workers, "gpus_per_worker": self.gpus_per_worker,
                "cpus_per_worker": self.cpus_per_worker, "max_retries": self.max_retries}


class RayNotInstalled(MmiaError):
    exit_code = 2


@dataclass
class RaySession:
    address: str  # the cluster's GCS address
    started_here: bool  # a local cluster this process started (and shuts down)
    cpus: float
    gpus: float


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayNotInstalled("--engine ray needs Ray Data: pip install 'ray[data]'") from None
    return ray


def _quiet_ray(ray) -> None:
    from mmia import progress

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR if progress.is_quiet() else logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO/WARNING lines retell our own progress


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port that takes no TCP connection is refused at once (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot join the Ray cluster at --ray-address {address} (no answer: "
                         f"{exc.strerror or exc}); start one with `ray start --head`, or leave --ray-address "
                         "out for a local one") from None


@contextmanager
def ray_session(address: str | None = None):
    """Yield a RaySession on the cluster at `address`.

    None: this process's Ray if it has one already, else a local cluster of this machine's CPUs
    (and GPUs) started here, dashboard off, shut down on leaving. "auto": the cluster of a
    `ray start --head` on this machine (or RAY_ADDRESS). Anything else: a GCS address (host:port)
    or a ray:// client address.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        try:
            if address is None:
                # "local": a new cluster even where a `ray start` one or RAY_ADDRESS exists
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **kwargs)
                started = True
            else:
                _check_reachable(address)
                ray.init(address=address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
        except ConnectionError as exc:
            first = (str(exc).strip().splitlines() or ["no cluster there"])[0]
            raise InputError(f"cannot join the Ray cluster at --ray-address {address} ({first}); start one "
                             "with `ray start --head`, or leave --ray-address out for a local one") from None
    _quiet_ray(ray)
    res = ray.cluster_resources()
    try:
        yield RaySession(address=ray.get_runtime_context().gcs_address, started_here=started,
                         cpus=float(res.get("CPU", 1.0)), gpus=float(res.get("GPU", 0.0)))
    finally:
        if started:
            ray.shutdown()


def worker_resources(session: RaySession, workers: int, gpus_per_worker: float,
                     cpus_per_worker: float | None, blocks: int | None = None) -> dict:
    """map_batches arguments of the worker pool: `workers` actors of `cpus_per_worker` CPUs (default:
    the cluster's CPUs shared out) and `gpus_per_worker` GPUs each; no more actors than `blocks`
    (an actor with no block would only load its models), each sized as if all `workers` ran.

    A dead actor is restarted and its batches retried by Ray Data's own defaults for actor pools
    (max_restarts=-1, max_task_retries=-1). Ray 2.60 would take a bound (map_batches passes
    max_task_retries on to the actors), but its failure is an ActorUnavailableError naming no
    block; `AttemptLedger` bounds each block's attempts instead and names its rows.
    """
    import ray
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    if gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker must be 0 or more, not {gpus_per_worker}")
    if gpus_per_worker > 0 and gpus_per_worker * workers > session.gpus + 1e-9:
        raise InputError(f"{workers} worker(s) x {gpus_per_worker} GPU need {workers * gpus_per_worker:g} GPUs; "
                         f"the Ray cluster has {session.gpus:g}")
    cpus = cpus_per_worker if cpus_per_worker is not None else max(1.0, float(int(session.cpus // workers)))
    if cpus * workers > session.cpus + 1e-9:
        raise InputError(f"{workers} worker(s) x {cpus:g} CPU need {workers * cpus:g} CPUs; the Ray cluster has "
                         f"{session.cpus:g} (lower --workers)")
    actors = workers if blocks is None else max(1, min(workers, blocks))
    return {"compute": ray.data.ActorPoolStrategy(size=actors), "num_cpus": cpus,
            "num_gpus": gpus_per_worker or None}


class AttemptLedger:
    """Counts the starts of each block, for the whole run (a Ray actor on the driver's node; plain
    here so that importing this module does not import Ray). A worker asks it before it computes a
    block: a block started more than 1 + max_retries times has killed that many workers (its
    process died mid-block each time: out of memory on one row, a crash in native code) and is
    failed instead of run again, which Ray's own retries would do forever."""

    def __init__(self):
        self.starts: dict[str, int] = {}

    def start(self, block: str) -> int:
        self.starts[block] = self.starts.get(block, 0) + 1
        return self.starts[block]


def fault_hook(spec: str | None, items: list[int] | None = None) -> None:
    """Run the fault a test asked for (see FAULT_ENV); a no-op when `spec` is empty. `items`: the
    block's row numbers (item numbers), for "kill-row"."""
    if not spec:
        return
    kind, _, arg = spec.partition(":")
    if kind == "kill-row":
        if items is not None and int(arg) in items:
            os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "delay":
        import time

        time.sleep(float(arg))
    elif kind == "kill-once":
        try:
            fd = os.open(Path(arg), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
