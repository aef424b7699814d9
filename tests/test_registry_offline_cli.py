"""The registry's contract, offline-by-default model loading, and the CLI surface."""

import subprocess
import sys

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
