"""Per-sample inputs of the blind checks, computed once per run (and cached where costly).

Nothing here looks at the labels or fits anything to the data: hashed n-grams, date features,
frozen sentence embeddings, colour/DCT/LBP vectors, DAISY descriptors and audio statistics are
pure functions of one sample. Everything learnt from the data is fit inside the folds
(`mmia.shift.protocol`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from mmia.data.ids import media_digest
from mmia.data.schema import Dataset, Sample, SkippedRow
from mmia.errors import InputError

FEATURE_VERSION = "1"
VIDEO_FRAMES = 4


class ShiftInputs:
    """The samples of one labelled set and their per-sample features, computed lazily."""

    def __init__(self, dataset: Dataset, *, cache=None, text_embedder: str | Path | None = None,
                 skip_bad: bool = False, seed: int = 0):
        self.dataset = dataset
        self.cache = cache
        self.text_embedder = text_embedder
        self.skip_bad = skip_bad
        self.seed = seed
        self.skipped: list[SkippedRow] = []

    @property
    def samples(self) -> list[Sample]:
        return self.dataset.samples

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels()

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.dataset.modalities

    @property
    def media_kind(self) -> str | None:
        mods = self.modalities
        return next((m for m in ("image", "video", "audio") if m in mods), None)

    @cached_property
    def texts(self) -> list[str]:
        return [s.full_text or "" for s in self.samples]

    @cached_property
    def char_ngrams(self):
        from mmia.shift.ngrams import ngram_matrix

        return ngram_matrix(self.texts, analyzer="char", ngram_range=(1, 5))

    @cached_property
    def text_format(self) -> np.ndarray:
        from mmia.shift.text_format import format_features

        return format_features(self.texts)

    def ngrams(self, analyzer: str, lo: int, hi: int):
        if (analyzer, lo, hi) == ("char", 1, 5):
            return self.char_ngrams
        from mmia.shift.ngrams import ngram_matrix

        return ngram_matrix(self.texts, analyzer=analyzer, ngram_range=(lo, hi))

    @cached_property
    def dates(self) -> np.ndarray:
        from mmia.shift.dates import date_matrix

        return date_matrix(self.texts)

    def embeddings(self, model_dir=None) -> np.ndarray:
        from mmia.targets.sentences import embed_texts

        return embed_texts(self.texts, model_dir or self.text_embedder, cache=self.cache)

    # --- media --------------------------------------------------------------------------------

    def drop_undecodable(self, kind: str) -> None:
        """Decode every sample's media once (features are cached); drop or raise on failures."""
        if kind in ("image", "video"):
            _ = self.image_global
        elif kind == "audio":
            _ = self.audio

    def _media_values(self, kind: str, method: str, compute_one) -> list[dict]:
        """Per-sample feature dicts of `kind` media, cached by file content; bad rows handled."""
        from mmia.cache import make_key
        from mmia.data.media import MediaError
        from mmia.progress import progress_bar

        out: list[dict | None] = []
        bad: list[int] = []
        with progress_bar(f"{method} features", len(self.samples)) as bar:
            for i, s in enumerate(self.samples):
                ref = getattr(s, kind)
                if ref is None:
                    out.append(None)
                    bar.advance()
                    continue
                try:
                    key = make_key("", media_digest(ref), method=method, version=FEATURE_VERSION)
                    value = self.cache.get(key) if self.cache is not None else None
                    if value is None:
                        value = compute_one(ref)
                        if self.cache is not None:
                            self.cache.put(key, value)
                    out.append(value)
                except (MediaError, OSError, ValueError) as exc:
                    if not self.skip_bad:
                        where = (self.dataset.path, s.row)
                        raise InputError(f"{kind} of this row does not decode ({exc})", *where) from None
                    self.skipped.append(SkippedRow(row=s.row, reason=f"{kind} does not decode: {exc}", id=s.id))
                    bad.append(i)
                    out.append(None)
                bar.advance()
        if bad:
            keep = [i for i in range(len(self.samples)) if i not in set(bad)]
            self.dataset = self.dataset.subset(keep)
            self._reset()
            return [out[i] for i in keep]
        return out

    def _reset(self) -> None:
        for name in ("texts", "char_ngrams", "dates", "image_global", "image_descriptors", "audio"):
            self.__dict__.pop(name, None)

    def _frames(self, ref: Path, kind: str) -> list[np.ndarray]:
        from mmia.data.media import load_image, load_video

        if kind == "image":
            return [load_image(ref)]
        return list(load_video(ref, max_frames=VIDEO_FRAMES))

    @cached_property
    def image_global(self) -> np.ndarray:
        """(n, d) colour/DCT/LBP vectors (mean over frames for video); zeros where no media."""
        from mmia.shift.image_features import global_image_features, keypoint_descriptors

        kind = "image" if "image" in self.modalities else "video"

        def one(ref):
            frames = self._frames(ref, kind)
            g = np.mean([global_image_features(f) for f in frames], axis=0)
            d = np.concatenate([keypoint_descriptors(f) for f in frames])
            return {"global": g.astype(np.float64), "desc": d.astype(np.float32)}

        values = self._media_values(kind, f"{kind}-features", one)
        dim = next((v["global"].shape[0] for v in values if v is not None), 0)
        self.__dict__["image_descriptors"] = [
            v["desc"] if v is not None else np.zeros((0, 104), np.float32) for v in values
        ]
        return np.stack([v["global"] if v is not None else np.zeros(dim) for v in values])

    @cached_property
    def image_descriptors(self) -> list[np.ndarray]:
        _ = self.image_global
        return self.__dict__["image_descriptors"]

    @cached_property
    def audio(self) -> np.ndarray:
        from mmia.data.media import load_audio
        from mmia.shift.audio_features import SAMPLING_RATE, audio_features

        values = self._media_values(
            "audio", "audio-features", lambda ref: {"f": audio_features(load_audio(ref, SAMPLING_RATE))}
        )
        dim = next((v["f"].shape[0] for v in values if v is not None), 0)
        return np.stack([v["f"] if v is not None else np.zeros(dim) for v in values])

    def media_matrix(self) -> np.ndarray | None:
        kind = self.media_kind
        if kind in ("image", "video"):
            return self.image_global
        if kind == "audio":
            return self.audio
        return None
