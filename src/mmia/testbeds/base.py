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


# --- testbed registry ---------------------------------------------------------------------------
# Each testbed module registers a builder: fn(out_dir: Path, *, seed: int, quick: bool) -> Testbed,
# which writes data, models and manifest.json into out_dir. `mmia testbed NAME` and `mmia demo`
# find builders here; modules that register are listed in TESTBED_MODULES.

TESTBED_MODULES: list[str] = [
    "mmia.testbeds.scenes_testbed",
    "mmia.testbeds.vlm",
    "mmia.testbeds.vlm_video",
    "mmia.testbeds.audio_captions",
    "mmia.testbeds.clip_identities",
    "mmia.testbeds.clap_voices",
]


@dataclass(frozen=True)
class TestbedSpec:
    name: str
    summary: str
    build: object  # Callable[[Path], Testbed] with keyword-only seed and quick
    in_demo: bool = True
    version: str = "1"  # part of the cache key: bump when the builder's output changes
    cost: float = 1.0  # rough build CPU seconds; the demo starts the costliest builds first


_TESTBEDS: dict[str, TestbedSpec] = {}


def register_testbed(name: str, *, summary: str, in_demo: bool = True, version: str = "1", cost: float = 1.0):
    def deco(fn):
        _TESTBEDS[name] = TestbedSpec(name=name, summary=summary, build=fn, in_demo=in_demo, version=version,
                                      cost=cost)
        return fn

    return deco


def list_testbeds() -> list[TestbedSpec]:
    import importlib

    for mod in TESTBED_MODULES:
        importlib.import_module(mod)
    return [_TESTBEDS[k] for k in sorted(_TESTBEDS)]
