"""Target losses of a sample and its neighbours on a LLaVA-style model, with computation reuse.

The model, its processor and the text layout come from the targets layer (`mmia.targets`): each
row is encoded by the target as the score attacks encode it (its chat template, or a prompt used
as written; FiMMIA's templates map onto that, `mmia.fimmia.layout`), so FiMMIA's loss of an
original is the attacks' answer loss (tested). A text neighbour keeps the original's image: it
is tokenised without the processor, its placeholders expanded as the processor expanded the
original's (checked on the original itself, else the processor encodes every row). The loss is
the mean cross-entropy over the loss span (`FimmiaLayout.loss_span`: the answer tokens, or the
answer template's whole text).

Paths, chosen by what the neighbours change:
- text changes (answer, text or prompt): the original's whole sequence runs ONCE with the pixel
  values; each neighbour reuses the original's hidden states and key-value cache over the
  longest token prefix it shares with it (media tokens, the prompt when only the answer
  changes, and the answer up to its first edit), and only its tail runs, tails packed several
  to a batch row under a 4-D mask (`mmia.fimmia.packing`), on the cache broadcast over the rows.
- text changes but a tail holds media tokens (a template with text before the media, and the
  prompt changes): the vision tower + projector run ONCE per sample; each neighbour's input
  embeddings get those image features scattered in, and only the language model runs.
- media changes: every neighbour has its own pixel values; one batched full forward.
`reuse=False` scores every row from scratch (full forward with pixel values per row): the
baseline of `benchmarks/fimmia.py`, and the reference for the equivalence test.
Logits are computed only at the answer positions (the lm_head is the largest matmul per
position with a real vocabulary).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmia.fimmia.packing import choose_width, common_prefix_len, hidden_index, pack_tails
from mmia.fimmia.scorer_base import ScorerBase

# 2: the targets layer's layout and tokenisation (the score attacks'), answer_template tokens in the loss
SCORER_VERSION = "3"  # 3: the loss span starts where the prompt part ends


def head_group(device, vocab: int, n: int) -> int:
    """Positions per lm_head call: all `n` on CPU (one call, as before), else as many as the
    statistics' groups allow on that device (free memory), so a GPU never holds (n, V) at once."""
    from mmia.targets.generative import device_group_rows

    return n if device.type == "cpu" else device_group_rows(device, vocab)


def losses_at(head, table: torch.Tensor, index: list[list[int]], answers) -> list[float]:
    """Mean cross-entropy of each row's answer, where `table[index[i][j]]` is the hidden state that
    predicts answer token j of row i; NaN for a row without answer tokens. One gather and one
    lm_head call for all rows (the head is the largest matmul per position); on an accelerator, in
    groups of positions bounded by its free memory, as the statistics' groups are."""
    rows = [i for i, ans in enumerate(answers) for _ in ans]
    if not rows:
        return [float("nan")] * len(answers)
    dev = table.device
    flat = torch.tensor([k for ix in index for k in ix], device=dev)
    targets = torch.tensor([t for ans in answers for t in ans], device=dev)
    group = head_group(dev, head.weight.shape[0], len(flat))
    nll = torch.cat([torch.nn.functional.cross_entropy(head(table[flat[g : g + group]]).float(),
                                                       targets[g : g + group], reduction="none")
                     for g in range(0, len(flat), group)])
    sums = torch.zeros(len(answers), dtype=nll.dtype, device=dev).index_add_(0, torch.tensor(rows, device=dev), nll)
    counts = torch.tensor([len(a) for a in answers], dtype=nll.dtype, device=dev)
    return (sums / counts).tolist()  # 0/0 -> NaN for an empty answer


def hidden_answer_losses(head, hidden: torch.Tensor, starts, answers) -> list[float]:
    """Mean cross-entropy of each row's answer tokens, where `hidden[i, starts[i] - 1 + j]` is the
    state that predicts answer token j of row i; NaN for a row without answer tokens."""
    width = hidden.shape[1]
    index = [list(range(i * width + s - 1, i * width + s - 1 + len(a))) for i, (s, a) in enumerate(
        zip(starts, answers, strict=True))]
    return losses_at(head, hidden.reshape(-1, hidden.shape[-1]), index, answers)


