"""From samples to FiMMIA features: neighbours -> target losses -> embeddings -> deltas, cached.

Everything computed for a sample (its original and neighbour losses and embeddings) is one
cache value, keyed by the target's fingerprint, the sample's id and content, the neighbour
config and the scorer and embedder settings; a killed run resumes from the last written batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from mmia.cache import Cache, cached_map, fingerprint_dir, make_key
from mmia.data.ids import sample_digest
from mmia.data.schema import MEDIA_FIELDS, Dataset, Sample
from mmia.errors import InputError
from mmia.fimmia.features import FeatureSet, build_features
from mmia.perturb import NeighbourConfig, NeighbourMaker
from mmia.perturb.neighbours import decode_media

# 2: media embeddings from a CLIP/CLAP dir are the contrastive targets' (normalised)
FEATURES_VERSION = "2"


class FimmiaConfig(BaseModel):
    """FiMMIA settings: neighbours, embedders and how the target is scored."""

    neighbours: NeighbourConfig = Field(default_factory=NeighbourConfig)
    text_embedder: str | None = Field(
        "default", description="sentence-transformers dir; 'default' = all-MiniLM-L6-v2 (package), None = off"
    )
    media_embedder: str | None = Field(
        "target", description="'target' (the target's own image encoder), a CLIP/CLAP dir, or None (off)"
    )
    prompt_template: str = "{media}{prompt}"
    answer_sep: str = " "
    answer_template: str | None = Field(None, description="e.g. ' {answer}</s>'; None: answer_sep + answer")
    max_frames: int = 8
    batch_size: int = 32
    # How rows are batched, not what is computed (same losses): kept out of every dump, so
    # cache and shard keys and saved attack models are those of a run without it.
    max_batch_tokens: int | None = Field(
        None, ge=1, exclude=True, description="also cut forward batches at this many padded tokens (rows x width)"
    )
    reuse: bool = Field(True, description="reuse the media encoder output and the prefix KV cache")
    device: str | None = Field(None, description="cpu, cuda, ... (None: CUDA when present)")
    adapter_base: str | None = Field(
        None, description="a PEFT adapter target's base model dir (None: the local one its adapter_config.json names)"
    )


def config_for_testbed(manifest: dict, **overrides) -> FimmiaConfig:
    """A config whose text layout is the one the testbed's models were trained on (its manifest's
    `format`: a prompt with an `<image>` placeholder and an answer template)."""
    fmt = manifest.get("format") or {}
    values = {}
    if "prompt" in fmt:
        values["prompt_template"] = fmt["prompt"].replace("<image>", "{media}")
    if "answer" in fmt:
        values["answer_template"] = fmt["answer"]
    return FimmiaConfig(**{**values, **overrides})


def _target_kind(model_dir: str | Path) -> str:
    from mmia.offline import resolve_model_dir

    cfg_path = Path(resolve_model_dir(model_dir, "target")) / "config.json"
    if not cfg_path.exists():  # e.g. a PEFT adapter: the targets layer knows what it is
        return ""
    return json.loads(cfg_path.read_text(encoding="utf-8")).get("model_type", "")


def make_scorer(target: str | Path, cfg: FimmiaConfig):
    """The loss scorer for the target: LLaVA (image, video) and Whisper (audio) keep their reuse
    paths; every other generative target that `mmia.targets.load_target` accepts is scored through
    the targets layer with full forward passes (`scoring_target.TargetScorer`, which says so)."""
    common = dict(
        batch_size=cfg.batch_size,
        max_batch_tokens=cfg.max_batch_tokens,
        reuse=cfg.reuse,
        prompt_template=cfg.prompt_template,
        answer_sep=cfg.answer_sep,
        answer_template=cfg.answer_template,
        device=cfg.device,
    )
    from mmia.targets.peft_adapter import is_adapter_dir

    loaded = None
    if is_adapter_dir(target):
        # A PEFT adapter, merged into its base once: a plain model of the base's architecture.
        from mmia.targets import load_target

        loaded = load_target(target, device=cfg.device, base=cfg.adapter_base)
        kind = loaded.model.config.model_type
    else:
        kind = _target_kind(target)
    if kind == "llava":
        from mmia.fimmia.scoring_llava import LlavaScorer

        return LlavaScorer(target, max_frames=cfg.max_frames, target=loaded, **common)
    if kind == "whisper":
        from mmia.fimmia.scoring_audio import WhisperScorer

        return WhisperScorer(target, target=loaded, **common)
    from mmia import progress
    from mmia.fimmia.scoring_target import TargetScorer

    scorer = TargetScorer(target, max_frames=cfg.max_frames, target=loaded, **common)
    progress.info(f"FiMMIA on a '{kind or scorer.target.kind}' target: no prefix or media reuse for this "
                  "architecture yet; every original and neighbour is one full forward pass")
    return scorer


def _media_field(s: Sample) -> str | None:
    return next((m for m in MEDIA_FIELDS if getattr(s, m) is not None), None)


class FeatureExtractor:
    """Holds the target scorer, neighbour maker and embedders for one target and config."""

    def __init__(self, target: str | Path, cfg: FimmiaConfig, cache: Cache | None = None, scorer=None,
                 media_scorer=None):
        self.cfg = cfg
        self.target = str(target)
        self.scorer = scorer or make_scorer(target, cfg)
        # Whose encoder embeds the media with media_embedder 'target': in the two-model protocol
        # the target's for the base's rows too, so a row's media deltas cannot tell which model
        # made it (a signal that is gone when only the target is scored).
        self.media_scorer = media_scorer
        self.maker = NeighbourMaker(cfg.neighbours)
        self.cache = cache
        self.text_embedder = None
        if cfg.text_embedder:
            from mmia.targets.sentences import SentenceEmbedder

            self.text_embedder = SentenceEmbedder(cfg.text_embedder)
        self.media_embedder = None
        if cfg.media_embedder and cfg.media_embedder != "target":
            from mmia.fimmia.embedders import ContrastiveMediaEmbedder

            self.media_embedder = ContrastiveMediaEmbedder(cfg.media_embedder)

    def version(self) -> str:
        parts = {
            "features": FEATURES_VERSION,
            "neighbours": self.cfg.neighbours.fingerprint(),
            "scorer": self.scorer.settings(),
            "text": self.text_embedder.model_dir if self.text_embedder else None,
            "media": self.cfg.media_embedder,
        }
        if self.media_scorer is not None and self.cfg.media_embedder == "target":
            parts["media_from"] = self.media_scorer.fingerprint
        if self.text_embedder:
            parts["text_fp"] = fingerprint_dir(self.text_embedder.model_dir)
        return json.dumps(parts, sort_keys=True)

    def _media_emb(self, media_items: list[np.ndarray], field: str) -> np.ndarray:
        if self.cfg.media_embedder == "target":
            encoder = self.media_scorer or self.scorer
            return np.stack([encoder.media_embedding_of(m, field) for m in media_items])
        return self.media_embedder.encode(media_items, field, self.cfg.neighbours.sampling_rate)

    def compute(self, sample: Sample) -> dict[str, np.ndarray]:
        """Losses and embeddings of one sample and its K neighbours (raw, not deltas)."""
        mfield = _media_field(sample)
        media = decode_media(sample, mfield, self.cfg.neighbours.sampling_rate) if mfield else None
        nbs = self.maker.make(sample, media)
        orig_loss, nb_loss = self.scorer.score_sample(sample, nbs, media, mfield)
        value = {"orig_loss": np.array([orig_loss]), "nb_loss": nb_loss}
        if self.text_embedder is not None:
            texts = [sample.full_text] + [nb.full_text for nb in nbs]
            unique = list(dict.fromkeys(texts))  # media neighbours keep the text: embed it once
            emb = self.text_embedder.encode(unique)
            emb = emb[[unique.index(t) for t in texts]]
            value["orig_text"], value["nb_text"] = emb[0], emb[1:]
        own = self.cfg.media_embedder == "target" and mfield is not None
        if own or (self.media_embedder is not None and mfield is not None):
            changed = [i for i, nb in enumerate(nbs) if nb.media is not None]
            embs = self._media_emb([media] + [nbs[i].media for i in changed], mfield)
            nb_media = np.repeat(embs[:1], len(nbs), axis=0)  # unchanged media: zero delta
            nb_media[changed] = embs[1:]
            value["orig_media"], value["nb_media"] = embs[0], nb_media
        return value

    def features(self, dataset: Dataset, description: str = "FiMMIA neighbours") -> FeatureSet:
        from mmia.progress import progress_bar

        version = self.version()
        keys = [make_key(self.scorer.fingerprint, s.id, sample_digest(s)[:16], "fimmia-features", version)
                for s in dataset]
        with progress_bar(description, len(dataset), unit="samples") as bar:
            values = cached_map(
                self.cache,
                keys,
                dataset.samples,
                lambda batch: [self.compute(s) for s in batch],
                batch_size=4,
                on_batch=bar.advance,
            )
        return assemble(dataset, values)


    def original_losses(self, dataset: Dataset, description: str = "FiMMIA original losses") -> np.ndarray:
        """(N,) this model's loss on each sample alone (no neighbours), cached per sample."""
        from mmia.progress import progress_bar

        scorer_settings = json.dumps(self.scorer.settings(), sort_keys=True)
        keys = [make_key(self.scorer.fingerprint, s.id, sample_digest(s)[:16], "fimmia-original-loss",
                         f"{FEATURES_VERSION}|{scorer_settings}") for s in dataset]

        def compute(batch):
            out = []
            for s in batch:
                mfield = _media_field(s)
                media = decode_media(s, mfield, self.cfg.neighbours.sampling_rate) if mfield else None
                out.append({"loss": np.array([self.scorer.score_sample(s, [], media, mfield)[0]])})
            return out

        with progress_bar(description, len(dataset), unit="samples") as bar:
            values = cached_map(self.cache, keys, dataset.samples, compute, batch_size=8, on_batch=bar.advance)
        return np.array([v["loss"][0] for v in values], dtype=np.float64)


