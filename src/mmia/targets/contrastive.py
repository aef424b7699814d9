"""Adapters for contrastive text-media models: CLIP (image-text) and CLAP (audio-text).

Both embed texts and media into one space and return L2-normalised float32 numpy arrays, so a
pair's cosine similarity is a dot product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _features(out):
    """transformers 5.x returns a model output whose pooler_output is the projected embedding."""
    return out if hasattr(out, "shape") else out.pooler_output


def _normalise(x) -> np.ndarray:
    x = x.float().cpu().numpy()
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Contrastive:
    kind = "clip"
    media_kind = "image"

    def __init__(self, path: Path, model, processor, fingerprint: str, device: str, dtype):
        self.path = Path(path)
        self.model = model
        self.processor = processor
        self.fingerprint = fingerprint
        self.device = device
        self.dtype = dtype

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Normalised text embeddings (n, d)."""
        import torch

        tok = self.processor.tokenizer
        enc = tok(list(texts), padding=True, truncation=True, return_tensors="pt",
                  max_length=self._max_text_len())
        with torch.inference_mode():
            out = self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                               attention_mask=enc["attention_mask"].to(self.device))
        return _normalise(_features(out))

    def _max_text_len(self) -> int:
        return int(getattr(self.model.config.text_config, "max_position_embeddings", 77))

    def pair_similarity(self, texts: list[str], media: list) -> np.ndarray:
        """Cosine similarity of each (text, media) pair, shape (n,)."""
        return np.sum(self.embed_text(texts) * self.embed_media(media), axis=-1)


class CLIPTarget(_Contrastive):
    """CLIPModel + its processor: image and text embeddings."""

    kind = "clip"
    media_kind = "image"

    def embed_media(self, media: list) -> np.ndarray:
        """Normalised image embeddings (n, d); `media` holds PIL images or uint8 (H, W, 3) arrays."""
        import torch
        from PIL import Image

        images = [Image.fromarray(m) if isinstance(m, np.ndarray) else m for m in media]
        enc = self.processor.image_processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=enc["pixel_values"].to(self.device, self.dtype))
        return _normalise(_features(out))

    def load_media(self, ref):
        from mmia.data.media import load_image

        return load_image(ref)


class CLAPTarget(_Contrastive):
    """ClapModel + its processor: audio and text embeddings."""

    kind = "clap"
    media_kind = "audio"

    @property
    def sampling_rate(self) -> int:
        return int(getattr(self.processor.feature_extractor, "sampling_rate", 48000))

    def embed_media(self, media: list) -> np.ndarray:
        """Normalised audio embeddings (n, d); `media` holds mono float32 waveforms at `sampling_rate`."""
        import torch

        enc = self.processor.feature_extractor(list(media), sampling_rate=self.sampling_rate, return_tensors="pt")
        kw = {"input_features": enc["input_features"].to(self.device, self.dtype)}
        if "is_longer" in enc:
            kw["is_longer"] = enc["is_longer"].to(self.device)
        with torch.inference_mode():
            out = self.model.get_audio_features(**kw)
        return _normalise(_features(out))

    def load_media(self, ref):
        from mmia.data.media import load_audio

        return load_audio(ref, self.sampling_rate)
