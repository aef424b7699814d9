"""`mmia attack` end to end, --skip-bad, and the demo step on a testbed handle."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.attacks.runner import run_attack
from mmia.data import load_dataset
from mmia.demo.steps import DemoContext, list_demo_steps
from mmia.errors import InputError
from mmia.testbeds import base as testbeds_base

torch.set_num_threads(1)
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "mmia.cli", "--quiet", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_attack_writes_results_scores_and_report(tiny_dir, tmp_path):  # noqa: F811
    data = write_media_dataset(tmp_path / "d", n=6)
    out = tmp_path / "out"
    r = _cli("attack", str(data), "--target", str(tiny_dir("llava")), "--reference", str(tiny_dir("causal_lm")),
             "--attacks", "loss,zlib,reference,max_prob_gap", "--out", str(out), "--cache", str(tmp_path / "c"),
             "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "attack" and res["dataset"]["n_members"] == 3
    names = [a["name"] for a in res["attacks"]]
    assert names == ["loss", "zlib", "reference", "max_prob_gap@image", "max_prob_gap@prompt", "max_prob_gap@answer"]
    for a in res["attacks"]:
        assert 0 <= a["auc"] <= 1 and len(a["auc_ci95"]) == 2 and "0.01" in a["tpr_at_fpr"] and a["paper"]
    df = pd.read_parquet(out / "scores.parquet")
    assert list(df["id"]) == [f"s{i}" for i in range(6)] and set(names) <= set(df.columns)
    assert (out / "report.html").exists()


@pytest.mark.parametrize("attacks,message", [("reference", "needs a reference model"), ("nope", "unknown method"),
                                             ("csa", "does not apply to a vlm target"),
                                             ("blind:bag_of_words", "is a blind method, not a score-based attack")])
def test_cli_attack_bad_request_is_one_line_and_exit_2(tiny_dir, tmp_path, capsys, monkeypatch, attacks,  # noqa: F811
                                                       message):
    from mmia import cli

    data = write_media_dataset(tmp_path / "d", n=2)
    target = tiny_dir("llava")
    capsys.readouterr()  # saving the tiny model prints a progress bar; only the command's output counts
    monkeypatch.setattr(sys, "argv", ["mmia", "attack", str(data), "--target", str(target),
                                      "--attacks", attacks, "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_skip_bad_lists_media_that_fail_to_decode(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6))
    Path(ds[2].image).write_bytes(b"not an image any more")
    with pytest.raises(InputError, match="row 3"):
        run_attack(ds, tiny_dir("llava"), attacks=["loss"], cache_dir=tmp_path / "c")
    res, table = run_attack(ds, tiny_dir("llava"), attacks=["loss"], cache_dir=tmp_path / "c", skip_bad=True)
    assert [s["id"] for s in res.skipped] == ["s2"] and "s2" not in table.ids and len(table.ids) == 5
    # the counts describe the rows evaluated, not the file
    assert res.dataset.n_samples == 5 and res.dataset.n_skipped == 1
    assert res.dataset.n_members + res.dataset.n_nonmembers == 5
    assert res.dataset.n_members == int(sum(table.labels))


def test_demo_step_scores_only_the_matched_split(tiny_dir, tmp_path):  # noqa: F811
    data = write_media_dataset(tmp_path / "d", n=6)
    tb = testbeds_base.Testbed(name="vlm", root=tmp_path, target_kind="vlm", modalities=("text", "image"),
                 splits={"matched": data, "shifted": data}, roles={"membership": "matched", "shifted": "shifted"},
                 targets={"target": tiny_dir("llava"), "base": tiny_dir("qwen2vl")})
    step = next(s for s in list_demo_steps() if s.name == "attack")
    out = step.run(tb, DemoContext(out_dir=tmp_path / "o", cache_dir=tmp_path / "c", quick=True))
    assert len(out) == 1
    section, table = out[0]
    assert "matched" in section.name and table.section == section.name
    names = {e.name for e in section.attacks}
    assert {"loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference", "mod_renyi_a1@answer"} <= names
    assert step.run(testbeds_base.Testbed(name="x", root=tmp_path, target_kind="clip", modalities=()), None) == []


def test_demo_step_on_the_quick_vlm_testbed(quick_cache):
    """The real (miniature) vlm testbed: its chat format is used, every attack has an entry."""
    from mmia.targets import ANSWER, PROMPT, load_target

    root = next((quick_cache / "testbeds").glob("vlm-*"))
    tb = testbeds_base.Testbed.from_dir(root)
    target = load_target(tb.targets["target"])
    ds = load_dataset(tb.splits["matched"])
    e = target.encode(ds[0])
    assert target.tokenizer.decode(e.input_ids[e.codes == ANSWER]).strip() == ds[0].answer
    prompt = target.tokenizer.decode(e.input_ids[e.codes == PROMPT])
    assert prompt.startswith("USER:") and prompt.rstrip().endswith("ASSISTANT:") and ds[0].prompt in prompt
    step = next(s for s in list_demo_steps() if s.name == "attack")
    out = step.run(tb, DemoContext(out_dir=root, cache_dir=quick_cache, quick=True))
    assert len(out) == 1, [s.name for s, _ in out]
    section, table = out[0]
    names = {e.name for e in section.attacks}
    for attack in ("loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference"):
        assert attack in names
    for family in ("max_k_renyi", "min_k_renyi", "mod_renyi", "max_prob_gap"):
        assert any(n.startswith(family) and n.endswith("@answer") for n in names)
        if family != "mod_renyi":
            assert any(n.startswith(family) and n.endswith("@image") for n in names)
    assert all(e.auc is not None for e in section.attacks) and len(table.ids) == len(ds)
