"""Parametric face drawings: one consistent appearance per synthetic identity, varied per image.

An identity is a handful of appearance parameters (skin, hair and eye colours, face shape,
hair style, glasses, hat, shirt); each image of it redraws those with a fresh background, a
small shift and scale, lighting and noise, so a model must learn the person, not one picture.
Pure numpy (no drawing library), anti-aliased with smooth edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SKIN = np.array(
    [[0.98, 0.87, 0.77], [0.94, 0.76, 0.62], [0.82, 0.62, 0.46], [0.65, 0.45, 0.30], [0.45, 0.30, 0.20],
     [0.30, 0.20, 0.13]]
)
HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.30, 0.18, 0.08], [0.55, 0.35, 0.15], [0.85, 0.70, 0.35], [0.70, 0.25, 0.10],
     [0.75, 0.75, 0.75], [0.95, 0.95, 0.90], [0.20, 0.30, 0.70]]
)


@dataclass(frozen=True)
class Appearance:
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    eyes: tuple[float, float, float]
    shirt: tuple[float, float, float]
    face_w: float  # half-width of the face ellipse (fraction of the image)
    face_h: float
    hair_style: int  # 0 bald, 1 short, 2 long, 3 tall
    eye_gap: float
    mouth_w: float
    glasses: bool
    hat: tuple[float, float, float] | None

    def to_dict(self) -> dict:
        return asdict(self)


def random_appearance(rng: np.random.Generator) -> Appearance:
    def jitter(base, s=0.06):
        return tuple(float(v) for v in np.clip(base + rng.normal(0, s, 3), 0, 1))

    return Appearance(
        skin=jitter(SKIN[rng.integers(len(SKIN))], 0.04),
        hair=jitter(HAIR[rng.integers(len(HAIR))]),
        eyes=tuple(float(v) for v in rng.uniform(0, 0.8, 3)),
        shirt=tuple(float(v) for v in rng.uniform(0, 1, 3)),
        face_w=float(rng.uniform(0.20, 0.30)),
        face_h=float(rng.uniform(0.26, 0.36)),
        hair_style=int(rng.integers(4)),
        eye_gap=float(rng.uniform(0.08, 0.14)),
        mouth_w=float(rng.uniform(0.05, 0.13)),
        glasses=bool(rng.random() < 0.3),
        hat=tuple(float(v) for v in rng.uniform(0, 1, 3)) if rng.random() < 0.25 else None,
    )


def _soft(d: np.ndarray, px: float) -> np.ndarray:
    """Coverage of a shape from a signed distance-like field (<0 inside), one pixel wide edge."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def draw_face(app: Appearance, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One image (size x size x 3, uint8) of the identity with per-image variation."""
    px = 1.0 / size
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size + px / 2
    cx = 0.5 + rng.normal(0, 0.03)
    cy = 0.48 + rng.normal(0, 0.03)
    s = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    fw, fh = app.face_w * s, app.face_h * s

    bg = rng.uniform(0, 1, 3)
    img = np.broadcast_to(bg, (size, size, 3)).copy()
    # A second background tone as a gradient, so backgrounds are not flat.
    img = img * (1 - 0.3 * y[..., None]) + 0.3 * y[..., None] * rng.uniform(0, 1, 3)

    def paint(mask, colour):
        nonlocal img
        img = img * (1 - mask[..., None]) + mask[..., None] * np.asarray(colour)

    # Shoulders / shirt.
    shoulders = ((x - cx) / (0.45 * s)) ** 2 + ((y - (cy + 0.62 * s)) / (0.32 * s)) ** 2 - 1
    paint(_soft(shoulders * 0.2, px), app.shirt)
    # Long hair behind the face.
    if app.hair_style == 2:
        back = ((x - cx) / (fw * 1.35)) ** 2 + ((y - cy - 0.05 * s) / (fh * 1.25)) ** 2 - 1
        paint(_soft(back * 0.15, px), app.hair)
    face = ((x - cx) / fw) ** 2 + ((y - cy) / fh) ** 2 - 1
    paint(_soft(face * 0.15, px), app.skin)
    if app.hair_style in (1, 2, 3):
        top = cy - fh * (0.55 if app.hair_style != 3 else 0.35)
        hair_h = fh * (0.6 if app.hair_style != 3 else 0.95)
        cap = ((x - cx) / (fw * 1.08)) ** 2 + ((y - top) / hair_h) ** 2 - 1
        cap = np.maximum(cap, (y - (cy - fh * 0.35)) / 0.2)
        paint(_soft(cap * 0.15, px), app.hair)
    if app.hat is not None:
        brim = np.maximum(np.abs(x - cx) - fw * 1.3, np.abs(y - (cy - fh * 0.85)) - 0.025)
        crown = np.maximum(np.abs(x - cx) - fw * 0.8, np.abs(y - (cy - fh * 1.15)) - 0.1 * s)
        paint(_soft(np.minimum(brim, crown), px), app.hat)
    ey = cy - fh * 0.15
    for side in (-1, 1):
        ex = cx + side * app.eye_gap * s
        eye = np.hypot(x - ex, y - ey) - 0.035 * s
        paint(_soft(eye, px), (0.95, 0.95, 0.95))
        paint(_soft(np.hypot(x - ex, y - ey) - 0.018 * s, px), app.eyes)
        if app.glasses:
            ring = np.abs(np.hypot(x - ex, y - ey) - 0.055 * s) - 0.012
            paint(_soft(ring, px), (0.05, 0.05, 0.05))
    smile = rng.uniform(-0.02, 0.03)
    my = cy + fh * 0.5 + smile * ((x - cx) / max(app.mouth_w * s, 1e-3)) ** 2
    mouth = np.maximum(np.abs(x - cx) - app.mouth_w * s, np.abs(y - my) - 0.015)
    paint(_soft(mouth, px), (0.55, 0.1, 0.12))

    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


SHAPES = ("circle", "square", "stripe", "ring", "cross")
COLOURS = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.75, 0.2), "blue": (0.15, 0.25, 0.9), "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.2, 0.7), "orange": (1.0, 0.55, 0.05), "white": (0.97, 0.97, 0.97), "black": (0.05, 0.05, 0.05),
}


def draw_generic(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, str]:
    """A non-person image (a coloured shape on a background) and its caption."""
    px = 1.0 / size
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size + px / 2
    names = list(COLOURS)
    fg, bgn = rng.choice(len(names), 2, replace=False)
    shape = SHAPES[rng.integers(len(SHAPES))]
    img = np.broadcast_to(np.asarray(COLOURS[names[bgn]]), (size, size, 3)).copy()
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
    if shape == "circle":
        d = np.hypot(x - cx, y - cy) - r
    elif shape == "square":
        d = np.maximum(np.abs(x - cx), np.abs(y - cy)) - r
    elif shape == "stripe":
        d = np.abs(y - cy) - r / 3
    elif shape == "ring":
        d = np.abs(np.hypot(x - cx, y - cy) - r) - r / 4
    else:
        d = np.minimum(np.maximum(np.abs(x - cx) - r, np.abs(y - cy) - r / 4),
                       np.maximum(np.abs(y - cy) - r, np.abs(x - cx) - r / 4))
    m = _soft(d, px)[..., None]
    img = img * (1 - m) + m * np.asarray(COLOURS[names[fg]])
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, img.shape)
    caption = f"a {names[fg]} {shape} on a {names[bgn]} background"
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), caption
