"""The media embedder of FiMMIA's delta features: a CLIP/SigLIP/CLAP model's embeddings.

Text embeddings come from mmia's one sentence embedder (`mmia.targets.sentences`; default
all-MiniLM-L6-v2, where the reference used e5-mistral-7b).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ContrastiveMediaEmbedder:
    """Image (CLIP, SigLIP) or audio (CLAP) embeddings through the contrastive target adapters of
    `mmia.targets` (normalised, as CSA/AEA and UMID read them).

    A video is embedded as the mean of its frames' image embeddings; audio is resampled to the
    model's rate and cut to its window here (CLAP's own truncation of a long clip picks a random one).
    """

    def __init__(self, model_dir: str | Path):
        from mmia.errors import ModelNotFoundError
        from mmia.offline import resolve_model_dir
        from mmia.targets import detect_kind, load_target

        self.model_dir = str(model_dir)
        local = Path(resolve_model_dir(self.model_dir, "media embedder"))
        self.kind = detect_kind(local)
        if self.kind not in ("clip", "clap"):
            raise ModelNotFoundError(f"{model_dir} is a '{self.kind}' model; the media embedder needs CLIP, "
                                     "SigLIP or CLAP")
        self.target = load_target(local, kind=self.kind, device="cpu", dtype="float32")

    def encode(self, media: list[np.ndarray], field: str, sampling_rate: int = 16000) -> np.ndarray:
        if field in ("image", "video"):
            if self.kind != "clip":
                raise ValueError("image/video media needs a CLIP or SigLIP embedder")
            flat, owner = [], []
            for i, m in enumerate(media):
                frames = m if field == "video" else m[None]
                flat.extend(list(frames))
                owner.extend([i] * len(frames))
            emb = self.target.embed_media(flat)
            owner = np.asarray(owner)
            return np.stack([emb[owner == i].mean(axis=0) for i in range(len(media))]).astype(np.float32)
        if self.kind != "clap":
            raise ValueError("audio media needs a CLAP embedder")
        from fractions import Fraction

        from scipy.signal import resample_poly

        sr = self.target.sampling_rate
        clips = []
        for wave in media:
            if sr != sampling_rate:
                frac = Fraction(sr, sampling_rate)
                wave = resample_poly(wave, frac.numerator, frac.denominator).astype(np.float32)
            clips.append(wave[: self.target.media_shape[0]])
        return self.target.embed_media(clips).astype(np.float32)
