"""Render report.html (jinja2) and its PNG plots from results.json and scores.parquet.

The page opens with an overview (one row per section: data, target, the shift verdict of that
data, the best method with its AUC interval and TPR at 1% FPR), a table of contents, then one
block per section (the shift verdict of the same data beside every attack section, the method
table, a log-log ROC plot and the member/non-member score histogram of the best method), and a
References list that cites each paper once. results.json and scores.parquet are only read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmia.metrics import roc_points
from mmia.report.plots import histogram_plot, roc_plot
from mmia.results import AttackEntry, RunResult, Section, read_results

# What each shift verdict means for the membership results on the same data (shown beside them).
SHIFT_MEANING = {
    "shifted": "members and non-members can be told apart without the model, so an attack's AUC on this "
               "data may measure the shift rather than membership",
    "no shift detected": "no blind method separates members from non-members beyond the margin; not a proof "
                         "that the sets are matched",
}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "section"


def _sections(result: RunResult) -> list[Section]:
    """The top level is a section of its own when it holds attacks; the demo's live in `sections`."""
    out = []
    if result.attacks or not result.sections:
        out.append(result)
    out.extend(result.sections)
    return out


def _section_frame(frame, section: Section):
    """The labelled per-sample rows of one section (None when there are none)."""
    if frame is None or "label" not in frame.columns:
        return None
    df = frame
    if "section" in df.columns:
        df = df[df["section"] == section.name]
    df = df[df["label"].notna()]
    return df if len(df) else None


def _labelled(df, name: str):
    """(labels, scores) of one column, finite rows only; None unless both classes are present."""
    if df is None or name not in df.columns:
        return None
    sub = df[["label", name]].dropna()
    y = sub["label"].to_numpy(dtype=np.int64)
    s = sub[name].to_numpy(dtype=np.float64)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    if len(set(y.tolist())) < 2:
        return None
    return y, s


def _curves(df, section: Section):
    """ROC curves of a section's entries, from the per-sample scores."""
    curves = {}
    for entry in section.attacks:
        if entry.auc is None:
            continue
        ys = _labelled(df, entry.name)
        if ys is None:
            continue
        fpr, tpr, _ = roc_points(*ys)
        curves[entry.name] = (fpr, tpr, entry.auc)
    return curves


def _is_shift(section: Section) -> bool:
    """A blind shift check: `mmia shift`'s command, or every entry a `blind:` method with a verdict."""
    if section.command == "shift":
        return True
    return bool(section.attacks) and section.verdict is not None and all(
        a.name.startswith("blind:") for a in section.attacks)


def _data_key(section: Section) -> str | None:
    """The identity of a section's data as results.json records it: its data file's path."""
    if section.dataset is None or not section.dataset.path:
        return None
    return os.path.normpath(section.dataset.path)


def _short_path(path: str | None, parts: int = 2) -> str:
    if not path:
        return ""
    pieces = Path(path).parts
    return "/".join(pieces[-parts:]) if len(pieces) > parts else str(path)


def _verdict_class(verdict: str | None) -> str:
    if verdict in ("shifted", "error", "the sets differ without the model"):
        return "bad"
    if verdict in ("no shift detected", "no evidence"):
        return "ok"
    if verdict == "trained on":
        return "alert"
    return "none"


def _papers(text: str | None) -> list[str]:
    """The papers one entry cites: a registry string may name several, separated by '; '."""
    if not text:
        return []
    return [p.strip() for p in text.split("; ") if p.strip()]


def _paper_key(paper: str) -> str:
    """The same paper written two ways (its arXiv id, when it has one) is one reference."""
    m = re.search(r"arXiv[:\s]*(\d{4}\.\d{4,5})", paper, flags=re.IGNORECASE)
    return f"arxiv:{m.group(1)}" if m else re.sub(r"\s+", " ", paper.lower()).strip(" .")


@dataclass
class References:
    """Each paper once, numbered by its first citation in the report's order."""

    keys: dict[str, int] = field(default_factory=dict)
    texts: list[list[str]] = field(default_factory=list)

    def cite(self, text: str | None) -> list[int]:
        numbers = []
        for paper in _papers(text):
            key = _paper_key(paper)
            if key not in self.keys:
                self.keys[key] = len(self.texts) + 1
                self.texts.append([])
            n = self.keys[key]
            if paper not in self.texts[n - 1]:
                self.texts[n - 1].append(paper)
            if n not in numbers:
                numbers.append(n)
        return numbers

    def listing(self) -> list[dict]:
        # A paper written two ways: show the shortest wording (the bare citation).
        return [{"n": i + 1, "text": min(ts, key=len)} for i, ts in enumerate(self.texts)]


