"""The `mmia demo` step of FiMMIA: both protocols on a testbed's members/non-members split, beside
the best score attack on the same evaluation samples."""

from __future__ import annotations

from mmia.fimmia.pipeline import config_for_testbed


def _best_score_attack(eval_ds, testbed, cache, seed):
    """The score attacks on the same evaluation samples (best by AUC there: optimistic for them)."""
    from mmia.attacks.runner import evaluate_scored, score_samples, select_attacks
    from mmia.targets import load_target

    target = load_target(testbed.targets["target"])
    reference = load_target(testbed.targets["base"]) if "base" in testbed.targets else None
    specs = select_attacks(None, target.kind, eval_ds.modalities, reference is not None)
    scored = score_samples(eval_ds, target, specs, reference=reference, cache=cache)
    entries, table = evaluate_scored(scored, seed=seed)
    entries = [e for e in entries if e.auc is not None]
    if not entries:
        return None, None
    best = max(entries, key=lambda e: e.auc)
    return best, table.columns.get(best.name)


# `mmia demo` runs FiMMIA at a demo size, to fit its 10-minute budget on 2 CPU cores: 8 neighbours
# per sample (the method's default is 24) on 400 of the membership split's samples (200 members and
# 200 non-members, drawn by a seeded hash of their ids); docs/fimmia.md has the full-size figures.
DEMO_K = 8
DEMO_SAMPLES = 400


def fimmia_demo_step(testbed, ctx) -> list:
    """FiMMIA on a vlm (or audio) testbed's membership split: train on one part, report on the disjoint rest."""
    return run_on_testbed(testbed, ctx, k=DEMO_K, max_samples=DEMO_SAMPLES)


def balanced_subset(ds, n: int, seed: int):
    """At most n samples, half members and half non-members, chosen by a seeded hash of the ids."""
    from mmia.data.ids import stable_seed

    if len(ds) <= n:
        return ds
    keep: set[int] = set()
    for label in (1, 0):
        idx = [i for i, s in enumerate(ds.samples) if s.label == label]
        idx.sort(key=lambda i: stable_seed(seed, "fimmia-demo-subset", ds.samples[i].id))
        keep.update(idx[: n // 2])
    return ds.subset(sorted(keep))


def run_on_testbed(testbed, ctx, k: int = 24, max_samples: int | None = None, two_model: bool = True) -> list:
    """Both protocols on the testbed's membership split (half trains, the disjoint half is reported);
    `two_model=False`: the labelled protocol only; `max_samples`: a balanced subset of the split."""
    if testbed.target_kind not in ("vlm", "audio-lm") or "target" not in testbed.targets:
        return []
    split = testbed.split_name("membership")
    if split is None:
        return []
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.fimmia.api import run_protocol
    from mmia.fimmia.network import TrainConfig
    from mmia.perturb import NeighbourConfig
    from mmia.results import AttackEntry

    ds = load_dataset(testbed.splits[split])
    if not ds.has_labels:
        return []
    n_split = len(ds)
    if max_samples is not None:
        ds = balanced_subset(ds, max_samples, ctx.seed)
    size_note = (f" Demo size: {len(ds)} of the split's {n_split} samples, {k} neighbours each "
                 "(docs/fimmia.md has the full-size figures)." if len(ds) < n_split else "")
    # text laid out as the testbed's models were trained; half the neighbours edit the answer, half the image
    cfg = config_for_testbed(testbed.manifest, neighbours=NeighbourConfig(k=k, field="answer+media", seed=ctx.seed))
    train_cfg = TrainConfig(seed=ctx.seed, max_epochs=30 if ctx.quick else 200)
    target = testbed.targets["target"]
    out = []
    with Cache(ctx.cache_dir) as cache:
        protocols = [("labelled", None)]
        if two_model and "base" in testbed.targets:
            protocols.append(("two-model", testbed.targets["base"]))
        for label, base in protocols:
            name = f"{testbed.name}/{split}: FiMMIA ({label})"
            section, table, info = run_protocol(
                ds, target, base=base, cfg=cfg, train_cfg=train_cfg, cache=cache, name=name
            )
            section.notes = (section.notes or "") + size_note
            eval_ds = ds.subset([i for i, s in enumerate(ds.samples) if s.id in set(info["eval_ids"])])
            best, col = _best_score_attack(eval_ds, testbed, cache, ctx.seed)
            if best is not None:
                by_id = dict(zip(eval_ds.ids, col, strict=True))
                scores = [by_id[i] for i in table.ids]
                entry = AttackEntry.from_scores(
                    f"best score attack ({best.name})",
                    table.labels,
                    scores,
                    notes="the score-based attack with the highest AUC on these same evaluation samples "
                    "(chosen on them, so optimistic for the baseline)",
                )
                section.attacks.append(entry)
                table.add(entry.name, scores)
            out.append((section, table))
    return out
