"""`mmia shift` end to end: the results directory of the contract, bad input, and the scenes testbed."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from mmia.data import load_dataset
from mmia.shift import NO_SHIFT, SHIFTED, run_shift
from tests.conftest import write_jsonl


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def _shifted_text_rows(n=60, seed=0):
    """Members mention older years and 'vintage'; non-members newer years: an obvious shift."""
    rng = np.random.default_rng(seed)
    nouns = ["car", "house", "beach", "dog", "street", "garden", "bridge", "market"]
    rows = []
    for i in range(n):
        member = i % 2 == 0
        year = int(rng.integers(1995, 2012) if member else rng.integers(2021, 2025))
        extra = "vintage photo of a" if member else "a new picture of the"
        rows.append({"id": f"s{i}", "text": f"{extra} {rng.choice(nouns)} in {year}", "label": int(member)})
    return rows


def test_cli_writes_the_results_directory(tmp_path):
    data = write_jsonl(tmp_path / "set.jsonl", _shifted_text_rows())
    out = tmp_path / "out"
    methods = "bag_of_words,greedy_ngrams,date_detection"
    rc, stdout, err = run_cli("-q", "shift", data, "--out", out, "--methods", methods, "--folds", 3,
                              "--cache", tmp_path / "cache")
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "shift"
    assert res["dataset"]["n_members"] == 30 and res["dataset"]["n_nonmembers"] == 30
    names = [a["name"] for a in res["attacks"]]
    assert names == ["blind:bag_of_words", "blind:greedy_ngrams", "blind:date_detection"]
    for a in res["attacks"]:
        assert 0 <= a["auc"] <= 1 and len(a["auc_ci95"]) == 2
        assert set(a["tpr_at_fpr"]) == {"0.001", "0.01", "0.05"}
        assert a["paper"] and "2406.16201" in a["paper"]
        assert 0 <= a["p_holm"] <= 1 and a["seconds"] >= 0
    assert res["verdict"] == SHIFTED and res["verdict_detail"]
    assert res["settings"]["folds"] == 3
    frame = pd.read_parquet(out / "scores.parquet")
    assert list(frame.columns) == ["id", "label", *names]
    assert len(frame) == 60 and frame[names].notna().all().all()
    html = (out / "report.html").read_text()
    assert "blind:greedy_ngrams" in html and "shifted" in html
    assert "verdict: shifted" in stdout


def test_cli_bad_input_exits_2(tmp_path):
    unlabelled = write_jsonl(tmp_path / "u.jsonl", [{"text": "a"}, {"text": "b"}])
    rc, _, err = run_cli("shift", unlabelled, "--out", tmp_path / "o")
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == f"error: {unlabelled}: 2 row(s) have no label (first: row 1); this command needs a 'label' " \
                          "column (1/0, true/false, member/nonmember)"
    one_class = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 1}])
    rc, _, err = run_cli("shift", one_class, "--out", tmp_path / "o")
    assert rc == 2 and "needs both members and non-members" in err and len(err.strip().splitlines()) == 1
    good = write_jsonl(tmp_path / "g.jsonl", _shifted_text_rows(8))
    rc, _, err = run_cli("shift", good, "--out", tmp_path / "o", "--methods", "colour_histogram")
    assert rc == 2 and "needs image or video data" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_broken_media_is_skipped_only_when_allowed(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"id": f"i{i}", "text": f"picture {i}", "image": f"{i}.png", "label": i % 2})
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rows.append({"id": "bad", "text": "broken", "image": "bad.png", "label": 1})
    data = write_jsonl(tmp_path / "m.jsonl", rows)
    rc, _, err = run_cli("shift", data, "--out", tmp_path / "o1", "--methods", "colour_histogram")
    assert rc == 2 and "row 17" in err and "bad.png" in err
    rc, _, err = run_cli("-q", "shift", data, "--out", tmp_path / "o2", "--methods", "colour_histogram,lbp",
                         "--skip-bad", "--folds", 2, "--cache", tmp_path / "cache")
    assert rc == 0, err
    res = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert res["dataset"]["n_samples"] == 16 and res["dataset"]["n_skipped"] == 1
    assert [s["id"] for s in res["skipped"]] == ["bad"]


def test_audio_shift_is_found(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        member = i % 2 == 0
        freq = rng.uniform(200, 400) if member else rng.uniform(2000, 3000)
        t = np.arange(8000) / 16000
        wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=len(t))
        sf.write(tmp_path / f"{i}.wav", wave.astype(np.float32), 16000)
        rows.append({"id": f"a{i}", "text": "a sound", "audio": f"{i}.wav", "label": int(member)})
    ds = load_dataset(write_jsonl(tmp_path / "a.jsonl", rows))
    section, scores = run_shift(ds, ["audio_features", "joint"], folds=3, seed=0)
    by = {e.name: e for e in section.attacks}
    assert by["blind:audio_features"].auc > 0.95 and by["blind:joint"].auc > 0.95
    assert section.verdict == SHIFTED


def test_scenes_testbed_verdicts_through_the_demo_step(tmp_path):
    """`mmia demo`'s shift step on the scenes testbed: matched -> no shift, shifted -> shifted."""
    from mmia.demo.steps import DemoContext, list_demo_steps
    from mmia.testbeds.base import Testbed
    from mmia.testbeds.scenes import write_scenes_split

    splits = {
        split: write_scenes_split(tmp_path / "scenes", split, n_members=40, n_nonmembers=40, seed=0)
        for split in ("matched", "shifted")
    }
    testbed = Testbed(name="scenes", root=tmp_path / "scenes", target_kind=None, modalities=("image", "text"),
                      splits=splits)
    step = next(s for s in list_demo_steps() if s.name == "shift")
    assert step.order == 10
    ctx = DemoContext(out_dir=tmp_path / "demo", cache_dir=tmp_path / "cache", seed=0, quick=True)
    results = step.run(testbed, ctx)
    by_name = {section.name: (section, scores) for section, scores in results}
    assert set(by_name) == {"scenes/matched: blind shift check", "scenes/shifted: blind shift check"}
    matched, m_scores = by_name["scenes/matched: blind shift check"]
    shifted, _ = by_name["scenes/shifted: blind shift check"]
    names = {e.name for e in matched.attacks}
    # every default method for image + text rows ran
    assert {"blind:bag_of_words", "blind:colour_histogram", "blind:bag_of_visual_words", "blind:joint"} <= names
    assert matched.verdict == NO_SHIFT, matched.verdict_detail
    assert shifted.verdict == SHIFTED, shifted.verdict_detail
    assert m_scores.section == matched.name and len(m_scores.ids) == 80
    # A testbed without labelled splits gives no section.
    assert step.run(Testbed(name="none", root=tmp_path, target_kind=None, modalities=()), ctx) == []


