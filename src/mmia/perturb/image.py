"""Image neighbours: small affine changes, brightness/colour, noise, blur, JPEG re-encoding.

Each function maps a uint8 RGB array (H, W, 3) to a new one of the same shape; magnitudes are
small on purpose (a neighbour must stay the "same" image), drawn from the caller's Generator.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

IMAGE_TECHNIQUES = ("affine", "colour", "noise", "blur", "jpeg")


def affine(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation up to 8 degrees, translation up to 4% of the side, shear up to 0.08, edge fill."""
    h, w = img.shape[:2]
    angle = float(rng.uniform(-8, 8))
    tx, ty = (float(v) for v in rng.uniform(-0.04, 0.04, size=2) * (w, h))
    shear = float(rng.uniform(-0.08, 0.08))
    im = Image.fromarray(img)
    im = im.rotate(angle, resample=Image.BILINEAR, translate=(tx, ty), fillcolor=tuple(int(c) for c in img[0, 0]))
    # Inverse map x' = x + shear*y (about the centre), so the picture stays centred.
    im = im.transform((w, h), Image.AFFINE, (1, shear, -shear * h / 2, 0, 1, 0), resample=Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).copy()


def colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor in [0.8, 1.2]."""
    im = Image.fromarray(img)
    for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enh(im).enhance(float(rng.uniform(0.8, 1.2)))
    return np.asarray(im, dtype=np.uint8).copy()


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, sigma in [3, 10] grey levels."""
    sigma = float(rng.uniform(3, 10))
    out = img.astype(np.float32) + rng.normal(0, sigma, size=img.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, radius in [0.4, 1.2] pixels."""
    radius = float(rng.uniform(0.4, 1.2))
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint8).copy()


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round trip through JPEG at quality 30-70."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(30, 71)))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


_FUNCS = {"affine": affine, "colour": colour, "noise": noise, "blur": blur, "jpeg": jpeg}


def perturb_image(img: np.ndarray, technique: str, rng: np.random.Generator) -> np.ndarray:
    try:
        fn = _FUNCS[technique]
    except KeyError:
        raise ValueError(f"unknown image technique {technique!r}; one of {IMAGE_TECHNIQUES}") from None
    return fn(np.ascontiguousarray(img, dtype=np.uint8), rng)
