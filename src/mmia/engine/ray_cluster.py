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

from mmia.errors import InputError, MmiaError

# Fault injection for the tests (never set in normal use): "kill-once:MARKER" makes the first
# worker batch that finds no MARKER file create it and SIGKILL its own process; "delay:SECONDS"
# makes every worker batch sleep first. The driver reads it and hands it to its workers, so it
# works on a cluster started elsewhere too.
FAULT_ENV = "MMIA_RAY_FAULTS"


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
                     cpus_per_worker: float | None) -> dict:
    """map_batches arguments of the worker pool: `workers` actors of `cpus_per_worker` CPUs (default:
    the cluster's CPUs shared out) and `gpus_per_worker` GPUs each.

    A dead actor is restarted and its batches retried by Ray Data's own defaults for actor pools
    (max_restarts=-1, max_task_retries=-1); they are not passed here, as Ray 2.6x deprecates
    passing them to map_batches.
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
    return {"compute": ray.data.ActorPoolStrategy(size=workers), "num_cpus": cpus,
            "num_gpus": gpus_per_worker or None}


def fault_hook(spec: str | None) -> None:
    """Run the fault a test asked for (see FAULT_ENV); a no-op when `spec` is empty."""
    if not spec:
        return
    kind, _, arg = spec.partition(":")
    if kind == "delay":
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
