"""Dataset inference (`mmia infer`): the split test's known answers, its level under the null, the
CLI on a model trained here on the suspect set, the shift gate and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny_models import tiny_dir  # noqa: F401  (fixture)
from typer.testing import CliRunner

from mmia.cli import app
from mmia.infer.statistics import control_test, rank_p_value, split_index, split_test

WORDS = ("a small red cat sits on the mat the quick brown fox jumps over lazy dog blue bird flies in sky two dogs "
         "play park man rides horse").split()


# --- the statistics -------------------------------------------------------------------------------
def test_rank_p_value_known_answers():
    # Five suspect scores all above five validation scores: the one arrangement of C(10, 5) = 252.
    assert rank_p_value(np.arange(5, 10.0), np.arange(5.0)) == pytest.approx(1 / 252)
    assert rank_p_value(np.arange(5.0), np.arange(5, 10.0)) == pytest.approx(1.0)  # one-sided
    assert rank_p_value(np.ones(5), np.ones(5)) == 1.0


def test_split_is_seeded_and_disjoint():
    a, b = split_index(11, np.random.default_rng(3))
    assert len(a) + len(b) == 11 and not set(a) & set(b) and len(a) == 6
    a2, _ = split_index(11, np.random.default_rng(3))
    assert np.array_equal(a, a2)


def test_level_under_the_null_and_power_under_a_shift_of_the_scores():
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(6)]
    null = [split_test(rng.normal(size=(40, 6)), rng.normal(size=(40, 6)), names, seed=r).p_value for r in range(300)]
    assert 0.02 <= np.mean(np.asarray(null) < 0.05) <= 0.08
    assert np.mean(np.asarray(null) < 0.01) <= 0.02
    # Members score higher on two of six features: found, with the weight on those features.
    sus, val = rng.normal(size=(60, 6)), rng.normal(size=(60, 6))
    sus[:, :2] += 1.0
    res = split_test(sus, val, names, seed=0)
    assert res.p_value < 1e-4 and res.test_auc > 0.75 and res.n_test == (30, 30)
    assert min(res.weights["f0"], res.weights["f1"]) > max(abs(res.weights[f]) for f in names[2:])
    # The control splits the validation set against itself: no signal to find.
    assert control_test(val, names, seed=0).p_value > 0.01


def test_features_with_missing_slices_and_constant_columns():
    rng = np.random.default_rng(1)
    sus, val = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    sus[:, 0] += 2
    sus[::3, 1] = np.nan  # a slice some rows lack
    sus[:, 2] = val[:, 2] = 1.0  # a column that does not vary is dropped
    res = split_test(sus, val, ["a", "b", "c"], seed=0)
    assert np.isfinite(res.p_value) and res.p_value < 1e-3 and "c" not in res.weights


# --- end to end on a model trained here ----------------------------------------------------------
def _sentences(rng, n):
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 10)))) for _ in range(n)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Llama fine-tuned on the suspect sentences (so they are its training data), and data."""
    from tiny_models import save_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("infer")
    base = save_causal_lm(root / "base")
    rng = np.random.default_rng(0)
    # 40 rows a set: at 24, seed 0 drew two sets that a bag-of-words classifier told apart by
    # chance (AUC 0.85; relabellings of the same rows read 0.41-0.73), and the gate rightly
    # withheld the verdict.
    suspect, validation, other = _sentences(rng, 40), _sentences(rng, 40), _sentences(rng, 40)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = tok(suspect, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    torch.manual_seed(0)
    for _ in range(60):
        opt.zero_grad()
        model(**batch, labels=labels).loss.backward()
        opt.step()
    model.save_pretrained(root / "target")
    tok.save_pretrained(root / "target")

    def write(name, texts, ids, label=None, fmt="{}"):
        rows = [{"id": f"{ids}{i}", "text": fmt.format(t), **({"label": label} if label is not None else {})}
                for i, t in enumerate(texts)]
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return root / name

    return {
        "target": root / "target",
        "suspect": write("suspect.jsonl", suspect, "s"),
        "validation": write("validation.jsonl", validation, "v", label=0),
        "other": write("other.jsonl", other, "o"),
        # the suspect sentences in another format: told apart from the validation set by form alone
        "shifted": write("shifted.jsonl", suspect, "x", fmt="QUESTION: {} ?"),
        "root": root,
    }


def _infer(trained, suspect, tmp_path, *extra):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["-q", "infer", str(suspect), "--validation", str(trained["validation"]),
                                   "--target", str(trained["target"]), "--out", str(out),
                                   "--cache", str(tmp_path / "c"), *extra])
    return res, out


