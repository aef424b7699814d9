"""The printed table's layout (`mmia.report.print_run`), which every command shares: its columns,
one row per method (or per section's best method), the figures' format and the verdict lines."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from mmia.report import print_run
from mmia.results import AttackEntry, RunResult, Section


def _printed(result, **kw) -> list[str]:
    console = Console(record=True, width=200, color_system=None)
    print_run(result, console=console, **kw)
    return [line.rstrip() for line in console.export_text().splitlines()]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("│┃").split("│" if "│" in line else "┃")]


def _table(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """(header cells, body rows' cells) of the one table printed."""
    header = next(i for i, line in enumerate(lines) if "┃" in line)
    body = [_cells(line) for line in lines[header + 1:] if "│" in line]
    return _cells(lines[header]), body


def _entry(name: str, auc: float, tpr1: float, tpr5: float) -> AttackEntry:
    return AttackEntry(name=name, auc=auc, auc_ci95=(auc - 0.05, auc + 0.04), tpr_at_fpr={"0.01": tpr1, "0.05": tpr5})


def test_one_row_per_method_with_its_figures_then_the_verdict():
    run = RunResult(name="attack", attacks=[_entry("loss", 0.7123, 0.02, 0.111), AttackEntry(name="zlib")],
                    verdict="no shift", verdict_detail="every method's AUC interval covers 0.5")
    lines = _printed(run, extra={"seconds": lambda e: "1.5"})
    header, rows = _table(lines)
    assert header == ["method", "AUC", "95% CI", "TPR@1%FPR", "TPR@5%FPR", "seconds"]
    assert rows == [["loss", "0.712", "[0.662, 0.752]", "0.020", "0.111", "1.5"],
                    ["zlib", "–", "–", "–", "–", "1.5"]]
    assert lines[-2:] == ["verdict: no shift", "every method's AUC interval covers 0.5"]


def test_a_run_of_sections_prints_each_sections_best_method_and_no_run_verdict():
    a = Section(name="vlm/matched: score attacks",
                attacks=[_entry("loss", 0.61, 0.0, 0.05), _entry("min_k_pp", 0.66, 0.01, 0.07)])
    b = Section(name="vlm/matched: blind shift check", attacks=[AttackEntry(name="bag-of-words")],
                verdict="no shift")
    c = Section(name="clip-identities: umid", notes="refused: no model")
    run = RunResult(name="demo", sections=[a, b, c], verdict="run verdict, not printed by section")
    lines = _printed(run)
    header, rows = _table(lines)
    assert header == ["section", "best method", "AUC", "95% CI", "TPR@1%FPR", "verdict"]
    assert rows == [["vlm/matched: score attacks", "min_k_pp", "0.660", "[0.610, 0.700]", "0.010", ""],
                    ["vlm/matched: blind shift check", "–", "–", "–", "–", "no shift"],
                    ["clip-identities: umid", "–", "–", "–", "–", "refused: no model"]]
    assert not any(line.startswith("verdict:") for line in lines)


def test_an_empty_run_shows_the_empty_row():
    lines = _printed(RunResult(name="infer"), empty="nothing to test")
    header, rows = _table(lines)
    assert header[0] == "section" and rows == [["nothing to test", "–", "–", "–", "–", "–"]]


def test_entries_from_scores_print_their_rounded_auc():
    y = np.array([0, 0, 1, 1])
    e = AttackEntry.from_scores("loss", y, np.array([0.1, 0.4, 0.35, 0.8]))
    _, rows = _table(_printed(RunResult(name="attack", attacks=[e])))
    assert rows[0][:2] == ["loss", "0.750"]
