"""K seeded neighbours per sample, for the text field or the media the config names.

Determinism: neighbour j of technique t of sample s is drawn from
`default_rng(stable_seed("mmia.perturb", seed, s.id, field, t, j))`, so it is the same on every
run and machine, independent of the order or batch the samples come in (never Python's salted
hash()). Its perturbation id `"{field}:{t}:{j}"` names it in caches and tables.

K neighbours are spread evenly over the techniques (technique `i % T` for neighbour i): K=24 over
the 4 text techniques gives 6 each; over the 5 image techniques 5, 5, 5, 5, 4.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, field_validator

from mmia.data.ids import stable_seed
from mmia.data.schema import Sample
from mmia.errors import InputError
from mmia.perturb.audio import AUDIO_TECHNIQUES, perturb_audio
from mmia.perturb.image import IMAGE_TECHNIQUES, perturb_image
from mmia.perturb.text import TEXT_TECHNIQUES, perturb_text
from mmia.perturb.video import VIDEO_TECHNIQUES, perturb_video

PERTURB_VERSION = "1"
TEXT_FIELDS = ("prompt", "answer", "text")
MEDIA_FIELDS = ("image", "audio", "video")
FIELD_CHOICES = ("auto", "prompt", "answer", "text", "media", *MEDIA_FIELDS)


class NeighbourConfig(BaseModel):
    """How neighbours are made (saved with the attack model, so scoring makes the same ones)."""

    k: int = Field(24, ge=1, description="neighbours per sample")
    field: str = Field(
        "auto",
        description="what is perturbed: auto (the answer if there is one, else the text), prompt, answer, text, "
        "media, image, audio, video, or several joined by '+' (e.g. 'answer+media'): neighbours alternate fields",
    )
    seed: int = 0
    edit_fraction: float = Field(0.1, gt=0, le=1)
    min_edits: int = Field(5, ge=1)
    max_edits: int = Field(40, ge=1)
    text_techniques: tuple[str, ...] = TEXT_TECHNIQUES
    image_techniques: tuple[str, ...] = IMAGE_TECHNIQUES
    audio_techniques: tuple[str, ...] = AUDIO_TECHNIQUES
    video_techniques: tuple[str, ...] = VIDEO_TECHNIQUES
    fill_mask_model: str | None = Field(None, description="fill-mask model dir for substitution (else embedding NN)")
    substitution_embeddings: str | None = Field(None, description="BERT-style dir for the offline substitution")
    sampling_rate: int = 16000

    @field_validator("field")
    @classmethod
    def _known_fields(cls, v: str) -> str:
        parts = v.split("+")
        bad = [p for p in parts if p not in FIELD_CHOICES]
        if bad or len(set(parts)) != len(parts):
            raise ValueError(f"field {v!r}: each part must be one of {FIELD_CHOICES}, without repeats")
        return v

    def fingerprint(self) -> str:
        blob = json.dumps([PERTURB_VERSION, self.model_dump(mode="json")], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def techniques_for(self, field: str) -> tuple[str, ...]:
        if field in TEXT_FIELDS:
            return self.text_techniques
        return {"image": self.image_techniques, "audio": self.audio_techniques, "video": self.video_techniques}[field]


@dataclass(frozen=True)
class Neighbour:
    """One perturbed copy of a sample: its text fields (changed or not) and, for a media field,
    the perturbed decoded media (None means the sample's own media)."""

    sample_id: str
    index: int
    perturbation_id: str
    field: str
    technique: str
    text: str | None
    prompt: str | None
    answer: str | None
    media: np.ndarray | None
    n_edits: int

    @property
    def full_text(self) -> str:
        if self.text is not None:
            return self.text
        return " ".join(p for p in (self.prompt, self.answer) if p)


def resolve_field(sample: Sample, field: str) -> str:
    """The concrete field perturbed for this sample; an InputError if the sample lacks it."""
    if field == "auto":
        field = "answer" if sample.answer is not None else "text" if sample.text is not None else "media"
    if field == "media":
        present = [m for m in MEDIA_FIELDS if getattr(sample, m) is not None]
        if not present:
            raise InputError(f"sample {sample.id} has no image, audio or video to perturb", row=sample.row)
        return present[0]
    if getattr(sample, field) is None:
        raise InputError(f"sample {sample.id} has no '{field}' to perturb", row=sample.row)
    return field


def decode_media(sample: Sample, field: str, sampling_rate: int = 16000) -> np.ndarray:
    from mmia.data.media import load_audio, load_image, load_video

    ref = getattr(sample, field)
    if field == "image":
        return load_image(ref)
    if field == "audio":
        return load_audio(ref, sampling_rate)
    return load_video(ref)


class NeighbourMaker:
    """Makes the neighbours of samples under one config (holds the substitution model once)."""

    def __init__(self, config: NeighbourConfig | None = None):
        self.config = config or NeighbourConfig()
        self._substituter = None

    @property
    def substituter(self):
        if self._substituter is None:
            from mmia.perturb.text import EmbeddingSubstituter, MaskedLMSubstituter

            cfg = self.config
            if cfg.fill_mask_model:
                self._substituter = MaskedLMSubstituter(cfg.fill_mask_model)
            else:
                self._substituter = EmbeddingSubstituter(cfg.substitution_embeddings)
        return self._substituter

    def plan(self, sample: Sample) -> list[tuple[str, str, int]]:
        """(field, technique, per-technique index) of each of the K neighbours.

        With several fields, neighbour i perturbs field i % F; within a field, its neighbours
        cycle through that field's techniques.
        """
        fields = [resolve_field(sample, f) for f in self.config.field.split("+")]
        out, seen = [], {}
        for i in range(self.config.k):
            field = fields[i % len(fields)]
            techs = self.config.techniques_for(field)
            if not techs:
                raise ValueError(f"no techniques configured for field {field!r}")
            m = seen.get(field, 0)
            seen[field] = m + 1
            out.append((field, techs[m % len(techs)], m // len(techs)))
        return out

    def make(self, sample: Sample, media: np.ndarray | None = None) -> list[Neighbour]:
        """The K neighbours; `media` is the sample's decoded media if the caller has it."""
        cfg = self.config
        out = []
        for i, (field, tech, j) in enumerate(self.plan(sample)):
            rng = np.random.default_rng(stable_seed("mmia.perturb", cfg.seed, sample.id, field, tech, j))
            fields = {"text": sample.text, "prompt": sample.prompt, "answer": sample.answer}
            new_media, n_edits = None, 0
            if field in TEXT_FIELDS:
                sub = self.substituter if tech == "substitute" else None
                fields[field], n_edits = perturb_text(
                    fields[field],
                    tech,
                    rng,
                    fraction=cfg.edit_fraction,
                    lo=cfg.min_edits,
                    hi=cfg.max_edits,
                    substituter=sub,
                )
            else:
                if media is None:
                    media = decode_media(sample, field, cfg.sampling_rate)
                if field == "image":
                    new_media = perturb_image(media, tech, rng)
                elif field == "audio":
                    new_media = perturb_audio(media, tech, rng, cfg.sampling_rate)
                else:
                    new_media = perturb_video(media, tech, rng)
            out.append(
                Neighbour(
                    sample_id=sample.id,
                    index=i,
                    perturbation_id=f"{field}:{tech}:{j}",
                    field=field,
                    technique=tech,
                    media=new_media,
                    n_edits=n_edits,
                    **fields,
                )
            )
        return out
