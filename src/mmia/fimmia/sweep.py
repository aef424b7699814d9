"""Choose FiMMIA's neighbours on the training rows: which field is perturbed, and how much.

The reference fixes its neighbours (a field and an edit budget per modality); on a given target
another choice may carry more signal. Each candidate's training-free neighbourhood score (mean
neighbour-minus-original loss, Mattern et al. 2023) is measured on the attack's training rows
only, and the best is the configuration the network is then trained and scored with, so the
evaluation samples play no part in the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmia.perturb import NeighbourConfig

# Edits per text neighbour: a fixed count, or 10% of the words (at least one).
EDIT_SETTINGS: dict[str, dict] = {
    "1": dict(min_edits=1, max_edits=1),
    "2": dict(min_edits=2, max_edits=2),
    "5": dict(min_edits=5, max_edits=5),
    "10%": dict(edit_fraction=0.1, min_edits=1, max_edits=40),
}
TEXT_SWEEP_FIELDS = ("answer", "prompt")


def candidates(base: NeighbourConfig, *, fields=TEXT_SWEEP_FIELDS, edits=tuple(EDIT_SETTINGS),
               media: bool = True, keep_base: bool = True) -> dict[str, NeighbourConfig]:
    """Named neighbour configurations: each text field at each edit setting, the media alone (its
    perturbations have no edit count), and `base` itself (named "base: <field>")."""
    out = {}
    if keep_base:
        out[f"base: {base.field}"] = base
    for f in fields:
        for e in edits:
            out[f"{f} x{e}"] = base.model_copy(update={"field": f, **EDIT_SETTINGS[e]})
    if media:
        out["media"] = base.model_copy(update={"field": "media"})
    return out


@dataclass
class SweepResult:
    """The chosen candidate and every candidate's training-row AUC (NaN where it could not be scored)."""

    chosen: str
    config: NeighbourConfig
    train_auc: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> why it was left out

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "neighbours": self.config.model_dump(mode="json"),
                "train_auc": self.train_auc, "skipped": self.skipped}


def neighbourhood_auc(loss_deltas: np.ndarray, labels: np.ndarray) -> float:
    """AUC of the mean neighbour-minus-original loss (members' neighbours lose more: larger = member)."""
    from sklearn.metrics import roc_auc_score

    score = np.asarray(loss_deltas, dtype=np.float64).mean(axis=1)
    return float(roc_auc_score(np.asarray(labels), score))


def choose(train_aucs: dict[str, float], configs: dict[str, NeighbourConfig], skipped=None) -> SweepResult:
    """The candidate with the highest training AUC (the first listed on a tie)."""
    scored = {n: a for n, a in train_aucs.items() if np.isfinite(a)}
    if not scored:
        raise ValueError("no neighbour candidate could be scored on the training rows")
    best = max(scored, key=lambda n: (scored[n], -list(configs).index(n)))
    return SweepResult(best, configs[best], dict(train_aucs), dict(skipped or {}))


def sweep_fields(samples) -> tuple[tuple[str, ...], bool]:
    """(text fields every sample has, whether every sample has media): what the sweep can perturb."""
    from mmia.perturb.neighbours import MEDIA_FIELDS

    text = tuple(f for f in ("answer", "prompt", "text") if all(getattr(s, f) for s in samples))
    media = all(any(getattr(s, m) is not None for m in MEDIA_FIELDS) for s in samples)
    return text, media


def sweep_neighbours(configs: dict[str, NeighbourConfig], features_of) -> tuple[SweepResult, dict]:
    """Score every candidate on the training rows and choose one.

    `features_of(config) -> FeatureSet` computes a candidate's training features with their labels
    (member / non-member rows, or in the two-model protocol target / base rows); a candidate it
    refuses with an InputError (e.g. a sample without that field) is left out and said why.
    Returns the choice and each candidate's FeatureSet (the chosen one trains the network).
    """
    from mmia.errors import InputError

    aucs, skipped, feats = {}, {}, {}
    for name, nc in configs.items():
        try:
            fs = features_of(nc)
        except InputError as exc:
            skipped[name] = str(exc).splitlines()[0]
            aucs[name] = float("nan")
            continue
        if fs.labels is None or len(np.unique(fs.labels)) < 2:
            raise InputError("the neighbour sweep chooses on training rows of two classes (members and "
                             "non-members, or target and base rows); these have one")
        feats[name] = fs
        aucs[name] = neighbourhood_auc(fs.loss, fs.labels)
    return choose(aucs, configs, skipped), feats
