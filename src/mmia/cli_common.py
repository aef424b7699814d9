"""What `mmia` commands share: `--quiet` accepted after the command as well as before it, and the
options of the commands that run a target model."""

from __future__ import annotations

import functools
import inspect

import typer


def accepts_quiet(fn):
    """Give a command function its own `--quiet`/`-q` (the group's stays: either place works).

    typer reads a command's options from its signature, so the wrapper's signature is the
    function's plus a keyword-only `quiet`.
    """
    sig = inspect.signature(fn)
    option = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter (as `mmia -q CMD`).")
    quiet = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=option)

    @functools.wraps(fn)
    def command(*args, quiet: bool = False, **kwargs):
        if quiet:  # only ever switches on: `mmia --quiet CMD` stays quiet without it
            from mmia import progress

            progress.set_quiet(True)
        return fn(*args, **kwargs)

    command.__signature__ = sig.replace(parameters=[*sig.parameters.values(), quiet])
    return command


# Options of every command that runs a target model (typer reads them from the defaults).
TARGET = typer.Option(..., "--target", help="Target model directory (Hugging Face format), or a PEFT (LoRA) "
                      "adapter directory.")
BASE = typer.Option(None, "--base", help="A PEFT adapter target's base model directory (default: the local "
                    "directory its adapter_config.json names); for a generative target also the default --reference.")
OUT = typer.Option(..., "--out", help="Results directory.")
BATCH_SIZE = typer.Option(8, "--batch-size", min=1, help="Samples per forward pass.")
MAX_BATCH_TOKENS = typer.Option(
    None, "--max-batch-tokens", min=1, help="Also cut forward batches at this many padded tokens (rows x the "
    "longest row); --batch-size still caps the rows. Same scores; for long or uneven rows on a GPU."
)
DEVICE = typer.Option("auto", "--device", help="cpu, cuda, cuda:1, ... (auto: CUDA when present).")
DTYPE = typer.Option("auto", "--dtype", help="float32, bfloat16, float16 (auto: bf16 on CUDA, fp32 on CPU).")
CACHE = typer.Option(None, "--cache", help="Cache directory (default: the user cache); reruns resume.")
SKIP_BAD = typer.Option(False, "--skip-bad", help="Skip (and list) bad rows instead of stopping.")

# The Ray engine's options (`attack`; the same names wherever a command gains --engine ray).
ENGINE = typer.Option("local", "--engine", help="local (this process) or ray (Ray Data actors; see docs/scale.md).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="With --engine ray: the cluster to join (auto: the one "
                           "`ray start --head` runs here; host:port; default: a local one of this machine's CPUs).")
WORKERS = typer.Option(1, "--workers", min=1, help="With --engine ray: actors scoring side by side, each loading "
                       "the target once.")
GPUS_PER_WORKER = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="With --engine ray: GPUs per actor "
                               "(0.5: two actors share one).")
CPUS_PER_WORKER = typer.Option(None, "--cpus-per-worker", min=1.0, help="With --engine ray: CPUs (and torch "
                               "threads) per actor (default: the cluster's CPUs shared among the workers).")
MAX_RETRIES = typer.Option(3, "--max-retries", min=0, help="With --engine ray: times a block whose worker died "
                           "(out of memory, a crash) is started again; then the run stops naming its rows, exit 2, "
                           "the finished shards kept.")


def accepts_ray(fn):
    """Give a command the Ray engine's options (--engine, --ray-address, --workers, --gpus-per-worker,
    --cpus-per-worker, --max-retries); the function receives them as `engine` and `ray` (a
    RayOptions). Like `accepts_quiet`, the wrapper's signature is what typer reads."""
    sig = inspect.signature(fn)
    kept = [p for name, p in sig.parameters.items() if name not in ("engine", "ray")]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=option)
             for name, ann, option in (("engine", str, ENGINE), ("ray_address", str, RAY_ADDRESS),
                                       ("workers", int, WORKERS), ("gpus_per_worker", float, GPUS_PER_WORKER),
                                       ("cpus_per_worker", float, CPUS_PER_WORKER),
                                       ("max_retries", int, MAX_RETRIES))]

    @functools.wraps(fn)
    def command(*args, engine: str = "local", ray_address=None, workers: int = 1, gpus_per_worker: float = 0.0,
                cpus_per_worker=None, max_retries: int = 3, **kwargs):
        from mmia.engine.ray_cluster import RayOptions

        ray = RayOptions(address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                         cpus_per_worker=cpus_per_worker, max_retries=max_retries)
        return fn(*args, engine=engine, ray=ray, **kwargs)

    command.__signature__ = sig.replace(parameters=[*kept, *added])
    return command
