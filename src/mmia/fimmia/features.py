"""FiMMIA features per (sample, neighbour): loss delta, text-embedding delta, media-embedding delta.

One sign everywhere: every delta is NEIGHBOUR minus ORIGINAL. A member sits in a sharp minimum
of the target's loss, so its neighbours' losses rise more: a larger loss delta points to a
member. Normalisation statistics are fit on the attack's training rows only and saved with the
model (`FeatureNormaliser`), so scoring new samples uses exactly the training statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def loss_deltas(original: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(N,) original losses and (N, K) neighbour losses -> (N, K) neighbour - original."""
    original = np.asarray(original, dtype=np.float64)
    neighbours = np.asarray(neighbours, dtype=np.float64)
    if neighbours.ndim != 2 or original.shape != (neighbours.shape[0],):
        raise ValueError(f"shapes {original.shape} and {neighbours.shape} do not match (N,) and (N, K)")
    return neighbours - original[:, None]


def embedding_deltas(original: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(N, D) original and (N, K, D) neighbour embeddings -> (N, K, D) neighbour - original."""
    original = np.asarray(original, dtype=np.float32)
    neighbours = np.asarray(neighbours, dtype=np.float32)
    if neighbours.ndim != 3 or original.shape != (neighbours.shape[0], neighbours.shape[2]):
        raise ValueError(f"shapes {original.shape} and {neighbours.shape} do not match (N, D) and (N, K, D)")
    return neighbours - original[:, None, :]


@dataclass
class FeatureNormaliser:
    """Statistics of the training rows: loss deltas are standardised with their mean and real
    standard deviation (not the variance); embedding deltas are divided by their mean L2 norm,
    so each branch sees inputs of unit scale. Fit on training rows only."""

    loss_mean: float = 0.0
    loss_std: float = 1.0
    text_scale: float = 1.0
    media_scale: float = 1.0
    n_rows: int = 0
    # the original losses' mean and std over the training samples (`fimmia+loss` only); the
    # base's losses are scaled by the same two, so their difference keeps its meaning
    original_mean: float = 0.0
    original_std: float = 1.0

    @staticmethod
    def _scale(deltas: np.ndarray | None) -> float:
        if deltas is None or deltas.size == 0:
            return 1.0
        norms = np.linalg.norm(deltas.reshape(-1, deltas.shape[-1]), axis=1)
        m = float(norms.mean())
        return m if m > 1e-12 else 1.0

    @classmethod
    def fit(cls, loss: np.ndarray, text: np.ndarray | None = None, media: np.ndarray | None = None,
            original: np.ndarray | None = None):
        loss = np.asarray(loss, dtype=np.float64).ravel()
        if loss.size < 2:
            raise ValueError("need at least two training rows to fit the normaliser")
        std = float(loss.std(ddof=1))
        o_mean, o_std = 0.0, 1.0
        if original is not None:
            original = np.asarray(original, dtype=np.float64).ravel()
            o_mean, o_std = float(original.mean()), float(original.std(ddof=1)) if original.size > 1 else 1.0
        return cls(
            loss_mean=float(loss.mean()),
            loss_std=std if std > 1e-12 else 1.0,
            text_scale=cls._scale(text),
            media_scale=cls._scale(media),
            n_rows=int(loss.size),
            original_mean=o_mean,
            original_std=o_std if o_std > 1e-12 else 1.0,
        )

    def loss(self, deltas: np.ndarray) -> np.ndarray:
        return ((np.asarray(deltas, dtype=np.float64) - self.loss_mean) / self.loss_std).astype(np.float32)

    def original(self, losses: np.ndarray) -> np.ndarray:
        return ((np.asarray(losses, dtype=np.float64) - self.original_mean) / self.original_std).astype(np.float32)

    def text(self, deltas: np.ndarray) -> np.ndarray:
        return (np.asarray(deltas, dtype=np.float32) / self.text_scale).astype(np.float32)

    def media(self, deltas: np.ndarray) -> np.ndarray:
        return (np.asarray(deltas, dtype=np.float32) / self.media_scale).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureNormaliser:
        # models saved before `fimmia+loss` existed have no original-loss statistics
        return cls(**{k: d[k] for k in ("loss_mean", "loss_std", "text_scale", "media_scale", "n_rows",
                                        "original_mean", "original_std") if k in d})


@dataclass
class FeatureSet:
    """Raw (unnormalised) deltas of N samples x K neighbours, with ids and optional labels."""

    ids: list[str]
    loss: np.ndarray  # (N, K)
    text: np.ndarray | None = None  # (N, K, Dt)
    media: np.ndarray | None = None  # (N, K, Dm)
    labels: np.ndarray | None = None  # (N,) 1 = member
    original_loss: np.ndarray | None = None  # (N,) the target's loss on each original sample
    base_loss: np.ndarray | None = None  # (N,) the base model's loss on it (two-model protocol)

    def __post_init__(self):
        n, k = self.loss.shape
        if len(self.ids) != n:
            raise ValueError("ids and loss rows differ")
        for name in ("text", "media"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[:2] != (n, k):
                raise ValueError(f"{name} deltas have shape {arr.shape}, expected ({n}, {k}, D)")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx) -> FeatureSet:
        idx = np.asarray(idx, dtype=np.int64)
        return FeatureSet(
            ids=[self.ids[i] for i in idx],
            loss=self.loss[idx],
            text=None if self.text is None else self.text[idx],
            media=None if self.media is None else self.media[idx],
            labels=None if self.labels is None else self.labels[idx],
            original_loss=None if self.original_loss is None else self.original_loss[idx],
            base_loss=None if self.base_loss is None else self.base_loss[idx],
        )

    @staticmethod
    def concat(parts: list[FeatureSet]) -> FeatureSet:
        def cat(name):
            arrs = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrs) else np.concatenate(arrs)

        return FeatureSet(
            ids=[i for p in parts for i in p.ids],
            loss=np.concatenate([p.loss for p in parts]),
            text=cat("text"),
            media=cat("media"),
            labels=cat("labels"),
            original_loss=cat("original_loss"),
            base_loss=cat("base_loss"),
        )


def build_features(
    ids,
    original_loss,
    neighbour_loss,
    original_text_emb=None,
    neighbour_text_emb=None,
    original_media_emb=None,
    neighbour_media_emb=None,
    labels=None,
) -> FeatureSet:
    text = None
    if original_text_emb is not None:
        text = embedding_deltas(original_text_emb, neighbour_text_emb)
    media = None
    if original_media_emb is not None:
        media = embedding_deltas(original_media_emb, neighbour_media_emb)
    return FeatureSet(
        ids=list(ids),
        loss=loss_deltas(original_loss, neighbour_loss),
        text=text,
        media=media,
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        original_loss=np.asarray(original_loss, dtype=np.float64),
    )
