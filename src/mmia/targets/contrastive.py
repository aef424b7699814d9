"""Adapters for contrastive text-media models: CLIP and SigLIP (image-text), CLAP (audio-text).

Both embed texts and media into one space and return L2-normalised float32 numpy arrays, so a
pair's cosine similarity is a dot product. For methods that optimise a media input (text-only
auditing inverts a text embedding into the other modality), each adapter also embeds a torch
input differentiably: `embed_pixels` (CLIP, images in [0, 1]) and `embed_waveform` /
`embed_features` (CLAP, through a torch log-mel that matches the feature extractor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _features(out):
    """transformers 5.x returns a model output whose pooler_output is the projected embedding."""
    return out if hasattr(out, "shape") else out.pooler_output


def _normalise(x) -> np.ndarray:
    import torch.nn.functional as F

    # torch's normalisation, as for the differentiable embeddings below, so both paths agree bit for bit
    return F.normalize(x.float(), dim=-1).cpu().numpy()


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

    def embed_text(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Normalised text embeddings (n, d), `batch_size` texts per forward pass."""
        import torch

        texts = list(texts)
        out = []
        for i in range(0, len(texts), batch_size):
            with torch.inference_mode():
                o = self.model.get_text_features(**self._text_inputs(texts[i : i + batch_size]))
            out.append(_normalise(_features(o)))
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), dtype=np.float32)

    def _text_inputs(self, texts: list[str]) -> dict:
        """Tokenised texts as the model's text tower takes them (padded to the longest, masked)."""
        enc = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                                       max_length=self._max_text_len())
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _max_text_len(self) -> int:
        return int(getattr(self.model.config.text_config, "max_position_embeddings", 77))

    def freeze(self):
        """Turn off gradients for the weights (they stay on for inputs): for input optimisation."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self

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

    @property
    def media_shape(self) -> tuple[int, int, int]:
        """(3, H, W) of the model's pixel input."""
        size = int(self.model.config.vision_config.image_size)
        return (3, size, size)

    def embed_pixels(self, pixels):
        """Normalised image embeddings (B, d) of a torch batch (B, 3, H, W) in [0, 1], differentiable.

        The image processor's mean/std normalisation is applied here, so gradients reach the
        pixels; at the model's resolution this equals `embed_media` on the same image.
        """
        import torch
        import torch.nn.functional as F

        ip = self.processor.image_processor
        mean = torch.tensor(ip.image_mean, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(ip.image_std, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
        out = self.model.get_image_features(pixel_values=((pixels - mean) / std).to(self.device, self.dtype))
        return F.normalize(_features(out).float(), dim=-1)


class SiglipTarget(CLIPTarget):
    """SiglipModel + its processor (Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
    ICCV 2023): an image-text model of the `clip` kind, for CSA/AEA and `mmia umid`.

    SigLIP's text tower was trained on texts padded to its full length (64 tokens) with no
    attention mask, and pools the last position: texts are tokenised that way here, or the
    embeddings are not the model's. Its embedding width is the text tower's `projection_size`.
    """

    kind = "clip"
    architecture = "siglip"

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.text_config.projection_size)

    def _text_inputs(self, texts: list[str]) -> dict:
        tok = self.processor.tokenizer
        enc = tok(texts, padding="max_length", truncation=True, return_tensors="pt", max_length=self._max_text_len())
        out = {"input_ids": enc["input_ids"].to(self.device)}
        if "attention_mask" in getattr(tok, "model_input_names", ()) and "attention_mask" in enc:
            out["attention_mask"] = enc["attention_mask"].to(self.device)  # a tokenizer that was built with one
        return out


class CLAPTarget(_Contrastive):
    """ClapModel + its processor: audio and text embeddings."""

    kind = "clap"
    media_kind = "audio"

    def _max_text_len(self) -> int:
        # RoBERTa-style positions start after the padding index, so fewer tokens fit than positions
        cfg = self.model.config.text_config
        return int(cfg.max_position_embeddings) - int(cfg.pad_token_id or 0) - 1

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

    @property
    def media_shape(self) -> tuple[int]:
        """(L,): samples in one clip at the feature extractor's maximum length."""
        return (int(self.processor.feature_extractor.nb_max_samples),)

    @property
    def feature_shape(self) -> tuple[int, int]:
        """(frames, mel bins) of the log-mel features of one clip."""
        fe = self.processor.feature_extractor
        return (self.media_shape[0] // fe.hop_length + 1, int(fe.feature_size))

    def logmel(self, wave):
        """(B, L) torch waveform -> (B, T, F) dB log-mel, as the feature extractor computes it, differentiable.

        Covers the single-crop path (truncation other than "fusion", or a clip no longer than the
        maximum): the features a model without fusion sees.
        """
        import torch

        fe = self.processor.feature_extractor
        filters = fe.mel_filters if fe.truncation == "fusion" else fe.mel_filters_slaney
        bank = torch.as_tensor(np.asarray(filters), dtype=wave.dtype, device=wave.device)  # (n_freq, n_mels)
        window = torch.hann_window(fe.fft_window_size, periodic=True, dtype=wave.dtype, device=wave.device)
        spec = torch.stft(wave, fe.fft_window_size, fe.hop_length, window=window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real**2 + spec.imag**2  # (B, n_freq, T)
        mel = torch.einsum("bft,fm->btm", power, bank)
        return 10.0 * torch.log10(mel.clamp_min(1e-10))

    def embed_features(self, feats):
        """Normalised audio embeddings (B, d) of log-mel features (B, T, F), differentiable."""
        import torch.nn.functional as F

        out = self.model.get_audio_features(input_features=feats[:, None].to(self.device, self.dtype))
        return F.normalize(_features(out).float(), dim=-1)

    def embed_waveform(self, wave):
        """Normalised audio embeddings (B, d) of a torch waveform batch (B, L), differentiable."""
        return self.embed_features(self.logmel(wave))
