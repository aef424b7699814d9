"""The `mmia` command: a thin typer layer over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mmia import __version__
from mmia import cli_common as opt
from mmia.cli_common import accepts_quiet
from mmia.errors import MmiaError

app = typer.Typer(
    name="mmia",
    help="Audit multimodal models for membership of given data in their training set.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"mmia {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter."),
    allow_download: bool = typer.Option(
        False, "--allow-download", help="Let Hugging Face libraries download models (off by default)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    from mmia import offline, progress

    offline.configure(allow_download=allow_download)
    progress.set_quiet(quiet)
    progress.quiet_libraries()


@app.command()
@accepts_quiet
def inspect(
    data: Path = typer.Argument(..., help="JSONL, CSV, Parquet file or datasets save_to_disk directory."),
    skip_bad: bool = opt.SKIP_BAD,
    ignore_column: list[str] = typer.Option([], "--ignore-column", help="A column to ignore (repeatable)."),
):
    """Load and validate a data file (rows, labels, media) and summarise it."""
    from rich.console import Console
    from rich.table import Table

    from mmia.data import load_dataset

    ds = load_dataset(data, skip_bad=skip_bad, ignore_columns=ignore_column)
    summary = ds.summary()
    table = Table(title=str(data), show_header=False)
    for key, value in summary.items():
        if key != "path":
            table.add_row(key.replace("_", " "), ", ".join(value) if isinstance(value, list) else str(value))
    console = Console()
    console.print(table)
    for row in ds.skipped:
        console.print(f"skipped row {row.row}: {row.reason}", markup=False)


@app.command()
@accepts_quiet
@opt.accepts_ray
def attack(
    data: Path = typer.Argument(..., help="JSONL, CSV, Parquet file or datasets save_to_disk directory."),
    target: Path = opt.TARGET,
    base: Path = opt.BASE,
    attacks: str = typer.Option("", "--attacks", help="Comma-separated attack names (default: all that apply)."),
    reference: Path = typer.Option(
        None, "--reference", help="Reference model directory for the reference attack (default for a PEFT adapter "
        "target: its base)."
    ),
    out: Path = opt.OUT,
    batch_size: int = opt.BATCH_SIZE,
    max_batch_tokens: int = opt.MAX_BATCH_TOKENS,
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    cache: Path = opt.CACHE,
    skip_bad: bool = opt.SKIP_BAD,
    engine: str = "local",
    ray=None,
):
    """Score-based membership-inference attacks against a target model."""
    from rich.console import Console

    from mmia.attacks.runner import run_attack
    from mmia.report import print_run

    names = [a.strip() for a in attacks.split(",") if a.strip()] or None
    result, _ = run_attack(data, target, attacks=names, reference_dir=reference, out_dir=out,
                           batch_size=batch_size, device=device, dtype=dtype, cache_dir=cache, skip_bad=skip_bad,
                           base_dir=base, engine=engine, max_batch_tokens=max_batch_tokens, **ray.as_kwargs())
    print_run(result, title=f"attack: {data}", console=Console(stderr=True))  # stdout: the results path alone
    typer.echo(str(out / "results.json"))


@app.command()
@accepts_quiet
def infer(
    suspect: Path = typer.Argument(..., help="The suspect set (JSONL, CSV, Parquet, datasets dir); no labels needed."),
    validation: Path = typer.Option(..., "--validation", help="Data of the same kind the model cannot have seen."),
    target: Path = opt.TARGET,
    base: Path = opt.BASE,
    reference: Path = typer.Option(None, "--reference", help="Reference model directory (adds the ratio features; "
                                   "default for a PEFT adapter target: its base)."),
    out: Path = opt.OUT,
    alpha: float = typer.Option(0.01, "--alpha", help="Level of the test: 'trained on' when p < alpha."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split (part A fits the model, part B is tested)."),
    attacks: str = typer.Option("", "--attacks", help="Comma-separated feature attacks (default: all that apply)."),
    no_shift_check: bool = typer.Option(False, "--no-shift-check", help="Skip the blind check (not advised)."),
    batch_size: int = opt.BATCH_SIZE,
    max_batch_tokens: int = opt.MAX_BATCH_TOKENS,
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    cache: Path = opt.CACHE,
    skip_bad: bool = opt.SKIP_BAD,
):
    """Dataset inference: was the suspect set trained on? One p-value, gated by the blind shift check."""
    from mmia.infer import infer as run_infer

    names = [a.strip() for a in attacks.split(",") if a.strip()] or None
    result = run_infer(suspect, validation, target, reference=reference, out_dir=out, alpha=alpha, seed=seed,
                       attacks=names, shift_check=not no_shift_check, batch_size=batch_size, device=device,
                       dtype=dtype, cache_dir=cache, skip_bad=skip_bad, base=base, max_batch_tokens=max_batch_tokens)
    typer.echo(f"{result.verdict}: p = {result.p_value:.3g} (alpha {alpha}; control p = "
               f"{result.control_p_value:.3g}; {result.n_suspect} suspect, {result.n_validation} validation rows)"
               + (f"; shift check: {result.shift_verdict}" if result.shift_verdict else ""))
    typer.echo(str(out / "results.json"))


@app.command()
@accepts_quiet
def report(out_dir: Path = typer.Argument(..., help="A results directory (with results.json).")):
    """(Re)render report.html and its ROC plots from a results directory."""
    from mmia.report import render_report

    path = render_report(out_dir)
    typer.echo(str(path))


@app.command()
@accepts_quiet
def testbed(
    name: str = typer.Argument(..., help="A registered testbed (scenes, vlm, ...)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the testbed into."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the training."),
    cache: Path | None = typer.Option(None, "--cache", help="mmia cache folder (default: the user cache dir)."),
    quick: bool = typer.Option(False, "--quick", help="Miniature version (tests)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild even when a cached build exists."),
):
    """Build one testbed with known membership (data, target models, manifest.json)."""
    from mmia.testbeds.build import build_testbed

    tb = build_testbed(name, seed=seed, cache_dir=cache, out=out, quick=quick, rebuild=rebuild)
    typer.echo(str(tb.root))


@app.command()
@accepts_quiet
def shift(
    data: Path = typer.Argument(..., help="Labelled member/non-member set (JSONL, CSV, Parquet, save_to_disk)."),
    out: Path = typer.Option(..., "--out", help="Results directory to write."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated blind methods (default: by columns)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Stratified cross-validation folds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the classifiers."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip (and list) rows whose media do not decode."),
    text_embedder: Path | None = typer.Option(
        None, "--text-embedder", help="A sentence-transformers directory (default: all-MiniLM-L6-v2)."
    ),
    cache: Path | None = typer.Option(None, "--cache", help="Cache folder (default: the user cache dir)."),
    ignore_column: list[str] = typer.Option([], "--ignore-column", help="A column to ignore (repeatable)."),
    threads: int = typer.Option(1, "--threads", min=1, help="BLAS/OpenMP threads for the classifiers."),
):
    """Blind distribution-shift check: can members and non-members be told apart without the model?"""
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.report import print_run, save_run
    from mmia.results import RunResult
    from mmia.shift import run_shift

    ds = load_dataset(data, skip_bad=skip_bad, ignore_columns=ignore_column, require_labels=True)
    names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    with Cache(cache) as store:
        section, scores = run_shift(ds, names, folds=folds, seed=seed, cache=store, text_embedder=text_embedder,
                                    skip_bad=skip_bad, threads=threads)
    result = RunResult.of_section(section, name="shift", command="shift",
                                  settings={**section.settings, "data": str(data)})
    save_run(out, result, scores)
    print_run(result, title=f"blind shift check: {data}",
              extra={"Holm p": lambda e: f"{e.p_holm:.2g}", "s": lambda e: f"{e.seconds:.1f}"})
    typer.echo(str(out / "results.json"))


@app.command()
@accepts_quiet
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Results folder."),
    quick: bool = typer.Option(False, "--quick", help="Miniature testbeds and settings (seconds, for tests)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the testbeds and the methods."),
    cache: Path | None = typer.Option(None, "--cache", help="mmia cache folder (default: the user cache dir)."),
    jobs: int | None = typer.Option(None, "--jobs", help="Worker processes running builds and steps side by side, "
                                    "one thread each (default: the cores, at most 4; 1: all in this process)."),
):
    """The main job: build (or reuse) the testbeds, audit them with every method, report."""
    from mmia.demo import print_summary, run_demo
    from mmia.progress import info

    outcome = run_demo(out, quick=quick, seed=seed, cache_dir=cache, jobs=jobs, log=info)
    print_summary(outcome)
    if outcome.failures:
        raise typer.Exit(1)


@app.command()
@accepts_quiet
@opt.accepts_ray
def umid(
    queries: Path = typer.Argument(..., help="Query file (JSONL/CSV/Parquet): id, text (a name or PII string), label."),
    target: Path = typer.Option(
        ..., "--target", help="CLIP- or CLAP-style model directory (Hugging Face format), or a PEFT adapter of one."
    ),
    base: Path = opt.BASE,
    out: Path = opt.OUT,
    restarts: int = typer.Option(8, "--restarts", min=2, help="Independent random restarts per query."),
    steps: int = typer.Option(60, "--steps", min=1, help="Optimisation steps per restart."),
    param: str = typer.Option("pixels", "--param", help="pixels (raw pixels/waveform) or latent (coarse grid)."),
    grid: int = typer.Option(4, "--grid", min=1, help="Latent grid size."),
    reference_size: int = typer.Option(100, "--reference-size", min=10, help="Gibberish reference queries."),
    template: str = typer.Option(None, "--template", help="Query template with {} (default per model kind)."),
    control_names: Path = typer.Option(
        None, "--control-names", help="Held-out non-member names: the name-likeness control's reference."
    ),
    media: Path = typer.Option(
        None, "--media", help="File with each query id's real image/audio: the biometric cosine baseline."
    ),
    sequential: bool = typer.Option(False, "--sequential", help="Also run the predecessors' sequential procedure."),
    seed: int = typer.Option(0, "--seed"),
    show_queries: bool = typer.Option(False, "--show-queries", help="Show query ids and texts instead of hashes."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where inversions are cached (default: user cache)."),
    engine: str = "local",
    ray=None,
):
    """Text-only membership audit of a CLIP/CLAP model (UMID): was this name in the training data?

    --engine ray: every inversion on Ray actors (shards in OUT/shards/ a rerun reuses), the decision here.
    """
    from mmia.cache import Cache
    from mmia.errors import InputError
    from mmia.report import print_run, save_run
    from mmia.results import RunResult
    from mmia.umid.api import audit_queries, to_results
    from mmia.umid.audit import SequentialConfig, UmidConfig

    if param not in ("latent", "pixels"):
        raise InputError(f"--param must be 'latent' or 'pixels', not {param!r}")
    cfg = UmidConfig(restarts=restarts, steps=steps, param=param, grid=grid, reference_size=reference_size,
                     template=template, seed=seed)
    seq = None
    if sequential:
        seq = SequentialConfig(restarts=restarts, steps=steps, reference_size=reference_size, seed=seed)
    with Cache(cache_dir) as cache:
        res = audit_queries(queries, target, cfg, control_names=control_names, media=media, sequential=seq,
                            cache=cache, base=base, engine=engine, ray=ray, out_dir=out)
    ray_info = res.info.pop("ray", None)
    settings = {"umid": cfg.model_dump(), **({"engine_kind": "ray", "ray": ray_info} if ray_info else {})}
    section, table = to_results(res, name="umid", queries=queries, target=target, show_queries=show_queries,
                                settings=settings)
    run = RunResult.of_section(section)
    save_run(out, run, table)
    print_run(run, title=f"umid: {queries}")
    typer.echo(str(out / "report.html"))


def _add_subcommands() -> None:
    from mmia.cli_fimmia import app as fimmia_app

    app.add_typer(fimmia_app, name="fimmia")


_add_subcommands()


def main() -> None:
    """Console entry point: user errors become one line on stderr and their exit status."""
    try:
        app()
    except MmiaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; computed values are cached and a rerun resumes", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
