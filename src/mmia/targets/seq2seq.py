"""Adapter for speech/audio encoder-decoder models (Whisper-style, `AutoModelForSpeechSeq2Seq`).

Such a model never sees its audio as tokens: the clip goes through the encoder (log-mel
features from the model's own feature extractor) and the text is the *decoder's* input,
teacher-forced. A sample becomes `[decoder start] + tokens(prompt) + tokens(" " + answer)`, the
layout the `audio` testbed's captioner is fine-tuned on (and the one FiMMIA's Whisper scorer
uses); a tokenizer that adds its own prefix (Whisper's `<|startoftranscript|>...`) and end token
keeps them, and the decoder start is only prepended when the tokenizer did not put it first.

Slice codes and statistics are the shared generative path's (`mmia.targets.generative`): the
prompt/answer boundary is where the prompt's own tokens stop matching, special tokens are
`other`, and one teacher-forced pass over a padded batch is reduced to the per-token
statistics of `mmia.targets.token_stats`. There is no `audio` slice: no decoder
position holds the audio, so media-slice columns (`...@audio`) are simply absent.
"""

from __future__ import annotations

from mmia.errors import InputError, ModelNotFoundError
from mmia.targets.base import AUDIO, Encoded
from mmia.targets.generative import _Generative

# Feature-extractor outputs that are per-sample media tensors (padded and concatenated per batch).
_ENCODER_KEYS = ("input_features", "input_values", "attention_mask")


