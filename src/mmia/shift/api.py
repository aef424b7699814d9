"""The Python API of the blind checks: `run_shift(dataset) -> (Section, ScoreTable)`."""

from __future__ import annotations

import time
from pathlib import Path

from mmia.data.schema import Dataset
from mmia.errors import InputError
from mmia.results import AttackEntry, DatasetInfo, ScoreTable, Section
from mmia.shift.inputs import ShiftInputs
from mmia.shift.methods import PREFIX, default_methods, method_applies
from mmia.shift.protocol import folds_of, out_of_fold_scores
from mmia.shift.verdict import DEFAULT_ALPHA, DEFAULT_MARGIN, decide, mann_whitney_p


def resolve_methods(names, inputs: ShiftInputs) -> list[str]:
    """Registered names for `names` (with or without the "blind:" prefix), checked to apply."""
    from mmia.attacks.registry import find_attack, list_attacks

    if not names:
        return default_methods(inputs)
    known = [s.name for s in list_attacks(family="blind")]
    out = []
    for raw in names:
        name = raw if raw.startswith(PREFIX) else PREFIX + raw
        spec = find_attack(name)
        if spec is None or spec.family != "blind":
            raise InputError(f"unknown blind method '{raw}' (known: {', '.join(n[len(PREFIX):] for n in known)})")
        if not method_applies(spec, inputs):
            raise InputError(
                f"method '{raw}' needs {' or '.join(spec.modalities)} data, but this set has "
                f"{', '.join(inputs.modalities) or 'no usable columns'}",
                inputs.dataset.path,
            )
        out.append(name)
    return out


def run_shift(
    dataset: Dataset,
    methods=None,
    folds: int = 5,
    seed: int = 0,
    *,
    cache=None,
    text_embedder: str | Path | None = None,
    skip_bad: bool = False,
    configs: dict | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    name: str = "shift",
    threads: int | None = 1,
) -> tuple[Section, ScoreTable]:
    """Run the blind checks on a labelled set; returns the results section and out-of-fold scores.

    Each method's per-sample features are computed once; every fitted step is fit inside the
    folds of one seeded stratified k-fold split shared by all methods. `configs` maps a method
    name to a dict of its config fields. `threads` caps BLAS/OpenMP threads (None: no cap); one
    thread avoids the oversubscription that makes k-means many times slower on shared cores.
    """
    from threadpoolctl import threadpool_limits

    _load_thread_pools()
    with threadpool_limits(limits=threads):
        return _run_shift(dataset, methods, folds, seed, cache, text_embedder, skip_bad, configs, margin, alpha, name)


def _load_thread_pools() -> None:
    """Import the native libraries whose thread pools the limit must reach.

    threadpoolctl limits only the pools already loaded: scikit-learn's OpenMP runtime (gradient
    boosting, k-means) loads with its compiled modules, and left unlimited it ran the LAION-MI
    check many times slower on the shared, oversubscribed cores (docs/shift.md).
    """
    import scipy.linalg  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401


def _run_shift(dataset, methods, folds, seed, cache, text_embedder, skip_bad, configs, margin, alpha, name):
    from mmia.attacks.registry import get_attack
    from mmia.progress import info

    labels = dataset.labels()
    if dataset.n_members < 2 or dataset.n_nonmembers < 2:
        raise InputError(
            f"a blind check needs at least 2 members and 2 non-members (has {dataset.n_members} and "
            f"{dataset.n_nonmembers})",
            dataset.path,
        )
    inputs = ShiftInputs(dataset, cache=cache, text_embedder=text_embedder, skip_bad=skip_bad, seed=seed)
    names = resolve_methods(methods, inputs)
    if inputs.media_kind is not None and any(get_attack(n).modalities != ("text",) for n in names):
        inputs.drop_undecodable(inputs.media_kind)  # decode once, so every method sees the same rows
        labels = inputs.labels
    splits = folds_of(labels, folds, seed)
    table = ScoreTable(inputs.dataset.ids, labels, section=None)
    raw: list[dict] = []
    entries: list[AttackEntry] = []
    for method in names:
        spec = get_attack(method)
        config = spec.make_config(**(configs or {}).get(method, (configs or {}).get(method[len(PREFIX):], {})))
        info(f"[shift] {method}")
        t0 = time.perf_counter()
        plan = spec.run(inputs, config)
        scores = out_of_fold_scores(plan, labels, splits=splits)
        seconds = time.perf_counter() - t0
        entry = AttackEntry.from_scores(
            method, labels, scores, seconds=round(seconds, 3), seed=seed, paper=spec.paper,
            params={"config": config.model_dump(), **plan.params},
        )
        entry.p_value = mann_whitney_p(labels, scores)
        entries.append(entry)
        table.add(method, scores)
        raw.append({"name": method, "auc": entry.auc, "auc_ci95": entry.auc_ci95, "p_value": entry.p_value})
    verdict = decide(raw, margin=margin, alpha=alpha)
    for entry in entries:
        entry.p_holm = verdict.adjusted_p[entry.name]
    section = Section(
        name=name,
        command="shift",
        dataset=DatasetInfo.of(inputs.dataset).model_copy(
            update={"n_skipped": len(dataset.skipped) + len(inputs.skipped)}
        ),
        attacks=entries,
        verdict=verdict.verdict,
        verdict_detail=verdict.detail,
        skipped=[r.to_dict() for r in [*dataset.skipped, *inputs.skipped]],
        notes=(f"{len(splits)}-fold stratified cross-validation (seed {seed}); every fitted step inside the folds; "
               f"scores are out of fold. Verdict margin {margin}, alpha {alpha} (Holm)."),
    )
    section.best_method = verdict.best
    section.settings = {"folds": len(splits), "seed": seed, "margin": margin, "alpha": alpha,
                        "methods": names}
    return section, table
