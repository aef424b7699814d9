"""results.json and scores.parquet exactly as the contract says, and `mmia report`."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmia.data import SkippedRow
from mmia.results import AttackEntry, DatasetInfo, RunResult, ScoreTable, Section, read_results, write_results


def _run(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50), np.zeros(50)].astype(int)
    table = ScoreTable([f"s{i}" for i in range(100)], y)
    table.add("loss", rng.normal(size=100) + y)
    table.add("zlib", rng.normal(size=100))
    entries = [AttackEntry.from_scores(n, y, table.columns[n], seconds=1.5, paper="p") for n in table.columns]
    result = RunResult(
        name="attack",
        command="attack",
        dataset=DatasetInfo(path="data.jsonl", n_members=50, n_nonmembers=50),
        target="models/t",
        attacks=entries,
        skipped=[SkippedRow(row=7, reason="image does not decode", id="x").to_dict()],
    )
    write_results(tmp_path, result, table)
    return result, table


def test_results_json_follows_the_contract(tmp_path):
    _run(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["mmia_version"] == "0.1.0"
    assert data["command"] == "attack"
    assert data["dataset"]["path"] == "data.jsonl"
    assert data["dataset"]["n_members"] == 50 and data["dataset"]["n_nonmembers"] == 50
    assert data["target"] == "models/t"
    loss = data["attacks"][0]
    assert loss["name"] == "loss"
    assert 0.5 < loss["auc"] <= 1
    assert len(loss["auc_ci95"]) == 2 and loss["auc_ci95"][0] < loss["auc"] < loss["auc_ci95"][1]
    assert set(loss["tpr_at_fpr"]) == {"0.001", "0.01", "0.05"}
    assert loss["seconds"] == 1.5
    assert data["skipped"] == [{"row": 7, "id": "x", "reason": "image does not decode"}]
    assert read_results(tmp_path).attacks[1].name == "zlib"


def test_scores_parquet_one_row_per_sample(tmp_path):
    _, table = _run(tmp_path)
    df = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(df.columns) == ["id", "label", "loss", "zlib"]
    assert len(df) == 100 and df["id"].tolist() == table.ids
    np.testing.assert_array_equal(df["loss"].to_numpy(), table.columns["loss"])


def test_score_table_rejects_wrong_length():
    t = ScoreTable(["a", "b"], [1, 0])
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        t.add("x", [1.0, 2.0, 3.0])


def test_report_renders_tables_and_loglog_plots(tmp_path):
    _run(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report.html").read_text()
    assert "<td class=\"name\" title=\"p\">loss</td>" in html
    assert "TPR@1%FPR" in html and "1 row(s) skipped" in html
    assert "http://" not in html and "https://" not in html  # readable offline
    pngs = list((tmp_path / "plots").glob("roc-*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert f'src="plots/{pngs[0].name}"' in html
    hists = list((tmp_path / "plots").glob("hist-*.png"))  # members vs non-members of the best method, loss
    assert len(hists) == 1 and hists[0].read_bytes()[:4] == b"\x89PNG" and f'src="plots/{hists[0].name}"' in html


def test_report_with_sections_one_plot_each(tmp_path):
    rng = np.random.default_rng(1)
    tables, sections = [], []
    for name in ("vlm/matched", "vlm/shifted"):
        y = np.r_[np.ones(20), np.zeros(20)].astype(int)
        t = ScoreTable([f"{name}-{i}" for i in range(40)], y, section=name)
        t.add("blind:bow", rng.normal(size=40) + y)
        tables.append(t)
        sections.append(Section(name=name, attacks=[AttackEntry.from_scores("blind:bow", y, t.columns["blind:bow"])],
                                verdict="shifted", verdict_detail="because"))
    write_results(tmp_path, RunResult(name="demo", command="demo", sections=sections), tables)
    from mmia.report import render_report

    html = render_report(tmp_path).read_text()
    assert html.count("Verdict: shifted") == 2
    assert len(list((tmp_path / "plots").glob("roc-*.png"))) == 2
    assert len(list((tmp_path / "plots").glob("hist-*.png"))) == 2
    df = pd.read_parquet(tmp_path / "scores.parquet")
    assert set(df["section"]) == {"vlm/matched", "vlm/shifted"}


def test_report_on_a_non_results_dir_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path}: no results.json here (is this a results directory?)"
