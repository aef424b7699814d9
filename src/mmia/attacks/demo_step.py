"""The `mmia demo` step of the score-based attacks: every applicable attack on a testbed with a
generative target, calibrated by the testbed's base model where it has one."""

from __future__ import annotations

from mmia.targets.base import GENERATIVE_KINDS

GENERATIVE = GENERATIVE_KINDS


def demo_splits(testbed) -> list[str]:
    """The names of the splits to attack: the membership split when the testbed declares one (the
    only one whose AUC means membership); else all of them."""
    split = testbed.split_name("membership")
    return [split] if split is not None else sorted(testbed.splits)


def attack_demo_step(testbed, ctx) -> list:
    """Score attacks on each labelled split of a testbed with a generative target."""
    if testbed.target_kind not in GENERATIVE or "target" not in testbed.targets:
        return []
    from mmia.attacks.runner import evaluate_scored, score_samples, scored_info, select_attacks
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.results import Section, SectionScores
    from mmia.targets import load_target

    target = load_target(testbed.targets["target"])
    reference = load_target(testbed.targets["base"]) if "base" in testbed.targets else None
    out = []
    with Cache(ctx.cache_dir) as cache:
        for split in demo_splits(testbed):
            ds = load_dataset(testbed.splits[split])
            if not ds.has_labels:
                continue
            specs = select_attacks(None, target.kind, ds.modalities, reference is not None)
            scored = score_samples(ds, target, specs, reference=reference, cache=cache)
            entries, table = evaluate_scored(scored, seed=ctx.seed)
            name = f"{testbed.name}/{split}: score attacks"
            table.section = name
            # counted as `mmia attack` counts them: rows the engine skipped are neither class
            section = Section(name=name, command="attack", dataset=scored_info(ds, scored),
                              target=str(testbed.targets["target"]),
                              reference=str(testbed.targets["base"]) if reference is not None else None,
                              attacks=entries, skipped=scored.skipped,
                              notes="reference attack calibrated by the pre-fine-tuning base model"
                              if reference is not None else None)
            out.append(SectionScores(section, table))
    return out
