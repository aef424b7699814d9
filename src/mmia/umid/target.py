"""Differentiable access to a CLIP- or CLAP-style model for text-only auditing.

What UMID needs from a contrastive model: normalised text embeddings of queries, a media
encoder that gradients flow through (from normalised pixels, from a waveform via a torch
log-mel that matches the model's feature extractor, or from log-mel features directly), and
real-media embeddings for the biometric baseline. Loads from a local Hugging Face directory.

(The generic contrastive adapters in mmia.targets cover scoring of (text, media) pairs; this
module keeps the gradient path UMID needs on its own so the two can merge later.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmia.errors import InputError


def _pooled(x):
    """transformers 5.x returns an output object from get_*_features; older versions a tensor."""
    return x if hasattr(x, "shape") else x.pooler_output


@dataclass
class MediaSpec:
    """Shape and range of the media input the inversion optimises."""

    kind: str  # "image" or "audio"
    shape: tuple[int, ...]  # pixels (3, H, W); waveform (L,)
    feature_shape: tuple[int, ...] = ()  # audio: log-mel (T, F)
    sampling_rate: int | None = None


class ContrastiveTarget:
    """A loaded CLIPModel or ClapModel with its processor, in eval mode, gradients off for weights."""

    def __init__(self, model_dir: str | Path):
        from mmia import offline, progress

        if progress.is_quiet():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        model_dir = Path(model_dir)
        offline.resolve_model_dir(model_dir, "target")
        cfg_path = model_dir / "config.json"
        try:
            model_type = json.loads(cfg_path.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the model config ({exc})", cfg_path) from None
        self.path = model_dir
        if model_type == "clip":
            from transformers import AutoProcessor, CLIPModel

            self.kind = "clip"
            self.model = offline.from_pretrained(CLIPModel, model_dir, "target")
            self.processor = offline.from_pretrained(AutoProcessor, model_dir, "target processor")
            ip = self.processor.image_processor
            size = self.model.config.vision_config.image_size
            self.mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
            self.std = torch.tensor(ip.image_std, dtype=torch.float32).view(1, 3, 1, 1)
            self.media = MediaSpec("image", (3, size, size))
        elif model_type == "clap":
            from transformers import ClapModel, ClapProcessor

            self.kind = "clap"
            self.model = offline.from_pretrained(ClapModel, model_dir, "target")
            self.processor = offline.from_pretrained(ClapProcessor, model_dir, "target processor")
            fe = self.processor.feature_extractor
            self.n_fft = fe.fft_window_size
            self.hop = fe.hop_length
            self.mel = torch.tensor(np.asarray(fe.mel_filters_slaney), dtype=torch.float32)  # (n_freq, n_mels)
            length = int(fe.nb_max_samples)
            frames = length // self.hop + 1
            self.media = MediaSpec("audio", (length,), (frames, fe.feature_size), fe.sampling_rate)
        else:
            raise InputError(
                f"model_type {model_type!r} is not a CLIP- or CLAP-style model (need 'clip' or 'clap')", cfg_path
            )
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    # --- text ------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        tok = self.processor.tokenizer
        max_len = self._max_text_len()
        out = []
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt")
            out.append(_pooled(self.model.get_text_features(**enc)))
        return F.normalize(torch.cat(out), dim=-1)

    def _max_text_len(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings) - (8 if self.kind == "clap" else 0)

    # --- media -----------------------------------------------------------------------------
    def embed_pixels01(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings of images in [0, 1] (B, 3, H, W), differentiable."""
        return F.normalize(_pooled(self.model.get_image_features(pixel_values=(x - self.mean) / self.std)), dim=-1)

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, L) waveform -> (B, T, F) dB log-mel, as the CLAP feature extractor computes it."""
        window = torch.hann_window(self.n_fft, periodic=True, dtype=wave.dtype)
        spec = torch.stft(wave, self.n_fft, self.hop, window=window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real**2 + spec.imag**2  # (B, n_freq, T)
        mel = torch.einsum("bft,fm->btm", power, self.mel)
        return 10.0 * torch.log10(mel.clamp_min(1e-10))

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Normalised audio embeddings of log-mel features (B, T, F), differentiable."""
        return F.normalize(_pooled(self.model.get_audio_features(input_features=feats[:, None])), dim=-1)

    def embed_waveform(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.logmel(wave))

    @torch.no_grad()
    def embed_media_files(self, paths: list[Path], batch_size: int = 64) -> torch.Tensor:
        """Embeddings of real images or audio files through the model's own processor."""
        from mmia.data.media import load_audio, load_image

        out = []
        for i in range(0, len(paths), batch_size):
            chunk = paths[i : i + batch_size]
            if self.kind == "clip":
                imgs = [load_image(p) for p in chunk]
                pix = self.processor.image_processor(images=imgs, return_tensors="pt")["pixel_values"]
                out.append(_pooled(self.model.get_image_features(pixel_values=pix)))
            else:
                sr = self.media.sampling_rate
                waves = [np.asarray(load_audio(p, sr), dtype=np.float32) for p in chunk]
                feats = self.processor.feature_extractor(waves, sampling_rate=sr, return_tensors="pt")
                out.append(_pooled(self.model.get_audio_features(input_features=feats["input_features"])))
        return F.normalize(torch.cat(out), dim=-1)
