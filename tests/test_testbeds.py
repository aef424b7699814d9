import json
import subprocess
import sys

import pytest

from mmia.errors import InputError
from mmia.testbeds.base import Testbed as Handle
from mmia.testbeds.base import list_testbeds
from mmia.testbeds.build import build_testbed, entry_name, get_spec
from mmia.testbeds.manifest import tree_hash


def test_registry_lists_scenes():
    names = {s.name for s in list_testbeds()}
    assert "scenes" in names


def test_scenes_testbed_builds_with_manifest(quick_cache):
    tb = build_testbed("scenes", seed=0, quick=True, cache_dir=quick_cache)
    assert isinstance(tb, Handle) and tb.target_kind is None
    assert set(tb.splits) == {"matched", "shifted", "matched_video", "shifted_video"}
    m = tb.manifest
    assert m["seed"] == 0 and m["quick"] is True and m["name"] == "scenes"
    for split, path in tb.splits.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        members = sorted(r["id"] for r in rows if r["label"] == 1)
        assert members == m["ids"][split]["members"]
        assert m["sizes"][split]["members"] == len(members) > 0
    # Same members in matched and shifted; different non-members.
    assert m["ids"]["matched"]["members"] == m["ids"]["shifted"]["members"]
    assert not set(m["ids"]["matched"]["nonmembers"]) & set(m["ids"]["shifted"]["nonmembers"])


def test_build_is_cached_and_copied(tmp_path):
    cache = tmp_path / "cache"
    a = build_testbed("scenes", seed=1, quick=True, cache_dir=cache)
    stamp = (a.root / "manifest.json").stat().st_mtime_ns
    b = build_testbed("scenes", seed=1, quick=True, cache_dir=cache, out=tmp_path / "out")
    assert (a.root / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert b.root == tmp_path / "out"
    assert tree_hash(b.root, "*.jsonl") == tree_hash(a.root, "*.jsonl")
    c = build_testbed("scenes", seed=2, quick=True, cache_dir=cache)
    assert tree_hash(c.root, "*.jsonl") != tree_hash(a.root, "*.jsonl")
    # No temp folders left behind.
    assert sorted(p.name for p in (cache / "testbeds").iterdir()) == sorted(
        [entry_name(get_spec("scenes"), 1, True), entry_name(get_spec("scenes"), 2, True)]
    )


def test_interrupted_build_is_not_reused(tmp_path, monkeypatch):
    from mmia.testbeds import base

    cache = tmp_path / "cache"
    spec = get_spec("scenes")
    calls = []

    def broken(out_dir, *, seed, quick):
        calls.append(out_dir)
        (out_dir / "manifest.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setitem(base._TESTBEDS, "scenes", base.TestbedSpec("scenes", "x", broken, version=spec.version))
    with pytest.raises(KeyboardInterrupt):
        build_testbed("scenes", seed=0, quick=True, cache_dir=cache)
    assert list((cache / "testbeds").iterdir()) == []  # the temp folder is gone; nothing half-written stays
    monkeypatch.setitem(base._TESTBEDS, "scenes", spec)
    # A leftover folder without the completion mark (a killed build) is rebuilt, not used.
    stale = cache / "testbeds" / entry_name(spec, 0, True)
    stale.mkdir()
    (stale / "manifest.json").write_text("{}")
    tb = build_testbed("scenes", seed=0, quick=True, cache_dir=cache)
    assert tb.manifest["name"] == "scenes"


def test_out_folder_that_is_not_a_testbed_is_refused(tmp_path, quick_cache):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a testbed"):
        build_testbed("scenes", quick=True, cache_dir=quick_cache, out=tmp_path / "busy")


def test_unknown_testbed_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="unknown testbed 'nope'.*scenes"):
        build_testbed("nope", cache_dir=tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", "from mmia.cli import main; main()", "testbed", "nope", "--out", str(tmp_path / "o"),
         "--cache", str(tmp_path / "c")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown testbed 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_builds_scenes(tmp_path, quick_cache):
    proc = subprocess.run(
        [sys.executable, "-c", "from mmia.cli import main; main()", "testbed", "scenes", "--quick", "--out",
         str(tmp_path / "o"), "--cache", str(quick_cache)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["seed"] == 0 and (tmp_path / "o" / "matched.jsonl").exists()


@pytest.fixture
def quick_vlm(quick_cache):
    return build_testbed("vlm", seed=0, quick=True, cache_dir=quick_cache), quick_cache


def test_vlm_manifest(quick_vlm):
    tb, _ = quick_vlm
    m = tb.manifest
    assert tb.target_kind == "vlm" and set(tb.targets) == {"target", "base"}
    assert set(tb.splits) == {"matched", "shifted"}
    assert m["model"]["image_tokens"] >= 64
    assert len(m["ids"]["matched"]["members"]) == m["sizes"]["members"]
    sig = m["member_signal"]["loss"]
    lo, hi = sig["auc_ci95"]
    assert 0.0 <= lo <= sig["auc"] <= hi <= 1.0 and sig["n_members"] == m["sizes"]["members"]
    assert set(m["weights_sha256"]) == {"target", "base"}
    assert m["image_reliance"]["base_nonmember_loss_shuffled_images"] > 0
    assert m["weights_sha256"]["target"] != m["weights_sha256"]["base"]  # fine-tuning changed the weights


def test_vlm_loads_offline_with_auto_classes(quick_vlm, monkeypatch):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmia.data import load_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tb, _ = quick_vlm
    ds = load_dataset(tb.splits["matched"])
    sample = ds[0]
    for role in ("target", "base"):
        model = AutoModelForImageTextToText.from_pretrained(tb.targets[role], use_safetensors=True)
        proc = AutoProcessor.from_pretrained(tb.targets[role])
        assert type(model).__name__ == "LlavaForConditionalGeneration"
        msgs = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample.prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": sample.answer}]},
        ]
        text = proc.apply_chat_template(msgs, tokenize=False)
        assert text == tb.manifest["format"]["prompt"].format(prompt=sample.prompt) + " " + sample.answer + "</s>"
        enc = proc(text=text, images=Image.open(sample.image), return_tensors="pt")
        n_image = int((enc["input_ids"] == model.config.image_token_index).sum())
        assert n_image == tb.manifest["model"]["image_tokens"]
        with torch.no_grad():
            out = model(**enc, labels=enc["input_ids"])
        assert torch.isfinite(out.loss)


def test_vlm_build_is_deterministic(quick_vlm, tmp_path):
    tb, _ = quick_vlm
    again = build_testbed("vlm", seed=0, quick=True, cache_dir=tmp_path / "c1")
    other = build_testbed("vlm", seed=1, quick=True, cache_dir=tmp_path / "c2")
    assert again.manifest["weights_sha256"] == tb.manifest["weights_sha256"]
    assert tree_hash(again.root, "*.jsonl") == tree_hash(tb.root, "*.jsonl")
    assert tree_hash(again.root / "media_64") == tree_hash(tb.root / "media_64")
    assert again.manifest["member_signal"]["loss"]["auc"] == tb.manifest["member_signal"]["loss"]["auc"]
    assert other.manifest["weights_sha256"]["target"] != tb.manifest["weights_sha256"]["target"]
    assert tree_hash(other.root, "*.jsonl") != tree_hash(tb.root, "*.jsonl")
    from mmia.testbeds.manifest import weights_hash

    assert weights_hash(tb.targets["target"]) == tb.manifest["weights_sha256"]["target"]
