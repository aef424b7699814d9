"""The one registry of membership-inference methods.

Every method (score-based attack, blind shift check, FiMMIA, UMID, ...) registers here with a
name, a typed pydantic config, what it needs and the paper it implements; the CLI, the demo and
the report read this registry instead of keeping lists of their own.

What `run` is depends on the family, and only that family's command calls it:
- "score" and "contrastive": run(record, config) -> {column suffix: score} for one sample's
  `SampleRecord`, which holds the views the method declares (`views`: the target's token
  statistics, the lowercased text's, a reference model's, or embeddings; `mmia.attacks.views`);
- "blind": the shift check's feature/classifier factory (mmia shift);
- "neural" and "text-only": the method's own entry point (mmia fimmia, mmia umid).

Modules that register built-in methods are listed in `BUILTIN_MODULES` and imported on first
use of the registry, so importing `mmia` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from mmia.attacks.views import VIEWS

FAMILIES = ("score", "contrastive", "blind", "neural", "text-only")
# The views (`mmia.attacks.views.VIEWS`) a method reads unless it declares its own; the families
# `mmia attack` does not run read none.
FAMILY_VIEWS: dict[str, tuple[str, ...]] = {"score": ("stats",), "contrastive": ("embeddings",)}
TARGET_KINDS = ("causal-lm", "vlm", "audio-lm", "clip", "clap")

# Later issues append the modules that register their methods.
BUILTIN_MODULES: list[str] = [
    "mmia.attacks.score_attacks",
    "mmia.attacks.contrastive_attacks",
    "mmia.fimmia.register",
    "mmia.shift.methods",
    "mmia.umid.methods",
]


class NoConfig(BaseModel):
    """For methods without settings."""


@dataclass(frozen=True)
class AttackSpec:
    name: str
    family: str
    config: type[BaseModel]
    paper: str
    summary: str
    run: Callable
    target_kinds: tuple[str, ...] = ()  # empty: needs no model (blind checks)
    modalities: tuple[str, ...] = ()  # the sample must have at least one of these; empty: any
    needs_labels: bool = False  # trains or calibrates on labelled samples
    higher_is_member: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)
    views: tuple[str, ...] = ()  # the engine streams its record holds (`mmia.attacks.views`)

    @property
    def needs_reference(self) -> bool:
        """Needs a second (reference) model: it reads the reference model's view."""
        return "reference" in self.views

    def applies_to(self, target_kind: str | None = None, modalities=None) -> bool:
        if target_kind is not None and self.target_kinds and target_kind not in self.target_kinds:
            return False
        if target_kind is None and self.target_kinds:
            return False
        if modalities is not None and self.modalities and not set(self.modalities) & set(modalities):
            return False
        return True

    def make_config(self, **values) -> BaseModel:
        return self.config(**values)


_REGISTRY: dict[str, AttackSpec] = {}
_loaded = {"done": False}


def register_attack(
    name: str,
    *,
    family: str,
    paper: str,
    config: type[BaseModel] = NoConfig,
    target_kinds: tuple[str, ...] = (),
    modalities: tuple[str, ...] = (),
    needs_labels: bool = False,
    higher_is_member: bool = True,
    tags: tuple[str, ...] = (),
    views: tuple[str, ...] | None = None,
):
    """Decorator registering a method's entry point under `name`.

    The decorated object's docstring is its summary and must name the paper; `paper` is the
    citation shown in the report (authors, title, venue or arXiv id). `views`: the views its
    record must hold (`mmia.attacks.views.VIEWS`; None: its family's, `FAMILY_VIEWS`).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    unknown = set(target_kinds) - set(TARGET_KINDS)
    if unknown:
        raise ValueError(f"unknown target kind(s) {sorted(unknown)}; one of {TARGET_KINDS}")
    if not paper.strip():
        raise ValueError(f"method {name!r} must name the paper it implements")
    views = FAMILY_VIEWS.get(family, ()) if views is None else tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or len(set(views)) != len(views):
        raise ValueError(f"method {name!r}: views {views} must be distinct names from {tuple(VIEWS)}")
    if family in FAMILY_VIEWS and not views:
        raise ValueError(f"method {name!r} reads no view: a {family} method needs one of {tuple(VIEWS)}")

    def deco(obj):
        doc = (obj.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"method {name!r} needs a docstring naming its paper")
        if name in _REGISTRY and _REGISTRY[name].run is not obj:
            raise ValueError(f"method name {name!r} is registered twice")
        _REGISTRY[name] = AttackSpec(
            name=name,
            family=family,
            config=config,
            paper=paper,
            summary=doc.splitlines()[0],
            run=obj,
            target_kinds=tuple(target_kinds),
            modalities=tuple(modalities),
            needs_labels=needs_labels,
            higher_is_member=higher_is_member,
            tags=tuple(tags),
            views=views,
        )
        return obj

    return deco


def _ensure_loaded() -> None:
    if not _loaded["done"]:
        _loaded["done"] = True
        for mod in BUILTIN_MODULES:
            importlib.import_module(mod)


def get_attack(name: str) -> AttackSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none registered"
        raise KeyError(f"unknown method {name!r} (known: {known})") from None


def find_attack(name: str) -> AttackSpec | None:
    _ensure_loaded()
    return _REGISTRY.get(name)


def list_attacks(family: str | None = None, target_kind: str | None = None, modalities=None) -> list[AttackSpec]:
    """Registered methods, optionally those of one family that apply to a target and modalities."""
    _ensure_loaded()
    specs = [s for s in _REGISTRY.values() if family is None or s.family == family]
    if target_kind is not None or modalities is not None:
        specs = [s for s in specs if s.applies_to(target_kind, modalities)]
    return sorted(specs, key=lambda s: (FAMILIES.index(s.family), s.name))
