"""The demo's steps: each method family's step lives beside the family (its `demo_step` module);
the demo lists them here, so no family imports the demo.

A step is a function (testbed: Testbed, ctx: DemoContext) -> list[SectionScores], returning []
when the testbed is not one it applies to. Steps run in `order`; they read a testbed's splits by
role (`Testbed.split_for`), never by the testbed's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoContext:
    """What a demo step gets besides the testbed: where to write, the value cache, the seed."""

    out_dir: Path
    cache_dir: Path
    seed: int = 0
    quick: bool = False  # miniature settings (tests)


@dataclass(frozen=True)
class DemoStep:
    name: str
    order: int
    run: Callable


# (name, order, "module:function") of the built-in steps, imported on first use.
BUILTIN_STEPS = (
    ("shift", 10, "mmia.shift.demo_step:shift_demo_step"),
    ("attack", 20, "mmia.attacks.demo_step:attack_demo_step"),
    ("infer", 25, "mmia.infer.demo_step:infer_demo_step"),
    ("fimmia", 30, "mmia.fimmia.demo_step:fimmia_demo_step"),
    ("umid", 40, "mmia.umid.demo_step:umid_demo_step"),
)

_STEPS: dict[str, DemoStep] = {}
_loaded = {"done": False}


def register_demo_step(name: str, order: int = 50):
    """Add a step beside the built-in ones (a plug-in, or a test's own step)."""

    def deco(fn):
        _STEPS[name] = DemoStep(name=name, order=order, run=fn)
        return fn

    return deco


def list_demo_steps() -> list[DemoStep]:
    if not _loaded["done"]:
        _loaded["done"] = True
        for name, order, where in BUILTIN_STEPS:
            module, fn = where.split(":")
            _STEPS.setdefault(name, DemoStep(name=name, order=order, run=getattr(importlib.import_module(module), fn)))
    return sorted(_STEPS.values(), key=lambda s: (s.order, s.name))
