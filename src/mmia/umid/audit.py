"""The UMID audit as an importable API: queries + a contrastive model -> scores and entries.

`audit_queries` runs, on one query file:
- `umid`: batched inversion, signals, directional PyOD ensemble fit on a gibberish reference;
  also its two-sided variant and each raw signal (oriented by hypothesis) as diagnostics;
- `umid-name-control` (optional): the same signals with held-out non-member names as the
  reference, evaluated only on queries whose text is not among those names;
- `umid-embedding-control`: no inversion at all: the same reference and detector ensemble on
  the queries' text embeddings alone (what inversion adds over the text tower's own geometry);
  with held-out names given, also `umid-embedding-control:names` (the name reference);
- `umid-media-cosine` (optional): cosine of the query's caption with the person's real media
  (the biometric access UMID does without);
- `umid-sequential` (optional): the predecessors' procedure: pixel/waveform inversion, restarts
  one at a time, 10-character gibberish, two-sided IForest/LOF/OCSVM majority vote.
Inversions are cached per query text (mmia.cache), so an interrupted audit resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from mmia.data.ids import short_hash, stable_seed
from mmia.umid.decide import DETECTORS, PREDECESSOR_DETECTORS, fit_reference, score_queries
from mmia.umid.gibberish import GENERATORS, gibberish
from mmia.umid.invert import InversionSettings, invert
from mmia.umid.signals import SIGNAL_NAMES, SIGNALS, compute_signals, oriented
from mmia.umid.target import media_file_embeddings, text_embeddings

CACHE_VERSION = "umid-1"
# The query as given (a bare name): it assumes nothing about the training captions' wording.
DEFAULT_TEMPLATES = {"clip": "{}", "clap": "{}"}


class UmidConfig(BaseModel):
    """Settings of the UMID audit (defaults: the testbed-validated choices)."""

    restarts: int = Field(8, ge=2, description="independent random restarts per query")
    steps: int = Field(60, ge=1, description="optimisation steps per restart")
    param: Literal["latent", "pixels"] = Field("pixels", description="raw pixels/waveform, or a coarse latent grid")
    grid: int = Field(4, ge=1, le=64, description="latent grid size (g x g)")
    lr: float | None = Field(None, gt=0, description="Adam step size; default 0.1 latent, 0.05 raw")
    template: str | None = Field(None, description="query template with {}; default per model kind")
    reference_size: int = Field(100, ge=10, description="number of gibberish reference queries")
    reference_generators: tuple[str, ...] = GENERATORS
    detectors: tuple[str, ...] = DETECTORS
    contamination: float = Field(0.05, gt=0, lt=0.5, description="reference quantile of the vote threshold")
    seed: int = 0
    batch_size: int = Field(32, ge=1, description="queries optimised together (x restarts)")

    def settings(self) -> InversionSettings:
        lr = self.lr if self.lr is not None else (0.1 if self.param == "latent" else 0.05)
        return InversionSettings(restarts=self.restarts, steps=self.steps, lr=lr, param=self.param, grid=self.grid)


class SequentialConfig(BaseModel):
    """The predecessors' procedure (TUNI for CLIP, USMID for CLAP), restarts run one by one.

    Their step counts (2000 SGD steps on CLIP pixels) are cut to `steps` to stay affordable;
    their restarts shared one start, which we replace with independent starts (else the
    variability signal is zero by construction).
    """

    restarts: int = Field(8, ge=2)
    steps: int = Field(60, ge=1)
    reference_size: int = Field(100, ge=10)
    seed: int = 0
    loop: bool = Field(True, description="restarts one by one as the predecessors ran them; False batches them, "
                       "which gives the same scores (Adam/SGD are elementwise) far faster")

    def settings(self, kind: str) -> InversionSettings:
        if kind == "clip":  # TUNI: SGD lr 0.02 on pixels
            return InversionSettings(self.restarts, self.steps, 0.02, "pixels", optimizer="sgd")
        return InversionSettings(self.restarts, self.steps, 0.03, "pixels", optimizer="adam")  # USMID: Adam(W)


@dataclass
class SignalSet:
    texts: list[str]
    signals: np.ndarray  # (n, k)
    seconds: float
    cos: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def inversion_keys(target, texts: list[str], template: str, settings: InversionSettings, seed: int,
                   sequential: bool = False) -> list[str]:
    """The cache key of each text's inversion (the Ray engine's shards hold them under the same keys)."""
    from mmia.cache import fingerprint_dir, make_key

    peft = getattr(target, "peft", None)  # a merged PEFT adapter: its base and its own weights together
    fp = peft.fingerprint(fingerprint_dir(peft.base)) if peft else fingerprint_dir(target.path)
    variant = f"{CACHE_VERSION}|{settings.key()}|seed{seed}|{'seq' if sequential else 'batch'}"
    return [make_key(fp, t, template, "umid-inversion", variant) for t in texts]


def invert_texts(target, batch: list[str], template: str, settings: InversionSettings, seed: int,
                 sequential: bool = False) -> list[dict]:
    """One batch of queries inverted together: per text its final embeddings z, cosines, trajectory
    and text embedding e. Each query's starts come from its own seed (stable_seed of its text)."""
    import torch

    emb = text_embeddings(target, [template.format(t) for t in batch])
    seeds = [stable_seed("umid-start", seed, t) for t in batch]
    with torch.enable_grad():
        res = invert(target, emb, seeds, settings, sequential=sequential)
    e = emb.numpy()
    return [{"z": res["z"][i], "cos": res["cos"][i], "traj": res["traj"][i], "e": e[i]} for i in range(len(batch))]


