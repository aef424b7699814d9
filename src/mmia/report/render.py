"""Render report.html (jinja2) and log-log ROC PNGs from results.json and scores.parquet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmia.metrics import roc_points
from mmia.report.plots import roc_plot
from mmia.results import RunResult, Section, read_results


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "section"


def _sections(result: RunResult) -> list[Section]:
    """The top level is a section of its own when it holds attacks; the demo's live in `sections`."""
    out = []
    if result.attacks or not result.sections:
        out.append(result)
    out.extend(result.sections)
    return out


def _curves(frame, section: Section):
    """ROC curves of a section's entries, from the per-sample scores."""
    if frame is None or "label" not in frame.columns:
        return {}
    df = frame
    if "section" in df.columns:
        df = df[df["section"] == section.name]
    df = df[df["label"].notna()]
    curves = {}
    for entry in section.attacks:
        if entry.name not in df.columns or entry.auc is None:
            continue
        sub = df[["label", entry.name]].dropna()
        y = sub["label"].to_numpy(dtype=np.int64)
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_points(y, sub[entry.name].to_numpy(dtype=np.float64))
        curves[entry.name] = (fpr, tpr, entry.auc)
    return curves


def render_report(out_dir: str | Path) -> Path:
    """(Re)render `report.html` and its plots in a results directory; returns the HTML path."""
    import jinja2
    import pandas as pd

    out = Path(out_dir)
    result = read_results(out)
    scores_path = out / "scores.parquet"
    frame = pd.read_parquet(scores_path) if scores_path.exists() else None
    plots_dir = out / "plots"
    views = []
    for i, section in enumerate(_sections(result)):
        curves = _curves(frame, section)
        plot = None
        if curves:
            name = f"roc-{i:02d}-{_slug(section.name or result.command or 'run')}.png"
            roc_plot(curves, section.name or result.command or "ROC", plots_dir / name)
            plot = f"plots/{name}"
        best = max((a for a in section.attacks if a.auc is not None), key=lambda a: a.auc, default=None)
        # `top`: the run's own level (jinja has no identity test to tell it from a sub-section).
        views.append({"section": section, "plot": plot, "best": best, "top": section is result})
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mmia.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    html = env.get_template("report.html").render(result=result, views=views)
    path = out / "report.html"
    tmp = out / "report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
