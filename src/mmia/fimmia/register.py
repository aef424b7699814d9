"""FiMMIA in the method registry and in `mmia demo`."""

from __future__ import annotations

from mmia.attacks.registry import register_attack, register_demo_step
from mmia.errors import InputError
from mmia.fimmia.pipeline import FimmiaConfig, config_for_testbed

PAPER = (
    "FiMMIA: scaling semantic perturbation-based membership inference across modalities, arXiv 2512.02786; "
    "SMIA: Mozaffari & Marathe, Semantic Membership Inference Attack against Large Language Models, "
    "arXiv 2406.10218"
)


@register_attack(
    "fimmia",
    family="neural",
    paper=PAPER,
    config=FimmiaConfig,
    target_kinds=("vlm", "audio-lm"),
    modalities=("image", "video", "audio", "text"),
    needs_labels=True,
)
def fimmia_method(*_args, **_kwargs):
    """FiMMIA (arXiv 2512.02786; SMIA, arXiv 2406.10218): a network on neighbours' loss and embedding deltas.

    It is trained before it scores, so it runs through `mmia fimmia train` and `mmia fimmia score`
    (Python: `mmia.fimmia.api`), not through `mmia attack`.
    """
    raise InputError("fimmia is a trained attack: run `mmia fimmia train` and then `mmia fimmia score`")


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


DEMO_K = 12  # neighbours per sample in `mmia demo` (the method's default, 24, doubles its time)


@register_demo_step("fimmia", order=30)
def fimmia_demo_step(testbed, ctx) -> list:
    """FiMMIA on a vlm (or audio) testbed's matched split: train on one part, report on the disjoint rest."""
    return run_on_testbed(testbed, ctx, k=8 if ctx.quick else DEMO_K)


def run_on_testbed(testbed, ctx, k: int = 24, two_model: bool = True) -> list:
    """Both protocols on the testbed's matched split (half trains, the disjoint half is reported);
    `two_model=False`: the labelled protocol only."""
    if testbed.target_kind not in ("vlm", "audio-lm") or "target" not in testbed.targets:
        return []
    if "matched" not in testbed.splits:
        return []
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.fimmia.api import run_protocol
    from mmia.fimmia.network import TrainConfig
    from mmia.perturb import NeighbourConfig
    from mmia.results import AttackEntry

    ds = load_dataset(testbed.splits["matched"])
    if not ds.has_labels:
        return []
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
            name = f"{testbed.name}/matched: FiMMIA ({label})"
            section, table, info = run_protocol(
                ds, target, base=base, cfg=cfg, train_cfg=train_cfg, cache=cache, name=name
            )
            eval_ds = ds.subset([i for i, s in enumerate(ds.samples) if s.id in set(info["eval_ids"])])
            best, col = None, None
            if testbed.target_kind == "vlm":  # the score attacks' engine has no Whisper-style adapter
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
