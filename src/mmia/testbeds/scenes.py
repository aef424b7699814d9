"""The `scenes` generator: seeded synthetic images and frame sequences with derived text.

Each scene is a background (plain, gradient, noise, stripes or grid, in a named colour) with one
to a few objects (shape, colour, size, texture, position on a 3x3 grid, sometimes repeated so
counting questions make sense). Captions and question-answer pairs are derived from the scene
with randomised wording, so the text of a scene cannot be written from a template alone.

Every scene comes from its own seed (`stable_seed(seed, stream, index)`), so a stream of scenes
does not depend on how many are drawn: the members of a split are the same scenes whichever
split or count asks for them, and a base model's training pool is a stream of its own.

Splits (`write_scenes_split`):
- `matched`: members and non-members both drawn i.i.d. from the default setting.
- `shifted`: the same members; non-members from a visibly different setting (dark backgrounds,
  a neon palette, larger and more objects), which a blind check should catch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmia.data.ids import short_hash, stable_seed

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
TEXTURES = ("solid", "striped", "dotted", "checkered")
SIZES = {"small": 0.09, "medium": 0.13, "large": 0.18}  # radius as a fraction of the image side
BACKGROUND_KINDS = ("plain", "gradient", "noise", "stripes", "grid")

OBJECT_COLOURS = {
    "red": (210, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (235, 205, 40),
    "purple": (130, 50, 170),
    "orange": (240, 130, 30),
    "pink": (235, 120, 170),
    "cyan": (40, 190, 200),
    "brown": (120, 75, 40),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
}
NEON_COLOURS = {
    "neon green": (60, 255, 80),
    "neon pink": (255, 40, 200),
    "electric blue": (30, 140, 255),
    "neon yellow": (240, 255, 30),
    "neon orange": (255, 110, 0),
    "violet": (180, 60, 255),
}
LIGHT_BACKGROUNDS = {
    "beige": (225, 210, 180),
    "light blue": (190, 215, 240),
    "light grey": (205, 205, 205),
    "pale green": (200, 230, 195),
    "cream": (245, 240, 220),
    "lavender": (220, 210, 240),
    "sand": (215, 195, 150),
    "sky blue": (160, 200, 235),
}
DARK_BACKGROUNDS = {
    "navy": (20, 25, 70),
    "charcoal": (40, 40, 45),
    "dark green": (15, 55, 30),
    "maroon": (70, 15, 25),
    "midnight": (10, 10, 25),
}

GRID = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
DIRECTIONS = {
    "to the right": (1, 0),
    "to the left": (-1, 0),
    "upwards": (0, -1),
    "downwards": (0, 1),
    "diagonally down and to the right": (1, 1),
    "diagonally up and to the left": (-1, -1),
}


@dataclass(frozen=True)
class SceneSettings:
    """One generator setting: which palettes, sizes and object counts scenes draw from."""

    name: str
    object_colours: tuple[str, ...]
    backgrounds: tuple[str, ...]
    sizes: tuple[str, ...]
    min_objects: int
    max_objects: int
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS

    def colour_rgb(self, name: str) -> tuple[int, int, int]:
        return {**OBJECT_COLOURS, **NEON_COLOURS}[name]

    def background_rgb(self, name: str) -> tuple[int, int, int]:
        return {**LIGHT_BACKGROUNDS, **DARK_BACKGROUNDS}[name]


MATCHED = SceneSettings(
    name="default",
    object_colours=tuple(OBJECT_COLOURS),
    backgrounds=tuple(LIGHT_BACKGROUNDS),
    sizes=("small", "medium", "large"),
    min_objects=1,
    max_objects=4,
)
SHIFTED = SceneSettings(
    name="shifted",
    object_colours=tuple(NEON_COLOURS),
    backgrounds=tuple(DARK_BACKGROUNDS),
    sizes=("medium", "large"),
    min_objects=3,
    max_objects=5,
)
SETTINGS = {"default": MATCHED, "shifted": SHIFTED}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    texture: str
    cell: int  # index into GRID
    cx: float  # centre, as a fraction of the image side
    cy: float
    direction: str | None = None  # for frame sequences


@dataclass(frozen=True)
class Scene:
    """A drawn scene: what the image shows, and the seed its pixels and wording derive from."""

    seed: int
    settings: str
    background: str
    background_kind: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    @property
    def n_objects(self) -> int:
        return len(self.objects)


def scene_seed(seed: int, stream: str, index: int) -> int:
    return stable_seed("scenes", seed, stream, index)


def sample_scene(seed: int, settings: SceneSettings = MATCHED, moving: bool = False) -> Scene:
    """Draw one scene's content from its own seed."""
    rng = np.random.default_rng([seed, 1])
    n = int(rng.integers(settings.min_objects, settings.max_objects + 1))
    cells = rng.permutation(len(GRID))[:n]
    objects: list[SceneObject] = []
    for i, cell in enumerate(cells):
        if i > 0 and rng.random() < 0.3:
            # A repeat of an earlier object's shape and colour, so "how many" has answers above one.
            prev = objects[int(rng.integers(0, len(objects)))]
            shape, colour = prev.shape, prev.colour
        else:
            shape = str(rng.choice(SHAPES))
            colour = str(rng.choice(settings.object_colours))
        row, col = divmod(int(cell), 3)
        cx = (col + 0.5) / 3 + rng.uniform(-0.05, 0.05)
        cy = (row + 0.5) / 3 + rng.uniform(-0.05, 0.05)
        objects.append(
            SceneObject(
                shape=shape,
                colour=colour,
                size=str(rng.choice(settings.sizes)),
                texture=str(rng.choice(TEXTURES, p=[0.55, 0.15, 0.15, 0.15])),
                cell=int(cell),
                cx=float(cx),
                cy=float(cy),
                direction=str(rng.choice(list(DIRECTIONS))) if moving else None,
            )
        )
    if moving:
        objects = objects[:2]  # frame sequences keep one or two movers, so motion stays visible
    return Scene(
        seed=seed,
        settings=settings.name,
        background=str(rng.choice(settings.backgrounds)),
        background_kind=str(rng.choice(settings.background_kinds)),
        objects=tuple(objects),
    )


