"""`mmia infer` as a Python API: was this dataset trained on? One p-value, gated by the blind
shift check.

1. Both sets are scored by every score attack that applies to the target (all views and
   slices; the reference ratio when a reference is given), with the score attacks' engine and
   cache: the membership features. Names (text-only rows) on a CLIP/CLAP target, which no
   score attack applies to, are featured by UMID's per-query signals (`mmia.infer.names`).
2. The blind shift check runs on suspect against validation: when the two sets can be told
   apart without the model, a small p-value would say nothing about training, and the verdict
   is "the sets differ without the model" whatever the p-value.
3. The split test of `mmia.infer.statistics` gives the p-value; its control splits the
   validation set against itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mmia.infer.statistics import TRAIN_FRACTION, SplitTest, control_test, split_test
from mmia.results import AttackEntry, DatasetInfo, RunResult, ScoreTable

DEFAULT_ALPHA = 0.01
TRAINED_ON = "trained on"
NO_EVIDENCE = "no evidence"
SETS_DIFFER = "the sets differ without the model"
PAPER = "Maini et al., LLM Dataset Inference: Did you train on my dataset? (arXiv 2406.06443)"


def feature_matrix(suspect_cols: dict, validation_cols: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The score columns both sets have, each with a finite value somewhere on both sides."""
    names = [c for c in suspect_cols if c in validation_cols
             and np.isfinite(suspect_cols[c]).any() and np.isfinite(validation_cols[c]).any()]
    if not names:
        from mmia.errors import InputError

        raise InputError("no membership feature could be computed on both sets")
    return (names, np.column_stack([suspect_cols[c] for c in names]),
            np.column_stack([validation_cols[c] for c in names]))


def verdict_of(p_value: float, alpha: float, shifted: bool) -> str:
    if shifted:
        return SETS_DIFFER
    return TRAINED_ON if p_value < alpha else NO_EVIDENCE


def infer(
    suspect,
    validation,
    target,
    *,
    reference=None,
    out_dir=None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    attacks: list[str] | None = None,
    shift_check: bool = True,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str | None = None,
    cache_dir=None,
    skip_bad: bool = False,
    base=None,
    umid=None,
    max_batch_tokens: int | None = None,
) -> RunResult:
    """Dataset inference of `suspect` (a path or Dataset; labels not needed) against
    `validation` (data the model cannot have seen) on the target model directory. With
    `out_dir`, writes results.json, scores.parquet (both sets' features and held-out scores) and
    report.html. A PEFT adapter target is merged into its base (`base`, default the one its config
    names), which is then the reference unless `reference` is given, as in `mmia attack`. Names
    (text-only rows) on a CLIP/CLAP target are featured by UMID's per-query signals
    (`mmia.infer.names`) at `umid` (a `mmia.umid.audit.UmidConfig`; default: `mmia umid`'s
    defaults, whose inversion cache it shares). `max_batch_tokens`: as in `mmia attack`."""
    from mmia.attacks.runner import GENERATIVE
    from mmia.cache import Cache
    from mmia.errors import InputError
    from mmia.infer.inputs import load_sets
    from mmia.targets import load_target
    from mmia.targets.peft_adapter import resolve_target

    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1 (got {alpha})")
    t0 = time.perf_counter()
    sus, val = load_sets(suspect, validation, skip_bad=skip_bad)
    peft, kind, reference, reference_from = resolve_target(target, reference, base, GENERATIVE)
    if reference is not None and kind not in GENERATIVE:
        raise InputError("--reference works with generative targets (causal LM, VLM, audio LM)")
    tgt = load_target(target, kind=kind, device=device, dtype=dtype, base=peft.base if peft else None)
    ref = load_target(reference, device=tgt.device, dtype=dtype) if reference is not None else None
    with Cache(cache_dir) as cache:
        result, scored, main = infer_sets(sus, val, tgt, reference=ref, alpha=alpha, seed=seed, attacks=attacks,
                                          shift_check=shift_check, batch_size=batch_size, cache=cache,
                                          skip_bad=skip_bad, umid=umid, max_batch_tokens=max_batch_tokens)
    result.target = str(target)
    result.reference = str(reference) if reference is not None else None
    result.settings["seconds_total"] = round(time.perf_counter() - t0, 3)
    result.settings["reference_from"] = reference_from
    if out_dir is not None:
        _write(out_dir, result, scored, main)
    return result


