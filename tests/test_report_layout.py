"""report.html's structure: overview first, shift verdicts joined to attack sections by data file,
each paper once in References, histograms of each section's best method; the results untouched."""

import hashlib
import re

import numpy as np
import pytest

from mmia.report import render_report
from mmia.results import AttackEntry, DatasetInfo, RunResult, ScoreTable, Section, read_results, write_results

BLIND = "Das, Zhang, Tramèr. Blind Baselines Beat Membership Inference Attacks for Foundation Models. arXiv 2406.16201"
FIMMIA_BLIND = "FiMMIA: scaling semantic perturbation-based membership inference, blind baselines. arXiv 2512.02786"
FIMMIA = "FiMMIA: scaling semantic perturbation-based MIA (arXiv 2512.02786); SMIA, Mozaffari (arXiv 2406.10218)"
YEOM = "Yeom et al., Privacy Risk in Machine Learning, CSF 2018"


def _section(name, command, path, entries, rng, *, verdict=None, scored=True, **extra):
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    table = ScoreTable([f"{name}-{i}" for i in range(40)], y, section=name) if scored else None
    attacks = []
    for method, paper, signal in entries:
        s = rng.normal(size=40) + signal * y
        if table is not None:
            table.add(method, s)
        attacks.append(AttackEntry.from_scores(method, y, s, paper=paper))
    section = Section(name=name, command=command, dataset=DatasetInfo(path=path, n_members=20, n_nonmembers=20),
                      attacks=attacks, verdict=verdict, **extra)
    return section, table


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    pairs = [
        _section("tb/matched: blind shift check", "shift", "/d/tb/matched.jsonl",
                 [("blind:bag_of_words", BLIND, 0.2), ("blind:colour_histogram", FIMMIA_BLIND, 2.0)], rng,
                 verdict="shifted", verdict_detail="a blind method separates them"),
        _section("tb/matched: score attacks", "attack", "/d/tb/matched.jsonl",
                 [("loss", YEOM, 1.0), ("fimmia", FIMMIA, 0.5)], rng),
        _section("tb/other: score attacks", "attack", "/d/tb/other.jsonl", [("loss", YEOM, 1.0)], rng),
        _section("tb/matched: dataset inference", "infer", "/d/tb/matched.jsonl", [("dataset inference", None, 1.0)],
                 rng, verdict="no evidence", scored=False, shift_verdict="no shift detected"),
        _section("zz/x: score attacks", "attack", "/d/zz/x.jsonl", [("loss", YEOM, 0.0)], rng),
    ]
    write_results(tmp_path, RunResult(name="demo", command="demo", sections=[s for s, _ in pairs]),
                  [t for _, t in pairs if t is not None])
    return tmp_path


def _block(html: str, name: str) -> str:
    start = html.index(f'data-section="{name}">\n<h3>')
    return html[start:html.index("</section>", start)]


def test_overview_comes_first_with_one_linked_row_per_section(run_dir):
    html = render_report(run_dir).read_text()
    overview = html[html.index('<table class="overview">'):]
    overview = overview[:overview.index("</table>")]
    assert html.index('id="overview"') < html.index('class="result"')
    rows = re.findall(r'<tr data-section="([^"]+)">\n<td class="sec"><a href="#([^"]+)">', overview)
    assert [r[0] for r in rows] == ["tb/matched: blind shift check", "tb/matched: score attacks",
                                    "tb/other: score attacks", "tb/matched: dataset inference", "zz/x: score attacks"]
    for name, anchor in rows:
        assert f'<section class="result" id="{anchor}" data-section="{name}">' in html
        assert f'<li><a href="#{anchor}">' in html  # the table of contents
    # The attack row on the shifted data carries the verdict and links to the shift check.
    shift_anchor = rows[0][1]
    attack_row = overview[overview.index('<tr data-section="tb/matched: score attacks">'):]
    attack_row = attack_row[:attack_row.index("</tr>")]
    assert f'<a href="#{shift_anchor}" class="badge bad">shifted</a>' in attack_row
    assert "Verdict: shifted" not in overview and html.count("Verdict: shifted") == 1
    # Best method of each row with its AUC interval and TPR@1%FPR (the shift check's: colour histogram).
    best = max(read_results(run_dir).sections[0].attacks, key=lambda a: a.auc)
    shift_row = overview[overview.index('<tr data-section="tb/matched: blind shift check">'):]
    shift_row = shift_row[:shift_row.index("</tr>")]
    lo, hi = best.auc_ci95
    assert best.name == "blind:colour_histogram" and f"<td>{best.name}</td>" in shift_row
    assert f"{best.auc:.3f} [{lo:.3f}, {hi:.3f}]" in shift_row and f"{best.tpr_at_fpr['0.01']:.3f}" in shift_row


