"""FiMMIA's Python API: train an attack model, score a data set with it, run a whole protocol."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from mmia.cache import Cache
from mmia.data import load_dataset
from mmia.data.schema import Dataset
from mmia.engine.ray_cluster import DEFAULT_MAX_RETRIES, RayOptions
from mmia.errors import InputError
from mmia.fimmia.features import FeatureSet
from mmia.fimmia.network import FimmiaModel, NetConfig, TrainConfig, train_attack
from mmia.fimmia.pipeline import FeatureExtractor, FimmiaConfig
from mmia.fimmia.protocols import assert_disjoint, split_parts, two_model_features
from mmia.results import AttackEntry, DatasetInfo, RunResult, ScoreTable, Section

PAPER = (
    "FiMMIA: scaling semantic perturbation-based membership inference across modalities (arXiv 2512.02786); "
    "SMIA, Mozaffari & Marathe (arXiv 2406.10218)"
)
ABLATIONS = {"fimmia:loss": (False, False), "fimmia:loss+text": (True, False), "fimmia:loss+text+media": (True, True)}
# The variant beside the faithful network: the sample's own loss (and, with a base, the base's)
# enter the loss branch, which the reference design leaves to the deltas alone.
WITH_LOSS = "fimmia+loss"


def _cache(cache_dir) -> Cache | None:
    return Cache(cache_dir) if cache_dir is not None else Cache()


def train_model(
    features: FeatureSet,
    cfg: FimmiaConfig,
    *,
    protocol: str,
    target: str,
    base: str | None = None,
    use_text: bool = True,
    use_media: bool = True,
    train_cfg: TrainConfig | None = None,
    net_cfg: NetConfig | None = None,
    use_loss: bool = False,
) -> FimmiaModel:
    settings = {
        "fimmia": cfg.model_dump(mode="json"),
        "protocol": protocol,
        "target": str(target),
        "base": None if base is None else str(base),
        "variant": WITH_LOSS if use_loss else "fimmia",
    }
    return train_attack(
        features, use_text=use_text, use_media=use_media, net=net_cfg, train=train_cfg, settings=settings,
        use_loss=use_loss,
    )


def base_extractor(base, cfg: FimmiaConfig, cache, extractor: FeatureExtractor) -> FeatureExtractor:
    """The base model's extractor in the two-model protocol: its losses, the target's media encoder."""
    return FeatureExtractor(base, cfg, cache, media_scorer=extractor.scorer)


def protocol_features(train_ds: Dataset, target, base, cfg: FimmiaConfig, cache, extractor=None,
                      base_x: FeatureExtractor | None = None) -> FeatureSet:
    """Training features under protocol (a) (base None) or (b) (base given). In (b) every row's
    media deltas come from the target's encoder, and each row carries the base's loss on its
    sample (`base_loss`, read by `fimmia+loss` only). `base_x`: the base's extractor, when the
    caller holds one already (it scores the evaluation samples with it too)."""
    extractor = extractor or FeatureExtractor(target, cfg, cache)
    if base is not None and train_ds.has_labels:  # protocol (b) trains on known members only
        train_ds = train_ds.subset([i for i, s in enumerate(train_ds) if s.label == 1])
    tf = extractor.features(train_ds, "FiMMIA train (target)")
    if base is None:
        return tf
    base_x = base_x or base_extractor(base, cfg, cache, extractor)
    bf = base_x.features(train_ds, "FiMMIA train (base)")
    tf.base_loss = bf.base_loss = bf.original_loss
    return two_model_features(tf, bf)


def with_base_loss(fs: FeatureSet, ds: Dataset, model: FimmiaModel, cfg: FimmiaConfig, cache,
                   base_x: FeatureExtractor | None = None) -> FeatureSet:
    """`fs` with the base's loss on each sample, where `model` reads it (two-model `fimmia+loss`);
    `base_x`: the base's extractor when the caller holds one (the base is not loaded again)."""
    if model.net.cfg.loss_inputs >= 3 and fs.base_loss is None:
        base = model.settings.get("base")
        if base is None:
            raise InputError("this attack model reads the base model's loss, but its settings name no base")
        base_x = base_x or FeatureExtractor(base, cfg, cache)
        fs.base_loss = base_x.original_losses(ds, "FiMMIA base losses")
    return fs