def _broadcast_cache(cache, n: int, length: int):
    """A shallow copy of a batch-1 KV cache cut to its first `length` positions and broadcast (not
    copied) over `n` rows: the forward concatenates new keys/values onto it (one copy, which it
    makes anyway) and never writes into the original's tensors, so one cache serves every call."""
    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        new.keys = layer.keys[:, :, :length].expand(n, -1, -1, -1)
        new.values = layer.values[:, :, :length].expand(n, -1, -1, -1)
        out.layers.append(new)
    return out


def _token_cost(cfg) -> float:
    """A token's multiply-adds outside attention (q/k/v/o projections, a gated MLP) per layer, in
    units of one query-key pair's attention (q.k and the weighted v: 2 * heads * head_dim)."""
    h = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or h // heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    qd, kvd = heads * head_dim, kv * head_dim
    mlp = getattr(cfg, "intermediate_size", None) or 4 * h  # a config without one: the usual 4x
    return (2 * h * qd + 2 * h * kvd + 3 * h * mlp) / (2 * qd)


@dataclass
class Row:
    """One sequence to score: prefix ids (image tokens expanded), answer ids, its images."""

    prefix: list[int]
    answer: list[int]
    pixel_values: torch.Tensor | None  # (n_images, 3, H, W) or None


class LlavaScorer(ScorerBase):
    """Answer-token losses of originals and neighbours under a LlavaForConditionalGeneration,
    loaded and laid out by the targets layer (`mmia.targets`: the score attacks' layout and
    tokenisation), with the reuse paths above."""

    target_kind = "vlm"

    def _setup(self) -> None:
        self.model = self.target.model
        self.tokenizer = self.target.tokenizer
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._token_cost = _token_cost(self.model.config.text_config)
        self._cache_kwarg = "cache" in inspect.signature(type(self.model.model).forward).parameters

    def settings(self) -> dict:
        """What changes the losses (part of every cache key); `reuse` does not, by design."""
        return {
            "scorer": "llava",
            "version": SCORER_VERSION,
            "format": self.target.format_tag(),
            **self.layout.settings(),
            "max_frames": self.max_frames,
        }

    # --- inputs: the target's encoding ----------------------------------------------------------
    def _pixels(self, enc) -> torch.Tensor | None:
        pv = enc.extras.get("pixel_values")
        return None if pv is None else pv.to(self.device, self.model.dtype)

    @property
    def tokens_per_image(self) -> int:
        """Image tokens the processor makes of one (8 x 8) image."""
        from mmia.data.schema import Sample
        from mmia.targets import IMAGE

        img = np.zeros((8, 8, 3), dtype=np.uint8)
        enc = self.target.encode_batch([Sample(id="t", row=0, text="", image=Path("<decoded>"))], None, [img])[0]
        return int((enc.codes == IMAGE).sum())

    def _n_items(self, media, field: str | None) -> int:
        if media is None:
            return 0
        return min(len(media), self.max_frames) if field == "video" else 1

    def _rows(self, sample, variants, media, field, with_pixels: bool) -> list[Row]:
        """Rows of `variants` ((prompt, answer, text) each) on `media`, encoded by the target."""
        from mmia.targets import IMAGE

        n = self._n_items(media, field)
        samples = [self.layout.row(self.target, sample, p, a, t, n) for p, a, t in variants]
        if with_pixels or media is None:
            encs = self.target.encode_batch(samples, None, [media] * len(samples))
        else:
            # Text variants on the original's media: tokenised without the processor, the image
            # placeholders expanded as the processor expanded the original's (checked: the first
            # variant is the original itself, encoded both ways).
            first = self.target.encode_batch(samples[:1], None, [media])[0]
            per = int((first.codes == IMAGE).sum()) // max(n, 1)
            encs = self.target.encode_text_batch(samples, [media] * len(samples), per)
            if not np.array_equal(encs[0].input_ids, first.input_ids):
                encs = self.target.encode_batch(samples, None, [media] * len(samples))
            encs[0] = first
        rows = []
        for e in encs:
            start, stop = self.layout.loss_span(e)
            ids = e.input_ids.tolist()
            rows.append(Row(ids[:start] if stop else ids, ids[start:stop], self._pixels(e)))
        if not with_pixels and media is not None:
            rows = [Row(r.prefix, r.answer, rows[0].pixel_values) for r in rows]
        return rows

    # --- forward passes ------------------------------------------------------------------------
    def _answer_losses(self, hidden: torch.Tensor, starts, answers) -> list[float]:
        """Mean CE of each row's answer; `hidden[i, starts[i]-1+j]` predicts answer token j.

        One gather and one lm_head call for the whole batch (the head is the largest matmul)."""
        return hidden_answer_losses(self.model.get_output_embeddings(), hidden, starts, answers)

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)  # right padding: padded positions come after every real one

    def score_rows(self, rows: list[Row]) -> list[float]:
        """Full forward per row (vision tower included), batched."""
        out = []
        for cut in self.batches([len(r.prefix) + len(r.answer) for r in rows]):
            chunk = rows[cut]
            ids, mask = self._pad([r.prefix + r.answer for r in chunk])
            pv = [r.pixel_values for r in chunk if r.pixel_values is not None]
            hidden = self.model.model(
                input_ids=ids, attention_mask=mask, pixel_values=torch.cat(pv) if pv else None
            ).last_hidden_state
            out += self._answer_losses(hidden, [len(r.prefix) for r in chunk], [r.answer for r in chunk])
        return out

    def _lm(self, **kwargs):
        """The LLaVA model (no lm_head); `cache` is the KV-cache argument's name since transformers
        5.x renamed it from `past_key_values`."""
        if "cache" in kwargs and not self._cache_kwarg:
            kwargs["past_key_values"] = kwargs.pop("cache")
        return self.model.model(**kwargs)

    @staticmethod
    def _attention_mask(allowed: torch.Tensor, dtype) -> torch.Tensor:
        """A custom (B, 1, Q, K) additive mask: taken as-is by both eager attention and SDPA (where
        it measured a little faster on CPU than the boolean form)."""
        # (not allowed) * min: several times cheaper on CPU than masked_fill_ with a boolean mask
        return (allowed.logical_not().to(dtype) * torch.finfo(dtype).min)[:, None]

    def score_on_shared_prefix(self, rows: list[Row]) -> list[float] | None:
        """Rows that share their media, rows[0] the original: run its whole sequence ONCE with the
        pixel values; every other row takes the original's hidden states and KV cache over the
        longest token prefix it shares with it (media tokens, the unchanged prompt, the answer up to
        the first edit) and runs only its tail, tails packed several to a batch row (see
        `mmia.fimmia.packing`). None when a row has media tokens in its tail (a template with text
        before the media, a prompt edit): the caller then reuses vision features."""
        image_id = self.model.config.image_token_id
        seqs = [r.prefix + r.answer for r in rows]
        ref = seqs[0]
        shared = [common_prefix_len(ref, s) for s in seqs]
        if any(image_id in s[c:] for s, c in zip(seqs, shared, strict=True)):
            return None
        ref_ids = torch.tensor([ref], dtype=torch.long, device=self.device)
        pre = self._lm(input_ids=ref_ids, pixel_values=rows[0].pixel_values, use_cache=True)
        cache = pre.cache if hasattr(pre, "cache") else pre.past_key_values
        n = len(ref)
        # the last token of a row predicts nothing: its tail stops before it
        tails = [s[c : len(s) - 1] for s, c in zip(seqs, shared, strict=True)]
        n_past = max((c for t, c in zip(tails, shared, strict=True) if t), default=0)
        width = choose_width([len(t) for t in tails], n_past, self._token_cost)
        packed = pack_tails(tails, shared, self._pad_id, width)
        table = [pre.last_hidden_state[0]]
        dtype = pre.last_hidden_state.dtype
        for sl in self.batches([packed.ids.shape[1]] * packed.n_bins):  # every bin is `width` tokens
            mask = self._attention_mask(torch.from_numpy(packed.allowed[sl]).to(self.device), dtype)
            hidden = self._lm(
                input_ids=torch.from_numpy(packed.ids[sl]).to(self.device),
                position_ids=torch.from_numpy(packed.positions[sl]).to(self.device),
                attention_mask=mask,
                cache=_broadcast_cache(cache, mask.shape[0], packed.n_past),
            ).last_hidden_state
            table.append(hidden.reshape(-1, hidden.shape[-1]))
        idx = [
            hidden_index(len(r.prefix), len(s), c, n, f)
            for r, s, c, f in zip(rows, seqs, shared, packed.flat_start, strict=True)
        ]
        return losses_at(self.model.get_output_embeddings(), torch.cat(table), idx, [r.answer for r in rows])

    def score_prompts_on_features(self, rows: list[Row], pixel_values) -> list[float]:
        """Run the vision tower + projector once; reuse its features for every row (same media)."""
        feats = None
        if pixel_values is not None:
            feats = torch.cat(list(self.model.model.get_image_features(pixel_values=pixel_values).pooler_output))
        embed = self.model.get_input_embeddings()
        image_id = self.model.config.image_token_id
        out = []
        for cut in self.batches([len(r.prefix) + len(r.answer) for r in rows]):
            chunk = rows[cut]
            ids, mask = self._pad([r.prefix + r.answer for r in chunk])
            emb = embed(ids)
            if feats is not None:
                where = (ids == image_id).unsqueeze(-1).expand_as(emb)
                emb = emb.masked_scatter(where, feats.repeat(len(chunk), 1).to(emb.dtype))
            hidden = self.model.model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
            out += self._answer_losses(hidden, [len(r.prefix) for r in chunk], [r.answer for r in chunk])
        return out

    @torch.no_grad()
    def media_embedding_of(self, media: np.ndarray, field: str) -> np.ndarray:
        """The target's own media embedding: mean of the projected image features (all frames read)."""
        from mmia.data.schema import Sample

        ref = {field: Path("<decoded>")}
        enc = self.target.encode_batch([Sample(id="embed", row=0, text="", **ref)], None, [media])[0]
        pv = self._pixels(enc)
        if pv is None:
            raise ValueError("no images to embed")
        feats = self.model.model.get_image_features(pixel_values=pv).pooler_output
        return torch.cat(list(feats)).mean(dim=0).float().cpu().numpy()

    # --- one sample ----------------------------------------------------------------------------
    def _media_rows(self, sample, neighbours, field) -> list[Row]:
        """Rows of neighbours whose media changed: each encoded with its own media (own pixels)."""
        samples = [self.layout.row(self.target, sample, nb.prompt, nb.answer, nb.text,
                                   self._n_items(nb.media, field)) for nb in neighbours]
        rows = []
        for e in self.target.encode_batch(samples, None, [nb.media for nb in neighbours]):
            start, stop = self.layout.loss_span(e)
            ids = e.input_ids.tolist()
            rows.append(Row(ids[:start] if stop else ids, ids[start:stop], self._pixels(e)))
        return rows

    @torch.no_grad()
    def score_sample(self, sample, neighbours, media: np.ndarray | None, media_field: str | None):
        """(original loss, (K,) neighbour losses) of one sample.

        `media` is the sample's decoded media (None if it has none) and `media_field` its kind.
        Neighbours are grouped by the field they perturb; each group takes its own path.
        """
        text_idx = [i for i, nb in enumerate(neighbours) if nb.media is None]
        media_idx = [i for i, nb in enumerate(neighbours) if nb.media is not None]
        variants = [(sample.prompt, sample.answer, sample.text)]
        variants += [(neighbours[i].prompt, neighbours[i].answer, neighbours[i].text) for i in text_idx]
        orig, *text_rows = self._rows(sample, variants, media, media_field, with_pixels=False)
        by_index = dict(zip(text_idx, text_rows, strict=True))
        if media_idx:
            by_index.update(zip(media_idx, self._media_rows(sample, [neighbours[i] for i in media_idx],
                                                             media_field), strict=True))

        if not self.reuse:
            losses = self.score_rows([orig] + [by_index[i] for i in range(len(neighbours))])
            return losses[0], np.asarray(losses[1:], dtype=np.float64)

        nb_losses = np.full(len(neighbours), np.nan)
        orig_loss = None
        groups: dict[str, list[int]] = {}
        for i, nb in enumerate(neighbours):
            groups.setdefault(nb.field, []).append(i)
        for field, idx in groups.items():
            rows = [orig] + [by_index[i] for i in idx]
            if field in ("answer", "text", "prompt"):
                losses = self.score_on_shared_prefix(rows)
                if losses is None:
                    losses = self.score_prompts_on_features(rows, orig.pixel_values)
            else:  # the media changes: each neighbour needs its own vision pass
                losses = self.score_rows(rows)
            orig_loss = losses[0] if orig_loss is None else orig_loss
            nb_losses[idx] = losses[1:]
        if orig_loss is None:  # no neighbours: the original alone (the base's losses of fimmia+loss)
            orig_loss = self.score_rows([orig])[0]
        return orig_loss, nb_losses
