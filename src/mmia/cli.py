"""The `mmia` command: a thin typer layer over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mmia import __version__
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


@app.command()
def inspect(
    data: Path = typer.Argument(..., help="JSONL, CSV, Parquet file or datasets save_to_disk directory."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip (and list) bad rows instead of stopping."),
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
def report(out_dir: Path = typer.Argument(..., help="A results directory (with results.json).")):
    """(Re)render report.html and its ROC plots from a results directory."""
    from mmia.report import render_report

    path = render_report(out_dir)
    typer.echo(str(path))


@app.command()
def umid(
    queries: Path = typer.Argument(..., help="Query file (JSONL/CSV/Parquet): id, text (a name or PII string), label."),
    target: Path = typer.Option(..., "--target", help="CLIP- or CLAP-style model directory (Hugging Face format)."),
    out: Path = typer.Option(..., "--out", help="Results directory."),
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
):
    """Text-only membership audit of a CLIP/CLAP model (UMID): was this name in the training data?"""
    from mmia.cache import Cache
    from mmia.errors import InputError
    from mmia.report import render_report
    from mmia.results import RunResult, write_results
    from mmia.umid.audit import SequentialConfig, UmidConfig
    from mmia.umid.methods import audit_queries, to_results

    if param not in ("latent", "pixels"):
        raise InputError(f"--param must be 'latent' or 'pixels', not {param!r}")
    cfg = UmidConfig(restarts=restarts, steps=steps, param=param, grid=grid, reference_size=reference_size,
                     template=template, seed=seed)
    seq = None
    if sequential:
        seq = SequentialConfig(restarts=restarts, steps=steps, reference_size=reference_size, seed=seed)
    with Cache(cache_dir) as cache:
        res = audit_queries(queries, target, cfg, control_names=control_names, media=media, sequential=seq,
                            cache=cache)
    section, table = to_results(res, name="umid", queries=queries, target=target, show_queries=show_queries,
                                settings={"umid": cfg.model_dump()})
    run = RunResult(**section.model_dump())
    write_results(out, run, table)
    render_report(out)
    for e in run.attacks:
        if e.auc is not None:
            typer.echo(f"{e.name:34s} AUC {e.auc:.3f}  TPR@1%FPR {e.tpr_at_fpr.get('0.01', 0):.3f}")
    typer.echo(str(out / "report.html"))


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