def with_adapter_base(cfg: FimmiaConfig, target, base) -> FimmiaConfig:
    """For a PEFT adapter target, the two-model protocol's base (the model before fine-tuning) is
    the base the adapter is merged into, unless the config names one already."""
    from mmia.targets.peft_adapter import is_adapter_dir

    if base is None or cfg.adapter_base is not None or not is_adapter_dir(target):
        return cfg
    # absolute: `fimmia score` reads it back from the saved attack model, maybe from another folder
    return cfg.model_copy(update={"adapter_base": str(Path(base).expanduser().resolve())})


def train(
    data: str | Path,
    target: str | Path,
    out: str | Path,
    *,
    base: str | Path | None = None,
    cfg: FimmiaConfig | None = None,
    train_cfg: TrainConfig | None = None,
    use_text: bool = True,
    use_media: bool = True,
    holdout: float = 0.0,
    cache_dir=None,
    skip_bad: bool = False,
    use_loss: bool = False,
    engine: str = "local",
    ray: RayOptions | None = None,
    sweep: bool = False,
) -> tuple[FimmiaModel, RunResult | None]:
    """Train an attack model on DATA (labelled, or the fine-tuning set with --base) and save it
    to `out`. With `holdout` > 0 a share of the samples is kept out of training and the model
    is evaluated on it; that evaluation is written to `out/holdout/`. With `sweep`, the
    neighbours (field, edits per neighbour) are chosen on the training rows first
    (`mmia.fimmia.sweep`); the choice is saved with the model, so scoring makes the same ones.

    `engine="ray"`: the feature pass (the target's and, with `base`, the base's) runs on Ray
    Data actors, kept in shards under `out/shards/` (a rerun reuses them); the training and the
    held-out evaluation's scoring run here, as locally; the held-out features come from actors too."""
    if engine == "ray" and sweep:
        raise InputError("--sweep runs on the local engine only (one feature pass per candidate); "
                         "leave out --engine ray, or --sweep")
    cfg = with_adapter_base(cfg or FimmiaConfig(), target, base)
    ds = load_dataset(data, skip_bad=skip_bad)
    if base is None and not ds.has_labels:
        ds.labels()  # raises the clear "needs a label column" error
    held = None
    if holdout > 0:
        ds, held = split_parts(ds, holdout, seed=cfg.neighbours.seed)
    opts = dict(base=base, use_text=use_text, use_media=use_media, train_cfg=train_cfg, use_loss=use_loss)
    if engine == "ray":
        from mmia.engine.ray_cluster import ray_session
        from mmia.fimmia.ray_features import RayFeatures

        ray = ray or RayOptions()
        with ray_session(ray.address):  # one cluster for every feature pass of the run
            # the actors keep no cache: the shards are what a rerun reuses
            extractor = RayFeatures(target, cfg, out, ray=ray)
            base_x = RayFeatures(target, cfg, out, base=base, ray=ray) if base is not None else None
            model = _fit(ds, target, out, cfg, None, extractor, base_x, **opts,
                         ray_runs=lambda: extractor.runs + (base_x.runs if base_x is not None else []))
            # the held-out features on actors too; the base's held-out losses (fimmia+loss) are computed here
            result = (evaluate(model, held, target, cfg, None, Path(out) / "holdout", engine="ray", ray=ray)
                      if held is not None else None)
        return model, result
    if engine != "local":
        raise InputError(f"--engine must be 'local' or 'ray', not {engine!r}")
    cache = _cache(cache_dir)
    extractor = FeatureExtractor(target, cfg, cache)
    base_x = base_extractor(base, cfg, cache, extractor) if base is not None else None
    feats = chosen = None
    if sweep:
        cfg, extractor, base_x, feats, chosen = _swept(ds, target, base, cfg, cache, extractor, base_x)
    model = _fit(ds, target, out, cfg, cache, extractor, base_x, **opts, feats=feats,
                 settings={"sweep": chosen.as_dict()} if chosen is not None else None)
    result = None
    if held is not None:
        result = evaluate(model, held, target, cfg, cache, Path(out) / "holdout", extractor=extractor, base_x=base_x)
    return model, result


