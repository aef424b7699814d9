"""Vision-language types beyond LLaVA and Qwen2-VL, each a tiny model in its real transformers
classes: the answer loss mmia computes equals the model's own loss on the answer tokens (so
the media reach the model and the answer is found where the processor put it), and `mmia attack`
scores every row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import fimmia_train_then_score, tiny_dir, write_media_dataset  # noqa: F401  (fixture)
from typer.testing import CliRunner

from mmia.cli import app
from mmia.data import load_dataset
from mmia.engine.run_generative import answer_losses
from mmia.targets import load_target

torch.set_num_threads(1)
TYPES = ["llava_next", "qwen2_5_vl", "idefics3", "gemma3"]


def _own_loss(target, sample) -> float:
    """The model's own cross-entropy over the answer's tokens, from its processor (or, for Qwen,
    its image processor) on placeholder + prompt + space + answer, labels -100 elsewhere."""
    from PIL import Image

    image = Image.open(sample.image).convert("RGB")
    text = target.placeholder + sample.prompt + " " + sample.answer
    if target.processor is not None:
        inputs = dict(target.processor(text=[text], images=[image], return_tensors="pt"))
    else:  # Qwen: each placeholder's pad token repeated once per merged patch
        inputs = dict(target.image_processor(images=[image], return_tensors="pt"))
        merge = target.image_processor.merge_size
        n = int(inputs["image_grid_thw"][0].prod()) // (merge * merge)
        text = text.replace(target.image_token, target.image_token * n)
        inputs["input_ids"] = torch.tensor([target.tokenizer(text).input_ids])
    inputs.pop("attention_mask", None)
    ids = inputs["input_ids"]
    n_answer = len(target.tokenizer(" " + sample.answer, add_special_tokens=False).input_ids)
    labels = torch.full_like(ids, -100)
    labels[0, -n_answer:] = ids[0, -n_answer:]
    with torch.inference_mode():
        return float(target.model(**inputs, labels=labels).loss)


@pytest.mark.parametrize("kind", TYPES)
def test_answer_loss_is_the_models_own(tiny_dir, tmp_path, kind):  # noqa: F811
    ds = load_dataset(write_media_dataset(tmp_path / "d", n=3))
    target = load_target(tiny_dir(kind), device="cpu")
    assert target.kind == "vlm"
    ours = answer_losses(target, ds.samples)
    own = [_own_loss(target, s) for s in ds.samples]
    np.testing.assert_allclose(ours, own, rtol=1e-5, atol=1e-6)  # float32, batched vs alone
    assert np.ptp(ours) > 0  # the rows really differ


@pytest.mark.parametrize("kind", TYPES)
def test_cli_attack_scores_every_row(tiny_dir, tmp_path, kind):  # noqa: F811
    data = write_media_dataset(tmp_path / "d", n=6)
    res = CliRunner().invoke(
        app,
        [
            "-q",
            "attack",
            str(data),
            "--target",
            str(tiny_dir(kind)),
            "--attacks",
            "loss",
            "--out",
            str(tmp_path / "o"),
            "--cache",
            str(tmp_path / "c"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "o" / "results.json").read_text())
    assert out["attacks"][0]["n_members"] + out["attacks"][0]["n_nonmembers"] == 6
    import pandas as pd

    scores = pd.read_parquet(tmp_path / "o" / "scores.parquet")
    loss_cols = [c for c in scores.columns if c.startswith("loss")]
    assert loss_cols and np.isfinite(scores[loss_cols].to_numpy(dtype=float)).all()


def test_paligemma_is_refused_in_one_line(tiny_dir, tmp_path):  # noqa: F811
    from mmia.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="'paligemma' is not supported: PaliGemma is a prefix-LM"):
        load_target(tiny_dir("paligemma"), device="cpu")
    data = write_media_dataset(tmp_path / "d", n=2)
    res = CliRunner().invoke(app, ["-q", "attack", str(data), "--target", str(tiny_dir("paligemma")), "--out",
                                   str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    # main() turns this error into one line on stderr and its exit status
    assert isinstance(res.exception, ModelNotFoundError) and res.exception.exit_code == 2


@pytest.mark.parametrize("kind", TYPES)
def test_cli_fimmia_train_and_score(tiny_dir, tmp_path, kind):  # noqa: F811
    from mmia.fimmia.scoring_target import TargetScorer
    from mmia.perturb.neighbours import decode_media

    data = write_media_dataset(tmp_path / "d", n=8)
    target = tiny_dir(kind)
    train, _, held_ids, res, out = fimmia_train_then_score(data, target, tmp_path, k=2, quiet_train=True)
    assert train.exit_code == 0, train.output
    assert res.exit_code == 0, res.output
    assert out["attacks"][0]["name"] == "fimmia" and held_ids
    ds = load_dataset(data)
    scorer = TargetScorer(target, batch_size=4)
    a, b = (scorer.media_embedding_of(decode_media(s, "image"), "image") for s in ds.samples[:2])
    assert a.ndim == 1 and a.shape == b.shape and not np.allclose(a, b)
