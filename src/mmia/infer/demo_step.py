"""The `mmia demo` step of dataset inference: per testbed with a target, three questions whose
answers are known, each answered by `mmia infer`:
- its members as the suspect set against its non-members: expected "trained on";
- one half of its non-members against the other (the null): expected "no evidence";
- where the testbed has a `shifted` split, its members against the shifted non-members:
  expected "the sets differ without the model" (the gate, whatever the p-value).
The questions are asked on the testbed's `membership` split (the contrastive testbeds' photos or
recordings: CSA/AEA features; the generative ones' matched split). The contrastive testbeds ask
the first two again on their names alone (the `names` split; UMID's signals, at the demo's UMID
settings)."""

from __future__ import annotations

from mmia.targets.base import GENERATIVE_KINDS


def _questions(ds, seed: int, shifted=None) -> list:
    import numpy as np

    members = [s for s in ds if s.label == 1]
    nonmembers = [s for s in ds if s.label == 0]
    half = len(nonmembers) // 2
    order = np.random.default_rng(seed).permutation(len(nonmembers))
    questions = [("members vs non-members", members, nonmembers, "trained on"),
                 ("non-members vs non-members (null)", [nonmembers[i] for i in order[:half]],
                  [nonmembers[i] for i in order[half:]], "no evidence")]
    if shifted is not None:
        questions.append(("members vs shifted non-members", members, shifted, "the sets differ without the model"))
    return questions


def infer_demo_step(testbed, ctx) -> list:
    split = testbed.split_name("membership")
    if split is None or "target" not in testbed.targets:
        return []
    from mmia.cache import Cache
    from mmia.data import load_dataset
    from mmia.infer.inputs import MIN_ROWS, check_sets, unlabelled
    from mmia.infer.names import CONTRASTIVE
    from mmia.infer.run import infer_sets
    from mmia.results import Section
    from mmia.targets import load_target

    target = load_target(testbed.targets["target"])
    generative = target.kind in GENERATIVE_KINDS
    reference = load_target(testbed.targets["base"]) if generative and "base" in testbed.targets else None
    umid = None
    splits = [split]
    names = testbed.split_name("names")
    if target.kind in CONTRASTIVE and names is not None:
        from mmia.umid.audit import UmidConfig
        from mmia.umid.demo_step import demo_settings

        splits.append(names)
        umid = UmidConfig(seed=ctx.seed, **demo_settings(testbed.target_kind, ctx.quick))  # as the umid step's
    shifted_file = testbed.split_for("shifted")
    out = []
    with Cache(ctx.cache_dir) as cache:
        for sp in splits:
            ds = load_dataset(testbed.splits[sp])
            if not ds.has_labels:
                continue
            shifted = None
            if sp == split and shifted_file is not None:
                shifted = [s for s in load_dataset(shifted_file) if s.label == 0]
            for title, sus, val, expected in _questions(ds, ctx.seed, shifted):
                if min(len(sus), len(val)) < MIN_ROWS:
                    continue
                sus_ds, val_ds = unlabelled(ds, sus), unlabelled(ds, val)
                check_sets(sus_ds, val_ds)
                methods = None
                if ctx.quick:  # miniature runs (tests) leave out the sentence embedder, as the shift step does
                    from mmia.infer.inputs import labelled_union
                    from mmia.shift.inputs import ShiftInputs
                    from mmia.shift.methods import default_methods

                    methods = [m for m in default_methods(ShiftInputs(labelled_union(sus_ds, val_ds)))
                               if m != "blind:sentence_embedding"]
                name = f"{testbed.name}/{sp}: dataset inference, {title}"
                result, _, _ = infer_sets(sus_ds, val_ds, target, reference=reference, seed=ctx.seed, cache=cache,
                                          name=name, shift_methods=methods, shift_folds=3 if ctx.quick else 5,
                                          umid=umid)
                section = Section(**result.model_dump(exclude={"sections", "mmia_version", "created"}))
                section.command = "infer"
                section.target = str(testbed.targets["target"])
                section.reference = str(testbed.targets["base"]) if reference is not None else None
                section.expected_verdict = expected
                section.notes = (f"expected verdict: {expected}; blind check on the same two sets: "
                                 f"{result.shift_verdict}")
                out.append((section, None))
    return out