def _fit(ds, target, out, cfg, cache, extractor, base_x, *, base, use_text, use_media, train_cfg, use_loss,
         ray_runs=None, feats=None, settings: dict | None = None) -> FimmiaModel:
    """Training features of `ds` from `extractor` (and `base_x`; `feats` when the caller has them),
    the attack model trained on them and saved to `out`; `ray_runs()`: the Ray feature passes'
    facts, and `settings`, kept in its settings."""
    if feats is None:
        feats = protocol_features(ds, target, base, cfg, cache, extractor, base_x)
    model = train_model(
        feats,
        cfg,
        protocol="two-model" if base else "labelled",
        target=target,
        base=base,
        use_text=use_text,
        use_media=use_media,
        train_cfg=train_cfg,
        use_loss=use_loss,
    )
    if ray_runs is not None:
        model.settings["ray"] = ray_runs()
    model.settings.update(settings or {})
    model.save(out)
    return model


def _swept(ds: Dataset, target, base, cfg: FimmiaConfig, cache, extractor: FeatureExtractor,
           base_x: FeatureExtractor | None):
    """The neighbour sweep on the training rows: (config, extractors and features of the chosen
    candidate, the SweepResult). The models are loaded once; only the neighbour maker changes."""
    from mmia import progress
    from mmia.fimmia.sweep import candidates, sweep_fields, sweep_neighbours

    text_fields, has_media = sweep_fields(ds.samples)
    configs = candidates(cfg.neighbours, fields=text_fields, media=has_media)
    made = {}

    def features_of(nc):
        c = cfg.model_copy(update={"neighbours": nc})
        x = FeatureExtractor(target, c, cache, scorer=extractor.scorer, media_scorer=extractor.media_scorer)
        bx = None if base_x is None else FeatureExtractor(base, c, cache, scorer=base_x.scorer,
                                                          media_scorer=x.scorer)
        made[nc.fingerprint()] = (c, x, bx)
        return protocol_features(ds, target, base, c, cache, x, bx)

    result, feats = sweep_neighbours(configs, features_of)
    for name, auc in result.train_auc.items():
        progress.info(f"neighbour sweep: {name}: training-row AUC {auc:.3f}"
                      + (f" (left out: {result.skipped[name]})" if name in result.skipped else "")
                      + ("  <- chosen" if name == result.chosen else ""))
    c, x, bx = made[result.config.fingerprint()]
    return c, x, bx, feats[result.chosen], result


def _entries(fs: FeatureSet, models: dict[str, FimmiaModel], seconds: float) -> tuple[list[AttackEntry], dict]:
    """FiMMIA entries plus two training-free baselines on the same samples and losses."""
    labels = fs.labels
    cols = {name: m.score(fs) for name, m in models.items()}
    cols["loss"] = -fs.original_loss  # lower loss = member
    cols["neighbourhood"] = fs.loss.mean(axis=1)  # mean (neighbour - original) loss: larger = member
    entries = []
    if labels is not None and len(np.unique(labels)) == 2:
        for name, col in cols.items():
            notes = None
            if name == "loss":
                notes = "score-based baseline: -loss of the original sample (same losses FiMMIA uses)"
            elif name == "neighbourhood":
                notes = "training-free baseline (Mattern et al. 2023): mean neighbour-minus-original loss"
            if name.startswith(WITH_LOSS):
                notes = ("variant: the original loss" + (" and the base's loss" if models[name].net.cfg.loss_inputs > 2
                                                         else "") + " enter the loss branch beside each delta")
            entry = AttackEntry.from_scores(
                name,
                labels,
                col,
                seconds=seconds if name.startswith("fimmia") else None,
                paper=PAPER if name.startswith("fimmia") else None,
                notes=notes,
            )
            entries.append(entry)
    return entries, cols


