"""Prompts the user laid out already (LLaVA's `USER: <image>\\n... ASSISTANT:`, Qwen's vision tokens, a
whole turn) are used as written, never wrapped twice; a processor's refusal is one line naming the row."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import save_causal_lm, tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.data import load_dataset
from mmia.engine import iter_token_stats
from mmia.errors import InputError
from mmia.targets import ANSWER, IMAGE, load_target
from mmia.testbeds.build import build_testbed


def _llava_format(sample):
    return dataclasses.replace(sample, prompt=f"USER: <image>\n{sample.prompt}\nASSISTANT:")


def test_llava_format_prompts_give_the_plain_prompts_statistics(quick_cache):
    # The vlm testbed's model was fine-tuned on "USER: <image>\n{prompt}\nASSISTANT: {answer}</s>",
    # which its chat template writes for plain prompts: the same prompt written out by hand must
    # give the same tokens and statistics over the image and the answer (the old code wrapped
    # it in the template again: two placeholders for one image, and the processor refused).
    tb = build_testbed("vlm", seed=0, quick=True, cache_dir=quick_cache)
    target = load_target(tb.targets["target"])
    samples = load_dataset(tb.splits["matched"]).samples[:6]
    written = [_llava_format(s) for s in samples]
    for view in (None, str.lower):  # the lowercase view keeps the written scaffolding as the template does
        plain_enc, written_enc = target.encode_batch(samples, view), target.encode_batch(written, view)
        for a, b in zip(plain_enc, written_enc, strict=True):
            n = len(b)  # the template's closing </s> follows the answer in the plain layout only
            assert np.array_equal(a.input_ids[:n], b.input_ids) and np.array_equal(a.codes[:n], b.codes)
            assert (b.codes == IMAGE).sum() == (a.codes == IMAGE).sum() > 0
    plain = dict(iter_token_stats(target, samples, batch_size=3))
    mine = dict(iter_token_stats(target, written, batch_size=3))
    for i in plain:
        n = len(mine[i]["logp"])
        keep = (mine[i]["codes"][1:] == ANSWER) | (mine[i]["codes"][:-1] == IMAGE)
        for key in ("logp", "entropy", "lp_std"):
            a, b = plain[i][key][:n][keep], mine[i][key][keep]
            ok = ~np.isnan(a)
            assert ok.any() and np.allclose(a[ok], b[ok], rtol=0, atol=1e-5), key


def test_qwen_vision_tokens_in_the_prompt_are_not_added_again(tiny_dir, tmp_path):  # noqa: F811
    t = load_target(tiny_dir("qwen2vl"))
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=2))
    plain = t.encode(ds.samples[0])
    written = t.encode(dataclasses.replace(ds.samples[0], prompt=f"{t.placeholder}{ds.samples[0].prompt}"))
    n_img = (plain.codes == IMAGE).sum()
    assert n_img > 0 and (written.codes == IMAGE).sum() == n_img
    assert (written.input_ids == t.tokenizer.convert_tokens_to_ids("<|vision_start|>")).sum() == 1


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_whole_turn_is_used_as_written_on_a_text_model(tmp_path):
    from mmia.data.schema import Sample

    t = load_target(save_causal_lm(tmp_path / "lm"))
    t.tokenizer.chat_template = CHATML
    plain = t.encode(Sample(id="p", row=1, prompt="what is red?", answer="a cat"))
    assert "<|im_start|>user" in t.tokenizer.decode(plain.input_ids)  # a plain prompt is wrapped
    for prompt in ("USER: what is red?\nASSISTANT:",  # a common turn format
                   "<|im_start|>user\nwhat is red?<|im_end|>\n<|im_start|>assistant"):  # the model's own
        enc = t.encode(Sample(id="a", row=1, prompt=prompt, answer="a cat"))
        assert enc.input_ids.tolist() == list(t.tokenizer(prompt + " a cat").input_ids)
        assert t.tokenizer.decode(enc.input_ids[enc.codes == ANSWER].tolist()).strip() == "a cat"


def test_lowercasing_a_written_prompt_keeps_the_placeholder(tiny_dir, tmp_path):  # noqa: F811
    t = load_target(tiny_dir("llava"))
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=1))
    s = dataclasses.replace(ds.samples[0], prompt="USER: <image>\nDESCRIBE it\nASSISTANT:")
    lower = t.encode(s, str.lower)
    assert (lower.codes == IMAGE).sum() == (t.encode(s).codes == IMAGE).sum() > 0


def _rows_with_a_second_placeholder(tmp_path):
    data = write_media_dataset(tmp_path / "d", n=4)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    rows[2]["prompt"] = "USER: <image><image>\n" + rows[2]["prompt"] + "\nASSISTANT:"  # 2 placeholders, 1 image
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_placeholders_that_do_not_match_the_media_are_one_line_naming_the_row(tiny_dir, tmp_path):  # noqa: F811
    data = _rows_with_a_second_placeholder(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "attack", str(data), "--target", str(tiny_dir("llava")),
                           "--attacks", "loss", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and str(data) in last and "row 3" in last and "'<image>'" in last


def test_a_processor_failure_on_a_row_is_an_input_error_naming_it(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    t = load_target(tiny_dir("llava"))
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=3))
    inner = t._tokenize_batch
    bad = ds.samples[1]

    def refuse_one_row(texts, medias):
        if any(bad.answer in x for x in texts):
            raise ValueError("Found total 16 <image> tokens and 8 images\nmore detail")
        return inner(texts, medias)

    monkeypatch.setattr(t, "_tokenize_batch", refuse_one_row)
    with pytest.raises(InputError) as err:
        list(iter_token_stats(t, ds.samples, batch_size=3, source=tmp_path / "d" / "data.jsonl"))
    msg = str(err.value)
    assert f"row {bad.row}" in msg and "data.jsonl" in msg and "Found total 16" in msg and "\n" not in msg
