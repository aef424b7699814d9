"""The one typed sample schema every loader produces, and the dataset that holds the samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MEDIA_FIELDS = ("image", "audio", "video")


@dataclass(frozen=True)
class Sample:
    """One row of a member/non-member set.

    Media fields hold resolved absolute paths; they are decoded only when asked
    (`mmia.data.media`), so loading a large set costs no image decoding.
    """

    id: str
    row: int
    text: str | None = None
    prompt: str | None = None
    answer: str | None = None
    # A resolved path, or the file's bytes (datasets Image/Audio columns).
    image: Path | bytes | None = None
    audio: Path | bytes | None = None
    video: Path | None = None
    label: int | None = None

    @property
    def full_text(self) -> str:
        """The whole text of the row: `text`, or prompt and answer joined by a space."""
        if self.text is not None:
            return self.text
        parts = [p for p in (self.prompt, self.answer) if p]
        return " ".join(parts)

    @property
    def modalities(self) -> tuple[str, ...]:
        mods = ["text"] if (self.text or self.prompt or self.answer) else []
        mods += [m for m in MEDIA_FIELDS if getattr(self, m) is not None]
        return tuple(mods)


@dataclass(frozen=True)
class SkippedRow:
    """A row left out because the user passed --skip-bad; always listed in the results."""

    row: int
    reason: str
    id: str | None = None

    def to_dict(self) -> dict:
        return {"row": self.row, "id": self.id, "reason": self.reason}


@dataclass
class Dataset:
    """Samples loaded from one file, in file order, plus the rows that were skipped."""

    path: Path
    samples: list[Sample]
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    @property
    def has_labels(self) -> bool:
        return bool(self.samples) and all(s.label is not None for s in self.samples)

    def labels(self) -> np.ndarray:
        """Labels as an int array (1 = member); raises if any sample is unlabelled."""
        from mmia.errors import InputError

        missing = [s.row for s in self.samples if s.label is None]
        if missing:
            raise InputError(
                f"{len(missing)} row(s) have no label (first: row {missing[0]}); "
                "this command needs a 'label' column (1/0, true/false, member/nonmember)",
                self.path,
            )
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def n_members(self) -> int:
        return sum(1 for s in self.samples if s.label == 1)

    @property
    def n_nonmembers(self) -> int:
        return sum(1 for s in self.samples if s.label == 0)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in any row, in a fixed order."""
        present = set()
        for s in self.samples:
            present.update(s.modalities)
        return tuple(m for m in ("text", *MEDIA_FIELDS) if m in present)

    def subset(self, indices) -> Dataset:
        return Dataset(self.path, [self.samples[i] for i in indices], list(self.skipped))

    def summary(self) -> dict:
        return {
            "path": str(self.path),
            "n_samples": len(self.samples),
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "modalities": list(self.modalities),
            "n_skipped": len(self.skipped),
        }
