"""Hand-made image features for the blind checks (FiMMIA's multimodal extension of Blind-MIA).

Pure functions of one decoded RGB image (uint8, H x W x 3): colour histograms, low-frequency DCT
coefficients, local binary pattern histograms, and dense DAISY keypoint descriptors for a bag of
visual words. Nothing here is fitted; the visual vocabulary (k-means) is the `BagOfVisualWords`
transformer, fit inside each fold.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

WORK_SIZE = 128  # images are resized to this square before the texture features


def _gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    return (0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]) / 255.0


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size), Image.BILINEAR))


def colour_histogram(img: np.ndarray, bins: int = 16) -> np.ndarray:
    """Normalised per-channel histograms in RGB and HSV: 6 * bins values, each block summing to 1."""
    from skimage.color import rgb2hsv

    img = np.asarray(img, dtype=np.uint8)
    rgb = img.reshape(-1, 3).astype(np.float64) / 255.0
    hsv = rgb2hsv(img).reshape(-1, 3)
    blocks = []
    for chans in (rgb, hsv):
        for c in range(3):
            h, _ = np.histogram(chans[:, c], bins=bins, range=(0.0, 1.0))
            blocks.append(h / max(1, h.sum()))
    return np.concatenate(blocks)


def dct_features(img: np.ndarray, size: int = 32, keep: int = 8) -> np.ndarray:
    """log(1 + |c|) of the keep x keep lowest-frequency 2-D DCT coefficients of the grey image."""
    from scipy.fft import dctn

    g = _gray(_resize(img, size))
    c = dctn(g, norm="ortho")[:keep, :keep]
    return np.log1p(np.abs(c)).ravel()


def lbp_histogram(img: np.ndarray, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Histogram of rotation-invariant uniform local binary patterns (points + 2 bins, sums to 1)."""
    from skimage.feature import local_binary_pattern

    g = (_gray(_resize(img, WORK_SIZE)) * 255).astype(np.uint8)
    codes = local_binary_pattern(g, points, radius, method="uniform")
    h, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
    return h / max(1, h.sum())


def keypoint_descriptors(img: np.ndarray, size: int = 64, step: int = 8, radius: int = 8) -> np.ndarray:
    """Dense DAISY descriptors (n, d) of the grey image resized to size x size."""
    from skimage.feature import daisy

    g = _gray(_resize(img, size))
    d = daisy(g, step=step, radius=radius, rings=2, histograms=6, orientations=8)
    return d.reshape(-1, d.shape[-1]).astype(np.float32)


def global_image_features(img: np.ndarray) -> np.ndarray:
    """Colour histograms, DCT and two LBP scales, concatenated (the `image_stats` feature vector)."""
    return np.concatenate([
        colour_histogram(img),
        dct_features(img),
        lbp_histogram(img, 8, 1.0),
        lbp_histogram(img, 16, 2.0),
    ])


FEATURE_BLOCKS = {
    # name -> (start, stop) in global_image_features' vector
    "colour_histogram": (0, 96),
    "dct": (96, 160),
    "lbp": (160, 160 + 10 + 18),
}


class BagOfVisualWords(TransformerMixin, BaseEstimator):
    """Per-sample descriptor sets -> normalised histograms over a k-means visual vocabulary.

    `fit` learns the vocabulary from the training samples' descriptors only (a seeded
    MiniBatchKMeans on at most `max_descriptors` of them), so it belongs inside the fold.
    """

    def __init__(self, n_words: int = 64, max_descriptors: int = 20000, seed: int = 0):
        self.n_words = n_words
        self.max_descriptors = max_descriptors
        self.seed = seed

    def fit(self, X, y=None):
        from sklearn.cluster import MiniBatchKMeans

        D = np.concatenate([np.asarray(d) for d in X if len(d)])
        rng = np.random.default_rng(self.seed)
        if len(D) > self.max_descriptors:
            D = D[rng.choice(len(D), self.max_descriptors, replace=False)]
        k = max(2, min(self.n_words, len(D) // 4))
        self.kmeans_ = MiniBatchKMeans(n_clusters=k, random_state=self.seed, n_init=3, batch_size=2048).fit(D)
        return self

    def transform(self, X):
        k = self.kmeans_.n_clusters
        out = np.zeros((len(X), k))
        for i, d in enumerate(X):
            if len(d):
                words = self.kmeans_.predict(np.asarray(d, dtype=self.kmeans_.cluster_centers_.dtype))
                out[i] = np.bincount(words, minlength=k) / len(words)
        return out