def run_inversions(
    target,
    texts: list[str],
    template: str,
    settings: InversionSettings,
    seed: int,
    *,
    cache=None,
    batch_size: int = 32,
    sequential: bool = False,
    description: str = "inverting",
) -> SignalSet:
    """Signals of each text: cached per text, computed in batches of `batch_size` queries."""
    from mmia.cache import cached_map
    from mmia.progress import progress_bar

    keys = inversion_keys(target, texts, template, settings, seed, sequential)

    def compute(batch: list[str]):
        return invert_texts(target, batch, template, settings, seed, sequential)

    t0 = time.time()
    with progress_bar(description, len(texts), unit="queries") as bar:
        values = cached_map(cache, keys, texts, compute, batch_size=batch_size, on_batch=bar.advance)
    seconds = time.time() - t0
    z = np.stack([v["z"] for v in values])
    cos = np.stack([v["cos"] for v in values])
    traj = np.stack([v["traj"] for v in values])
    e = np.stack([v["e"] for v in values])
    anchors = text_embeddings(target, [template.format(a) for a in anchor_texts(seed)]).numpy()
    return SignalSet(list(texts), compute_signals(z, cos, traj, e, anchors), seconds, cos)


@dataclass
class InversionSet:
    """One `run_inversions` call of an audit: what it inverts and how."""

    name: str
    texts: list[str]
    template: str
    settings: InversionSettings
    seed: int
    sequential: bool = False
    batch_size: int = 32


def inversion_sets(target, texts: list[str], config: UmidConfig, *, reference_names: list[str] | None = None,
                   sequential: SequentialConfig | None = None) -> list[InversionSet]:
    """The inversions `audit_queries` runs, in its order: UMID's queries and gibberish reference
    (`umid_scores`), the name control's reference, the sequential baseline's queries and reference
    (`sequential_scores`). The Ray engine computes these ahead; the audit then finds them cached."""
    template = config.template or DEFAULT_TEMPLATES[target.kind]
    st = config.settings()
    umid = dict(template=template, settings=st, seed=config.seed, batch_size=config.batch_size)
    out = [InversionSet("queries", list(texts), **umid),
           InversionSet("reference", gibberish(config.reference_size, config.seed, config.reference_generators),
                        **umid)]
    if reference_names is not None:
        out.append(InversionSet("control names", list(reference_names), **umid))
    if sequential is not None:
        seq = dict(template=DEFAULT_TEMPLATES[target.kind], settings=sequential.settings(target.kind),
                   seed=sequential.seed, sequential=sequential.loop)
        out += [InversionSet("sequential queries", list(texts), **seq),
                InversionSet("sequential reference", gibberish(sequential.reference_size, sequential.seed, ("chars",)),
                             **seq)]
    return out