def infer_sets(sus, val, target, *, reference=None, alpha: float = DEFAULT_ALPHA, seed: int = 0,
               attacks: list[str] | None = None, shift_check: bool = True, batch_size: int = 8, cache=None,
               skip_bad: bool = False, name: str = "infer", shift_methods=None, shift_folds: int = 5,
               umid=None, max_batch_tokens: int | None = None):
    """The run on loaded, checked sets (`inputs.load_sets`) and a loaded target (and reference):
    (RunResult, the per-set `Scored` features, the main SplitTest). Names (text-only rows) on a
    CLIP/CLAP target are featured by UMID's signals (`mmia.infer.names`) at `umid` (a
    `UmidConfig`; default `mmia umid`'s defaults)."""
    from mmia.attacks.runner import budget_setting, score_samples, select_attacks
    from mmia.errors import InputError
    from mmia.infer import names as name_rows
    from mmia.infer.inputs import labelled_union
    from mmia.progress import info

    scored, extra = {}, {}
    if name_rows.applies(target.kind, sus, val):
        # Names on a CLIP/CLAP target: no score attack applies to a text-only row; UMID's signals do.
        if attacks and attacks not in (["all"], ["umid"]):
            raise InputError("on names (text-only rows) a contrastive target's features are UMID's signals; "
                             "--attacks takes 'umid' or 'all' here")
        import torch

        from mmia.umid.audit import UmidConfig

        if torch.get_num_threads() > 2:  # as `mmia umid`: many threads on a shared CPU are slower than one
            torch.set_num_threads(1)
        config = umid or UmidConfig()
        inverted = name_rows.inversion_target(target)
        for side, ds in (("suspect", sus), ("validation", val)):
            info(f"[infer] UMID's signals of the {side} set ({len(ds)} names)")
            scored[side] = name_rows.score_names(ds, inverted, config, cache=cache, side=side)
        attack_names, extra = ["umid"], {"umid": config.model_dump()}
    else:
        modalities = tuple(m for m in ("text", "image", "audio", "video")
                           if m in sus.modalities or m in val.modalities)
        specs = select_attacks(attacks, target.kind, modalities, reference is not None)
        attack_names = [s.name for s in specs]
        for side, ds in (("suspect", sus), ("validation", val)):
            info(f"[infer] scoring the {side} set ({len(ds)} rows)")
            scored[side] = score_samples(ds, target, specs, reference=reference, cache=cache,
                                         batch_size=batch_size, skip_bad=skip_bad,
                                         max_batch_tokens=max_batch_tokens)
    names, xs, xv = feature_matrix(scored["suspect"].columns, scored["validation"].columns)
    main = split_test(xs, xv, names, seed=seed)
    control = control_test(xv, names, seed=seed)
    shift_section = None
    if shift_check:
        from mmia.shift.api import run_shift

        info("[infer] blind shift check: suspect vs validation, without the model")
        shift_section, _ = run_shift(labelled_union(sus, val), shift_methods, folds=shift_folds, seed=seed,
                                     cache=cache, name=f"{name}: blind shift check, suspect vs validation",
                                     skip_bad=skip_bad)
    from mmia.shift.verdict import SHIFTED

    shifted = shift_section is not None and shift_section.verdict == SHIFTED
    verdict = verdict_of(main.p_value, alpha, shifted)
    result = _result(sus, val, main, control, names, verdict, alpha, seed, shift_section,
                     {"batch_size": batch_size, **budget_setting(max_batch_tokens), "device": target.device,
                      "target_kind": target.kind,
                      "attacks": attack_names, "shift_check": shift_check,
                      "engine": {k: v.counts for k, v in scored.items()}, **extra})
    result.name = name
    result.p_by_size = p_by_size(xs, xv, names, seed=seed)
    return result, scored, main


SIZES = (10, 25, 50, 100, 250)


