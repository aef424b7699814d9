"""The registry's contract, offline-by-default model loading, and the CLI surface."""

import subprocess
import sys

import numpy as np
import pytest
from pydantic import BaseModel

from mmia.attacks import registry


class _Cfg(BaseModel):
    k: float = 0.2


def test_register_and_query_then_clean_up():
    @registry.register_attack("test-only", family="score", paper="Someone 2024", config=_Cfg,
                              target_kinds=("causal-lm",), modalities=("text",))
    def scorer():
        """A scorer for this test (Someone 2024)."""

    try:
        spec = registry.get_attack("test-only")
        assert spec.summary == "A scorer for this test (Someone 2024)."
        assert spec.make_config().k == 0.2
        assert spec.applies_to("causal-lm", ("text",))
        assert not spec.applies_to("clip", ("text",))
        assert not spec.applies_to("causal-lm", ("image",))
        assert spec in registry.list_attacks(family="score", target_kind="causal-lm")
    finally:
        registry._REGISTRY.pop("test-only")


def test_registry_refuses_incomplete_specs():
    with pytest.raises(ValueError, match="must name the paper"):
        registry.register_attack("x", family="score", paper=" ")
    with pytest.raises(ValueError, match="unknown family"):
        registry.register_attack("x", family="magic", paper="p")

    def nodoc():
        pass

    with pytest.raises(ValueError, match="docstring"):
        registry.register_attack("x", family="score", paper="p")(nodoc)
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        registry.get_attack("nope")


def test_views_default_per_family_and_needs_reference_follows_them():
    assert registry.get_attack("loss").views == ("stats",)
    assert registry.get_attack("lowercase").views == ("stats", "lower")
    assert registry.get_attack("reference").views == ("stats", "reference")
    assert registry.get_attack("csa").views == registry.get_attack("aea").views == ("embeddings",)
    assert registry.get_attack("fimmia").views == ()  # not run by `mmia attack`
    runner_specs = [s for s in registry.list_attacks() if s.family in ("score", "contrastive")]
    assert [s.name for s in runner_specs if s.needs_reference] == ["reference"]

    def doc():
        """A scorer for this test (p)."""

    with pytest.raises(ValueError, match="views"):
        registry.register_attack("x", family="score", paper="p", views=("stats", "nope"))(doc)
    with pytest.raises(ValueError, match="reads no view"):
        registry.register_attack("x", family="score", paper="p", views=())(doc)
    assert "x" not in registry._REGISTRY


def test_a_new_view_is_one_table_entry_and_the_attacks_declaring_it(monkeypatch, tmp_path):
    """The runner opens a view's stream from `VIEWS` alone; the record holds it; the engine
    counts report under its key; its attack's seconds include the stream's time."""
    import time

    from mmia.attacks import views
    from mmia.attacks.runner import score_samples
    from mmia.data.schema import Dataset, Sample

    def open_lengths(x, counts, bar):
        for i in reversed(range(len(x.samples))):  # any order the streams share
            time.sleep(0.01)
            counts.computed += 1
            yield i, {"n": len(x.samples[i].text), "scale": x.configs["test-lengths"].k}

    monkeypatch.setitem(views.VIEWS, "lengths", views.View("lengths", open_lengths, "test only"))

    @registry.register_attack("test-lengths", family="score", paper="p", config=_Cfg, views=("lengths",))
    def scorer(rec, cfg):
        """A scorer for this test (p)."""
        assert set(rec.views) == {"lengths"}  # only the views some requested attack declares
        return {"": rec.view("lengths")["n"] * rec.view("lengths")["scale"]}

    try:
        ds = Dataset(tmp_path / "d.jsonl", [Sample(id=f"s{i}", row=i + 1, text="ab" * (i + 1)) for i in range(3)])
        scored = score_samples(ds, None, [registry.get_attack("test-lengths")], progress=False)
        np.testing.assert_allclose(scored.columns["test-lengths"], [0.4, 0.8, 1.2])
        assert scored.counts == {"lengths": {"cached": 0, "computed": 3, "batches": 0, "skipped": 0}}
        assert scored.seconds["test-lengths"] >= 0.03
    finally:
        registry._REGISTRY.pop("test-lengths")


def test_offline_missing_model_says_how_to_fix(tmp_path):
    from transformers import AutoConfig

    from mmia import offline
    from mmia.errors import ModelNotFoundError

    offline.configure(allow_download=False)
    with pytest.raises(ModelNotFoundError, match="is not a local directory; mmia runs offline: pass the path"):
        offline.from_pretrained(AutoConfig, "someorg/some-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        offline.resolve_model_dir(tmp_path / "empty")


def test_offline_loads_a_saved_tiny_model(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from mmia import offline

    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))
    model = offline.from_pretrained(AutoModelForCausalLM, tmp_path / "m")
    assert model.config.hidden_size == 16


def test_help_lists_only_working_commands():
    out = subprocess.run([sys.executable, "-m", "mmia.cli", "--help"], capture_output=True, text=True).stdout
    import re

    listed = set(re.findall(r"│ ([a-z][a-z-]+)\s{2,}", out.split("Commands")[1]))
    assert {"inspect", "report"} <= listed
    for cmd in listed:  # every listed command answers --help
        proc = subprocess.run([sys.executable, "-m", "mmia.cli", cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stderr)
    version = subprocess.run([sys.executable, "-m", "mmia.cli", "--version"], capture_output=True, text=True).stdout
    assert version.strip() == "mmia 0.1.0"
