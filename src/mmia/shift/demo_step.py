"""`mmia demo` step: the blind shift check on every labelled split of every testbed."""

from __future__ import annotations


def shift_demo_step(testbed, ctx) -> list:
    """One Section (and its out-of-fold scores) per split of the testbed that has labelled data."""
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.shift.api import run_shift
    from mmia.shift.inputs import ShiftInputs
    from mmia.shift.methods import default_methods

    results = []
    if not testbed.splits:
        return results
    with Cache(ctx.cache_dir) as cache:
        for split, path in sorted(testbed.splits.items()):
            ds = load_dataset(path)
            if not ds.has_labels or ds.n_members < 2 or ds.n_nonmembers < 2:
                continue
            name = f"{testbed.name}/{split}: blind shift check"
            methods = default_methods(ShiftInputs(ds))
            if ctx.quick:  # miniature runs (tests) leave out the sentence embedder, tested on its own
                methods = [m for m in methods if m != "blind:sentence_embedding"]
            section, scores = run_shift(ds, methods, folds=3 if ctx.quick else 5, seed=ctx.seed, cache=cache,
                                        name=name)
            section.target = None
            scores.section = name
            results.append((section, scores))
    return results
