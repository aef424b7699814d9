"""The `mmia demo` step of UMID: the contrastive testbeds' member names (their `names` split)
audited with UMID, its controls and the biometric baseline."""

from __future__ import annotations

from pathlib import Path

from mmia.targets.base import CONTRASTIVE_KINDS
from mmia.umid.api import audit_queries, to_results
from mmia.umid.audit import UmidConfig

# `mmia demo` settings, to fit its 10-minute budget on 2 CPU cores. CLIP: the defaults. CLAP: one
# waveform restart-step costs ~7x a CLIP pixel step, so 4 restarts x 30 steps, 50 gibberish and
# 50 control names (on the seed-0 build these read the same AUC as the defaults: docs/umid.md).
# The predecessors' sequential baseline, as costly as UMID itself, is measured in docs/umid.md
# rather than in every demo run.
DEMO_CLAP = {"restarts": 4, "steps": 30, "reference_size": 50}
DEMO_CLAP_CONTROL_NAMES = 50


DEMO_QUICK = {"steps": 10, "reference_size": 20, "restarts": 3}


def demo_settings(target_kind: str | None, quick: bool) -> dict:
    """The demo's UMID settings for a testbed's kind of target (the infer step uses them too,
    sharing the inversions): the costlier waveform inversion of a CLAP target gets the cheaper ones."""
    return DEMO_QUICK if quick else (DEMO_CLAP if target_kind == "clap" else {})


def umid_demo_step(testbed, ctx):
    """Audit a contrastive testbed's `names` split with UMID and its controls (its `controls` split
    of non-member names) and the biometric baseline on its `membership` split of media rows."""
    from mmia.cache import Cache

    queries = testbed.split_for("names")
    if testbed.target_kind not in CONTRASTIVE_KINDS or queries is None or "target" not in testbed.targets:
        return []
    clap = testbed.target_kind == "clap"
    settings = demo_settings(testbed.target_kind, ctx.quick)
    cfg = UmidConfig(seed=ctx.seed, **settings)
    control = testbed.split_for("controls")
    limit = DEMO_CLAP_CONTROL_NAMES if clap and not ctx.quick else None
    with Cache(Path(ctx.cache_dir)) as cache:
        out = audit_queries(
            queries, testbed.targets["target"], cfg, control_names=control,
            control_limit=limit, media=testbed.split_for("membership"), cache=cache,
        )
    produced = to_results(out, name=f"{testbed.name}: umid", queries=queries,
                          target=testbed.targets["target"],
                          settings={"umid": cfg.model_dump(), "control_names": str(control), "control_limit": limit})
    section = produced.section
    if settings and not ctx.quick:
        section.notes += (f" Demo settings: {settings}, {DEMO_CLAP_CONTROL_NAMES} control names; the defaults, "
                          "the predecessors' baseline and the held-out figures are in docs/umid.md.")
    else:
        section.notes += " The predecessors' sequential baseline is measured in docs/umid.md, not in the demo."
    return [produced]
