"""Per-query membership signals from the R inverted embeddings (pure numpy).

Each signal has a hypothesised direction (+1: larger means "member", -1: smaller means
"member"), fixed before any data is seen: members invert more easily (higher similarity,
faster) and more consistently (lower dispersion). The report shows how each actually points.
"""

from __future__ import annotations

import numpy as np

# name -> (direction, what it measures)
SIGNALS: dict[str, tuple[int, str]] = {
    "similarity": (+1, "mean over restarts of the final cosine to the query embedding"),
    "variability": (-1, "mean distance of the R final embeddings from their mean (dispersion)"),
    "early_similarity": (+1, "mean cosine after about a third of the steps (ease of inversion)"),
    "best_similarity": (+1, "highest final cosine over restarts"),
    "centroid_alignment": (+1, "cosine between the normalised mean inverted embedding and the query"),
    "specificity": (+1, "final cosine to the query minus mean cosine to fixed anchor texts (pseudo-words)"),
}
SIGNAL_NAMES = tuple(SIGNALS)


def compute_signals(
    z: np.ndarray, cos: np.ndarray, traj: np.ndarray, text_emb: np.ndarray, anchors: np.ndarray
) -> np.ndarray:
    """(Q, len(SIGNALS)) matrix from z (Q, R, d), cos (Q, R), traj (Q, R, C), text_emb (Q, d).

    `anchors` (m, d): normalised embeddings of fixed texts that are no query (a seeded list of
    pseudo-words); an inversion that matches its query but not these is specific to the query.
    """
    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(1)
    dispersion = np.linalg.norm(z - mean[:, None], axis=-1).mean(1)
    centre = mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)
    early = traj[:, :, 1] if traj.shape[2] > 1 else traj[:, :, 0]
    cols = {
        "similarity": cos.mean(1),
        "variability": dispersion,
        "early_similarity": early.mean(1),
        "best_similarity": cos.max(1),
        "centroid_alignment": (centre * np.asarray(text_emb, dtype=np.float64)).sum(-1),
        "specificity": (cos - (z @ np.asarray(anchors, dtype=np.float64).T).mean(-1)).mean(1),
    }
    return np.stack([cols[k] for k in SIGNAL_NAMES], axis=1)


def oriented(x: np.ndarray, names=SIGNAL_NAMES) -> np.ndarray:
    """Signals flipped so that larger always means "member" under the hypothesis."""
    return np.asarray(x, dtype=np.float64) * np.array([SIGNALS[n][0] for n in names], dtype=np.float64)
