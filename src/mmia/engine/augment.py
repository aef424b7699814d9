"""Seeded media augmentations for the augmentation-enhanced contrastive attack (Ko et al. 2023).

Small, label-preserving changes of the kind contrastive training itself uses; each draw is
seeded from (seed, sample id, augmentation index) with `stable_seed`, so runs are reproducible.
"""

from __future__ import annotations

import numpy as np

from mmia.data.ids import stable_seed


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random resized crop (70-100% of the side), horizontal flip, rotation within ±10°, brightness ±20%."""
    from PIL import Image, ImageEnhance

    h, w = image.shape[:2]
    im = Image.fromarray(image)
    s = rng.uniform(0.7, 1.0)
    cw, ch = max(1, int(w * s)), max(1, int(h * s))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    im = im.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR)
    im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.8, 1.2)))
    return np.asarray(im, dtype=np.uint8)


def augment_audio(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain within ±3 dB, circular time shift up to 10%, white noise at 30 dB SNR."""
    out = wave * (10 ** (rng.uniform(-3, 3) / 20))
    out = np.roll(out, int(rng.integers(-len(out) // 10, len(out) // 10 + 1)))
    power = float(np.mean(out**2)) + 1e-12
    out = out + rng.standard_normal(len(out)) * np.sqrt(power / 1e3)
    return out.astype(np.float32)


def augmentations(media, kind: str, sample_id: str, n: int, seed: int = 0) -> list:
    """`n` augmented copies of one image (uint8 HxWx3) or waveform (float32), seeded per sample."""
    fn = augment_image if kind == "image" else augment_audio
    return [fn(media, np.random.default_rng(stable_seed("aea", seed, sample_id, k))) for k in range(n)]
