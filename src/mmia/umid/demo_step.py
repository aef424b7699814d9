"""The `mmia demo` step of UMID: the contrastive testbeds' member names audited with UMID, its
controls and the biometric baseline."""

from __future__ import annotations

from pathlib import Path

from mmia.umid.audit import UmidConfig
from mmia.umid.methods import audit_queries, to_results

# `mmia demo` settings, to fit its 10-minute budget on 2 CPU cores. CLIP: the defaults. CLAP: one
# waveform restart-step costs ~7x a CLIP pixel step, so 4 restarts x 30 steps, 50 gibberish and
# 50 control names (on the seed-0 build these read the same AUC as the defaults: docs/umid.md).
# The predecessors' sequential baseline, as costly as UMID itself, is measured in docs/umid.md
# rather than in every demo run.
DEMO_CLAP = {"restarts": 4, "steps": 30, "reference_size": 50}
DEMO_CLAP_CONTROL_NAMES = 50


DEMO_QUICK = {"steps": 10, "reference_size": 20, "restarts": 3}
DEMO_TESTBEDS = ("clip-identities", "clap-voices")


def demo_settings(testbed_name: str, quick: bool) -> dict:
    """The demo's UMID settings for a testbed (the infer step uses them too, sharing the inversions)."""
    return DEMO_QUICK if quick else (DEMO_CLAP if testbed_name == "clap-voices" else {})


def umid_demo_step(testbed, ctx):
    """Audit the clip-identities and clap-voices testbeds with UMID and its controls."""
    from mmia.cache import Cache

    if testbed.name not in DEMO_TESTBEDS:
        return []
    clap = testbed.name == "clap-voices"
    settings = demo_settings(testbed.name, ctx.quick)
    cfg = UmidConfig(seed=ctx.seed, **settings)
    control = testbed.splits.get("calibration")
    limit = DEMO_CLAP_CONTROL_NAMES if clap and not ctx.quick else None
    media_split = "photos" if testbed.name == "clip-identities" else "recordings"
    with Cache(Path(ctx.cache_dir)) as cache:
        out = audit_queries(
            testbed.splits["queries"], testbed.targets["target"], cfg, control_names=control,
            control_limit=limit, media=testbed.splits.get(media_split), cache=cache,
        )
    produced = to_results(out, name=f"{testbed.name}: umid", queries=testbed.splits["queries"],
                          target=testbed.targets["target"],
                          settings={"umid": cfg.model_dump(), "control_names": str(control), "control_limit": limit})
    section = produced.section
    if settings and not ctx.quick:
        section.notes += (f" Demo settings: {settings}, {DEMO_CLAP_CONTROL_NAMES} control names; the defaults, "
                          "the predecessors' baseline and the held-out figures are in docs/umid.md.")
    else:
        section.notes += " The predecessors' sequential baseline is measured in docs/umid.md, not in the demo."
    return [produced]
