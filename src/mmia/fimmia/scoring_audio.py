"""Target losses of an audio sample and its neighbours on a Whisper-style encoder-decoder.

The decoder sees `[decoder start] + tokens(prompt_template(prompt)) + tokens(answer_template)`
and the loss is the mean cross-entropy of the answer tokens. When only the text changes, the
audio encoder runs ONCE per sample and its output is repeated over the batch of neighbours;
audio neighbours get their own (batched) encoder pass. `reuse=False` runs the encoder for every
row: the baseline and the reference of the equivalence test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmia.fimmia.scoring import answer_losses

SCORER_VERSION = "1"


class WhisperScorer:
    """Answer-token losses under a WhisperForConditionalGeneration (any size, same code path)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 32,
        reuse: bool = True,
        prompt_template: str = "{prompt}",
        answer_template: str | None = None,
        answer_sep: str = " ",
        device: str | None = None,
        **_ignored,
    ):
        from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration

        from mmia import offline, progress
        from mmia.cache import fingerprint_dir
        from mmia.targets.base import resolve_device

        if progress.is_quiet():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        self.model_dir = str(model_dir)
        self.device = resolve_device(device)
        self.tokenizer = offline.from_pretrained(AutoTokenizer, self.model_dir, what="target tokenizer")
        self.features = offline.from_pretrained(AutoFeatureExtractor, self.model_dir, what="target feature extractor")
        model = offline.from_pretrained(WhisperForConditionalGeneration, self.model_dir, what="target")
        self.model = model.to(self.device).eval()
        self.sampling_rate = int(self.features.sampling_rate)
        self.batch_size = batch_size
        self.reuse = reuse
        self.prompt_template = prompt_template
        self.answer_template = answer_template
        self.answer_sep = answer_sep
        self.fingerprint = fingerprint_dir(self.model_dir)

    def settings(self) -> dict:
        return {
            "scorer": "whisper",
            "version": SCORER_VERSION,
            "prompt_template": self.prompt_template,
            "answer_template": self.answer_template,
            "answer_sep": self.answer_sep,
        }

    def input_features(self, waves: list[np.ndarray]) -> torch.Tensor:
        feats = self.features(list(waves), sampling_rate=self.sampling_rate, return_tensors="pt")["input_features"]
        return feats.to(self.device, self.model.dtype)

    def prefix_ids(self, prompt: str | None) -> list[int]:
        start = self.model.config.decoder_start_token_id
        text = self.prompt_template.format(media="", prompt=prompt or "")  # the audio goes to the encoder
        return [start] + (self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else [])

    def answer_ids(self, answer: str, prompt: str | None) -> list[int]:
        if self.answer_template is not None:
            text = self.answer_template.format(answer=answer)
        else:
            text = (self.answer_sep if prompt else "") + answer
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _decode_losses(self, enc: torch.Tensor, prefixes, answers) -> list[float]:
        """enc: (B, S, D) encoder states, one per row."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        seqs = [p + a for p, a in zip(prefixes, answers, strict=True)]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(seqs), n), dtype=torch.long, device=self.device)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, device=self.device)
            mask[i, : len(s)] = 1
        hidden = self.model.model.decoder(
            input_ids=ids, attention_mask=mask, encoder_hidden_states=enc
        ).last_hidden_state
        starts = [len(p) for p in prefixes]
        return answer_losses(self.model.get_output_embeddings(), hidden, starts, list(answers))

    def _encode(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.model.encoder(input_features=feats).last_hidden_state

    @torch.no_grad()
    def media_embedding_of(self, media: np.ndarray, field: str) -> np.ndarray:
        """The target's own audio embedding: the mean encoder state."""
        return self._encode(self.input_features([media]))[0].mean(dim=0).float().cpu().numpy()

    @torch.no_grad()
    def score_sample(self, sample, neighbours, media: np.ndarray | None, media_field: str | None):
        if media_field != "audio" or media is None:
            from mmia.errors import InputError

            raise InputError(f"sample {sample.id} has no audio for the audio target", row=sample.row)
        target = "text" if sample.text is not None else "answer"
        rows = [(self.prefix_ids(sample.prompt), self.answer_ids(getattr(sample, target), sample.prompt), None)]
        for nb in neighbours:
            rows.append((self.prefix_ids(nb.prompt), self.answer_ids(getattr(nb, target), nb.prompt), nb.media))
        orig_feats = self.input_features([media])
        orig_enc = self._encode(orig_feats) if self.reuse else None
        out = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            if self.reuse:
                new = [i for i, r in enumerate(chunk) if r[2] is not None]
                enc = orig_enc.expand(len(chunk), -1, -1).clone()
                if new:
                    enc[new] = self._encode(self.input_features([chunk[i][2] for i in new]))
            else:  # from scratch: every row's audio through the encoder
                waves = [media if r[2] is None else r[2] for r in chunk]
                enc = self._encode(self.input_features(waves))
            out += self._decode_losses(enc, [r[0] for r in chunk], [r[1] for r in chunk])
        return out[0], np.asarray(out[1:], dtype=np.float64)