def _technique_entries(train_fs: FeatureSet, train_ds: Dataset, eval_fs: FeatureSet, eval_ds: Dataset,
                       extractor: FeatureExtractor) -> tuple[list[AttackEntry], dict]:
    """The training-free neighbourhood score per (field, technique) on the evaluation samples, and
    the subset of techniques chosen on the training rows (AUC above 0.5 there) scored alike."""
    from mmia.fimmia.techniques import choose_techniques, subset_score, technique_scores

    by_id = {s.id: s for s in train_ds.samples}
    train_scores = technique_scores(train_fs, [extractor.maker.plan(by_id[i]) for i in train_fs.ids])
    chosen, train_aucs = choose_techniques(train_scores, train_fs.labels)
    scores = technique_scores(eval_fs, [extractor.maker.plan(s) for s in eval_ds.samples])
    cols = {f"neighbourhood:{n}": v for n, v in scores.items() if np.isfinite(v).all()}
    cols["neighbourhood:chosen"] = subset_score(scores, chosen)
    entries = []
    for name, col in cols.items():
        tech = name.split(":", 1)[1]
        if tech == "chosen":
            notes = ("training-free, the techniques chosen on the training rows (AUC above 0.5 there): "
                     + ", ".join(f"{n} {train_aucs[n]:.3f}" for n in chosen))
        else:
            on_train = train_aucs.get(tech, float("nan"))
            notes = f"training-free, neighbours of {tech} only (AUC on the training rows {on_train:.3f})"
        entries.append(AttackEntry.from_scores(name, eval_fs.labels, col, notes=notes))
    return entries, cols


def evaluate(model: FimmiaModel, ds: Dataset, target, cfg: FimmiaConfig, cache, out_dir=None, *,
             engine: str = "local", ray: RayOptions | None = None, extractor: FeatureExtractor | None = None,
             base_x: FeatureExtractor | None = None) -> RunResult:
    """Score `ds` (never the attack's training samples) and write the contract's results.

    `engine="ray"`: the features come from Ray Data actors (`mmia.fimmia.ray_features`) on the
    cluster and worker pool `ray` describes.
    `extractor`, `base_x`: the target's and the base's extractors when the caller holds them."""
    assert_disjoint(model.train_ids, ds.ids)
    t0 = time.perf_counter()
    ray_info = None
    if engine == "ray":
        from mmia.fimmia.ray_features import features_on_ray

        if out_dir is None:
            raise InputError("--engine ray keeps each sample's features in the results folder: give --out")
        fs, ray_info = features_on_ray(ds, target, cfg, out_dir, ray=ray)
    elif engine == "local":
        fs = (extractor or FeatureExtractor(target, cfg, cache)).features(ds, "FiMMIA score")
    else:
        raise InputError(f"--engine must be 'local' or 'ray', not {engine!r}")
    fs = with_base_loss(fs, ds, model, cfg, cache, base_x)  # a two-model fimmia+loss model reads the base's
    seconds = time.perf_counter() - t0
    entries, cols = _entries(fs, {model.settings.get("variant", "fimmia"): model}, seconds)
    table = ScoreTable(ds.ids, fs.labels)
    for name, col in cols.items():
        table.add(name, col)
    result = RunResult(
        name="fimmia",
        command="fimmia score",
        dataset=DatasetInfo.of(ds),
        target=str(target),
        reference=model.settings.get("base"),
        attacks=entries,
        skipped=[r.to_dict() for r in ds.skipped],
        settings={
            "fimmia": model.settings.get("fimmia"),
            "protocol": model.settings.get("protocol"),
            "n_train_samples": len(model.train_ids),
            # only when given, as `mmia attack` records it (default runs' files unchanged)
            **({"max_batch_tokens": cfg.max_batch_tokens} if cfg.max_batch_tokens is not None else {}),
            **({"engine_kind": "ray", "ray": ray_info} if ray_info is not None else {}),
        },
        notes=f"FiMMIA ({model.settings.get('protocol')} protocol) trained on {len(model.train_ids)} samples, "
        f"evaluated on {len(ds)} disjoint samples",
    )
    if out_dir is not None:
        from mmia.report import save_run

        save_run(out_dir, result, table)
    return result