def assemble(dataset: Dataset, values: list[dict]) -> FeatureSet:
    """Stack per-sample values into deltas; media deltas only when every sample has them."""
    ks = {len(v["nb_loss"]) for v in values}
    if len(ks) != 1:
        raise InputError("samples have different neighbour counts; rerun with one configuration", dataset.path)
    for s, v in zip(dataset.samples, values, strict=True):
        bad = [i for i, x in enumerate(np.atleast_1d(v["nb_loss"])) if not np.isfinite(x)]
        if not np.isfinite(v["orig_loss"][0]) or bad:
            what = "the sample itself" if not np.isfinite(v["orig_loss"][0]) else f"its neighbour {bad[0]}"
            raise InputError(f"sample '{s.id}': {what} has no finite answer loss (no answer token left to score)",
                             dataset.path, s.row)
    has_text = all("orig_text" in v for v in values)
    has_media = all("orig_media" in v for v in values)
    labels = dataset.labels() if dataset.has_labels else None
    return build_features(
        dataset.ids,
        np.array([v["orig_loss"][0] for v in values]),
        np.stack([v["nb_loss"] for v in values]),
        np.stack([v["orig_text"] for v in values]) if has_text else None,
        np.stack([v["nb_text"] for v in values]) if has_text else None,
        np.stack([v["orig_media"] for v in values]) if has_media else None,
        np.stack([v["nb_media"] for v in values]) if has_media else None,
        labels=labels,
    )
