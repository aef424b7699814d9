"""The two sets of a dataset-inference run, loaded and checked: a suspect set (no labels needed)
and a validation set the model cannot have seen (no row labelled a member), disjoint by id and
by content, each with enough rows for a split test."""

from __future__ import annotations

import dataclasses

from mmia.data.ids import sample_digest
from mmia.data.schema import Dataset
from mmia.errors import InputError

MIN_ROWS = 10  # per side; half of them are held out for the test


def check_sets(suspect: Dataset, validation: Dataset) -> None:
    """One-line InputError (naming the file and row) for sets a split test cannot use."""
    for ds, side in ((suspect, "suspect"), (validation, "validation")):
        if len(ds) < MIN_ROWS:
            raise InputError(f"the {side} set has {len(ds)} usable row(s); dataset inference needs at least "
                             f"{MIN_ROWS} on each side", ds.path)
    member = next((s for s in validation if s.label == 1), None)
    if member is not None:
        raise InputError("a validation row is labelled a member; the validation set must be data the model "
                         "cannot have seen (drop its label column or fix the row)", validation.path, row=member.row)
    ids = {s.id: s.row for s in suspect}
    both = next((s for s in validation if s.id in ids), None)
    if both is not None:
        raise InputError(f"id {both.id!r} is in both sets (suspect row {ids[both.id]}); the sets must be disjoint",
                         validation.path, row=both.row)
    digests = {sample_digest(s): s.row for s in suspect}
    same = next((s for s in validation if sample_digest(s) in digests), None)
    if same is not None:
        raise InputError(f"this row's content is also in the suspect set (row {digests[sample_digest(same)]}); "
                         "the sets must be disjoint", validation.path, row=same.row)


def load_sets(suspect, validation, skip_bad: bool = False) -> tuple[Dataset, Dataset]:
    """Both sets loaded (a Dataset or a path each) and checked; labels are dropped from both, so
    no later step can read membership from them."""
    from mmia.data import load_dataset

    sets = [d if hasattr(d, "samples") else load_dataset(d, skip_bad=skip_bad) for d in (suspect, validation)]
    check_sets(*sets)
    return tuple(unlabelled(d) for d in sets)


def unlabelled(ds: Dataset, samples=None) -> Dataset:
    """`ds` (or these of its samples) with the labels dropped: nothing downstream can read them."""
    rows = ds.samples if samples is None else samples
    return Dataset(ds.path, [dataclasses.replace(s, label=None) for s in rows], list(ds.skipped))


def labelled_union(suspect: Dataset, validation: Dataset) -> Dataset:
    """Suspect rows as members (1) and validation rows as non-members (0), for the blind shift
    check: can the two sets be told apart without the model?"""
    samples = [dataclasses.replace(s, label=1) for s in suspect] + [dataclasses.replace(s, label=0)
                                                                   for s in validation]
    return Dataset(suspect.path, samples, [*suspect.skipped, *validation.skipped])