def test_cli_finds_the_training_set(trained, tmp_path):
    res, out = _infer(trained, trained["suspect"], tmp_path)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["verdict"] == "trained on" and r["p_value"] < 1e-3 and r["alpha"] == 0.01
    assert r["n_suspect"] == 40 and r["n_validation"] == 40 and r["shift_verdict"] == "no shift detected"
    assert "loss" in r["features"] and "min_k" in r["features"] and 0 <= r["control_p_value"] <= 1
    assert res.output.splitlines()[0].startswith("trained on: p = ")
    assert (out / "report.html").exists() and all((out / f).exists() for f in r["figures"])
    assert len(r["figures"]) == 2 and list(r["p_by_size"]) == ["10", "25"]  # the sizes 40 rows allow
    import pandas as pd

    df = pd.read_parquet(out / "scores.parquet")
    assert set(df["section"]) == {"suspect", "validation"} and df["dataset inference"].notna().sum() == 40


def test_cli_no_evidence_for_unseen_data(trained, tmp_path):
    res, out = _infer(trained, trained["other"], tmp_path)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["verdict"] == "no evidence" and r["p_value"] >= 0.01


def test_shifted_sets_are_refused_a_verdict_of_training(trained, tmp_path):
    res, out = _infer(trained, trained["shifted"], tmp_path)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["shift_verdict"] == "shifted" and r["verdict"] == "the sets differ without the model"
    assert r["sections"][0]["command"] == "shift"


def test_python_api(trained):
    from mmia.infer import TRAINED_ON, infer

    r = infer(trained["suspect"], trained["validation"], trained["target"], shift_check=False,
              cache_dir=trained["root"] / "c")
    assert r.verdict == TRAINED_ON and r.shift_verdict is None


# --- bad input ------------------------------------------------------------------------------------
def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", ["few", "member", "same_id", "same_content"])
def test_bad_sets_are_one_line_exit_2(trained, tmp_path, case):
    val = [json.loads(x) for x in trained["validation"].read_text().splitlines()]
    sus = [json.loads(x) for x in trained["suspect"].read_text().splitlines()]
    if case == "few":
        sus, expect = sus[:9], "at least 10"
    elif case == "member":
        val[3]["label"], expect = 1, "row 4: a validation row is labelled a member"
    elif case == "same_id":
        val[5]["id"], expect = sus[2]["id"], "is in both sets (suspect row 3)"
    else:
        val[7] = {**sus[1], "id": "fresh", "label": 0}
        expect = "also in the suspect set (row 2)"
    s, v = _rows(tmp_path / "s.jsonl", sus), _rows(tmp_path / "v.jsonl", val)
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "-q", "infer", str(s), "--validation", str(v),
                           "--target", str(trained["target"]), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert str(v if case != "few" else s) in lines[0]  # the file is named


# --- names on a contrastive target: UMID's signals ------------------------------------------------
def _names_file(path, names, prefix):
    return _rows(path, [{"id": f"{prefix}{i}", "text": n} for i, n in enumerate(names)])


