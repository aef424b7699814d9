"""The one way a run is printed: a rich table of its methods' figures (or, for a run of several
sections, each section's best method), then its verdict."""

from __future__ import annotations

from collections.abc import Callable

from mmia.results import AttackEntry, RunResult, Section

NONE = "–"


def _num(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f}"


def _ci(entry: AttackEntry) -> str:
    return f"[{entry.auc_ci95[0]:.3f}, {entry.auc_ci95[1]:.3f}]" if entry.auc_ci95 else NONE


def entry_row(entry: AttackEntry) -> tuple[str, str, str, str, str]:
    """(method, AUC, 95% CI, TPR@1%FPR, TPR@5%FPR) of one entry, as printed."""
    return (entry.name, _num(entry.auc), _ci(entry), _num(entry.tpr_at_fpr.get("0.01")),
            _num(entry.tpr_at_fpr.get("0.05")))


def best_entry(section: Section) -> AttackEntry | None:
    return max((a for a in section.attacks if a.auc is not None), key=lambda a: a.auc, default=None)


def summary_rows(result: RunResult) -> list[tuple[str, str, str, str, str, str]]:
    """(section, best method, AUC, CI, TPR@1%FPR, verdict) per section, for the printed table."""
    rows = []
    for s in result.sections:
        best = best_entry(s)
        if best is None:
            rows.append((s.name, NONE, NONE, NONE, NONE, s.verdict or (s.notes or "")))
            continue
        name, auc, ci, tpr, _ = entry_row(best)
        rows.append((s.name, name, auc, ci, tpr, s.verdict or ""))
    return rows


def print_run(result: Section, *, title: str | None = None, console=None,
              extra: dict[str, Callable[[AttackEntry], str]] | None = None, empty: str | None = None) -> None:
    """Print `result`: one row per method, with `extra` columns (header: how to show an entry);
    a run with sections and no methods of its own gets one row per section (its best method).
    `empty`: the row shown when there is nothing to list."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    by_section = not result.attacks and isinstance(result, RunResult) and bool(result.sections or empty)
    table = Table(title=title or result.notes or result.name)
    if by_section:
        for col in ("section", "best method", "AUC", "95% CI", "TPR@1%FPR", "verdict"):
            table.add_column(col)
        for row in summary_rows(result):
            table.add_row(*row)
    else:
        for col in ("method", "AUC", "95% CI", "TPR@1%FPR", "TPR@5%FPR", *(extra or {})):
            table.add_column(col)
        for e in result.attacks:
            table.add_row(*entry_row(e), *(show(e) for show in (extra or {}).values()))
    if table.row_count == 0 and empty is not None:
        table.add_row(empty, *[NONE] * (len(table.columns) - 1))
    console.print(table)
    if result.verdict and not by_section:
        console.print(f"verdict: {result.verdict}", markup=False)
    if result.verdict_detail and not by_section:
        console.print(result.verdict_detail, markup=False)
