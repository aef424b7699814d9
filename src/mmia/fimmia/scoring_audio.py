"""Target losses of an audio sample and its neighbours on a Whisper-style encoder-decoder.

The target is loaded and every row laid out by the targets layer (`mmia.targets`,
`SpeechSeq2SeqTarget`): the decoder sees the score attacks' ids for the row (decoder start,
prompt, answer; FiMMIA's templates as `mmia.fimmia.layout` says) and the loss is the mean
cross-entropy over the layout's loss span, so an original's loss is the attacks' `loss`.

The reuse path: the audio encoder runs ONCE per sample and its output is shared by every
neighbour that keeps the original clip (text neighbours: a tokenizer call, no feature-extractor
call, no encoder pass); audio neighbours get their own batched encoder pass. `reuse=False` runs
the feature extractor and the encoder for every row: the baseline of the equivalence test.
"""

from __future__ import annotations

import numpy as np

from mmia.errors import InputError, ModelNotFoundError
from mmia.fimmia.scoring_target import TargetScorer

SCORER_VERSION = "3"  # 3: rows laid out and tokenised by the targets layer


class WhisperScorer(TargetScorer):
    """Answer-token losses under an audio encoder-decoder (WhisperForConditionalGeneration, any
    size), with the encoder's output shared across a sample's text neighbours."""

    reuse_path = "encoder once per sample, shared by text neighbours"

    target_kind = "audio-lm"

    def _check_target(self) -> None:
        from mmia.targets.seq2seq import SpeechSeq2SeqTarget

        if not isinstance(self.target, SpeechSeq2SeqTarget):
            raise ModelNotFoundError(f"{self.model_dir}: the Whisper scorer needs an audio encoder-decoder target")

    def _setup(self) -> None:
        self.model = self.target.model
        self.sampling_rate = self.target.sampling_rate

    def settings(self) -> dict:
        """What changes the losses (part of every cache key); `reuse` does not, by design."""
        return {
            "scorer": "whisper",
            "version": SCORER_VERSION,
            "format": self.target.format_tag(),
            **self.layout.settings(),
        }

    # --- encoder and decoder passes --------------------------------------------------------------
    def _encode(self, waves: list[np.ndarray]):
        inputs = self.target.encoder_inputs(waves)
        moved = {k: v.to(self.device, self.target.dtype) if v.is_floating_point() else v.to(self.device)
                 for k, v in inputs.items()}
        return self.model.get_encoder()(**moved).last_hidden_state

    def _decode_losses(self, enc, rows) -> list[float]:
        """Loss of each encoded row given its encoder states `enc` (B, S, D): the decoder's hidden
        states with the head on the loss spans' positions, as the other targets' (`TargetScorer`)."""
        dec = self.target.collate(rows)  # rows without encoder features: the decoder side alone
        ids, mask = dec["decoder_input_ids"].to(self.device), dec["decoder_attention_mask"].to(self.device)
        out = self.target.forward_with_head(
            lambda: self.model(encoder_outputs=(enc,), decoder_input_ids=ids, decoder_attention_mask=mask,
                               use_cache=False), tuple(mask.shape))
        return self.span_losses(out, rows)

    def media_embedding_of(self, media: np.ndarray, field: str) -> np.ndarray:
        """The target's own audio embedding: the mean encoder state."""
        import torch

        with torch.inference_mode():
            return self._encode([self._media_for_target(media, field)])[0].mean(dim=0).float().cpu().numpy()

    def score_sample(self, sample, neighbours, media: np.ndarray | None, media_field: str | None):
        import torch

        if media_field != "audio" or media is None:
            raise InputError(f"sample {sample.id} has no audio for the audio target", row=sample.row)
        own = self._media_for_target(media, media_field)
        rows = [self._row(sample, sample.prompt, sample.answer, sample.text, 1)]
        waves = [None]  # None: the original clip
        for nb in neighbours:
            rows.append(self._row(sample, nb.prompt, nb.answer, nb.text, 1))
            waves.append(None if nb.media is None else self._media_for_target(nb.media, nb.field))
        out: list[float] = []
        with torch.inference_mode():
            own_enc = self._encode([own]) if self.reuse else None
            decoded = self.target.encode_text_batch(rows, [own] * len(rows))  # each row's ids on its own
            for cut in self.batches([len(e) for e in decoded]):  # the budget counts decoder tokens
                chunk, chunk_waves, enc_rows = rows[cut], waves[cut], decoded[cut]
                if self.reuse:
                    enc = own_enc.expand(len(chunk), -1, -1).clone()
                    new = [i for i, w in enumerate(chunk_waves) if w is not None]
                    if new:
                        enc[new] = self._encode([chunk_waves[i] for i in new])
                else:  # from scratch: every row's clip through the feature extractor and the encoder
                    enc = self._encode([own if w is None else w for w in chunk_waves])
                out += self._decode_losses(enc, enc_rows)
        return out[0], np.asarray(out[1:], dtype=np.float64)
