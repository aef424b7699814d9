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
    # Runs on a testbed only once its other steps have finished there: it reuses values they
    # compute (cached per sample or text, each depending at ~1e-7 on the batch that computed
    # it), so they must be computed first, by them, for any number of demo jobs to give the
    # same figures (and not twice, side by side).
    after_others: bool = False


# (name, order, "module:function", after_others) of the built-in steps, imported on first use.
# infer reuses the attack step's statistics, the shift step's embeddings and the umid step's
# inversions of the same rows.
BUILTIN_STEPS = (
    ("shift", 10, "mmia.shift.demo_step:shift_demo_step", False),
    ("attack", 20, "mmia.attacks.demo_step:attack_demo_step", False),
    ("infer", 25, "mmia.infer.demo_step:infer_demo_step", True),
    ("fimmia", 30, "mmia.fimmia.demo_step:fimmia_demo_step", False),
    ("umid", 40, "mmia.umid.demo_step:umid_demo_step", False),
)

_STEPS: dict[str, DemoStep] = {}
_loaded = {"done": False}


def register_demo_step(name: str, order: int = 50, after_others: bool = False):
    """Add a step beside the built-in ones (a plug-in, or a test's own step); `after_others`: it
    runs on a testbed after every other step there (it reads values they compute)."""

    def deco(fn):
        _STEPS[name] = DemoStep(name=name, order=order, run=fn, after_others=after_others)
        return fn

    return deco


def list_demo_steps() -> list[DemoStep]:
    if not _loaded["done"]:
        _loaded["done"] = True
        for name, order, where, last in BUILTIN_STEPS:
            module, fn = where.split(":")
            _STEPS.setdefault(name, DemoStep(name=name, order=order, run=getattr(importlib.import_module(module), fn),
                                             after_others=last))
    return sorted(_STEPS.values(), key=lambda s: (s.order, s.name))
