"""`mmia attack` as a Python API: score a data set with registered attacks against a target.

The engine runs once per view that some requested attack declares (`mmia.attacks.views`: the
target's statistics of the text as is, of its lowercased copy, the reference model's, or a
contrastive target's embeddings; the reference only when --reference is given, or the target is
a PEFT adapter, whose base is then the reference), the views stream in lockstep through the same
length-sorted batches, and every attack reduces each sample's record to a score at once; nothing
per-token is kept beyond the current batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from mmia.attacks.records import SampleRecord
from mmia.attacks.registry import AttackSpec, get_attack, list_attacks
from mmia.attacks.views import VIEWS, StreamInputs, views_of
from mmia.errors import InputError
from mmia.results import AttackEntry, DatasetInfo, RunResult, ScoreTable
from mmia.targets.base import GENERATIVE_KINDS

GENERATIVE = GENERATIVE_KINDS


@dataclass
class Scored:
    """Per-sample scores of one run, before evaluation."""

    ids: list[str]
    labels: np.ndarray | None
    columns: dict[str, np.ndarray]
    column_attack: dict[str, str]  # column -> registered attack name
    seconds: dict[str, float]  # attack -> seconds (the passes it needs plus its own scoring)
    counts: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)


def select_attacks(names: list[str] | None, target_kind: str, modalities, has_reference: bool) -> list[AttackSpec]:
    """The attacks to run: those named (checked to apply), or every one that applies."""
    if not names or names == ["all"]:
        specs = [s for s in list_attacks(target_kind=target_kind, modalities=modalities)
                 if s.family in ("score", "contrastive") and (has_reference or not s.needs_reference)]
        if not specs:
            raise InputError(f"no registered attack applies to a {target_kind} target and modalities {modalities}")
        return specs
    specs = []
    for name in names:
        try:
            spec = get_attack(name)
        except KeyError as exc:
            raise InputError(str(exc).strip("'\"")) from None
        if spec.family not in ("score", "contrastive"):
            raise InputError(f"'{name}' is a {spec.family} method, not a score-based attack (see mmia --help)")
        if not spec.applies_to(target_kind, modalities):
            raise InputError(f"attack '{name}' does not apply to a {target_kind} target with {', '.join(modalities)}")
        if spec.needs_reference and not has_reference:
            raise InputError(f"attack '{name}' needs a reference model: pass --reference DIR")
        specs.append(spec)
    return specs


def _timed(it: Iterator, acc: dict, key: str) -> Iterator:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
            return
        acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        yield item


def score_samples(
    dataset,
    target,
    specs: list[AttackSpec],
    *,
    reference=None,
    configs: dict | None = None,
    cache=None,
    batch_size: int = 8,
    skip_bad: bool = False,
    progress: bool = True,
    max_batch_tokens: int | None = None,
) -> Scored:
    """Run the target (and reference) over the data once per view and score every attack.
    `max_batch_tokens`: cut generative forward batches by padded tokens too (`iter_token_stats`)."""
    from mmia.engine import EngineCounts
    from mmia.progress import progress_bar

    configs = {s.name: (configs or {}).get(s.name) or s.make_config() for s in specs}
    samples = dataset.samples
    n = len(samples)
    stream_time: dict[str, float] = {}  # view -> seconds spent in its stream
    counts: dict[str, EngineCounts] = {}  # a view's counts key (VIEWS) -> its counts
    inputs = StreamInputs(target=target, reference=reference, samples=samples, configs={}, cache=cache,
                          batch_size=batch_size, max_batch_tokens=max_batch_tokens, skip_bad=skip_bad,
                          source=dataset.path)
    with progress_bar(f"scoring {n} samples", n if progress else None, unit="samples") as bar:
        streams: dict[str, Iterator] = {}
        for view in views_of(specs):  # in VIEWS' order: the target's own pass first, with the bar
            entry, c = VIEWS[view], EngineCounts()
            if entry.counts in counts:
                raise ValueError(f"views {sorted(streams)} and {view!r} would share counts key {entry.counts!r}")
            readers = {s.name: configs[s.name] for s in specs if view in s.views}
            stream = entry.open(replace(inputs, configs=readers), c, None if streams else bar)
            if stream is None:
                continue  # no reference model: its attacks find no reference view in their records
            counts[entry.counts], streams[view] = c, stream
        timed = {k: _timed(v, stream_time, k) for k, v in streams.items()}
        columns: dict[str, np.ndarray] = {}
        column_attack: dict[str, str] = {}
        own_time = {s.name: 0.0 for s in specs}
        bad: set[int] = set()

        def reduce(records: list[SampleRecord], where: list[int]) -> None:
            # Runs in a worker thread, overlapping the next batch's forward pass; only this
            # thread writes the columns until the end.
            for i, rec in zip(where, records, strict=True):
                for s in specs:
                    t0 = time.perf_counter()
                    for suffix, value in s.run(rec, configs[s.name]).items():
                        col = s.name + suffix
                        if col not in columns:
                            columns[col] = np.full(n, np.nan)
                            column_attack[col] = s.name
                        columns[col][i] = value
                    own_time[s.name] += time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=1) as pool:
            futures: list = []
            records, where = [], []
            for items in zip(*timed.values(), strict=True):
                step = dict(zip(timed.keys(), items, strict=True))  # view -> (index, output)
                idx = {i for i, _ in step.values()}
                if len(idx) != 1:
                    raise RuntimeError("engine streams went out of step")  # same order by construction
                i = idx.pop()
                if any(out is None for _, out in step.values()):
                    bad.add(i)
                    continue
                records.append(SampleRecord(samples[i], {v: out for v, (_, out) in step.items()}))
                where.append(i)
                if len(records) >= batch_size:
                    futures.append(pool.submit(reduce, records, where))
                    records, where = [], []
                    while len(futures) > 2:  # bound the statistics held in flight
                        futures.pop(0).result()
            futures.append(pool.submit(reduce, records, where))
            for f in futures:
                f.result()
    keep = np.array([i not in bad for i in range(n)])
    skipped = []
    for c in counts.values():
        for i, reason in c.skipped:
            if not any(d["row"] == samples[i].row for d in skipped):
                skipped.append({"row": samples[i].row, "id": samples[i].id, "reason": reason})
    labels = np.array([s.label if s.label is not None else -1 for s in samples])[keep]
    seconds = {s.name: own_time[s.name] + sum(stream_time.get(v, 0.0) for v in s.views) for s in specs}
    return Scored(
        ids=[s.id for s, k in zip(samples, keep, strict=True) if k],
        labels=None if (labels < 0).any() else labels,
        columns={c: v[keep] for c, v in columns.items()},
        column_attack=column_attack,
        seconds=seconds,
        counts={k: c.as_dict() for k, c in counts.items()},
        skipped=skipped,
    )


def scored_info(dataset, scored: Scored) -> DatasetInfo:
    """The dataset's counts as evaluated: rows the engine skipped (bad media) are not members or non-members."""
    return DatasetInfo.of(dataset, labels=scored.labels, n_dropped=len(scored.skipped))