def anchor_texts(seed: int, n: int = 32) -> list[str]:
    """Fixed pseudo-word texts (never a query) against which an inversion's specificity is measured."""
    return gibberish(n, stable_seed("umid-anchors", seed), ("pseudowords",))


@dataclass
class MethodScores:
    """One method's per-query scores plus what the report shows beside them."""

    name: str
    scores: np.ndarray
    seconds: float | None = None
    notes: str = ""
    params: dict = field(default_factory=dict)
    votes: np.ndarray | None = None
    mask: np.ndarray | None = None  # queries this method may be evaluated on (None: all)


@dataclass
class AuditOutput:
    ids: list[str]
    texts: list[str]
    labels: np.ndarray | None
    methods: list[MethodScores]
    info: dict


def _directional_note(fitted_dirs) -> str:
    parts = [f"{n} {'higher' if d > 0 else 'lower'}" for n, d in zip(SIGNAL_NAMES, fitted_dirs, strict=True)]
    return "member = " + ", ".join(parts) + " than the reference"


def umid_scores(
    target, texts: list[str], config: UmidConfig, *, cache=None, reference_texts: list[str] | None = None,
    label: str = "umid", with_diagnostics: bool = True,
) -> tuple[list[MethodScores], dict]:
    """UMID on `texts`; the reference is gibberish unless `reference_texts` is given (the control)."""
    template = config.template or DEFAULT_TEMPLATES[target.kind]
    st = config.settings()
    q = run_inversions(target, texts, template, st, config.seed, cache=cache, batch_size=config.batch_size,
                       description=f"{label}: queries")
    ref_texts = reference_texts or gibberish(config.reference_size, config.seed, config.reference_generators)
    ref = run_inversions(target, ref_texts, template, st, config.seed, cache=cache, batch_size=config.batch_size,
                         description=f"{label}: reference")
    dirs = [SIGNALS[n][0] for n in SIGNAL_NAMES]
    t0 = time.time()
    fitted = fit_reference(ref.signals, dirs, directional=True, detectors=config.detectors,
                           contamination=config.contamination, seed=config.seed)
    dec = score_queries(fitted, q.signals)
    per_query = (q.seconds + ref.seconds + time.time() - t0) / max(1, len(texts))
    params = {"settings": st.key(), "template": template, "reference": "gibberish" if reference_texts is None
              else "non-member names", "n_reference": len(ref_texts), "detectors": list(config.detectors)}
    out = [MethodScores(label, dec.score, seconds=q.seconds + ref.seconds, votes=dec.member,
                        notes=_directional_note(dirs), params=params | {"per_query_seconds": per_query})]
    info = {
        "reference_signal_means": dict(zip(SIGNAL_NAMES, ref.signals.mean(0).round(4).tolist(), strict=True)),
        "query_signal_means": dict(zip(SIGNAL_NAMES, q.signals.mean(0).round(4).tolist(), strict=True)),
        "per_query_seconds": per_query,
        "votes_per_detector": {n: dec.votes[:, i] for i, n in enumerate(fitted.detectors)},
    }
    if with_diagnostics:
        two = score_queries(
            fit_reference(ref.signals, dirs, directional=False, detectors=config.detectors,
                          contamination=config.contamination, seed=config.seed),
            q.signals,
        )
        out.append(MethodScores(f"{label}:two-sided", two.score, votes=two.member,
                                notes="two-sided ensemble: any deviation from the reference counts as member"))
        ori = oriented(q.signals)
        for j, n in enumerate(SIGNAL_NAMES):
            d, what = SIGNALS[n]
            out.append(MethodScores(f"{label}:{n}", ori[:, j],
                                    notes=f"{what}; scored {'as is' if d > 0 else 'negated'} "
                                    f"(hypothesis: {'higher' if d > 0 else 'lower'} = member)"))
    return out, info


