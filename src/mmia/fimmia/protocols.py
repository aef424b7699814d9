"""Training protocols, and the guarantee that evaluation samples were never trained on.

(a) labelled: members and non-members of ONE target, with their labels; the attack trains on one
    part and is evaluated on disjoint samples.
(b) two-model (the reference's protocol): the SAME samples scored under the fine-tuned target
    (label 1) and under its base model before fine-tuning (label 0); only samples known to be
    in the fine-tuning set are used (all samples when the data has no labels). Evaluation is
    on the target's members and non-members, disjoint from the training samples.
"""

from __future__ import annotations

import numpy as np

from mmia.data.schema import Dataset
from mmia.errors import InputError
from mmia.fimmia.features import FeatureSet
from mmia.fimmia.network import split_by_sample


def split_parts(dataset: Dataset, eval_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train part, eval part) of a labelled set, by sample, stratified by label."""
    labels = dataset.labels()
    train_idx, eval_idx = split_by_sample(dataset.ids, labels, eval_fraction, seed, salt="fimmia-eval")
    train, ev = dataset.subset(train_idx.tolist()), dataset.subset(eval_idx.tolist())
    assert_disjoint(train.ids, ev.ids)
    return train, ev


def assert_disjoint(train_ids, eval_ids) -> None:
    both = set(train_ids) & set(eval_ids)
    if both:
        raise InputError(
            f"{len(both)} evaluation sample(s) were used to train the attack (first: {sorted(both)[0]}); "
            "evaluate on samples the attack never saw"
        )


def two_model_features(target: FeatureSet, base: FeatureSet) -> FeatureSet:
    """Stack the same samples' features under the target (label 1) and the base model (label 0)."""
    if target.ids != base.ids:
        raise ValueError("target and base features must cover the same samples in the same order")
    keep = np.arange(len(target))
    if target.labels is not None:
        keep = np.flatnonzero(target.labels == 1)
        if len(keep) < 4:
            raise InputError("the two-model protocol trains on known members; fewer than 4 in the training data")
    t, b = target.subset(keep), base.subset(keep)
    t.labels = np.ones(len(t), dtype=np.int64)
    b.labels = np.zeros(len(b), dtype=np.int64)
    return FeatureSet.concat([t, b])
