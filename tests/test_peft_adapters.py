"""PEFT (LoRA) adapters as targets: recognised, merged into their base, audited against it."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from tiny_models import (  # noqa: F401  (fixture)
    CORPUS,
    fit_causal_lm,
    save_causal_lm,
    save_lora_adapter,
    tiny_dir,
    write_media_dataset,
)
from typer.testing import CliRunner

from mmia.cli import app
from mmia.data import load_dataset
from mmia.engine.run_generative import answer_losses
from mmia.errors import InputError, ModelNotFoundError
from mmia.targets import detect_kind, load_target
from mmia.targets.peft_adapter import is_adapter_dir

torch.set_num_threads(1)
N_HALF = 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A base that saw half the non-members in 'pretraining', and a LoRA fine-tuned on the members.

    The pretrained non-members have a low loss under the target without being members: the loss
    attack mistakes them for members, the target-minus-base reference attack does not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("peft-trained")
    words = sorted({w.strip(".?:").lower() for s in CORPUS for w in s.split()})
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 6)) for _ in range(2 * N_HALF)]
    members, nonmembers = texts[:N_HALF], texts[N_HALF:]
    rand = save_causal_lm(root / "random")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(rand)
    base = root / "base"
    fit_causal_lm(AutoModelForCausalLM.from_pretrained(rand), tok, nonmembers[: N_HALF // 2], 60, 1e-2) \
        .save_pretrained(base)
    tok.save_pretrained(base)
    adapter = save_lora_adapter(base, root / "lora", train_texts=members, steps=20, lr=1e-2, r=8)
    rows = [{"id": f"s{i}", "text": t, "label": int(i < N_HALF)} for i, t in enumerate(texts)]
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"base": base, "adapter": adapter, "data": data}


def _auc(res: dict, name: str) -> float:
    return next(a["auc"] for a in res["attacks"] if a["name"] == name)


def test_trained_lora_is_caught_by_the_reference_attack_against_its_base(trained, tmp_path):
    from mmia.attacks.runner import run_attack

    cache = tmp_path / "c"
    run_attack(trained["data"], trained["base"], attacks=["loss"], cache_dir=cache)  # the base, cached first
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["-q", "attack", str(trained["data"]), "--target", str(trained["adapter"]),
                                   "--attacks", "loss,reference", "--out", str(out), "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["settings"]["reference_from"] == "adapter base" and r["reference"] == str(trained["base"])
    assert r["settings"]["adapter"] == {"dir": str(trained["adapter"]), "base": str(trained["base"]),
                                        "peft_type": "LORA"}
    # the known answer: the fine-tune shows against its base; the loss alone is fooled by pretraining
    assert _auc(r, "reference") >= 0.85 and _auc(r, "loss") <= 0.75
    # the base's cached statistics serve it as the reference, never as the adapter
    assert r["settings"]["engine"]["reference"]["cached"] == 2 * N_HALF
    assert r["settings"]["engine"]["target"]["computed"] == 2 * N_HALF


def test_a_given_reference_is_recorded_as_given(trained, tmp_path):
    from mmia.attacks.runner import run_attack

    res, _ = run_attack(trained["data"], trained["adapter"], attacks=["reference"], reference_dir=trained["base"],
                        base_dir=trained["base"], cache_dir=tmp_path / "c")
    assert res.settings["reference_from"] == "--reference" and res.settings["adapter"]["base"] == str(trained["base"])


@pytest.mark.parametrize("model", ["causal_lm", "llava", "qwen2vl"])
def test_merged_losses_equal_the_unmerged_peft_forward(tiny_dir, tmp_path, model):  # noqa: F811
    import transformers
    from peft import PeftModel

    base = tiny_dir(model)
    adapter = save_lora_adapter(base, tmp_path / "lora")
    assert is_adapter_dir(adapter) and not is_adapter_dir(base)
    kind = "causal-lm" if model == "causal_lm" else "vlm"
    assert detect_kind(adapter) == kind
    samples = load_dataset(write_media_dataset(tmp_path / "d", n=4, image=model != "causal_lm")).samples
    target = load_target(adapter, device="cpu")
    assert target.kind == kind and target.path == adapter
    # scoring runs on a plain model: no peft wrapper, no LoRA layers left
    assert not isinstance(target.model, PeftModel)
    assert not any("lora" in name for name, _ in target.model.named_modules())
    merged = answer_losses(target, samples)
    arch = json.loads((base / "config.json").read_text())["architectures"][0]
    target.model = PeftModel.from_pretrained(getattr(transformers, arch).from_pretrained(base), adapter).eval()
    unmerged = answer_losses(target, samples)
    np.testing.assert_allclose(merged, unmerged, rtol=0, atol=1e-5)
    plain = answer_losses(load_target(base, device="cpu"), samples)
    assert np.abs(merged - plain).max() > 1e-3  # the adapter is really there


def test_fingerprint_combines_base_and_adapter(tiny_dir, tmp_path):  # noqa: F811
    base = tiny_dir("causal_lm")
    other_base = save_causal_lm(tmp_path / "other", seed=1)
    adapter = save_lora_adapter(base, tmp_path / "lora")
    fp = load_target(adapter, device="cpu").fingerprint
    assert fp != load_target(base, device="cpu").fingerprint
    assert fp != load_target(adapter, device="cpu", base=other_base).fingerprint
    cfg_path = adapter / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "lora_alpha": 2 * cfg["lora_alpha"]}))  # same weights, double the delta
    assert load_target(adapter, device="cpu").fingerprint != fp


def test_tokenizer_comes_from_the_adapter_when_it_saved_one(tiny_dir, tmp_path):  # noqa: F811
    from transformers import AutoTokenizer

    base = tiny_dir("causal_lm")
    adapter = save_lora_adapter(base, tmp_path / "lora")
    assert load_target(adapter, device="cpu").tokenizer.chat_template is None  # none saved: the base's
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    tok.save_pretrained(adapter)
    assert load_target(adapter, device="cpu").tokenizer.chat_template == tok.chat_template


def _cli_error(argv, monkeypatch, capsys) -> tuple[int, str]:
    from mmia import cli

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["mmia", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["config names a missing dir", "--base missing"])
def test_missing_base_is_one_line_and_exit_2(tiny_dir, tmp_path, monkeypatch, capsys, case):  # noqa: F811
    adapter = save_lora_adapter(tiny_dir("causal_lm"), tmp_path / "lora")
    data = write_media_dataset(tmp_path / "d", n=2, image=False)
    argv = ["attack", str(data), "--target", str(adapter), "--out", str(tmp_path / "o")]
    if case == "--base missing":
        argv += ["--base", str(tmp_path / "no-such-base")]
        expected = "no-such-base"
    else:
        cfg_path = adapter / "adapter_config.json"
        cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()),
                                        "base_model_name_or_path": str(tmp_path / "gone")}))
        expected = "pass --base DIR"
    code, err = _cli_error(argv, monkeypatch, capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_hub_name_as_base_without_base_is_refused_naming_base(tiny_dir, tmp_path):  # noqa: F811
    adapter = save_lora_adapter(tiny_dir("causal_lm"), tmp_path / "lora")
    cfg_path = adapter / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()),
                                    "base_model_name_or_path": "meta-llama/Llama-3.2-1B"}))
    for call in (lambda: detect_kind(adapter), lambda: load_target(adapter, device="cpu")):
        with pytest.raises(ModelNotFoundError, match="meta-llama/Llama-3.2-1B.*pass --base"):
            call()
    assert load_target(adapter, device="cpu", base=tiny_dir("causal_lm")).kind == "causal-lm"


def test_pickled_adapter_is_refused_unread(tiny_dir, tmp_path):  # noqa: F811
    adapter = save_lora_adapter(tiny_dir("causal_lm"), tmp_path / "lora")
    (adapter / "adapter_model.safetensors").unlink()
    (adapter / "adapter_model.bin").write_bytes(b"not a pickle: reading it would fail differently")
    with pytest.raises(InputError, match="adapter_model.bin is a pickle.*safetensors only"):
        load_target(adapter, device="cpu")


def test_prompt_tuning_cannot_be_merged_and_is_refused(tiny_dir, tmp_path):  # noqa: F811
    import transformers
    from peft import PromptTuningConfig, get_peft_model

    base = tiny_dir("causal_lm")
    cfg = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    get_peft_model(transformers.LlamaForCausalLM.from_pretrained(base), cfg).save_pretrained(tmp_path / "pt")
    with pytest.raises(InputError, match="PROMPT_TUNING adds virtual tokens.*cannot be merged"):
        load_target(tmp_path / "pt", device="cpu")


def test_base_for_a_full_model_and_a_base_that_does_not_fit_are_refused(tiny_dir, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="--base is for PEFT adapter targets"):
        load_target(tiny_dir("causal_lm"), device="cpu", base=tiny_dir("gpt2"))
    adapter = save_lora_adapter(tiny_dir("causal_lm"), tmp_path / "lora")
    with pytest.raises(ModelNotFoundError, match="cannot apply the adapter.*is --base the model it was trained on"):
        load_target(adapter, device="cpu", base=tiny_dir("gpt2"))  # GPT-2 has no q_proj/v_proj
    # weights for a layer the base lacks: peft only warns and would leave layer 1 unadapted
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    save_file({k.replace("layers.1.", "layers.9."): v for k, v in load_file(weights).items()}, weights)
    with pytest.raises(ModelNotFoundError, match="does not fit the base"):
        load_target(adapter, device="cpu")


def test_vlm_adapter_attack_defaults_to_its_base(tiny_dir, tmp_path):  # noqa: F811
    from mmia.attacks.runner import run_attack

    base = tiny_dir("llava")
    adapter = save_lora_adapter(base, tmp_path / "lora")
    res, _ = run_attack(write_media_dataset(tmp_path / "d", n=4), adapter, attacks=["loss", "reference"],
                        cache_dir=tmp_path / "c")
    assert res.settings["target_kind"] == "vlm" and res.settings["reference_from"] == "adapter base"
    assert res.reference == str(base) and {"loss", "reference"} <= {e.name for e in res.attacks}


def test_fimmia_trains_and_scores_on_an_adapter(trained, tmp_path):
    # The adapter's config names no usable base: `fimmia train --base` is both the two-model
    # protocol's base and the adapter's, and `fimmia score` finds it again in the attack model.
    from mmia.fimmia.pipeline import FimmiaConfig, make_scorer

    adapter = shutil.copytree(trained["adapter"], tmp_path / "lora")
    cfg_path = adapter / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "base_model_name_or_path": "gone"}))
    runner = CliRunner()
    atk = tmp_path / "atk"
    common = ["--target", str(adapter), "--cache-dir", str(tmp_path / "c")]
    res = runner.invoke(app, ["-q", "fimmia", "train", str(trained["data"]), *common, "--base", str(trained["base"]),
                              "--out", str(atk), "--k", "2", "--holdout", "0.5", "--text-embedder", "none",
                              "--media-embedder", "none"])
    assert res.exit_code == 0, res.output
    saved = json.loads((atk / "config.json").read_text())["settings"]
    assert saved["protocol"] == "two-model" and saved["fimmia"]["adapter_base"] == str(trained["base"].resolve())
    held = set(__import__("pandas").read_parquet(atk / "holdout" / "scores.parquet")["id"])
    rows = [json.loads(x) for x in trained["data"].read_text().splitlines()]
    held_data = tmp_path / "held.jsonl"
    held_data.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in held))
    res = runner.invoke(app, ["-q", "fimmia", "score", str(held_data), *common, "--attack-model", str(atk),
                              "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "results.json").read_text())["attacks"][0]["name"] == "fimmia"
    # FiMMIA's cache keys are the merged adapter's, not the base's
    scorer = make_scorer(adapter, FimmiaConfig(device="cpu", adapter_base=str(trained["base"])))
    assert scorer.fingerprint == load_target(trained["adapter"], device="cpu").fingerprint


def test_fimmia_keeps_the_llava_reuse_path_for_a_llava_adapter(tiny_dir, tmp_path):  # noqa: F811
    from peft import PeftModel

    from mmia.fimmia.pipeline import FimmiaConfig, make_scorer
    from mmia.fimmia.scoring_llava import LlavaScorer

    adapter = save_lora_adapter(tiny_dir("llava"), tmp_path / "lora")
    scorer = make_scorer(adapter, FimmiaConfig(device="cpu"))
    assert isinstance(scorer, LlavaScorer) and not isinstance(scorer.model, PeftModel)
    assert scorer.fingerprint != load_target(tiny_dir("llava"), device="cpu").fingerprint


def test_umid_loads_a_clip_adapter(tiny_dir, tmp_path):  # noqa: F811
    from mmia.umid.target import load_contrastive

    base = tiny_dir("clip")
    adapter = save_lora_adapter(base, tmp_path / "lora")
    merged, plain = load_contrastive(adapter), load_contrastive(base)
    assert merged.kind == "clip" and merged.fingerprint != plain.fingerprint
    texts = ["a photo of a cat", "a red bird"]
    assert not np.allclose(merged.embed_text(texts), plain.embed_text(texts))


def test_umid_inversions_of_an_adapter_are_its_own(tiny_dir, tmp_path):  # noqa: F811
    from mmia.cache import Cache
    from mmia.umid.api import audit_queries
    from mmia.umid.audit import UmidConfig

    base = tiny_dir("clip")
    adapter = save_lora_adapter(base, tmp_path / "lora")
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"id": f"q{i}", "text": f"person number {i}", "label": i % 2}) + "\n"
                               for i in range(4)))
    cfg = UmidConfig(restarts=2, steps=1, reference_size=10)
    with Cache(tmp_path / "c") as cache:
        audit_queries(queries, base, cfg, cache=cache)
        n_base = len(cache)
        audit_queries(queries, adapter, cfg, cache=cache, base=base)
        assert len(cache) == 2 * n_base  # every inversion computed anew for the adapter


def test_infer_on_an_adapter_uses_its_base_as_reference(trained, tmp_path):
    from mmia.infer import infer

    rows = [json.loads(x) for x in trained["data"].read_text().splitlines()]
    for name, label in (("suspect", 1), ("validation", 0)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                                                        for r in rows if r["label"] == label), encoding="utf-8")
    r = infer(tmp_path / "suspect.jsonl", tmp_path / "validation.jsonl", trained["adapter"], shift_check=False,
              cache_dir=tmp_path / "c")
    assert r.settings["reference_from"] == "adapter base" and "reference" in r.features