def _best(section: Section) -> AttackEntry | None:
    """The highest-AUC entry, the same rule as the demo's printed summary."""
    return max((a for a in section.attacks if a.auc is not None), key=lambda a: a.auc, default=None)


def _shift_info(section: Section, by_data: dict[str, list[dict]], own_view: dict | None) -> dict | None:
    """The shift verdict shown beside a section: its own for a shift check; the check the run
    recorded on exactly its two sets (dataset inference's `shift_verdict`); else the shift
    check of the same data file in this run."""
    if own_view is not None:
        return {"verdict": section.verdict, "source": "own", "anchor": None, "name": None}
    extra = section.model_extra or {}
    if extra.get("shift_verdict"):
        return {"verdict": extra["shift_verdict"], "source": "sets", "anchor": None, "name": None}
    key = _data_key(section)
    matches = by_data.get(key, []) if key else []
    if matches:
        m = matches[0]
        return {"verdict": m["section"].verdict, "source": "data", "anchor": m["anchor"], "name": m["section"].name}
    return None


def _group(name: str) -> str:
    """The testbed (or other prefix) a demo section belongs to: the part before the first '/'."""
    return name.split("/", 1)[0] if "/" in name else ""


def render_report(out_dir: str | Path) -> Path:
    """(Re)render `report.html` and its plots in a results directory; returns the HTML path."""
    import jinja2
    import pandas as pd

    out = Path(out_dir)
    result = read_results(out)
    scores_path = out / "scores.parquet"
    frame = pd.read_parquet(scores_path) if scores_path.exists() else None
    plots_dir = out / "plots"
    refs = References()
    views = []
    for i, section in enumerate(_sections(result)):
        name = section.name or result.command or "run"
        slug = _slug(name)
        df = _section_frame(frame, section)
        curves = _curves(df, section)
        plot = hist = None
        if curves:
            file = f"roc-{i:02d}-{slug}.png"
            roc_plot(curves, section.name or result.command or "ROC", plots_dir / file)
            plot = f"plots/{file}"
        best = _best(section)
        best_scores = _labelled(df, best.name) if best is not None else None
        if best_scores is not None:
            y, s = best_scores
            file = f"hist-{i:02d}-{slug}.png"
            histogram_plot({"members": s[y == 1], "non-members": s[y == 0]},
                           f"{best.name}: scores of members and non-members", plots_dir / file)
            hist = f"plots/{file}"
        rows = [{"entry": a, "refs": refs.cite(a.paper)} for a in section.attacks]
        views.append({
            "section": section,
            "name": name,
            "anchor": f"s{i:02d}-{slug}",
            "group": _group(name),
            "short": name.split("/", 1)[1] if "/" in name else name,
            "plot": plot,
            "hist": hist,
            "best": best,
            "rows": rows,
            "is_shift": _is_shift(section),
            "figures": list((section.model_extra or {}).get("figures") or []),
            # `top`: the run's own level (jinja has no identity test to tell it from a sub-section).
            "top": section is result,
        })
    by_data: dict[str, list[dict]] = {}
    for v in views:
        key = _data_key(v["section"])
        if v["is_shift"] and key:
            by_data.setdefault(key, []).append(v)
    for v in views:
        v["shift"] = _shift_info(v["section"], by_data, v if v["is_shift"] else None)
    groups: list[dict] = []
    for v in views:  # contiguous groups in first-appearance order (the demo's are per testbed)
        found = next((g for g in groups if g["name"] == v["group"]), None)
        if found is None:
            found = {"name": v["group"], "views": []}
            groups.append(found)
        found["views"].append(v)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mmia.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    env.filters["short_path"] = _short_path
    env.filters["verdict_class"] = _verdict_class
    html = env.get_template("report.html").render(result=result, views=views, groups=groups,
                                                  references=refs.listing(), shift_meaning=SHIFT_MEANING)
    path = out / "report.html"
    tmp = out / "report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
