"""FiMMIA on an audio target (Whisper-style encoder-decoder): encoder reuse equals scratch, CLI works."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmia.cli import app
from mmia.data.schema import Sample
from mmia.perturb import NeighbourConfig, NeighbourMaker

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """A random (untrained) Whisper-style model with the audio testbed's tokenizer and features."""
    from tiny_models import save_whisper

    return save_whisper(tmp_path_factory.mktemp("whisper") / "m", seed=0, d_model=32)


@pytest.fixture(scope="module")
def audio_data(tmp_path_factory):
    from tiny_models import write_audio_captions

    return write_audio_captions(tmp_path_factory.mktemp("audio"), "t").parent


@pytest.mark.parametrize("field", ["answer", "media", "answer+media", "prompt"])
def test_encoder_reuse_equals_scratch(whisper, audio_data, field):
    from mmia.fimmia.scoring_audio import WhisperScorer
    from mmia.perturb.neighbours import decode_media

    s = Sample(id="s", row=1, prompt="what do you hear", answer="a loud high tone then a short quiet hiss and then "
               "a long buzz", audio=audio_data / "0.wav")
    nbs = NeighbourMaker(NeighbourConfig(k=6, field=field, text_techniques=("delete", "swap", "duplicate"))).make(s)
    wave = decode_media(s, "audio")
    fast = WhisperScorer(whisper, reuse=True, batch_size=4, answer_template=" {answer}</s>")
    slow = WhisperScorer(whisper, reuse=False, batch_size=4, answer_template=" {answer}</s>")
    a, b = fast.score_sample(s, nbs, wave, "audio"), slow.score_sample(s, nbs, wave, "audio")
    assert a[0] == pytest.approx(b[0], abs=1e-4)
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)
    assert np.ptp(a[1]) > 0


def test_audio_cli_train_with_holdout(whisper, audio_data, tmp_path):
    res = CliRunner().invoke(app, ["-q", "fimmia", "train", str(audio_data / "a.jsonl"), "--target", str(whisper),
                                   "--out", str(tmp_path / "atk"), "--k", "4", "--field", "answer+media",
                                   "--holdout", "0.5", "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    held = json.loads((tmp_path / "atk" / "holdout" / "results.json").read_text())
    cfg = json.loads((tmp_path / "atk" / "config.json").read_text())
    assert cfg["net"]["media_dim"] == 32  # the target's own audio encoder gave the media deltas
    assert held["dataset"]["n_members"] + held["dataset"]["n_nonmembers"] == 8
    assert set(cfg["train_ids"]).isdisjoint(
        set(__import__("pandas").read_parquet(tmp_path / "atk" / "holdout" / "scores.parquet")["id"]))
