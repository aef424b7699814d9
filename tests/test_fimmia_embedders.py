"""Embedders of the delta features: sentence-transformers text, CLIP image/video, CLAP audio."""

from __future__ import annotations

import numpy as np
import torch

from mmia.fimmia.embedders import ContrastiveMediaEmbedder
from mmia.perturb.audio import perturb_audio
from mmia.perturb.image import perturb_image
from mmia.targets.sentences import SentenceEmbedder


def test_default_text_embedder_is_minilm():
    emb = SentenceEmbedder()
    v = emb.encode(["a red circle on a blue background", "a red circle on a blue backdrop", "stock market news"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    cos = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert cos[0, 1] > cos[0, 2] + 0.2  # a real sentence embedding, not a random one


def test_clip_and_clap_media_embedders(tmp_path):
    from tiny_models import save_clap, save_clip

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    clip = ContrastiveMediaEmbedder(save_clip(tmp_path / "clip"))
    img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    e = clip.encode([img, perturb_image(img, "noise", rng)], "image")
    assert e.shape == (2, 16) and not np.allclose(e[0], e[1])
    video = np.stack([img, img[::-1], img[:, ::-1]])
    v = clip.encode([video], "video")
    np.testing.assert_allclose(v[0], clip.encode(list(video), "image").mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)  # the contrastive target's embeddings

    from tiny_models import save_siglip

    siglip = ContrastiveMediaEmbedder(save_siglip(tmp_path / "siglip"))
    s = siglip.encode([img, perturb_image(img, "noise", rng)], "image")
    assert s.shape == (2, 32) and not np.allclose(s[0], s[1])

    clap = ContrastiveMediaEmbedder(save_clap(tmp_path / "clap"))
    wave = (np.sin(np.arange(32000) / 5) * 0.3).astype(np.float32)  # 2 s at 16 kHz: longer than max_length
    a1 = clap.encode([wave, perturb_audio(wave, "gain", rng)], "audio")
    a2 = clap.encode([wave], "audio")
    assert a1.shape == (2, 16)
    np.testing.assert_allclose(a1[0], a2[0], rtol=1e-5)  # deterministic although the clip is long