def test_sentence_embedding_runs_offline_and_caches(tmp_path):
    from mmia.cache import Cache
    from mmia.targets.sentences import default_sentence_model_dir, embed_texts

    model = default_sentence_model_dir()
    assert model is not None and (model / "model.safetensors").exists()
    rows = _shifted_text_rows(24)
    ds = load_dataset(write_jsonl(tmp_path / "t.jsonl", rows))
    with Cache(tmp_path / "cache") as cache:
        section, _ = run_shift(ds, ["sentence_embedding"], folds=3, seed=0, cache=cache)
        entry = section.attacks[0]
        assert entry.name == "blind:sentence_embedding" and entry.params["dim"] == 384
        assert entry.auc > 0.8  # "vintage ... 1990s" vs "new ... 2020s" differ in meaning
        assert len(cache) == len({r["text"] for r in rows})  # one embedding per distinct text
        again = embed_texts([r["text"] for r in rows[:3]], model, cache=cache)
    assert again.shape == (3, 384) and np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-5)


def test_video_rows_use_frame_features(tmp_path):
    from mmia.testbeds.scenes import write_scenes_split

    path = write_scenes_split(tmp_path / "v", "shifted", n_members=12, n_nonmembers=12, seed=0, video=True)
    ds = load_dataset(path, require_labels=True)
    assert "video" in ds.modalities
    section, _ = run_shift(ds, ["colour_histogram", "bag_of_visual_words"], folds=3, seed=0)
    by = {e.name: e for e in section.attacks}
    assert by["blind:colour_histogram"].auc > 0.9  # dark neon scenes vs light ones, frame by frame
    assert by["blind:bag_of_visual_words"].params["config"]["n_words"] == 64