def score(
    data: str | Path,
    target: str | Path,
    attack_model: str | Path,
    out: str | Path,
    *,
    cache_dir=None,
    skip_bad: bool = False,
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    device: str | None = None,
    skip_trained: bool = False,
    base: str | Path | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float | None = None,
    block_rows: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> RunResult:
    """Score DATA with a saved attack model; samples it was trained on are refused, or with
    `skip_trained` left out (so the file `train --holdout` split scores as its held-out part).
    `base`: a PEFT adapter target's base (default: the one the attack model was trained with).
    `max_batch_tokens`: cut the target's forward batches at that many padded tokens too (same scores).
    `engine="ray"`: the features on Ray Data actors (`--ray-address`, `--workers`, ...: docs/scale.md)."""
    model = FimmiaModel.load(attack_model)
    cfg = FimmiaConfig(**model.settings["fimmia"])
    if base is not None:
        cfg = cfg.model_copy(update={"adapter_base": str(base)})
    if batch_size:
        cfg = cfg.model_copy(update={"batch_size": batch_size})
    # where and in what batches to run are not part of the attack
    cfg = cfg.model_copy(update={"device": device, "max_batch_tokens": max_batch_tokens})
    ds = load_dataset(data, skip_bad=skip_bad)
    overlap = set(model.train_ids) & set(ds.ids)
    if overlap and skip_trained:
        ds = ds.subset([i for i, s in enumerate(ds.samples) if s.id not in overlap])
        if not len(ds):
            raise InputError("every sample in this file trained the attack model: nothing left to score", data)
    elif overlap:
        raise InputError(
            f"{len(overlap)} sample(s) in this file trained the attack model (first: {sorted(overlap)[0]}); "
            "scoring them would report training accuracy, not membership evidence: remove them "
            "(or pass --skip-trained to leave them out)",
            data,
        )
    if engine == "ray":  # the actors keep no cache unless asked: the shards are what a rerun reuses
        ray = RayOptions(address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                         cpus_per_worker=cpus_per_worker, block_rows=block_rows, max_retries=max_retries)
        return evaluate(model, ds, target, cfg, None, out, engine="ray", ray=ray)
    return evaluate(model, ds, target, cfg, _cache(cache_dir), out, engine=engine)


def run_protocol(
    ds: Dataset,
    target,
    *,
    base=None,
    cfg: FimmiaConfig | None = None,
    eval_fraction: float = 0.5,
    train_cfg: TrainConfig | None = None,
    cache=None,
    name: str = "fimmia",
) -> tuple[Section, ScoreTable, dict]:
    """Split a labelled set by sample, train (with the ablation) on one part, report on the rest."""
    cfg = with_adapter_base(cfg or FimmiaConfig(), target, base)
    train_ds, eval_ds = split_parts(ds, eval_fraction, seed=cfg.neighbours.seed)
    extractor = FeatureExtractor(target, cfg, cache)
    base_x = base_extractor(base, cfg, cache, extractor) if base is not None else None
    t0 = time.perf_counter()
    feats = protocol_features(train_ds, target, base, cfg, cache, extractor, base_x)
    protocol = "two-model" if base is not None else "labelled"
    # every model of the ablation, and fimmia+loss, trains on the same rows under the same protocol
    fit = functools.partial(train_model, feats, cfg, protocol=protocol, target=target, base=base, train_cfg=train_cfg)
    models = {}
    for abl, (use_text, use_media) in ABLATIONS.items():
        if (use_text and feats.text is None) or (use_media and feats.media is None):
            continue
        models[abl] = fit(use_text=use_text, use_media=use_media)
    full_name = list(models)[-1]
    full = models[full_name]
    with_loss = fit(use_text=feats.text is not None, use_media=feats.media is not None, use_loss=True)
    models[WITH_LOSS] = with_loss
    train_seconds = time.perf_counter() - t0
    assert_disjoint(full.train_ids, eval_ds.ids)
    t0 = time.perf_counter()
    fs = with_base_loss(extractor.features(eval_ds, "FiMMIA score"), eval_ds, with_loss, cfg, cache, base_x)
    entries, cols = _entries(fs, {"fimmia": full, **models}, time.perf_counter() - t0)
    if fs.labels is not None and len(np.unique(fs.labels)) == 2:
        t_entries, t_cols = _technique_entries(feats, train_ds, fs, eval_ds, extractor)
        entries += t_entries
        cols.update(t_cols)
    section = Section(
        name=name,
        command="fimmia",
        dataset=DatasetInfo.of(eval_ds),
        target=str(target),
        reference=None if base is None else str(base),
        attacks=entries,
        notes=f"FiMMIA, {protocol} protocol: trained on {len(full.train_ids)} samples, evaluated on "
        f"{len(eval_ds)} disjoint samples; 'fimmia' = {full_name}; training {train_seconds:.1f} s",
    )
    table = ScoreTable(eval_ds.ids, fs.labels, section=name)
    for k, v in cols.items():
        table.add(k, v)
    return section, table, {"train_ids": full.train_ids, "eval_ids": eval_ds.ids, "models": models, "features": fs}