class SpeechSeq2SeqTarget(_Generative):
    """An audio encoder-decoder (e.g. WhisperForConditionalGeneration): audio to the encoder, text
    to the decoder with teacher forcing. Its kind is `audio-lm`, so every audio-LM attack applies."""

    kind = "audio-lm"
    media_field = "audio"
    media_code = AUDIO
    placeholder = ""  # the audio goes to the encoder, not into the text
    _mask_key = "decoder_attention_mask"  # the logits (and hidden states) are the decoder's

    def __init__(self, path, model, tokenizer, fingerprint, device, dtype, feature_extractor, processor=None):
        super().__init__(path, model, tokenizer, fingerprint, device, dtype)
        self.feature_extractor = feature_extractor
        self.processor = processor
        self.start_id = getattr(model.config, "decoder_start_token_id", None)
        self.sampling_rate = int(getattr(feature_extractor, "sampling_rate", 16000))

    def _max_positions(self) -> int | None:
        cfg = self.model.config
        dec = getattr(cfg, "decoder", None) or cfg  # SpeechEncoderDecoderModel nests its decoder's config
        for name in ("max_target_positions", "max_position_embeddings", "n_positions"):
            v = getattr(dec, name, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    def _load_media(self, ref):
        from mmia.data.media import load_audio

        return load_audio(ref, self.sampling_rate)

    def _decoder_ids(self, ids) -> list[int]:
        ids = list(ids)
        if self.start_id is not None and (not ids or ids[0] != self.start_id):
            ids = [self.start_id, *ids]
        return ids

    def encoder_inputs(self, waves: list) -> dict:
        """The feature extractor's encoder inputs for a list of clips, as one batch."""
        enc = self.feature_extractor(list(waves), sampling_rate=self.sampling_rate, return_tensors="pt")
        return {k: enc[k] for k in _ENCODER_KEYS if k in enc}

    def _features(self, waves: list) -> list[dict]:
        """Encoder inputs of each clip, one feature-extractor call for all; (1, ...) tensors per clip."""
        enc = self.encoder_inputs(waves)
        return [{k: v[i : i + 1] for k, v in enc.items()} for i in range(len(waves))]

    def encode_batch(self, samples, transform=None, media=None) -> list[Encoded]:
        """Decoder ids and slice codes of each sample, with its clip's encoder features in `extras`.

        `media`: per sample, its clip decoded already at this model's rate (None: decode its own).
        Raises InputError for a sample without audio (the encoder needs it) or whose audio does
        not decode (the engine then isolates the bad samples one by one).
        """
        media = media if media is not None else [None] * len(samples)
        parts = self._parts(samples, transform, media)
        feats = self._features([p[2] for p in parts])
        return [Encoded(e.input_ids, e.codes, ex, e.token_extras, e.answer_start)
                for e, ex in zip(self._encode_parts(parts), feats, strict=True)]

    def encode_text_batch(self, samples, media, tokens_per_item: int = 0, transform=None) -> list[Encoded]:
        """`encode_batch` without the encoder features (no feature-extractor call): the decoder side
        of rows whose clip is encoded once already (FiMMIA's text neighbours share the original's
        encoder states). `tokens_per_item` is unused: no decoder position holds the audio."""
        return self._encode_parts(self._parts(samples, transform, media))

    def _parts(self, samples, transform, media) -> list[tuple]:
        parts = [self._texts(s, transform, m) for s, m in zip(samples, media, strict=True)]
        for s, p in zip(samples, parts, strict=True):
            if p[2] is None:
                raise InputError("no audio: an audio encoder-decoder target needs the clip", row=s.row)
        return parts

    def _encode_parts(self, parts) -> list[Encoded]:
        def tok(texts):
            return [self._decoder_ids(x) for x in self.tokenizer(list(texts)).input_ids] if texts else []

        full, p_ids = tok([p[1] for p in parts]), tok([p[0] for p in parts])
        cut = [i for i, p in enumerate(parts) if p[3] != p[1]]  # a chat template's suffix follows the answer
        e_ids = [None] * len(parts)
        for i, ids in zip(cut, tok([parts[i][3] for i in cut]), strict=True):
            e_ids[i] = ids
        return [self._finish(ids, pi, ei, {}, {}) for ids, pi, ei in zip(full, p_ids, e_ids, strict=True)]

    def collate(self, batch: list[Encoded]) -> dict:
        """Right-padded decoder inputs plus the encoder features (zero-padded where clip lengths differ)."""
        import torch

        base = super().collate([Encoded(e.input_ids, e.codes) for e in batch])
        inputs = {"decoder_input_ids": base["input_ids"], "decoder_attention_mask": base["attention_mask"]}
        for key in batch[0].extras:
            parts = [e.extras[key] for e in batch]
            shape = [max(p.shape[d] for p in parts) for d in range(parts[0].dim())]
            padded = []
            for p in parts:
                pad = []
                for d in reversed(range(1, p.dim())):
                    pad += [0, shape[d] - p.shape[d]]
                padded.append(torch.nn.functional.pad(p, pad) if any(pad) else p)
            inputs[key] = torch.cat(padded, dim=0)
        return inputs


def speech_seq2seq_config(cfg: dict, path) -> bool:
    """Whether a config.json describes an audio encoder-decoder (checked before the causal-LM
    fallback: transformers lists Whisper among its causal LMs, as a decoder-only head)."""
    from pathlib import Path

    mtype = cfg.get("model_type", "")
    if mtype == "whisper":
        return True
    if not cfg.get("is_encoder_decoder"):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES

    if mtype in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return True
    archs = cfg.get("architectures") or []
    pre = Path(path) / "preprocessor_config.json"
    if pre.exists() and any(a.endswith(("ForConditionalGeneration", "ForSpeechToText")) for a in archs):
        import json

        try:
            return "feature_extractor_type" in json.loads(pre.read_text(encoding="utf-8"))
        except ValueError:
            return False
    return False


def load_speech_seq2seq(path, model, fingerprint, device, dtype) -> SpeechSeq2SeqTarget:
    """The adapter around a loaded model: its processor's tokenizer and feature extractor, or the
    two loaded separately when no processor class fits the saved files."""
    import transformers as tf

    from mmia.offline import from_pretrained

    proc = None
    try:
        proc = from_pretrained(tf.AutoProcessor, path, "processor")
        tok, fe = proc.tokenizer, proc.feature_extractor
    except (AttributeError, ValueError, TypeError, ImportError, OSError, ModelNotFoundError):
        tok = from_pretrained(tf.AutoTokenizer, path, "tokenizer")
        fe = from_pretrained(tf.AutoFeatureExtractor, path, "feature extractor")
    return SpeechSeq2SeqTarget(path, model, tok, fingerprint, device, dtype, fe, processor=proc)


__all__ = ["SpeechSeq2SeqTarget", "load_speech_seq2seq", "speech_seq2seq_config"]
