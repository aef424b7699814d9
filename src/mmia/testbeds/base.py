"""The handle every testbed returns: where its data and models are, and what it is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Testbed:
    """A built testbed with known membership.

    `splits` maps a split name ("matched", "shifted", ...) to a data file in the contract's
    format (labels included); `targets` maps a role ("target", "base", ...) to a Hugging Face
    model directory; `manifest` is the parsed manifest.json (seeds, sizes, member ids, the
    build-time member signal).
    """

    name: str
    root: Path
    target_kind: str | None  # "vlm", "clip", "clap", "audio-lm", or None for data-only testbeds
    modalities: tuple[str, ...]
    splits: dict[str, Path] = field(default_factory=dict)
    targets: dict[str, Path] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @classmethod
    def from_dir(cls, root: str | Path) -> Testbed:
        root = Path(root)
        m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        return cls(
            name=m["name"],
            root=root,
            target_kind=m.get("target_kind"),
            modalities=tuple(m.get("modalities", ())),
            splits={k: root / v for k, v in m.get("splits", {}).items()},
            targets={k: root / v for k, v in m.get("targets", {}).items()},
            manifest=m,
        )


@dataclass
class DemoContext:
    """What a demo step gets besides the testbed: where to write, the value cache, the seed."""

    out_dir: Path
    cache_dir: Path
    seed: int = 0
    quick: bool = False  # miniature settings (tests)
