"""Membership features of names (text-only rows) on a contrastive target: UMID's signals.

A CLIP/CLAP model scores a row with media by CSA/AEA; a row that is only a name (the auditor
holds no face or voice) has no such score. UMID (`mmia umid`, arXiv 2603.14222) measures, from
the text alone, how easily and how consistently the name inverts into the other modality. Its
per-query signals, oriented as UMID orients them (larger = member under its hypothesis), are
the feature columns `umid:<signal>`; the split test then learns how to weigh them, so UMID's
gibberish reference and detectors are not needed here. Inversions share `mmia umid`'s cache:
the same settings, seed and texts cost nothing the second time.
"""

from __future__ import annotations

import time

import numpy as np

from mmia.data.schema import MEDIA_FIELDS

CONTRASTIVE = ("clip", "clap")  # SigLIP loads as the clip kind
PREFIX = "umid:"


def applies(target_kind: str, *sets) -> bool:
    """Names on a contrastive target: no row of any set has media."""
    return target_kind in CONTRASTIVE and not any(m in ds.modalities for ds in sets for m in MEDIA_FIELDS)


def inversion_target(target):
    """The target as UMID inverts it: on the CPU in float32 with its weights frozen (the inversion's
    restarts and optimiser state live there). A target already so is frozen in place (infer only
    reads it); another (a GPU or half-precision load) is loaded again as UMID loads it."""
    import torch

    if str(target.device) == "cpu" and target.dtype in (torch.float32, "float32", None):
        return target.freeze()
    from mmia.umid.target import load_contrastive

    peft = getattr(target, "peft", None)
    return load_contrastive(target.path, base=peft.base if peft else None)


def umid_columns(ds, target, config, cache=None, side: str = "") -> tuple[dict[str, np.ndarray], float]:
    """{`umid:<signal>`: oriented values per row} of a loaded set of names, and the seconds taken."""
    from mmia.errors import InputError
    from mmia.umid.audit import DEFAULT_TEMPLATES, run_inversions
    from mmia.umid.signals import SIGNAL_NAMES, oriented

    empty = next((s for s in ds if not (s.text or "").strip()), None)
    if empty is not None:
        raise InputError("a row of names needs a non-empty 'text' (the name) for UMID's signals", ds.path,
                         row=empty.row)
    t0 = time.perf_counter()
    texts = [s.text.strip() for s in ds]  # as `mmia umid` reads its queries, so the cache is shared
    template = config.template or DEFAULT_TEMPLATES[target.kind]
    signals = run_inversions(target, texts, template, config.settings(), config.seed, cache=cache,
                             batch_size=config.batch_size, description=f"umid: {side} names").signals
    ori = oriented(signals)
    return {f"{PREFIX}{n}": ori[:, j] for j, n in enumerate(SIGNAL_NAMES)}, time.perf_counter() - t0


def score_names(ds, target, config, cache=None, side: str = ""):
    """UMID's columns of one set as the attack runner's `Scored` (what infer and its outputs read)."""
    from mmia.attacks.runner import Scored

    columns, seconds = umid_columns(ds, target, config, cache=cache, side=side)
    return Scored(ids=[s.id for s in ds], labels=None, columns=columns,
                  column_attack=dict.fromkeys(columns, "umid"), seconds={"umid": seconds},
                  counts={"umid": {"queries": len(ds)}})
