"""Typed results: the objects every command fills, written as results.json and scores.parquet."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmia import __version__
from mmia.metrics import evaluate


class AttackEntry(BaseModel):
    """One method's evaluation on one member/non-member set (a row of a results table)."""

    model_config = ConfigDict(extra="allow")

    name: str
    auc: float | None = None
    auc_ci95: tuple[float, float] | None = None
    tpr_at_fpr: dict[str, float] = Field(default_factory=dict)
    seconds: float | None = None
    n_members: int | None = None
    n_nonmembers: int | None = None
    # The paper the method implements (from the registry), and free-form facts the report
    # shows beside the figures (direction of a signal, settings).
    paper: str | None = None
    notes: str | None = None
    params: dict = Field(default_factory=dict)

    @classmethod
    def from_scores(cls, name: str, labels, scores, seconds: float | None = None, seed: int = 0, **extra):
        m = evaluate(labels, scores, seed=seed, with_roc=False)
        return cls(name=name, seconds=seconds, **m, **extra)


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    path: str
    n_members: int
    n_nonmembers: int
    n_samples: int | None = None
    n_skipped: int = 0

    @classmethod
    def of(cls, dataset, *, labels=None, n_dropped: int = 0) -> DatasetInfo:
        """The set's counts as evaluated: with `n_dropped` rows left out after loading (bad media the
        engine met), the samples and the members/non-members are those of `labels`, the rows scored."""
        info = cls(
            path=str(dataset.path),
            n_members=dataset.n_members,
            n_nonmembers=dataset.n_nonmembers,
            n_samples=len(dataset),
            n_skipped=len(dataset.skipped) + n_dropped,
        )
        if n_dropped:
            info.n_samples = len(dataset) - n_dropped
            if labels is not None:
                info.n_members = int((np.asarray(labels) == 1).sum())
                info.n_nonmembers = int((np.asarray(labels) == 0).sum())
        return info


class Section(BaseModel):
    """Results of one audit of one set (the demo holds one per testbed and method family)."""

    model_config = ConfigDict(extra="allow")

    name: str
    command: str | None = None
    dataset: DatasetInfo | None = None
    target: str | None = None
    reference: str | None = None
    attacks: list[AttackEntry] = Field(default_factory=list)
    verdict: str | None = None
    verdict_detail: str | None = None
    skipped: list[dict] = Field(default_factory=list)
    notes: str | None = None


class RunResult(Section):
    """The top level of results.json: a section plus version, command and sub-sections."""

    mmia_version: str = __version__
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    settings: dict = Field(default_factory=dict)
    sections: list[Section] = Field(default_factory=list)

    @classmethod
    def of_section(cls, section: Section, **update) -> RunResult:
        """A run holding one audit: the section's fields at the top level (what a single command writes)."""
        return cls(**{**section.model_dump(), **update})


class ScoreTable:
    """Per-sample scores of one set: ids, labels and one column per method (higher = member)."""

    def __init__(self, ids, labels=None, section: str | None = None):
        self.ids = [str(i) for i in ids]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.section = section
        self.columns: dict[str, np.ndarray] = {}

    def add(self, name: str, scores) -> None:
        arr = np.asarray(scores, dtype=np.float64)
        if arr.shape != (len(self.ids),):
            raise ValueError(f"scores for '{name}' have shape {arr.shape}, expected ({len(self.ids)},)")
        self.columns[name] = arr

    def to_frame(self):
        import pandas as pd

        df = pd.DataFrame({"id": self.ids})
        if self.section is not None:
            df.insert(0, "section", self.section)
        df["label"] = pd.array(self.labels if self.labels is not None else [None] * len(self.ids), dtype="Int64")
        for name, col in self.columns.items():
            df[name] = col
        return df


class SectionScores(NamedTuple):
    """What a method family returns for one audited set: its section and its per-sample scores."""

    section: Section
    scores: ScoreTable | None = None


def _clean(obj):
    """JSON cannot hold NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_results(out_dir: str | Path, result: RunResult, scores: ScoreTable | list[ScoreTable] | None) -> Path:
    """Write results.json and scores.parquet into `out_dir` (created), atomically per file; with no
    scores, an empty table (the report and readers expect the file)."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = _clean(result.model_dump(mode="json", exclude_none=False))
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / "results.json")
    tables = [] if scores is None else scores if isinstance(scores, list) else [scores]
    if tables:
        df = pd.concat([t.to_frame() for t in tables], ignore_index=True)
    else:
        df = pd.DataFrame({"section": pd.Series([], dtype=str), "id": pd.Series([], dtype=str),
                           "label": pd.array([], dtype="Int64")})
    tmp = out / "scores.parquet.tmp"
    df.to_parquet(tmp, index=False)
    tmp.replace(out / "scores.parquet")
    return out / "results.json"


def read_results(out_dir: str | Path) -> RunResult:
    from mmia.errors import InputError

    path = Path(out_dir) / "results.json"
    if not path.exists():
        raise InputError("no results.json here (is this a results directory?)", Path(out_dir))
    try:
        return RunResult.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"not a valid mmia results file ({first})", path) from None
