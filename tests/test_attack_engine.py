"""The engine: one forward pass per batch for all attacks, resume after SIGKILL, reference models
with another tokenizer."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import WORDS, tiny_dir, write_media_dataset, write_texts  # noqa: F401  (fixture)

from mmia.attacks.runner import run_attack, score_samples, select_attacks
from mmia.cache import Cache
from mmia.data import load_dataset
from mmia.engine import EngineCounts, answer_losses, iter_token_stats
from mmia.errors import InputError
from mmia.targets import load_target

torch.set_num_threads(1)


def _text_data(root: Path, n: int) -> Path:
    return write_texts(root, [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3 + i % 7)).capitalize()
                              for i in range(n)])


def test_one_forward_pass_serves_every_attack_and_lowercase_costs_only_when_asked(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6))
    t = load_target(tiny_dir("llava"))
    all_specs = select_attacks(None, t.kind, ds.modalities, has_reference=False)
    scored = score_samples(ds, t, all_specs, batch_size=4, progress=False)
    assert scored.counts["target"]["batches"] == 2  # ceil(6 / 4): one pass for all attacks
    assert scored.counts["lower"]["batches"] == 2  # the lowercase attack's own pass
    assert len(scored.columns) > 20
    no_lower = [s for s in all_specs if s.name != "lowercase"]
    scored2 = score_samples(ds, t, no_lower, batch_size=4, progress=False)
    assert set(scored2.counts) == {"target"}
    for col, v in scored2.columns.items():  # same scores whatever else runs
        np.testing.assert_allclose(v, scored.columns[col], atol=1e-6)


def test_batched_scores_equal_batch_size_one(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=5))
    t = load_target(tiny_dir("qwen2vl"))
    specs = select_attacks(["loss", "min_k_pp", "max_k_renyi"], t.kind, ds.modalities, False)
    a = score_samples(ds, t, specs, batch_size=5, progress=False)
    b = score_samples(ds, t, specs, batch_size=1, progress=False)
    for col in a.columns:
        np.testing.assert_allclose(a.columns[col], b.columns[col], atol=1e-4)


CHILD = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.engine import iter_token_stats
    from mmia.targets import load_target

    target = load_target(sys.argv[1])
    inner = target.forward_batch
    def slow(batch, inputs=None):
        time.sleep(0.5)  # room for the parent to kill us between batches
        return inner(batch, inputs)
    target.forward_batch = slow
    ds = load_dataset(sys.argv[2])
    with Cache(sys.argv[3]) as cache:
        for _ in iter_token_stats(target, ds.samples, cache=cache, batch_size=2):
            pass
    print("finished")
""")


def test_resume_after_sigkill_computes_only_what_is_missing(tiny_dir, tmp_path):  # noqa: F811
    model = tiny_dir("causal_lm")
    data = _text_data(tmp_path, 16)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(data), str(cache_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done_before_kill = 0
    while time.time() < deadline:
        if (cache_dir / "values.sqlite").exists():
            with Cache(cache_dir) as c:
                done_before_kill = len(c)
            if done_before_kill >= 4:
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Cache(cache_dir) as c:
        cached = len(c)
    assert 4 <= cached < 16 and cached % 2 == 0  # whole batches only
    target = load_target(model)
    ds = load_dataset(data)
    counts = EngineCounts()
    with Cache(cache_dir) as c:
        resumed = dict(iter_token_stats(target, ds.samples, cache=c, batch_size=2, counts=counts))
    assert counts.cached == cached and counts.computed == 16 - cached
    assert counts.batches == (16 - cached) // 2
    fresh = dict(iter_token_stats(target, ds.samples, cache=None, batch_size=2))
    for i in range(16):
        np.testing.assert_allclose(resumed[i]["logp"], fresh[i]["logp"], atol=1e-6)
    again = EngineCounts()
    with Cache(cache_dir) as c:
        list(iter_token_stats(target, ds.samples, cache=c, batch_size=2, counts=again))
    assert again.computed == 0 and again.batches == 0 and again.cached == 16


def test_reference_with_another_tokenizer_compares_per_sample_means(tiny_dir, tmp_path):  # noqa: F811
    data = _text_data(tmp_path, 8)
    ds = load_dataset(data)
    target, ref = load_target(tiny_dir("causal_lm")), load_target(tiny_dir("gpt2"))
    texts = [s.text for s in ds]
    assert any(target.tokenizer(x).input_ids != ref.tokenizer(x).input_ids for x in texts)  # they differ
    result, table = run_attack(ds, tiny_dir("causal_lm"), attacks=["loss", "reference"],
                               reference_dir=tiny_dir("gpt2"), cache_dir=tmp_path / "c")
    # Each model's loss is its own mean over its own tokens of the same text: check against the
    # models' own cross-entropy on their own tokenisation.
    for model, tok in ((target.model, target.tokenizer), (ref.model, ref.tokenizer)):
        own = []
        for x in texts:
            ids = torch.tensor([tok(x).input_ids])
            with torch.no_grad():
                own.append(model(input_ids=ids, labels=ids).loss.item())
        np.testing.assert_allclose(answer_losses(load_target(model.name_or_path), ds.samples), own, atol=1e-5)
    lt = answer_losses(target, ds.samples)
    lr = answer_losses(ref, ds.samples)
    np.testing.assert_allclose(table.columns["reference"], -(lt / lr), atol=1e-5)
    assert any(e.name == "reference" and e.auc is not None for e in result.attacks)


def test_reference_needed_and_unknown_attack_are_clear_errors(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(_text_data(tmp_path, 4))
    with pytest.raises(InputError, match="needs a reference model"):
        run_attack(ds, tiny_dir("causal_lm"), attacks=["reference"], cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match="unknown method 'nope'"):
        run_attack(ds, tiny_dir("causal_lm"), attacks=["nope"], cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match="does not apply"):
        run_attack(ds, tiny_dir("causal_lm"), attacks=["csa"], cache_dir=tmp_path / "c")


def test_contrastive_attacks_run_and_are_seeded(tiny_dir, tmp_path):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6, prompt=False))
    res, table = run_attack(ds, tiny_dir("clip"), cache_dir=tmp_path / "c1")
    assert {e.name for e in res.attacks} == {"csa", "aea"}
    res2, table2 = run_attack(ds, tiny_dir("clip"), cache_dir=tmp_path / "c2")
    np.testing.assert_allclose(table.columns["aea"], table2.columns["aea"], atol=1e-6)
    assert not np.allclose(table.columns["aea"], table.columns["csa"])
    assert all(math.isfinite(v) for v in table.columns["csa"])