# --- drawing ------------------------------------------------------------------------------------

_SUPER = 2  # draw at 2x and downsample, for smooth edges at 64 pixels


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r * 1.1), (cx + r * 0.8, cy), (cx, cy + r * 1.1), (cx - r * 0.8, cy)]
    if shape == "hexagon":
        a = np.arange(6) * np.pi / 3
        return [(cx + r * np.cos(t), cy + r * np.sin(t)) for t in a]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r * (1.0 if k % 2 == 0 else 0.45)
            t = -np.pi / 2 + k * np.pi / 5
            pts.append((cx + rr * np.cos(t), cy + rr * np.sin(t)))
        return pts
    return None


def _shape_mask(shape: str, cx: float, cy: float, r: float, side: int):
    from PIL import Image, ImageDraw

    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        d.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=0)
    elif shape == "cross":
        w = r * 0.38
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=255)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=255)
    else:
        d.polygon(_shape_polygon(shape, cx, cy, r), fill=255)
    return mask


def _texture(kind: str, side: int, period: int) -> np.ndarray:
    """Boolean (side, side): True where the object's main colour shows."""
    yy, xx = np.mgrid[0:side, 0:side]
    if kind == "striped":
        return ((xx + yy) // (period // 2)) % 2 == 0
    if kind == "dotted":
        px, py = xx % period - period / 2, yy % period - period / 2
        return (px * px + py * py) > (period / 4) ** 2
    if kind == "checkered":
        return ((xx // period) + (yy // period)) % 2 == 0
    return np.ones((side, side), dtype=bool)


def _shade(rgb, factor: float) -> np.ndarray:
    c = np.asarray(rgb, dtype=np.float64)
    return np.clip(c * factor if factor < 1 else c + (255 - c) * (factor - 1), 0, 255)


def _background(scene: Scene, settings: SceneSettings, side: int, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(settings.background_rgb(scene.background), dtype=np.float64)
    base = np.clip(base + rng.uniform(-10, 10, size=3), 0, 255)
    img = np.broadcast_to(base, (side, side, 3)).copy()
    yy, xx = np.mgrid[0:side, 0:side] / side
    kind = scene.background_kind
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        other = _shade(base, 0.7)
        img = base * (1 - t[..., None]) + other * t[..., None]
    elif kind == "noise":
        # Low-frequency noise: a coarse random grid upsampled, plus fine grain.
        from PIL import Image

        coarse = np.clip(rng.normal(128, 40, size=(6, 6)), 0, 255).astype(np.uint8)
        up = np.asarray(Image.fromarray(coarse).resize((side, side), Image.BILINEAR), dtype=np.float64) - 128
        img = img + up[..., None] * 0.35 + rng.normal(0, 5, size=img.shape)
    elif kind == "stripes":
        period = side / rng.integers(4, 9)
        vertical = rng.random() < 0.5
        band = ((xx if vertical else yy) * side // (period / 2)) % 2 == 0
        img[band] = _shade(base, 0.82)
    elif kind == "grid":
        period = max(side // int(rng.integers(4, 8)), 2)
        line = max(side // 64, 1) * _SUPER // 2 or 1
        ix, iy = np.mgrid[0:side, 0:side]
        on = (ix % period < line) | (iy % period < line)
        img[on] = _shade(base, 0.75)
    return np.clip(img, 0, 255)


def _object_positions(obj: SceneObject, n_frames: int, t: int) -> tuple[float, float]:
    if obj.direction is None or n_frames <= 1:
        return obj.cx, obj.cy
    dx, dy = DIRECTIONS[obj.direction]
    # Move across 0.5 of the image over the sequence, centred on the object's cell.
    frac = t / (n_frames - 1) - 0.5
    # Clamped so a mover stays in view (it stops at the edge, as if it reached a wall).
    return (float(np.clip(obj.cx + dx * 0.5 * frac, 0.15, 0.85)), float(np.clip(obj.cy + dy * 0.5 * frac, 0.15, 0.85)))


def render_scene(scene: Scene, image_size: int = 64, n_frames: int = 1) -> list[np.ndarray]:
    """Draw the scene as `n_frames` uint8 RGB arrays (moving objects move between frames)."""
    from PIL import Image

    settings = SETTINGS[scene.settings]
    side = image_size * _SUPER
    rng = np.random.default_rng([scene.seed, 2])
    bg = _background(scene, settings, side, rng)
    colours = [
        np.clip(np.asarray(settings.colour_rgb(o.colour), dtype=np.float64) + rng.uniform(-12, 12, size=3), 0, 255)
        for o in scene.objects
    ]
    periods = [int(side / rng.integers(8, 14)) for _ in scene.objects]
    frames = []
    for t in range(n_frames):
        img = bg.copy()
        for obj, colour, period in zip(scene.objects, colours, periods, strict=True):
            cx, cy = _object_positions(obj, n_frames, t)
            r = SIZES[obj.size] * side
            mask = np.asarray(_shape_mask(obj.shape, cx * side, cy * side, r, side), dtype=np.float64) / 255.0
            pattern = _texture(obj.texture, side, max(period, 4))
            second = _shade(colour, 0.55 if colour.mean() > 90 else 1.6)
            fill = np.where(pattern[..., None], colour, second)
            img = img * (1 - mask[..., None]) + fill * mask[..., None]
        pil = Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))
        frames.append(np.asarray(pil.resize((image_size, image_size), Image.LANCZOS)))
    return frames


# --- wording ------------------------------------------------------------------------------------

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")
_SIZE_WORDS = {
    "small": ("small", "little", "tiny", "small"),
    "medium": ("medium-sized", "mid-sized", "", "moderately sized"),
    "large": ("large", "big", "huge", "large"),
}
_TEXTURE_WORDS = {
    "solid": ("", "plain", "solid", ""),
    "striped": ("striped", "stripy", "striped", "banded"),
    "dotted": ("dotted", "spotted", "polka-dot", "dotted"),
    "checkered": ("checkered", "chequered", "checked", "checkerboard"),
}
_POSITION_PHRASES = {
    "top left": ("in the top left", "at the upper left", "in the top-left corner", "near the upper left corner"),
    "top": ("at the top", "along the top edge", "in the upper middle", "at the top centre"),
    "top right": ("in the top right", "at the upper right", "in the top-right corner", "near the upper right corner"),
    "left": ("on the left", "at the left side", "in the middle of the left edge", "to the left"),
    "centre": ("in the centre", "in the middle", "at the centre", "right in the middle"),
    "right": ("on the right", "at the right side", "in the middle of the right edge", "to the right"),
    "bottom left": ("in the bottom left", "at the lower left", "in the bottom-left corner", "near the lower left"),
    "bottom": ("at the bottom", "along the bottom edge", "in the lower middle", "at the bottom centre"),
    "bottom right": ("in the bottom right", "at the lower right", "in the bottom-right corner", "near the lower right"),
}
_BACKGROUND_PHRASES = {
    "plain": ("a plain {c} background", "a flat {c} backdrop", "a uniform {c} background", "an even {c} ground"),
    "gradient": ("a {c} gradient", "a {c} background that fades", "a shaded {c} backdrop", "a {c} colour gradient"),
    "noise": ("a noisy {c} background", "a mottled {c} backdrop", "a grainy {c} background", "a speckled {c} ground"),
    "stripes": ("a {c} striped background", "a field of {c} stripes", "a backdrop of {c} bands", "a banded {c} ground"),
    "grid": ("a {c} grid", "a {c} background with grid lines", "a {c} lattice backdrop", "a sheet of {c} graph paper"),
}
_CAPTION_OPENINGS = (
    "{objs} {on} {bg}.",
    "A picture of {objs} {on} {bg}.",
    "This image shows {objs} {on} {bg}.",
    "There {be} {objs} {on} {bg}.",
    "{Bg} with {objs}.",
    "We see {objs}; the background is {bg}.",
    "In this scene: {objs}, set {on} {bg}.",
    "The picture contains {objs} {on} {bg}.",
    "Shown here {be} {objs} {on} {bg}.",
    "On {bg} there {be} {objs}.",
)
_ON_WORDS = ("on", "against", "over", "on top of")
_JOINERS = (", ", "; ")
CAPTION_PROMPTS = (
    "Describe the image.",
    "What do you see?",
    "Write a caption for this picture.",
    "Give a short description of the scene.",
    "What is shown here?",
    "Caption this image.",
    "Describe what is in the picture.",
    "Tell me what this image contains.",
)


def _plural(shape: str, n: int) -> str:
    if n == 1:
        return shape
    return shape + ("es" if shape.endswith("x") or shape.endswith("ss") else "s")


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _groups(scene: Scene) -> list[list[SceneObject]]:
    """Objects grouped by (shape, colour), in first-appearance order."""
    groups: dict[tuple[str, str], list[SceneObject]] = {}
    for o in scene.objects:
        groups.setdefault((o.shape, o.colour), []).append(o)
    return list(groups.values())


def _object_phrase(group: list[SceneObject], rng: np.random.Generator) -> str:
    o = group[0]
    n = len(group)
    words = []
    if n == 1:
        size = str(rng.choice(_SIZE_WORDS[o.size]))
        tex = str(rng.choice(_TEXTURE_WORDS[o.texture]))
        words = [w for w in (size, tex, o.colour, o.shape) if w]
        phrase = _article(" ".join(words))
        if o.direction is not None:
            phrase += f" moving {o.direction}"
        else:
            phrase += " " + str(rng.choice(_POSITION_PHRASES[GRID[o.cell]]))
        return phrase
    phrase = f"{_NUMBERS[n]} {o.colour} {_plural(o.shape, n)}"
    if o.direction is not None:
        return phrase + f" moving {o.direction}"
    where = [str(rng.choice(_POSITION_PHRASES[GRID[x.cell]])) for x in group]
    if rng.random() < 0.5:
        return phrase + ", " + ", ".join(where[:-1]) + " and " + where[-1]
    return phrase + " (" + " and ".join(where) + ")"


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption of the scene in one of many wordings."""
    groups = _groups(scene)
    order = rng.permutation(len(groups))
    phrases = [_object_phrase(groups[i], rng) for i in order]
    if len(phrases) == 1:
        objs = phrases[0]
    else:
        joiner = str(rng.choice(_JOINERS))
        objs = joiner.join(phrases[:-1]) + (" and " if rng.random() < 0.7 else joiner + "plus ") + phrases[-1]
    bg = str(rng.choice(_BACKGROUND_PHRASES[scene.background_kind])).format(c=scene.background)
    bg_full = bg
    template = str(rng.choice(_CAPTION_OPENINGS))
    plural = len(scene.objects) > 1
    text = template.format(
        objs=objs,
        on=str(rng.choice(_ON_WORDS)),
        bg=bg_full,
        Bg=bg_full[:1].upper() + bg_full[1:],
        be="are" if plural else "is",
    )
    return text[:1].upper() + text[1:]


def question_answer(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """One question about the scene and its answer, in varied wording."""
    groups = _groups(scene)
    kinds = ["count", "colour", "where", "shape", "background", "howmany"]
    if scene.objects and scene.objects[0].direction is not None:
        kinds = ["motion", "count", "colour", "background"]
    kind = str(rng.choice(kinds))
    o = scene.objects[int(rng.integers(0, len(scene.objects)))]
    pos = GRID[o.cell]
    if kind == "count":
        shape = o.shape
        n = sum(1 for x in scene.objects if x.shape == shape)
        q = str(rng.choice(("How many {s} are there?", "Count the {s}.", "How many {s} can you see?")))
        a = str(rng.choice(("There {be} {n} {s}.", "{N}.", "I count {n} {s}.")))
        s = _plural(shape, 2)
        return q.format(s=s), a.format(n=_NUMBERS[n], N=_NUMBERS[n].capitalize(), s=_plural(shape, n),
                                       be="is" if n == 1 else "are")
    if kind == "howmany":
        n = len(scene.objects)
        q = str(rng.choice(("How many objects are in the picture?", "How many shapes are there in total?")))
        a = str(rng.choice(("There {be} {n} in total.", "{N} shapes.", "I see {n}.")))
        return q, a.format(n=_NUMBERS[n], N=_NUMBERS[n].capitalize(), be="is" if n == 1 else "are")
    if kind == "colour":
        where = o.direction and f"moving {o.direction}" or str(rng.choice(_POSITION_PHRASES[pos]))
        q = str(rng.choice(("What colour is the {s} {w}?", "Which colour does the {s} {w} have?")))
        tex = "" if o.texture == "solid" else f", with a {o.texture} pattern"
        a = str(rng.choice(("It is {c}{t}.", "The {s} is {c}{t}.", "{C}{t}.")))
        return q.format(s=o.shape, w=where), a.format(c=o.colour, C=o.colour.capitalize(), s=o.shape, t=tex)
    if kind == "where":
        q = str(rng.choice(("Where is the {c} {s}?", "In which part of the image is the {c} {s}?")))
        g = next(g for g in groups if g[0].shape == o.shape and g[0].colour == o.colour)
        places = " and ".join(str(rng.choice(_POSITION_PHRASES[GRID[x.cell]])) for x in g)
        a = str(rng.choice(("It is {p}.", "{P}.", "You can find it {p}.")))
        return q.format(c=o.colour, s=_plural(o.shape, 1)), a.format(p=places, P=places[:1].upper() + places[1:])
    if kind == "shape":
        phrase = str(rng.choice(_POSITION_PHRASES[pos]))
        q = str(rng.choice(("What shape is {p}?", "Which shape can be seen {p}?")))
        size = str(rng.choice(_SIZE_WORDS[o.size]))
        a = str(rng.choice(("{A} {c} {s}.", "It is {a} {c} {s}.")))
        desc = " ".join(w for w in (size, o.colour, o.shape) if w)
        art = _article(desc).split(" ", 1)[0]
        return q.format(p=phrase), a.format(A=art.capitalize(), a=art, c=" ".join(w for w in (size, o.colour) if w),
                                            s=o.shape)
    if kind == "motion":
        q = str(rng.choice(("Which way does the {c} {s} move?", "How is the {c} {s} moving?")))
        a = str(rng.choice(("It moves {d}.", "The {s} moves {d}.", "{D}.")))
        d = o.direction or ""
        return q.format(c=o.colour, s=o.shape), a.format(d=d, D=d.capitalize(), s=o.shape)
    bg = str(rng.choice(_BACKGROUND_PHRASES[scene.background_kind])).format(c=scene.background)
    q = str(rng.choice(("What does the background look like?", "Describe the background.")))
    a = str(rng.choice(("It is {b}.", "The background is {b}.", "{B}.")))
    return q, a.format(b=bg, B=bg[:1].upper() + bg[1:])


def scene_text(scene: Scene, caption_share: float = 2 / 3) -> tuple[str, str]:
    """(prompt, answer) for the scene: a caption request most of the time, else a question."""
    rng = np.random.default_rng([scene.seed, 3])
    if rng.random() < caption_share:
        return str(rng.choice(CAPTION_PROMPTS)), caption(scene, rng)
    return question_answer(scene, rng)


# --- streams and splits -------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneRecord:
    """One sample of a stream: its id, scene and text (media written separately)."""

    id: str
    stream: str
    index: int
    scene: Scene
    prompt: str
    answer: str


def scene_stream(seed: int, stream: str, n: int, settings: SceneSettings = MATCHED, video: bool = False,
                 start: int = 0) -> list[SceneRecord]:
    """The first `n` scenes of a named stream (independent of any other stream and of `n`)."""
    out = []
    kind = "video" if video else "image"
    for i in range(start, start + n):
        s = scene_seed(seed, f"{stream}/{kind}", i)
        scene = sample_scene(s, settings, moving=video)
        prompt, answer = scene_text(scene)
        # The id is opaque: a hash, so it says nothing about the stream (membership).
        sid = "sc" + short_hash(f"{seed}/{stream}/{kind}/{i}", 14)
        out.append(SceneRecord(id=sid, stream=stream, index=i, scene=scene, prompt=prompt, answer=answer))
    return out


SPLITS = ("matched", "shifted")
N_FRAMES = 8


def _write_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG", optimize=False, compress_level=6)


def write_media(rec: SceneRecord, media_dir: Path, image_size: int, video: bool, n_frames: int = N_FRAMES) -> str:
    """Write a record's image (or frame folder) under `media_dir`; returns the path relative to its parent."""
    if video:
        folder = media_dir / rec.id
        if not (folder / f"frame_{n_frames - 1:02d}.png").exists():
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(render_scene(rec.scene, image_size, n_frames)):
                _write_png(frame, folder / f"frame_{t:02d}.png")
        return f"{media_dir.name}/{rec.id}"
    path = media_dir / f"{rec.id}.png"
    if not path.exists():
        _write_png(render_scene(rec.scene, image_size, 1)[0], path)
    return f"{media_dir.name}/{rec.id}.png"


def split_records(split: str, *, n_members: int, n_nonmembers: int, seed: int,
                  video: bool = False) -> tuple[list[SceneRecord], list[SceneRecord]]:
    """(members, non-members) of a split. Members are the same scenes for every split."""
    if split not in SPLITS:
        raise ValueError(f"unknown scenes split {split!r}; one of {SPLITS}")
    members = scene_stream(seed, "member", n_members, MATCHED, video)
    if split == "matched":
        nonmembers = scene_stream(seed, "nonmember", n_nonmembers, MATCHED, video)
    else:
        nonmembers = scene_stream(seed, "shifted-nonmember", n_nonmembers, SHIFTED, video)
    return members, nonmembers


def write_scenes_split(
    out_dir: Path,
    split: str,
    *,
    n_members: int,
    n_nonmembers: int,
    seed: int,
    image_size: int = 64,
    video: bool = False,
    n_frames: int = N_FRAMES,
) -> Path:
    """Write one member/non-member split as `<split>.jsonl` (or `<split>_video.jsonl`) plus media.

    Columns: id, image (or video: a folder of frames), prompt, answer, label (1 member, 0 not),
    rows in a seeded shuffled order; media under `out_dir/media_<size>` (`media_video_<size>`, or
    `media_video_<size>_<n>f` for clips of another length than N_FRAMES: the same scenes, their
    motion sampled at `n_frames` steps), paths relative to the JSONL. Returns the JSONL path.
    """
    if image_size < 64:
        raise ValueError("scenes images are at least 64x64")
    if split not in SPLITS:
        raise ValueError(f"unknown scenes split {split!r}; one of {SPLITS}")
    out_dir = Path(out_dir)
    media_dir = out_dir / (f"media_video_{image_size}" if video else f"media_{image_size}")
    if video and n_frames != N_FRAMES:
        media_dir = media_dir.with_name(f"{media_dir.name}_{n_frames}f")
    media_dir.mkdir(parents=True, exist_ok=True)
    members, nonmembers = split_records(split, n_members=n_members, n_nonmembers=n_nonmembers, seed=seed,
                                        video=video)
    labelled = [(r, 1) for r in members] + [(r, 0) for r in nonmembers]
    order = np.random.default_rng(stable_seed("scenes-order", seed, split, video)).permutation(len(labelled))
    rows = []
    for i in order:
        rec, label = labelled[int(i)]
        media = write_media(rec, media_dir, image_size, video, n_frames)
        row = {"id": rec.id, ("video" if video else "image"): media, "prompt": rec.prompt, "answer": rec.answer,
               "label": label}
        rows.append(json.dumps(row, ensure_ascii=False))
    path = out_dir / (f"{split}_video.jsonl" if video else f"{split}.jsonl")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# --- labels for pretraining an image encoder ------------------------------------------------------

ALL_COLOURS = tuple(OBJECT_COLOURS) + tuple(NEON_COLOURS)
ALL_BACKGROUNDS = tuple(LIGHT_BACKGROUNDS) + tuple(DARK_BACKGROUNDS)


def patch_labels(scene: Scene, image_size: int, patch: int) -> dict[str, np.ndarray]:
    """What covers the centre of each patch (row-major): shape, colour and texture ids, 0 for background.

    For training a vision tower on a dense classification task before it serves a language model.
    """
    g = image_size // patch
    centres = (np.arange(g) + 0.5) * patch
    shape = np.zeros((g, g), dtype=np.int64)
    colour = np.zeros((g, g), dtype=np.int64)
    texture = np.zeros((g, g), dtype=np.int64)
    for obj in scene.objects:  # later objects are drawn on top, as in render_scene
        cx, cy = _object_positions(obj, 1, 0)
        r = SIZES[obj.size] * image_size
        mask = np.asarray(_shape_mask(obj.shape, cx * image_size, cy * image_size, r, image_size)) > 127
        hit = mask[np.ix_(centres.astype(int), centres.astype(int))]
        shape[hit] = SHAPES.index(obj.shape) + 1
        colour[hit] = ALL_COLOURS.index(obj.colour) + 1
        texture[hit] = TEXTURES.index(obj.texture) + 1
    return {"shape": shape.ravel(), "colour": colour.ravel(), "texture": texture.ravel()}


def scene_labels(scene: Scene) -> dict[str, int]:
    """Whole-image classes: background colour and kind, number of objects."""
    return {
        "background": ALL_BACKGROUNDS.index(scene.background),
        "background_kind": BACKGROUND_KINDS.index(scene.background_kind),
        "count": scene.n_objects,
    }


def patch_cover_labels(scene: Scene, image_size: int, patch: int, n_frames: int = 1,
                       frame: int = 0, min_cover: float = 0.15) -> dict[str, np.ndarray]:
    """Like `patch_labels`, for frame `frame` of an `n_frames` clip and for patches large next to
    the objects: each patch is labelled with the topmost object covering at least `min_cover` of
    its pixels (0 for background), so a small object between patch centres is not lost."""
    g = image_size // patch
    shape = np.zeros(g * g, dtype=np.int64)
    colour = np.zeros(g * g, dtype=np.int64)
    texture = np.zeros(g * g, dtype=np.int64)
    for obj in scene.objects:  # later objects are drawn on top, as in render_scene
        cx, cy = _object_positions(obj, n_frames, frame)
        r = SIZES[obj.size] * image_size
        mask = np.asarray(_shape_mask(obj.shape, cx * image_size, cy * image_size, r, image_size)) > 127
        cover = mask[: g * patch, : g * patch].reshape(g, patch, g, patch).mean(axis=(1, 3)).ravel()
        hit = cover >= min_cover
        shape[hit] = SHAPES.index(obj.shape) + 1
        colour[hit] = ALL_COLOURS.index(obj.colour) + 1
        texture[hit] = TEXTURES.index(obj.texture) + 1
    return {"shape": shape, "colour": colour, "texture": texture}