def test_names_on_a_contrastive_target_are_featured_by_umid(tiny_dir, tmp_path):  # noqa: F811
    """Text-only rows on a CLIP target: the features are UMID's six oriented signals, the very
    values `mmia umid` reports per query; rows with photos on the same target keep CSA/AEA."""
    import pandas as pd
    from tiny_models import write_media_dataset

    from mmia.cache import Cache
    from mmia.testbeds.names import person_names
    from mmia.umid.audit import UmidConfig, umid_scores
    from mmia.umid.signals import SIGNAL_NAMES
    from mmia.umid.target import load_contrastive

    clip = tiny_dir("clip")
    names = person_names(24, seed=5)
    sus, val = _names_file(tmp_path / "s.jsonl", names[:12], "s"), _names_file(tmp_path / "v.jsonl", names[12:], "v")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["-q", "infer", str(sus), "--validation", str(val), "--target", str(clip),
                                   "--out", str(out), "--cache", str(tmp_path / "c"), "--no-shift-check"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["features"] == [f"umid:{n}" for n in SIGNAL_NAMES]
    assert r["settings"]["attacks"] == ["umid"] and r["settings"]["umid"] == UmidConfig().model_dump(mode="json")
    assert 0 <= r["p_value"] <= 1 and r["n_suspect"] == 12
    df = pd.read_parquet(out / "scores.parquet")
    got = df[df["section"] == "suspect"].set_index("id")
    # `mmia umid`'s per-signal diagnostics on the same names, computed afresh (another cache)
    with Cache(tmp_path / "c2") as cache:
        scores, _ = umid_scores(load_contrastive(clip), names[:12], UmidConfig(), cache=cache)
    for m in scores:
        if m.name.startswith("umid:") and m.name != "umid:two-sided":
            np.testing.assert_allclose(got.loc[[f"s{i}" for i in range(12)], m.name].to_numpy(), m.scores,
                                       rtol=1e-6, atol=1e-7)
    # the same target on rows with photos: CSA and AEA, no UMID
    data = write_media_dataset(tmp_path / "media", n=20, prompt=False)
    rows = [{k: v for k, v in json.loads(x).items() if k != "label"} for x in data.read_text().splitlines()]
    ms, mv = _rows(tmp_path / "media" / "s.jsonl", rows[::2]), _rows(tmp_path / "media" / "v.jsonl", rows[1::2])
    res = CliRunner().invoke(app, ["-q", "infer", str(ms), "--validation", str(mv), "--target", str(clip),
                                   "--out", str(tmp_path / "m"), "--cache", str(tmp_path / "c"), "--no-shift-check"])
    assert res.exit_code == 0, res.output
    features = json.loads((tmp_path / "m" / "results.json").read_text())["features"]
    assert {"csa", "aea"} <= set(features) and not any(f.startswith("umid:") for f in features)


def test_names_on_a_clap_target_are_featured_by_umid(tiny_dir):  # noqa: F811
    from mmia.data.schema import Dataset, Sample
    from mmia.infer.run import infer_sets
    from mmia.targets import load_target
    from mmia.testbeds.names import person_names
    from mmia.umid.audit import UmidConfig

    names = person_names(20, seed=6)

    def names_set(part, prefix):
        return Dataset("names.jsonl", [Sample(id=f"{prefix}{i}", row=i + 1, text=n) for i, n in enumerate(part)], [])

    r, scored, _ = infer_sets(names_set(names[:10], "s"), names_set(names[10:], "v"), load_target(tiny_dir("clap")),
                              shift_check=False, umid=UmidConfig(restarts=2, steps=3))
    assert r.settings["target_kind"] == "clap" and r.features[0] == "umid:similarity" and len(r.features) == 6
    assert all(np.isfinite(v).all() for v in scored["suspect"].columns.values())


@pytest.mark.parametrize("case", ["few", "attack"])
def test_bad_names_on_a_contrastive_target_are_one_line_exit_2(tiny_dir, tmp_path, case):  # noqa: F811
    from mmia.testbeds.names import person_names

    names = person_names(24, seed=7)
    n_sus, extra, expect = (9, [], "at least 10") if case == "few" else (12, ["--attacks", "csa"], "'umid' or 'all'")
    s = _names_file(tmp_path / "s.jsonl", names[:n_sus], "s")
    v = _names_file(tmp_path / "v.jsonl", names[12:], "v")
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "-q", "infer", str(s), "--validation", str(v),
                           "--target", str(tiny_dir("clip")), "--out", str(tmp_path / "o"), "--no-shift-check",
                           "--cache", str(tmp_path / "c"), *extra], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    """A clip-identities build between the miniature and the full one: 30 member identities (10
    photos each), 30 non-member names; about 15 s of training on one thread."""
    from mmia.testbeds.clip_identities import build_clip_identities

    torch.set_num_threads(1)
    return build_clip_identities(tmp_path_factory.mktemp("identities"), seed=0, n_members=30, n_calibration=6,
                                 n_eval_nonmembers=30, n_generic=100, tokenizer_names=1000)


def test_member_names_are_found_and_a_halving_of_non_members_is_not(identities, tmp_path):
    """The known answer on names alone: the trained identities' names against other names of the
    same generator read "trained on"; one half of those other names against the other does not.
    (Measured while writing this test at these settings, split seeds 0-2 on the builds of seeds 0
    and 1: members p 3e-4 to 0.03, 5 of 6 below 0.01; null p 0.55-0.97 on the halving used here.)"""
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.infer import NO_EVIDENCE, TRAINED_ON
    from mmia.infer.demo_step import _questions
    from mmia.infer.inputs import unlabelled
    from mmia.infer.run import infer_sets
    from mmia.targets import load_target
    from mmia.umid.audit import UmidConfig

    ds = load_dataset(identities.splits["queries"])
    (_, members, nonmembers, _), (_, half_a, half_b, _) = _questions(ds, seed=0)
    assert len(members) == len(nonmembers) == 30
    target = load_target(identities.targets["target"])
    cfg = UmidConfig(restarts=4, steps=30)  # the demo's CLAP settings: half the restarts and steps
    with Cache(tmp_path / "c") as cache:
        found, _, _ = infer_sets(unlabelled(ds, members), unlabelled(ds, nonmembers), target, cache=cache,
                                 shift_check=False, umid=cfg)
        null, _, _ = infer_sets(unlabelled(ds, half_a), unlabelled(ds, half_b), target, cache=cache,
                                shift_check=False, umid=cfg)
    assert found.verdict == TRAINED_ON and found.held_out["auc"] > 0.7, (found.p_value, found.held_out)
    assert null.verdict == NO_EVIDENCE and null.p_value > found.p_value, null.p_value
