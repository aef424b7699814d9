"""Video neighbours: frame drops, and image changes applied to some of the frames."""

from __future__ import annotations

import numpy as np

from mmia.perturb.image import IMAGE_TECHNIQUES, perturb_image

VIDEO_TECHNIQUES = ("drop", "frames")


def drop_frames(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drop 1 to max(1, 25%) of the frames (never all; a one-frame clip is returned unchanged)."""
    t = len(frames)
    if t < 2:
        return frames.copy()
    n = int(rng.integers(1, max(1, t // 4) + 1))
    drop = set(rng.choice(t, size=min(n, t - 1), replace=False).tolist())
    return np.stack([f for i, f in enumerate(frames) if i not in drop])


def change_frames(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One image technique (drawn per neighbour) applied to 20-50% of the frames, at least one."""
    t = len(frames)
    tech = IMAGE_TECHNIQUES[int(rng.integers(len(IMAGE_TECHNIQUES)))]
    k = max(1, int(round(t * float(rng.uniform(0.2, 0.5)))))
    chosen = set(rng.choice(t, size=min(k, t), replace=False).tolist())
    out = frames.copy()
    for i in sorted(chosen):
        out[i] = perturb_image(frames[i], tech, rng)
    return out


def perturb_video(frames: np.ndarray, technique: str, rng: np.random.Generator) -> np.ndarray:
    if technique == "drop":
        return drop_frames(frames, rng)
    if technique == "frames":
        return change_frames(frames, rng)
    raise ValueError(f"unknown video technique {technique!r}; one of {VIDEO_TECHNIQUES}")
