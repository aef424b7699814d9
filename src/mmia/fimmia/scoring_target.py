"""Target losses of a sample and its neighbours under any generative target of `mmia.targets`.

The architectures with a reuse path of their own (LLaVA: `scoring.LlavaScorer`, Whisper:
`scoring_audio.WhisperScorer`, a subclass of this one) keep it; every other kind that
`load_target` accepts (Qwen2-VL and the other vision-language models, audio-language models such
as Qwen2-Audio, text-only causal LMs, PEFT adapters on any of them) is scored here, through the
target's own encoding: the same layout as the score attacks (chat template, or a prompt used as
written), the same tokenisation, the same media placeholders. The loss of a row is the mean
cross-entropy of its answer tokens (the `answer` slice of `mmia.targets`), so the loss of an
original equals the score attacks' `loss`. There is no prefix or media reuse on this path: every
row, original or neighbour, is one full forward pass, batched (`settings()["reuse"]` says so,
and so does the run's output).

No (B, T, V) logits: each batch runs through the target's `forward_batch`, which keeps the
hidden states its output head is given (`mmia.targets.head`), and the head is applied to the
loss spans' positions only, in groups bounded by free memory, upcast to float32 before the
cross-entropy (`position_nll`); a model whose logits are not its head's (a logit scale, a head
that is no plain linear layer) keeps its full logits, as the score attacks do. Batches are
`batch_size` rows, also cut by a token budget where `max_batch_tokens` is set.

FiMMIA's templates lay text out as `mmia.fimmia.layout` says (shared with the LLaVA scorer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmia.errors import ModelNotFoundError
from mmia.fimmia.scorer_base import ScorerBase

SCORER_VERSION = "2"  # 2: the loss span starts where the prompt part ends


class TargetScorer(ScorerBase):
    """Answer-token losses of originals and neighbours under a target loaded by `load_target`."""

    # `reuse` is accepted for the common interface; this path has nothing to reuse
    reuse_path = "none: every row is a full forward pass (no reuse path for this architecture)"

    def _check_target(self) -> None:
        from mmia.targets import GENERATIVE_KINDS

        if self.target.kind not in GENERATIVE_KINDS:
            raise ModelNotFoundError(
                f"{self.model_dir}: FiMMIA needs a generative target (causal LM, VLM, audio LM); this one is a "
                f"'{self.target.kind}' model (audit CLIP/CLAP models with `mmia umid` or `mmia attack`)"
            )

    def settings(self) -> dict:
        """What changes the losses (part of every cache key)."""
        return {
            "scorer": "target",
            "version": SCORER_VERSION,
            "kind": self.target.kind,
            "format": self.target.format_tag() if hasattr(self.target, "format_tag") else None,
            **self.layout.settings(),
            "answer_sep": self.answer_sep,
            "max_frames": self.max_frames,
            "reuse": self.reuse_path,
        }

    # --- layout ---------------------------------------------------------------------------------
    def _row(self, sample, prompt, answer, text, n_media: int):
        return self.layout.row(self.target, sample, prompt, answer, text, n_media)

    def _media_for_target(self, media, field: str | None):
        """Decoded media as the target reads it (audio resampled to its rate)."""
        if media is None or field != "audio":
            return media
        rate = getattr(self.target, "sampling_rate", None)
        from mmia.perturb.neighbours import NeighbourConfig

        given = NeighbourConfig().sampling_rate
        if rate is None or rate == given:
            return media
        from fractions import Fraction

        from scipy.signal import resample_poly

        frac = Fraction(int(rate), int(given)).limit_denominator(1000)
        return resample_poly(np.asarray(media, dtype=np.float64), frac.numerator, frac.denominator).astype(np.float32)

    def _n_media(self, media, field: str | None) -> int:
        if media is None or not getattr(self.target, "media_field", None):
            return 0
        if field == "video":
            return min(len(media), self.max_frames)
        return 1

    # --- forward passes ------------------------------------------------------------------------
    def losses(self, rows, media: list) -> list[float]:
        """Mean loss-span cross-entropy of each row (NaN without answer tokens), batched.

        Rows are encoded `batch_size` at a time, then run in the batches `batches` cuts (the
        same ones without a token budget). Each batch is one forward pass of the target
        (`forward_batch`): the hidden states with the head applied to the loss spans' positions
        only, or the full logits where the target keeps them (`mmia.targets.head`).
        """
        encs = []
        for s in range(0, len(rows), self.batch_size):
            encs += self.target.encode_batch(rows[s : s + self.batch_size], None, media[s : s + self.batch_size])
        out: list[float] = []
        for cut in self.batches([len(e) for e in encs]):
            out += self.span_losses(self.target.forward_batch(encs[cut]), encs[cut])
        return out

    def span_losses(self, out, encs) -> list[float]:
        """Mean cross-entropy over each encoded row's loss span, from `forward_batch`'s output
        (`mmia.targets.generative.BatchOutput`) for the padded batch of `encs`."""
        width = out.row_source()[0]
        spans = [self.layout.loss_span(e) for e in encs]
        index, targets, lengths = [], [], []
        for i, (e, (start, stop)) in enumerate(zip(encs, spans, strict=True)):
            n = max(stop - start, 0)
            index.append(i * width + np.arange(start - 1, start - 1 + n))  # position t predicts token t + 1
            targets.append(e.input_ids[start : start + n])
            lengths.append(n)
        if not sum(lengths):
            return [float("nan")] * len(encs)
        nll = self.target.position_nll(out, np.concatenate(index), np.concatenate(targets)).cpu().numpy()
        ends = np.cumsum(lengths)
        return [float(nll[end - n : end].mean(dtype=np.float64)) if n else float("nan")
                for n, end in zip(lengths, ends, strict=True)]

    def score_sample(self, sample, neighbours, media: np.ndarray | None, media_field: str | None):
        """(original loss, (K,) neighbour losses) of one sample, each row a full forward pass."""
        own = self._media_for_target(media, media_field)
        n = self._n_media(media, media_field)
        rows = [self._row(sample, sample.prompt, sample.answer, sample.text, n)]
        given = [own]
        for nb in neighbours:
            nb_media = own if nb.media is None else self._media_for_target(nb.media, nb.field)
            rows.append(self._row(sample, nb.prompt, nb.answer, nb.text, self._n_media(nb_media, media_field)))
            given.append(nb_media)
        if not getattr(self.target, "media_field", None):
            given = [None] * len(rows)  # a text-only model reads the text alone
        losses = self.losses(rows, given)
        return losses[0], np.asarray(losses[1:], dtype=np.float64)

    def media_embedding_of(self, media: np.ndarray, field: str) -> np.ndarray:
        """The target's own media embedding: the mean, over the media tokens, of the input
        embeddings the language model receives (the encoder's projected features, merged in)."""
        import torch

        from mmia.data.schema import Sample
        from mmia.targets import AUDIO, IMAGE

        if not getattr(self.target, "media_field", None):
            raise ModelNotFoundError(
                f"{self.model_dir}: this target reads no media, so it has no media embedding of its own; "
                "pass --media-embedder DIR (a CLIP/CLAP model) or --media-embedder none"
            )
        ref = {field: Path("<decoded>")}
        sample = Sample(id="embed", row=0, text="", **ref)
        enc = self.target.encode_batch([sample], None, [self._media_for_target(media, field)])
        inputs = self.target.collate(enc)
        floats = {k: v.to(self.device, self.target.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in inputs.items()}
        text_cfg = getattr(self.target.model.config, "text_config", None) or self.target.model.config
        if getattr(text_cfg, "cross_attention_layers", None):
            return self._cross_attention_media(floats)
        with torch.inference_mode():
            out = self.target.model(**floats, use_cache=False, output_hidden_states=True)
        hidden = out.hidden_states[0][0]
        codes = torch.from_numpy(enc[0].codes).to(hidden.device)
        where = (codes == IMAGE) | (codes == AUDIO)
        if not bool(where.any()):
            raise ModelNotFoundError(f"{self.model_dir}: no media tokens in the target's input to embed")
        return hidden[where].mean(dim=0).float().cpu().numpy()

    def _cross_attention_media(self, inputs) -> np.ndarray:
        """Mllama's media embedding: its media reach the language model through cross-attention, not
        its input embeddings (the <|image|> token's is one for every image), so the mean of the
        projected vision features it attends to, over the real tiles (`aspect_ratio_mask`) and patches."""
        import torch

        model = self.target.model
        proj = next((m for n, m in model.named_modules() if n.endswith("multi_modal_projector")), None)
        if proj is None:
            raise ModelNotFoundError(f"{self.model_dir}: no multi_modal_projector to take the media features from")
        feats = []
        handle = proj.register_forward_hook(lambda _m, _i, out: feats.append(out))
        try:
            with torch.inference_mode():
                model(**inputs, use_cache=False)
        finally:
            handle.remove()
        f = feats[0]  # (batch, images, tiles, patches, hidden)
        mask = inputs.get("aspect_ratio_mask")
        if mask is not None and f.dim() == 5 and tuple(mask.shape) == tuple(f.shape[:3]):
            f = f[mask.bool()]
        return f.reshape(-1, f.shape[-1]).mean(dim=0).float().cpu().numpy()