def p_by_size(xs: np.ndarray, xv: np.ndarray, names: list[str], seed: int = 0, repeats: int = 10) -> dict:
    """Median p over `repeats` subsamples of n suspect and n validation rows, per n the sets allow:
    how the evidence grows with the suspect set's size (descriptive; the test is the full-size one)."""
    out = {}
    for n in SIZES:
        if n > min(len(xs), len(xv)):
            break
        ps = []
        for r in range(repeats):
            rng = np.random.default_rng([seed, n, r])
            ps.append(split_test(xs[rng.choice(len(xs), n, replace=False)], xv[rng.choice(len(xv), n, replace=False)],
                                 names, seed=r).p_value)
        out[str(n)] = float(np.median(ps))
    return out


def _detail(main: SplitTest, control: SplitTest, alpha: float, verdict: str) -> str:
    held = f"{main.n_test[0]} suspect and {main.n_test[1]} validation rows held out"
    text = (f"p = {main.p_value:.3g} ({held}; held-out AUC {main.test_auc:.3f}); control (validation against "
            f"itself) p = {control.p_value:.3g}; alpha {alpha}.")
    if verdict == SETS_DIFFER:
        text += " The blind check tells the sets apart without the model, so the p-value says nothing about training."
    elif control.p_value < alpha:
        text += " The control is small too: the validation set is not homogeneous; treat the verdict with care."
    return text


def _result(sus, val, main, control, names, verdict, alpha, seed, shift_section, settings) -> RunResult:
    entry = AttackEntry(name="dataset inference", auc=main.test_auc, n_members=main.n_test[0],
                        n_nonmembers=main.n_test[1], paper=PAPER,
                        notes="held-out suspect (as members) against validation; the p-value is a one-sided "
                              "Mann-Whitney test on these scores",
                        params={"p_value": main.p_value, "weights": main.weights})
    result = RunResult(
        name="infer",
        command="infer",
        dataset=DatasetInfo(path=str(sus.path), n_members=0, n_nonmembers=len(val), n_samples=len(sus) + len(val),
                            n_skipped=len(sus.skipped) + len(val.skipped)),
        attacks=[entry],
        verdict=verdict,
        verdict_detail=_detail(main, control, alpha, verdict),
        skipped=[r.to_dict() for r in [*sus.skipped, *val.skipped]],
        settings={**settings, "seed": seed, "train_fraction": TRAIN_FRACTION, "validation": str(val.path)},
        sections=[shift_section] if shift_section is not None else [],
    )
    result.p_value = main.p_value
    result.alpha = alpha
    result.n_suspect = len(sus)
    result.n_validation = len(val)
    result.control_p_value = control.p_value
    result.features = names
    result.held_out = {"suspect": main.n_test[0], "validation": main.n_test[1], "auc": main.test_auc}
    result.shift_verdict = None if shift_section is None else shift_section.verdict
    return result


def _write(out_dir, result: RunResult, scored: dict, main: SplitTest) -> None:
    from mmia.report import save_run
    from mmia.report.plots import histogram_plot

    tables = []
    held = {"suspect": main.test_index_suspect, "validation": main.test_index_validation}
    scores = {"suspect": main.scores_suspect, "validation": main.scores_validation}
    for name, sc in scored.items():
        table = ScoreTable(sc.ids, None, section=name)
        for col, vals in sc.columns.items():
            table.add(col, vals)
        col = np.full(len(sc.ids), np.nan)
        col[held[name]] = scores[name]
        table.add("dataset inference", col)
        tables.append(table)
    out = Path(out_dir)
    plot = histogram_plot({"suspect (held out)": main.scores_suspect, "validation (held out)":
                           main.scores_validation}, "dataset inference: held-out scores",
                          out / "plots" / "infer-scores.png")
    result.figures = [str(plot.relative_to(out))]
    if result.p_by_size:
        from mmia.report.plots import p_value_plot

        sizes = np.asarray([int(k) for k in result.p_by_size])
        curve = p_value_plot({"suspect vs validation": (sizes, np.asarray(list(result.p_by_size.values())))},
                             result.alpha, "median p against suspect-set size (subsamples)",
                             out / "plots" / "infer-p-by-size.png")
        result.figures.append(str(curve.relative_to(out)))
    save_run(out, result, tables)
