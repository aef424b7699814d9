"""Target losses of a sample and its neighbours on a LLaVA-style model, with computation reuse.

The loss is the mean cross-entropy over the answer tokens (the `text` of a row without a
prompt/answer split), given the media tokens and the prompt. The text is laid out as the score
attacks' engine lays it out (`mmia.targets.generative`): `<image>` placeholders, the prompt, a
space, the answer, so FiMMIA's loss of an original sample is the engine's answer loss (tested).
It is tokenised as `tokens(prefix) + tokens(sep + answer)`, so every neighbour of a sample
shares the prefix token for token.

Paths, chosen by what the neighbours change:
- text changes (answer, text or prompt): the longest token prefix shared by the original and
  all its neighbours (media tokens, and the prompt when only the answer changes) is run ONCE
  with the pixel values; its key-value cache is repeated over the batch and only the rest of
  each sequence is fed on top of it.
- text changes but the template puts text before the media (no shared prefix holding the
  media tokens): the vision tower + projector run ONCE per sample; each neighbour's input
  embeddings get those image features scattered in, and only the language model runs.
- media changes: every neighbour has its own pixel values; one batched full forward.
`reuse=False` scores every row from scratch (full forward with pixel values per row): the
baseline of `benchmarks/fimmia.py`, and the reference for the equivalence test.
Logits are computed only at the answer positions (the lm_head is the largest matmul per
position with a real vocabulary).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SCORER_VERSION = "1"


def answer_losses(head, hidden: torch.Tensor, starts, answers) -> list[float]:
    """Mean cross-entropy of each row's answer tokens, where `hidden[i, starts[i] - 1 + j]` is the
    state that predicts answer token j of row i; NaN for a row without answer tokens."""
    rows, cols, targets = [], [], []
    for i, (s, ans) in enumerate(zip(starts, answers, strict=True)):
        rows += [i] * len(ans)
        cols += range(s - 1, s - 1 + len(ans))
        targets += ans
    if not targets:
        return [float("nan")] * len(answers)
    dev = hidden.device
    rows_t = torch.tensor(rows, device=dev)
    logits = head(hidden[rows_t, torch.tensor(cols, device=dev)]).float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(targets, device=dev), reduction="none")
    sums = torch.zeros(len(answers), dtype=nll.dtype, device=dev).index_add_(0, rows_t, nll)
    counts = torch.tensor([len(a) for a in answers], dtype=nll.dtype, device=dev)
    return (sums / counts).tolist()  # 0/0 -> NaN for an empty answer


@dataclass
class Row:
    """One sequence to score: prefix ids (image tokens expanded), answer ids, its images."""

    prefix: list[int]
    answer: list[int]
    pixel_values: torch.Tensor | None  # (n_images, 3, H, W) or None


class LlavaScorer:
    """Answer-token losses of originals and neighbours under a LlavaForConditionalGeneration."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 32,
        reuse: bool = True,
        prompt_template: str = "{media}{prompt}",
        answer_sep: str = " ",
        answer_template: str | None = None,
        max_frames: int = 8,
        device: str | None = None,
    ):
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        from mmia import offline, progress
        from mmia.cache import fingerprint_dir

        if progress.is_quiet():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        self.model_dir = str(model_dir)
        self.processor = offline.from_pretrained(AutoProcessor, self.model_dir, what="target")
        from mmia.targets.base import resolve_device

        self.device = resolve_device(device)
        model = offline.from_pretrained(LlavaForConditionalGeneration, self.model_dir, what="target")
        self.model = model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        self.image_token = getattr(self.processor, "image_token", "<image>")
        self.batch_size = batch_size
        self.reuse = reuse
        self.prompt_template = prompt_template
        self.answer_sep = answer_sep
        self.answer_template = answer_template
        self.max_frames = max_frames
        self.fingerprint = fingerprint_dir(self.model_dir)
        self._tokens_per_image: int | None = None

    def settings(self) -> dict:
        """What changes the losses (part of every cache key); `reuse` does not, by design."""
        return {
            "scorer": "llava",
            "version": SCORER_VERSION,
            "prompt_template": self.prompt_template,
            "answer_sep": self.answer_sep,
            "answer_template": self.answer_template,
            "max_frames": self.max_frames,
        }

    # --- inputs --------------------------------------------------------------------------------
    def pixel_values(self, images: list[np.ndarray]) -> torch.Tensor:
        pv = self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return pv.to(self.device, self.model.dtype)

    @property
    def tokens_per_image(self) -> int:
        if self._tokens_per_image is None:
            img = np.zeros((8, 8, 3), dtype=np.uint8)
            enc = self.processor(text=[self.image_token], images=[img], return_tensors="pt")
            self._tokens_per_image = int((enc["input_ids"] == self.model.config.image_token_id).sum())
        return self._tokens_per_image

    def prefix_ids(self, prompt: str | None, n_images: int) -> list[int]:
        text = self.prompt_template.format(media=self.image_token * n_images, prompt=prompt or "")
        text = text.replace(self.image_token, self.image_token * self.tokens_per_image)
        ids = self.tokenizer(text)["input_ids"]
        if not ids and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id]  # the first answer token needs something to follow
        return ids

    def answer_ids(self, answer: str, prompt: str | None) -> list[int]:
        """Answer tokens: `answer_template` (e.g. " {answer}</s>", the format a model was trained
        on) when set; else the separator, only after a prompt not already ending in a space."""
        if self.answer_template is not None:
            return self.tokenizer(self.answer_template.format(answer=answer), add_special_tokens=False)["input_ids"]
        sep = self.answer_sep if prompt and not prompt[-1].isspace() else ""
        return self.tokenizer(sep + answer, add_special_tokens=False)["input_ids"]

    def images_of(self, media: np.ndarray | None, field: str | None) -> list[np.ndarray]:
        """The images fed for a medium: one image, or up to `max_frames` evenly spaced frames."""
        if media is None:
            return []
        if field != "video":
            return [media]
        frames = list(media)
        if len(frames) > self.max_frames:
            keep = np.linspace(0, len(frames) - 1, self.max_frames).round().astype(int)
            frames = [frames[i] for i in keep]
        return frames

    # --- forward passes ------------------------------------------------------------------------
    def _answer_losses(self, hidden: torch.Tensor, starts, answers) -> list[float]:
        """Mean CE of each row's answer; `hidden[i, starts[i]-1+j]` predicts answer token j.

        One gather and one lm_head call for the whole batch (the head is the largest matmul)."""
        return answer_losses(self.model.get_output_embeddings(), hidden, starts, answers)

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
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            ids, mask = self._pad([r.prefix + r.answer for r in chunk])
            pv = [r.pixel_values for r in chunk if r.pixel_values is not None]
            hidden = self.model.model(
                input_ids=ids, attention_mask=mask, pixel_values=torch.cat(pv) if pv else None
            ).last_hidden_state
            out += self._answer_losses(hidden, [len(r.prefix) for r in chunk], [r.answer for r in chunk])
        return out

    def score_on_shared_prefix(self, rows: list[Row]) -> list[float] | None:
        """Rows that share their media: run the longest shared token prefix (media tokens
        included) ONCE with the pixel values, then score each row's remaining prompt tokens and
        answer on a copy of its KV cache. None when the shared prefix does not hold every media
        token (a template with text before the media): the caller then reuses vision features."""
        prefixes = [r.prefix for r in rows]
        first = prefixes[0]
        n = min(len(p) for p in prefixes)  # never share answer tokens: every row keeps its answer
        shared = 0
        while shared < n and all(p[shared] == first[shared] for p in prefixes):
            shared += 1
        image_id = self.model.config.image_token_id
        if shared == 0 or first[:shared].count(image_id) != first.count(image_id):
            return None
        ids = torch.tensor([first[:shared]], dtype=torch.long, device=self.device)
        pre = self.model.model(input_ids=ids, pixel_values=rows[0].pixel_values, use_cache=True)
        last = pre.last_hidden_state[:, -1:]
        out = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            cache = copy.deepcopy(pre.past_key_values)
            cache.batch_repeat_interleave(len(chunk))
            rest, rmask = self._pad([r.prefix[shared:] + r.answer for r in chunk])
            mask = torch.cat([torch.ones((len(chunk), shared), dtype=torch.long, device=self.device), rmask], 1)
            hidden = self.model.model(input_ids=rest, attention_mask=mask, past_key_values=cache).last_hidden_state
            hidden = torch.cat([last.expand(len(chunk), -1, -1), hidden], dim=1)
            # hidden[i, 0] is the last shared position; answer token j sits at len(prefix)+j overall
            starts = [len(r.prefix) - shared + 1 for r in chunk]
            out += self._answer_losses(hidden, starts, [r.answer for r in chunk])
        return out

    def score_prompts_on_features(self, prefixes: list[list[int]], pixel_values, answer: list[int]) -> list[float]:
        """Run the vision tower + projector once; reuse its features for every prefix."""
        feats = None
        if pixel_values is not None:
            feats = torch.cat(list(self.model.model.get_image_features(pixel_values=pixel_values).pooler_output))
        embed = self.model.get_input_embeddings()
        image_id = self.model.config.image_token_id
        out = []
        for s in range(0, len(prefixes), self.batch_size):
            chunk = prefixes[s : s + self.batch_size]
            ids, mask = self._pad([p + answer for p in chunk])
            emb = embed(ids)
            if feats is not None:
                where = (ids == image_id).unsqueeze(-1).expand_as(emb)
                emb = emb.masked_scatter(where, feats.repeat(len(chunk), 1).to(emb.dtype))
            hidden = self.model.model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
            out += self._answer_losses(hidden, [len(p) for p in chunk], [answer] * len(chunk))
        return out

    @torch.no_grad()
    def media_embedding(self, images: list[np.ndarray]) -> np.ndarray:
        """The target's own media embedding: mean of the projected image features (all frames)."""
        if not images:
            raise ValueError("no images to embed")
        feats = self.model.model.get_image_features(pixel_values=self.pixel_values(images)).pooler_output
        return torch.cat(list(feats)).mean(dim=0).float().numpy()

    def media_embedding_of(self, media: np.ndarray, field: str) -> np.ndarray:
        return self.media_embedding(self.images_of(media, field))

    # --- one sample ----------------------------------------------------------------------------
    @torch.no_grad()
    def score_sample(self, sample, neighbours, media: np.ndarray | None, media_field: str | None):
        """(original loss, (K,) neighbour losses) of one sample.

        `media` is the sample's decoded media (None if it has none) and `media_field` its kind.
        Neighbours are grouped by the field they perturb; each group takes its own path.
        """
        target = "text" if sample.text is not None else "answer"
        orig_images = self.images_of(media, media_field)
        pv = self.pixel_values(orig_images) if orig_images else None
        n_img = len(orig_images)
        orig_prefix = self.prefix_ids(sample.prompt, n_img)
        orig_answer = self.answer_ids(getattr(sample, target), sample.prompt)

        def media_row(nb):
            imgs = self.images_of(nb.media, nb.field)
            answer = self.answer_ids(getattr(nb, target), nb.prompt)
            return Row(self.prefix_ids(nb.prompt, len(imgs)), answer, self.pixel_values(imgs))

        if not self.reuse:
            rows = [Row(orig_prefix, orig_answer, pv)]
            for nb in neighbours:
                if nb.media is not None:
                    rows.append(media_row(nb))
                else:
                    ans = self.answer_ids(getattr(nb, target), nb.prompt)
                    rows.append(Row(self.prefix_ids(nb.prompt, n_img), ans, pv))
            losses = self.score_rows(rows)
            return losses[0], np.asarray(losses[1:], dtype=np.float64)

        nb_losses = np.full(len(neighbours), np.nan)
        orig_loss = None
        groups: dict[str, list[int]] = {}
        for i, nb in enumerate(neighbours):
            groups.setdefault(nb.field, []).append(i)
        for field, idx in groups.items():
            nbs = [neighbours[i] for i in idx]
            if field in ("answer", "text", "prompt"):
                rows = [Row(orig_prefix, orig_answer, pv)] + [
                    Row(self.prefix_ids(nb.prompt, n_img), self.answer_ids(getattr(nb, target), nb.prompt), pv)
                    for nb in nbs
                ]
                losses = self.score_on_shared_prefix(rows)
                if losses is None:
                    losses = self.score_prompts_on_features([r.prefix for r in rows], pv, orig_answer)
            else:  # the media changes: each neighbour needs its own vision pass
                losses = self.score_rows([Row(orig_prefix, orig_answer, pv)] + [media_row(nb) for nb in nbs])
            orig_loss = losses[0] if orig_loss is None else orig_loss
            nb_losses[idx] = losses[1:]
        return orig_loss, nb_losses
