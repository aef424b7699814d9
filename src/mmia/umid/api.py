"""`mmia umid` as a Python API: audit a query file with UMID, its controls and baselines, and
turn the audit into a results section."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmia.engine.ray_cluster import RayOptions
from mmia.errors import InputError
from mmia.umid.audit import AuditOutput, SequentialConfig, UmidConfig, hashed_ids, umid_scores
from mmia.umid.methods import run_embedding_control, run_media_cosine, run_name_control, run_sequential


def _load_queries(path: Path):
    from mmia.data import load_dataset

    ds = load_dataset(path)
    bad = [s for s in ds.samples if not (s.text or "").strip()]
    if bad:
        raise InputError("a query needs a non-empty 'text' (the name or PII string)", path, bad[0].row)
    return ds


def audit_queries(
    queries: Path,
    target_dir: Path,
    config: UmidConfig | None = None,
    *,
    control_names: Path | None = None,
    control_limit: int | None = None,
    media: Path | None = None,
    sequential: SequentialConfig | None = None,
    cache=None,
    base: Path | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
    out_dir: Path | None = None,
) -> AuditOutput:
    """Run UMID (and the controls and baselines whose inputs are given) on a query file.

    `control_limit` keeps the first names of `control_names` only (the demo's cheaper control);
    `base` is a PEFT adapter target's base model (see `mmia.targets.peft_adapter`).
    `engine="ray"`: every inversion runs first on Ray Data actors (`mmia.umid.ray_inversions`),
    kept in shards under `out_dir/shards/`; the rest runs here on them, as locally (`cache` unused).
    """
    import torch

    from mmia.umid.target import load_contrastive

    if torch.get_num_threads() > 2:  # on a shared CPU many threads run far slower than one (up to 30x measured)
        torch.set_num_threads(1)
    config = config or UmidConfig()
    ds = _load_queries(queries)
    ids = [s.id for s in ds.samples]
    texts = [s.text.strip() for s in ds.samples]
    labels = None
    if all(s.label is not None for s in ds.samples):
        labels = np.array([s.label for s in ds.samples], dtype=np.int64)
    target = load_contrastive(target_dir, base=base)
    ref = None
    if control_names is not None:
        ref = [s.text.strip() for s in _load_queries(control_names).samples][:control_limit]
    ray_info = None
    if engine == "ray":
        from mmia.umid.audit import inversion_sets
        from mmia.umid.ray_inversions import inversions_on_ray

        if out_dir is None:
            raise InputError("--engine ray keeps each inversion in the results folder: give --out")
        sets = inversion_sets(target, texts, config, reference_names=ref, sequential=sequential)
        cache, ray_info = inversions_on_ray(target, target_dir, base, sets, out_dir, queries=queries, ray=ray)
    elif engine != "local":
        raise InputError(f"--engine must be 'local' or 'ray', not {engine!r}")
    methods, info = umid_scores(target, texts, config, cache=cache)
    info = {k: v for k, v in info.items() if k != "votes_per_detector"}
    methods.append(run_embedding_control(target, texts, config))
    if ref is not None:
        methods.append(run_name_control(target, texts, config, ref, cache=cache))
        methods.append(run_embedding_control(target, texts, config, ref))
    if media is not None:
        mds = _load_media(media, target.kind)
        by_id = {s.id: s for s in mds.samples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputError(f"has no media row for query id '{missing[0]}' ({len(missing)} missing)", media)
        rows = [by_id[i] for i in ids]
        paths = [r.image if target.kind == "clip" else r.audio for r in rows]
        methods.append(run_media_cosine(target, [r.text or t for r, t in zip(rows, texts, strict=True)], paths))
    if sequential is not None:
        methods.append(run_sequential(target, texts, sequential, cache=cache))
    info["target_kind"] = target.kind
    if ray_info is not None:
        info["ray"] = ray_info
    return AuditOutput(ids=ids, texts=texts, labels=labels, methods=methods, info=info)


def _load_media(path: Path, kind: str):
    from mmia.data import load_dataset

    ds = load_dataset(path)
    field = "image" if kind == "clip" else "audio"
    for s in ds.samples:
        if getattr(s, field) is None:
            raise InputError(f"a media row needs an '{field}' for a {kind.upper()} target", path, s.row)
    return ds


def to_results(out: AuditOutput, *, name: str, queries: Path, target: Path, show_queries: bool = False,
               settings: dict | None = None):
    """An AuditOutput as a results Section and ScoreTable (hashed ids unless show_queries)."""
    from mmia.attacks.registry import find_attack
    from mmia.results import AttackEntry, DatasetInfo, ScoreTable, Section, SectionScores

    shown = hashed_ids(out.ids, show_queries)
    table = ScoreTable(shown, out.labels, section=name)
    entries = []
    for m in out.methods:
        table.add(m.name, m.scores)
        if m.votes is not None:
            table.add(f"{m.name}:vote", m.votes.astype(np.float64))
        base = m.name.split(":")[0]
        spec = find_attack(base)
        extra = dict(notes=m.notes, params=m.params, paper=spec.paper if spec else None)
        if out.labels is None:
            entries.append(AttackEntry(name=m.name, seconds=m.seconds, **extra))
            continue
        keep = np.ones(len(shown), bool) if m.mask is None else m.mask
        y, s = out.labels[keep], m.scores[keep]
        if m.mask is not None:
            extra["params"] = dict(extra["params"], n_evaluated=int(keep.sum()), n_excluded=int((~keep).sum()))
        if m.votes is not None:
            v = m.votes[keep]
            extra["vote_tpr"] = float(v[y == 1].mean()) if (y == 1).any() else None
            extra["vote_fpr"] = float(v[y == 0].mean()) if (y == 0).any() else None
            if extra["vote_tpr"] is not None and extra["vote_fpr"] is not None:
                extra["notes"] = (f"{extra['notes']}. Majority vote at the reference's 95th percentile: "
                                  f"TPR {extra['vote_tpr']:.2f}, FPR {extra['vote_fpr']:.2f}")
        entries.append(AttackEntry.from_scores(m.name, y, s, seconds=m.seconds, **extra))
    n1 = int(out.labels.sum()) if out.labels is not None else 0
    n0 = int(len(out.labels) - n1) if out.labels is not None else 0
    section = Section(
        name=name, command="umid", target=str(target), attacks=entries,
        dataset=DatasetInfo(path=str(queries), n_members=n1, n_nonmembers=n0, n_samples=len(out.ids)),
        notes="UMID scores: higher = member. Directional: member = more aligned / more consistent than the "
        "reference; the two-sided variant and each raw signal are shown to tell which way each points.",
        signal_summary=out.info, settings=settings or {},
    )
    if show_queries:
        section.queries = [{"id": i, "text": t} for i, t in zip(out.ids, out.texts, strict=True)]
    return SectionScores(section, table)
