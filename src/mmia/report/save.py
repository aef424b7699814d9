"""The one way a run is saved: results.json, scores.parquet, then report.html rendered from them."""

from __future__ import annotations

from pathlib import Path

from mmia.results import RunResult, ScoreTable, write_results


def save_run(out_dir: str | Path, result: RunResult, scores: ScoreTable | list[ScoreTable] | None = None) -> Path:
    """Write a run's results.json and scores.parquet into `out_dir` and render its report; returns
    the results.json path. The report reads the files back, so it shows what was written."""
    from mmia.report.render import render_report

    path = write_results(out_dir, result, scores)
    render_report(out_dir)
    return path