def embedding_control_scores(
    target, texts: list[str], config: UmidConfig, *, reference_texts: list[str] | None = None,
    label: str = "umid-embedding-control",
) -> MethodScores:
    """The no-inversion control: UMID's reference and ensemble, fit on the reference texts'
    normalised embeddings (through UMID's template) and scored on the queries'. Two-sided, since
    no coordinate of an embedding has a hypothesised member direction."""
    template = config.template or DEFAULT_TEMPLATES[target.kind]
    t0 = time.time()
    ref_texts = reference_texts or gibberish(config.reference_size, config.seed, config.reference_generators)
    ref = text_embeddings(target, [template.format(t) for t in ref_texts]).numpy().astype(np.float64)
    q = text_embeddings(target, [template.format(t) for t in texts]).numpy().astype(np.float64)
    fitted = fit_reference(ref, np.ones(ref.shape[1]), directional=False, detectors=config.detectors,
                           contamination=config.contamination, seed=config.seed)
    dec = score_queries(fitted, q)
    what = "gibberish" if reference_texts is None else "non-member names"
    return MethodScores(label, dec.score, seconds=time.time() - t0, votes=dec.member,
                        notes=f"no inversion: the {what} reference and the same detectors on text embeddings "
                        f"alone ({ref.shape[1]} dimensions); what inversion adds is umid minus this",
                        params={"template": template, "reference": what, "n_reference": len(ref_texts),
                                "detectors": list(config.detectors), "features": "text embedding"})


def sequential_scores(target, texts: list[str], config: SequentialConfig, *, cache=None) -> MethodScores:
    """The predecessors' pipeline with restarts run one at a time."""
    template = DEFAULT_TEMPLATES[target.kind]
    st = config.settings(target.kind)
    q = run_inversions(target, texts, template, st, config.seed, cache=cache, sequential=config.loop,
                       description="sequential baseline: queries")
    ref_texts = gibberish(config.reference_size, config.seed, ("chars",))
    ref = run_inversions(target, ref_texts, template, st, config.seed, cache=cache, sequential=config.loop,
                         description="sequential baseline: reference")
    cols = [SIGNAL_NAMES.index("similarity"), SIGNAL_NAMES.index("variability")]
    fitted = fit_reference(ref.signals[:, cols], [1, -1], directional=False, detectors=PREDECESSOR_DETECTORS,
                           seed=config.seed)
    dec = score_queries(fitted, q.signals[:, cols])
    return MethodScores("umid-sequential", dec.score, seconds=q.seconds + ref.seconds, votes=dec.member,
                        notes="predecessors: raw-input inversion, restarts one by one, 10-character gibberish, "
                        "two-sided IForest/LOF/OCSVM on (similarity, variability)",
                        params={"settings": st.key(), "restarts_looped": config.loop,
                                "per_query_seconds": (q.seconds + ref.seconds) / len(texts)})


def media_cosine_scores(target, captions: list[str], media: list[Path]) -> MethodScores:
    """Cosine of each query's caption with the person's real image/audio (biometric access)."""
    t0 = time.time()
    te = text_embeddings(target, captions)
    me = media_file_embeddings(target, media)
    return MethodScores("umid-media-cosine", (te * me).sum(-1).numpy().astype(np.float64),
                        seconds=time.time() - t0,
                        notes="uses the person's real photo/voice: what biometric access buys")


def hashed_ids(ids: list[str], show: bool) -> list[str]:
    return list(ids) if show else [short_hash(i) for i in ids]