def test_shift_verdict_beside_each_attack_section(run_dir):
    html = render_report(run_dir).read_text()
    matched = _block(html, "tb/matched: score attacks")
    assert "Shift check of this data: shifted</b>" in matched
    assert "tb/matched: blind shift check</a>" in matched
    assert "may measure the shift rather than membership" in matched
    assert "No shift check of this data in this run" in _block(html, "tb/other: score attacks")
    # Dataset inference records the check of its own two sets: that one is shown.
    infer = _block(html, "tb/matched: dataset inference")
    assert "Shift check of these two sets: no shift detected</b>" in infer and "Verdict: no evidence." in infer
    assert "No per-sample member/non-member scores of this section" in infer
    assert "Shift check of" not in _block(html, "tb/matched: blind shift check")


def test_each_paper_once_in_references_and_rows_link_to_it(run_dir):
    html = render_report(run_dir).read_text()
    refs = html[html.index('<ol class="references">'):html.index("</ol>")]
    items = re.findall(r'<li id="ref-(\d+)">(.*?)</li>', refs)
    texts = [t for _, t in items]
    # Blind baselines, FiMMIA (two wordings of arXiv 2512.02786: one entry), Yeom, SMIA.
    assert len(items) == 4 and [n for n, _ in items] == ["1", "2", "3", "4"]
    assert sum("2512.02786" in t for t in texts) == 1 and sum("2406.10218" in t for t in texts) == 1
    assert sum(t.startswith("Yeom") for t in texts) == 1
    fimmia_n = next(n for n, t in items if "2512.02786" in t)
    smia_n = next(n for n, t in items if "2406.10218" in t)
    row = _block(html, "tb/matched: score attacks")
    row = row[row.index(f'title="{FIMMIA}">fimmia</td>'):]
    row = row[:row.index("</tr>")]
    assert f'href="#ref-{fimmia_n}"' in row and f'href="#ref-{smia_n}"' in row
    # The papers are no longer repeated as text in the method rows.
    assert html.count("Privacy Risk in Machine Learning") == 1 + html.count(f'title="{YEOM}"')


def test_histograms_of_the_best_method_and_the_results_untouched(run_dir):
    before = {f: hashlib.sha256((run_dir / f).read_bytes()).hexdigest() for f in ("results.json", "scores.parquet")}
    html = render_report(run_dir).read_text()
    after = {f: hashlib.sha256((run_dir / f).read_bytes()).hexdigest() for f in before}
    assert after == before
    hists = sorted(p.name for p in (run_dir / "plots").glob("hist-*.png"))
    assert len(hists) == 4  # every section with per-sample scores; dataset inference has none
    shift = _block(html, "tb/matched: blind shift check")
    src = re.search(r'<img src="(plots/hist-[^"]+)"', shift).group(1)
    assert (run_dir / src).read_bytes()[:4] == b"\x89PNG"
    assert "best method, <b>blind:colour_histogram</b>" in shift  # the highest AUC of that section