def evaluate_scored(scored: Scored, seed: int = 0) -> tuple[list[AttackEntry], ScoreTable]:
    """One results entry per score column (NaN where a sample lacks the slice: those are left out
    of that column's metrics and counted in its notes), and the per-sample score table."""
    table = ScoreTable(scored.ids, scored.labels)
    entries = []
    for col, vals in scored.columns.items():
        spec = get_attack(scored.column_attack[col])
        ok = ~np.isnan(vals)
        if not ok.any():
            continue  # the slice exists in no sample (e.g. image slice on text-only data)
        table.add(col, vals)
        extra = {"paper": spec.paper, "seconds": round(scored.seconds.get(spec.name, math.nan), 3)}
        notes = []
        if not ok.all():
            notes.append(f"{int((~ok).sum())} sample(s) without this slice left out")
        y = scored.labels
        if y is not None and len(set(y[ok].tolist())) == 2:
            entry = AttackEntry.from_scores(col, y[ok], vals[ok], seed=seed, **extra)
        else:
            entry = AttackEntry(name=col, **extra)
        entry.notes = "; ".join(notes) or None
        entries.append(entry)
    return entries, table


def plan_attack(target_dir, reference_dir, base_dir, modalities, attacks: list[str] | None):
    """Check the request against config.json before paying for loading any weights: (PEFT adapter
    or None, target kind, reference dir, where the reference came from, the attacks to run)."""
    from mmia.offline import resolve_model_dir
    from mmia.targets import detect_kind
    from mmia.targets.peft_adapter import resolve_target

    peft, kind, reference_dir, reference_from = resolve_target(target_dir, reference_dir, base_dir, GENERATIVE)
    if reference_dir is not None:
        ref_kind = detect_kind(resolve_model_dir(reference_dir, "reference model"))
        if ref_kind not in GENERATIVE or kind not in GENERATIVE:
            raise InputError("--reference works with generative targets and references (causal LM, VLM, audio LM)")
    specs = select_attacks(attacks, kind, modalities, reference_dir is not None)
    return peft, kind, reference_dir, reference_from, specs


def attack_result(dataset, scored: Scored, specs, configs, *, target_dir, reference_dir, reference_from, peft,
                  settings: dict, seed: int = 0) -> tuple[RunResult, ScoreTable]:
    """The results of a scored run, whichever engine scored it: entries, score table, settings."""
    entries, table = evaluate_scored(scored, seed=seed)
    result = RunResult(
        name="attack",
        command="attack",
        dataset=scored_info(dataset, scored),
        target=str(target_dir),
        reference=str(reference_dir) if reference_dir is not None else None,
        attacks=entries,
        skipped=[r.to_dict() for r in dataset.skipped] + scored.skipped,
        settings={**settings, "attacks": [s.name for s in specs],
                  "configs": {s.name: (configs or {}).get(s.name, s.make_config()).model_dump(mode="json")
                              for s in specs},
                  "reference_from": reference_from},
    )
    if peft is not None:
        result.settings["adapter"] = peft.summary()
    return result, table


def run_attack(
    data,
    target_dir,
    *,
    attacks: list[str] | None = None,
    reference_dir=None,
    out_dir=None,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str | None = None,
    cache_dir=None,
    skip_bad: bool = False,
    configs: dict | None = None,
    seed: int = 0,
    base_dir=None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float | None = None,
    block_rows: int | None = None,
    max_batch_tokens: int | None = None,
    max_retries: int | None = None,
) -> tuple[RunResult, ScoreTable]:
    """Load data and models, score, evaluate; with `out_dir`, write results.json, scores.parquet and report.html.

    `target_dir` may be a PEFT adapter (merged into `base_dir`, default the base its config
    names); with no `reference_dir` its base is then the reference model: target minus base is
    what the fine-tune changed, the signal a LoRA audit rests on.

    `engine="ray"` scores the same way on Ray Data actors (`mmia.attacks.ray_runner`): `workers`
    actors of `gpus_per_worker` GPUs each on the cluster at `ray_address` (None: a local one),
    each sample's scores kept in Parquet shards under `out_dir/shards/`, so a rerun resumes.

    `max_batch_tokens`: forward batches of at most that many padded tokens (and `batch_size`
    rows); the statistics, and so the scores, are the same as without it.
    """
    if engine == "ray":
        from mmia.attacks.ray_runner import run_attack_ray

        return run_attack_ray(data, target_dir, attacks=attacks, reference_dir=reference_dir, out_dir=out_dir,
                              batch_size=batch_size, device=device, dtype=dtype, cache_dir=cache_dir,
                              skip_bad=skip_bad, configs=configs, seed=seed, base_dir=base_dir,
                              ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                              cpus_per_worker=cpus_per_worker, block_rows=block_rows,
                              max_batch_tokens=max_batch_tokens, max_retries=max_retries)
    if engine != "local":
        raise InputError(f"--engine must be 'local' or 'ray', not {engine!r}")
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.targets import load_target

    dataset = data if hasattr(data, "samples") else load_dataset(data, skip_bad=skip_bad)
    peft, kind, reference_dir, reference_from, specs = plan_attack(target_dir, reference_dir, base_dir,
                                                                   dataset.modalities, attacks)
    target = load_target(target_dir, kind=kind, device=device, dtype=dtype, base=peft.base if peft else None)
    reference = None
    if reference_dir is not None:
        reference = load_target(reference_dir, device=target.device, dtype=dtype)
    cache = Cache(cache_dir) if cache_dir is not None else Cache()
    t0 = time.perf_counter()
    try:
        scored = score_samples(dataset, target, specs, reference=reference, configs=configs, cache=cache,
                               batch_size=batch_size, skip_bad=skip_bad, max_batch_tokens=max_batch_tokens)
    finally:
        cache.close()
    result, table = attack_result(
        dataset, scored, specs, configs, target_dir=target_dir, reference_dir=reference_dir,
        reference_from=reference_from, peft=peft, seed=seed,
        settings={"batch_size": batch_size, **budget_setting(max_batch_tokens), "device": target.device,
                  "dtype": str(target.dtype).removeprefix("torch."), "target_kind": target.kind,
                  "engine": scored.counts, "seconds_total": round(time.perf_counter() - t0, 3)})
    if out_dir is not None:
        from mmia.report import save_run

        save_run(out_dir, result, table)
    return result, table


def budget_setting(max_batch_tokens: int | None) -> dict:
    """The token budget in results.json's settings, only when given (default runs' files unchanged)."""
    return {} if max_batch_tokens is None else {"max_batch_tokens": max_batch_tokens}
