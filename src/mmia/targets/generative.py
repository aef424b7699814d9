"""Adapters for generative targets: causal LMs, vision-language and audio-language models.

All three share one path: a sample becomes `[media placeholder][prompt][ sep ][answer]` (or
`[media placeholder][text]`), tokenised by the model's own processor so that media
placeholders expand exactly as in training; each token gets a slice code (image, audio,
prompt, answer, other); a padded batch goes through the model once and its logits are reduced
to per-token statistics (`mmia.targets.token_stats`).

A video row goes to a vision-language model as its frames, each one image (at most
`max_frames`, evenly spaced), the way LLaVA-style models read several images.

The prompt/answer boundary is found without trusting character offsets: the prompt alone is
tokenised, its media placeholders are expanded to the counts seen in the full sequence, and the
answer starts where the two token sequences first differ.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmia.errors import InputError
from mmia.targets.base import ANSWER, AUDIO, IMAGE, MEDIA_SLICES, OTHER, PROMPT, TEXT_SLICES, Encoded, slice_rows
from mmia.targets.fast_pixels import FastPixels
from mmia.targets.head import HeadCapture, HeadWeights, linear_head, matching_head, softcap_of
from mmia.targets.token_stats import (
    DIST_STATS,
    STAT_NAMES,
    TARGET_STATS,
    gather_rows,
    stats_from_rows,
    stats_workspace,
)


def _joined(prompt_part: str, answer: str, has_prompt: bool) -> tuple[str, str]:
    """(prompt part as tokenised alone, full text); a space separates prompt and answer."""
    if not has_prompt or not prompt_part or prompt_part[-1].isspace() or not answer:
        return prompt_part, prompt_part + answer
    return prompt_part, prompt_part + " " + answer


# Bump when `_Generative._as_written` changes which prompts it keeps, or which tokens count as
# answer (cache keys follow it). 2: the unknown token is scored as answer text.
_AS_WRITTEN_RULES = "2"  # also covers the role markers the lowercase view keeps


def _common_prefix(a, b) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if len(diff) else n


class _Generative:
    """Shared machinery; subclasses say how text and media become model inputs."""

    kind = "causal-lm"
    media_field: str | None = None  # "image" or "audio"
    media_code = OTHER
    use_chat_template = True  # format prompt rows with the model's chat template when it has one

    def __init__(self, path: Path, model, tokenizer, fingerprint: str, device: str, dtype):
        self.path = Path(path)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.fingerprint = fingerprint
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # The unknown token stands for text (a word the vocabulary lacks), so it is scored like
        # any answer token, as the model's own loss scores it; the other special tokens are layout.
        unk = tokenizer.unk_token_id
        layout = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
        self.special_ids = np.array(sorted(set(tokenizer.all_special_ids) - ({unk} - layout)), dtype=np.int64)
        self.media_token_id: int | None = None
        self.max_positions = self._max_positions()

    # -- what subclasses provide -------------------------------------------------------------
    placeholder = ""  # text inserted where the media goes

    def _tokenize(self, text: str, media) -> tuple[list[int], dict, dict]:
        """(ids, extras, token_extras) for a full text with its decoded media (or None)."""
        ids = self.tokenizer(text).input_ids
        return list(ids), {}, {}

    def _load_media(self, ref):
        return None

    def _media_of(self, sample):
        """(decoded media or None, how many media placeholders it takes)."""
        ref = getattr(sample, self.media_field) if self.media_field else None
        return (self._load_media(ref), 1) if ref is not None else (None, 0)

    def _given_media(self, sample, decoded):
        """`_media_of` for media decoded already (a perturbed copy): (media as read, placeholders)."""
        return (decoded, 1) if self.media_field else (None, 0)

    # -- the shared path ---------------------------------------------------------------------
    def _max_positions(self) -> int | None:
        cfg = self.model.config
        text_cfg = getattr(cfg, "text_config", None) or cfg
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(text_cfg, name, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    def format_tag(self) -> str:
        """A digest of how samples become text (chat template or plain), part of cache keys."""
        import hashlib

        owner = self._chat_owner()
        fmt = owner.chat_template if owner is not None else f"plain:{self.placeholder}"
        # The rules that keep a prompt as written (`_as_written`) are part of the format too.
        return hashlib.sha256(f"{fmt}\x00as-written:{_AS_WRITTEN_RULES}".encode()).hexdigest()[:8]

    def _chat_owner(self):
        """The processor or tokenizer whose chat template formats prompt rows (None: plain text)."""
        if not self.use_chat_template:
            return None
        for obj in (getattr(self, "processor", None), self.tokenizer):
            if obj is not None and getattr(obj, "chat_template", None):
                return obj
        return None

    _SENTINEL = "\x00mmia-answer\x00"

    def _chat(self, prompt: str, answer: str, n_media: int):
        """(prompt part, full text, full text up to the answer's end) in the model's own
        conversation format, or None if it has none.

        The template is rendered once per distinct prompt, with a sentinel in the answer's
        place, and the answer is spliced in (templates copy message text verbatim).
        """
        key = (prompt, n_media)
        memo = self.__dict__.setdefault("_chat_memo", {})
        if key not in memo:
            memo[key] = self._render_chat(prompt, n_media)
            if len(memo) > 4096:  # prompts that never repeat: keep the memo small
                memo.pop(next(iter(memo)))
        parts = memo[key]
        if parts is None:
            return None
        head, before, after = parts
        full = before + answer + after
        return head, full, before + answer

    def _render_chat(self, prompt: str, n_media: int):
        owner = self._chat_owner()
        if owner is None:
            return None
        answer = self._SENTINEL
        if owner is self.tokenizer and self.media_field is None:
            user = {"role": "user", "content": prompt}
            bot = {"role": "assistant", "content": answer}
        else:
            parts = [{"type": self.media_field}] * n_media + [{"type": "text", "text": prompt}]
            user = {"role": "user", "content": parts}
            bot = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
        try:
            head = owner.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
            full = owner.apply_chat_template([user, bot], add_generation_prompt=False, tokenize=False)
        except Exception:  # a template that cannot render this conversation: plain format
            return None
        if full.count(answer) != 1 or not full.startswith(head) or full.index(answer) < len(head):
            return head, head + ("" if head[-1:].isspace() else " "), ""
        before, after = full.split(answer)
        return head, before, after

    def _texts(self, sample, transform, decoded=None):
        """(prompt part, full text, decoded media or None, full text up to the answer's end).

        A row whose prompt (or text) is laid out already, holding the model's media placeholder
        or ending with an assistant turn (`_as_written`), is used as written. Any other row with
        a prompt is formatted by the model's chat template when it has one (the format it was
        fine-tuned on); otherwise, and for `text` rows, as media placeholder + text.
        """
        t = transform or (lambda s: s)
        has_prompt = sample.prompt is not None
        answer = t(sample.answer if has_prompt else (sample.text or ""))
        media, n_media = self._media_of(sample) if decoded is None else self._given_media(sample, decoded)
        written = sample.prompt if has_prompt else (sample.text or "")
        if self._as_written(written):
            self._check_placeholders(written, n_media)
            laid = self._keeping_special_tokens(t, written)  # lowercasing must not break <|AUDIO|>
            if not has_prompt:
                return "", laid, media, laid
            prompt_part, full = _joined(laid, answer, True)
            return prompt_part, full, media, full
        if has_prompt:
            chat = self._chat(t(sample.prompt), answer, n_media)
            if chat is not None:
                return chat[0], chat[1], media, chat[2]
        prefix = self.placeholder * n_media
        prompt_part, full = _joined(prefix + (t(sample.prompt) if has_prompt else ""), answer, has_prompt)
        return prompt_part, full, media, full

    # Assistant-turn openings of common plain conversation formats (LLaVA, Vicuna, Alpaca, Llama-2,
    # ChatML, Phi): a prompt ending with one is a whole user turn already.
    _TURN_MARKERS = ("ASSISTANT:", "Assistant:", "### Assistant:", "### Response:", "[/INST]",
                     "<|im_start|>assistant", "<|assistant|>")
    # Role markers of the same formats: scaffolding, which the lowercase view leaves as it is (a
    # chat template's scaffolding is never lowercased either).
    _ROLE_MARKERS = _TURN_MARKERS + ("USER:", "User:", "Human:", "### Human:", "### Instruction:", "SYSTEM:",
                                     "System:", "[INST]", "<|im_start|>user", "<|im_start|>system", "<|user|>",
                                     "<|system|>", "<|im_end|>")

    def _media_token_text(self) -> str | None:
        """The token text that stands for one media item in this model's prompts (None: no media):
        the processor's own placeholder where it names one (Gemma 3's <start_of_image>, which it
        expands to the image's soft tokens), else the model's media token."""
        if self.media_token_id is None:
            return None
        written = getattr(getattr(self, "processor", None), "image_token", None)
        if isinstance(written, str) and written in self.tokenizer.get_vocab():
            return written
        return self.tokenizer.convert_ids_to_tokens(self.media_token_id)

    def _placeholder_id(self) -> int | None:
        token = self._media_token_text()
        return None if token is None else self.tokenizer.convert_tokens_to_ids(token)

    def _wraps_media(self, text: str, ids: np.ndarray, expanded) -> bool:
        """Whether the processor makes more of a media placeholder than copies of the media token
        (decided on the first row with media, by comparing with the tokenizer's own ids)."""
        memo = self.__dict__
        if "_wraps" not in memo:
            plain = np.asarray(self.tokenizer(text).input_ids, dtype=np.int64)
            memo["_wraps"] = not np.array_equal(expanded(plain), ids)
        return memo["_wraps"]

    def _as_written(self, prompt: str) -> bool:
        """Whether the user laid this prompt out already: it holds the model's media placeholder,
        or it ends where the model's answer starts (its chat template's generation prompt, or a
        common assistant-turn opening). Such a prompt is never wrapped or given a placeholder."""
        if not prompt:
            return False
        token = self._media_token_text()
        if token and token in prompt:
            return True
        end = prompt.rstrip()
        marker = self._generation_marker()
        return bool(marker and end.endswith(marker)) or end.endswith(self._TURN_MARKERS)

    def _generation_marker(self) -> str | None:
        """What the chat template writes after a user turn to open the assistant's (stripped)."""
        memo = self.__dict__
        if "_gen_marker" not in memo:
            marker, owner = None, self._chat_owner()
            if owner is not None:
                probe = "\x00mmia-probe\x00"
                try:
                    head = owner.apply_chat_template([{"role": "user", "content": probe}],
                                                     add_generation_prompt=True, tokenize=False)
                    marker = head.rsplit(probe, 1)[1].strip() if probe in head else None
                except Exception:  # a template that needs structured content: no marker from it
                    marker = None
            memo["_gen_marker"] = marker or None
        return memo["_gen_marker"]

    def _keeping_special_tokens(self, transform, text: str) -> str:
        """`transform` applied to the text between the tokenizer's special tokens and the role
        markers only (a written prompt's scaffolding stays as the model was trained on it)."""
        if transform is None:
            return text
        pattern = self.__dict__.get("_special_re")
        if pattern is None:
            import re

            tokens = sorted({str(t) for t in self.tokenizer.all_special_tokens if t} | set(self._ROLE_MARKERS)
                            | ({self._media_token_text()} - {None}), key=len, reverse=True)
            pattern = self._special_re = re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else False
        if not pattern:
            return transform(text)
        return "".join(p if i % 2 else transform(p) for i, p in enumerate(pattern.split(text)))

    def _check_placeholders(self, prompt: str, n_media: int) -> None:
        """A prompt used as written must hold one placeholder per media item the row gives."""
        token = self._media_token_text()
        if token is None or self.media_field is None:
            return
        found = prompt.count(token)
        if found != n_media:
            gives = f"{n_media} {self.media_field} item(s)" if n_media else f"no {self.media_field}"
            raise InputError(
                f"the prompt is used as written (it holds {token!r} or a whole turn) with {found} {token!r} "
                f"placeholder(s), but the row gives {gives} (a video: one per frame read); write one {token!r} "
                "per item where the model expects it, or leave placeholders and turn markers out for mmia to add"
            )

    def _finish(self, ids, p_ids, e_ids, extras, token_extras, text: str | None = None, written=None) -> Encoded:
        """Slice codes from the full ids, the prompt's own ids and the ids up to the answer's end.

        `written`: the prompt's and the answer end's ids written out as the processor wrote the
        row (`_written_ids`); used when they are a prefix of the row's ids (SmolVLM's tiles,
        Mllama's BOS rule). Else, where the processor wraps each media placeholder in more than
        copies of it (Idefics3's <fake_token_around_image><global-img>, Gemma 3's begin/end-of-image
        tokens; `text`: the full text the processor was given), the parts are located from the end,
        by the tokens after them, which the processor leaves as the tokenizer makes them.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if written is not None and all(w is None or _common_prefix(w, ids) == len(w) for w in written):
            p_ids, text = written[0], None
            e_ids = written[1] if e_ids is not None else None
        codes = np.full(len(ids), ANSWER, dtype=np.int8)
        is_media = ids == self.media_token_id if self.media_token_id is not None else np.zeros(len(ids), bool)
        n_media_full = int(is_media.sum())
        placeholder_id = self._placeholder_id()

        def expanded(part_ids):
            # A part tokenised alone, each media placeholder repeated as often as the processor did.
            part_ids = np.asarray(part_ids, dtype=np.int64)
            if self.media_token_id is not None and n_media_full:
                n_media_p = int((part_ids == self.media_token_id).sum())
                if n_media_p:
                    reps = np.where(part_ids == self.media_token_id, n_media_full // n_media_p, 1)
                    part_ids = np.repeat(part_ids, reps)
            return part_ids

        locate = lambda part: _common_prefix(expanded(part), ids)  # noqa: E731
        if text is not None and n_media_full and self._wraps_media(text, ids, expanded):
            plain = np.asarray(self.tokenizer(text).input_ids, dtype=np.int64)

            def locate(part):  # noqa: F811  (the same boundary, counted from the end)
                part = np.asarray(part, dtype=np.int64)
                k = _common_prefix(part, plain)
                if placeholder_id is not None and placeholder_id in plain[k:]:
                    return _common_prefix(expanded(part), ids)  # a placeholder after the part
                tail = len(plain) - k
                if tail > len(ids) or not np.array_equal(ids[len(ids) - tail:], plain[k:]):
                    return _common_prefix(expanded(part), ids)
                return len(ids) - tail

        boundary = locate(p_ids)
        codes[:boundary] = PROMPT
        if e_ids is not None:
            codes[locate(e_ids) :] = OTHER
        codes[self._is_special(ids)] = OTHER
        codes[is_media] = self.media_code
        if self.max_positions is not None and len(ids) > self.max_positions:
            keep = self.max_positions
            ids, codes = ids[:keep], codes[:keep]
            token_extras = {k: v[:keep] for k, v in token_extras.items()}
        return Encoded(input_ids=ids, codes=codes, extras=extras, token_extras=token_extras, answer_start=boundary)

    def _is_special(self, ids: np.ndarray) -> np.ndarray:
        """np.isin(ids, special_ids) by a lookup table over the ids (built once)."""
        table = self.__dict__.get("_special_table")
        if table is None:
            size = max(len(self.tokenizer), int(self.special_ids.max()) + 1 if len(self.special_ids) else 0)
            table = np.zeros(size, dtype=bool)
            table[self.special_ids] = True
            self._special_table = table
        if len(ids) and (ids.min() < 0 or ids.max() >= len(table)):
            return np.isin(ids, self.special_ids)
        return table[ids]

    def encode(self, sample, transform=None) -> Encoded:
        """Token ids and slice codes of one sample; `transform` maps each text field (lowercase)."""
        return self.encode_batch([sample], transform)[0]

    def encode_batch(self, samples, transform=None, media=None) -> list[Encoded]:
        """`encode` for several samples, with one tokenizer/processor call where the model allows.

        `media`: per sample, its media decoded already (e.g. a perturbed copy; None: decode the
        sample's own). Raises the InputError of the first sample whose media does not decode.
        """
        media = media if media is not None else [None] * len(samples)
        parts = [self._texts(s, transform, m) for s, m in zip(samples, media, strict=True)]
        try:
            p_ids = self._prompt_ids([p[0] for p in parts])
            cut = [i for i, p in enumerate(parts) if p[3] != p[1]]  # a template suffix follows the answer
            e_ids = [None] * len(parts)
            for i, ids in zip(cut, self.tokenizer([parts[i][3] for i in cut]).input_ids if cut else [], strict=True):
                e_ids[i] = ids
            toks = self._tokenize_batch([p[1] for p in parts], [p[2] for p in parts])
            written = [None] * len(parts)
            for i, tok in enumerate(toks):
                if len(tok) > 3 and tok[3]:  # the processor wrote this row's media out: its parts are written alike
                    written[i] = (self._written_ids(parts[i][0], tok[3]),
                                  None if e_ids[i] is None else self._written_ids(parts[i][3], tok[3]))
        except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
            # The processor's own complaint ("Found total 16 <image> tokens and 8 images"), as one
            # line; the engine retries the batch sample by sample to name the row.
            what = "processor" if getattr(self, "processor", None) is not None else "tokenizer"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"the model's {what} refused the row: {first}") from None
        return [self._finish(tok[0], pi, ei, tok[1], tok[2], text=p[1], written=w)
                for tok, pi, ei, p, w in zip(toks, p_ids, e_ids, parts, written, strict=True)]

    def _written_ids(self, text: str, replacements: list[str]):
        """Ids of part of a row written as the processor wrote the row; only rows a processor
        encoded carry `replacements` (`VisionLanguageTarget`)."""
        raise NotImplementedError

    def encode_text_batch(self, samples, media, tokens_per_item: int, transform=None) -> list[Encoded]:
        """`encode_batch` without the processor: the layout's media placeholders are expanded to
        `tokens_per_item` tokens each (what the processor made of this media in `encode_batch`);
        no pixel values. For rows that share media encoded once already (FiMMIA's text
        neighbours keep the original's image): a tokenizer call instead of a processor call."""
        parts = [self._texts(s, transform, m) for s, m in zip(samples, media, strict=True)]
        p_ids = self._prompt_ids([p[0] for p in parts])
        e_ids = [None] * len(parts)
        cut = [i for i, p in enumerate(parts) if p[3] != p[1]]
        for i, ids in zip(cut, self.tokenizer([parts[i][3] for i in cut]).input_ids if cut else [], strict=True):
            e_ids[i] = ids
        out = []
        for ids, pi, ei in zip(self.tokenizer([p[1] for p in parts]).input_ids, p_ids, e_ids, strict=True):
            ids = np.asarray(ids, dtype=np.int64)
            if self.media_token_id is not None:
                ids = np.repeat(ids, np.where(ids == self.media_token_id, tokens_per_item, 1))
            out.append(self._finish(ids, pi, ei, {}, {}))
        return out

    def _prompt_ids(self, texts: list[str]) -> list:
        """Token ids of prompt parts, memoised: rows share a few instruction templates."""
        memo = self.__dict__.setdefault("_prompt_memo", {})
        new = list(dict.fromkeys(t for t in texts if t not in memo))
        if len(memo) + len(new) > 4096:  # prompts that never repeat: keep the memo small
            memo.clear()
            new = list(dict.fromkeys(texts))
        if new:
            memo.update(zip(new, self.tokenizer(new).input_ids, strict=True))
        return [memo[t] for t in texts]

    def _tokenize_batch(self, texts: list[str], medias: list) -> list[tuple]:
        if self.media_field is None:
            return [(ids, {}, {}) for ids in self.tokenizer(texts).input_ids]
        return [self._tokenize(t, m) for t, m in zip(texts, medias, strict=True)]

    def collate(self, batch: list[Encoded]) -> dict:
        """Right-padded model inputs for a batch of encoded samples."""
        import torch

        n, width = len(batch), max(len(e) for e in batch)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, e in enumerate(batch):
            ids[i, : len(e)] = torch.from_numpy(e.input_ids)
            mask[i, : len(e)] = 1
        inputs = {"input_ids": ids, "attention_mask": mask}
        for key in {k for e in batch for k in e.token_extras}:
            rows = {i: torch.as_tensor(e.token_extras[key]) for i, e in enumerate(batch) if key in e.token_extras}
            first = next(iter(rows.values()))  # (L, ...): Mllama's cross-attention mask has more dims
            t = torch.zeros((n, width, *first.shape[1:]), dtype=first.dtype)
            for i, v in rows.items():
                t[i, : len(v)] = v
            inputs[key] = t
        for key in {k for e in batch for k in e.extras}:
            inputs[key] = _cat_padded([e.extras[key] for e in batch if key in e.extras])
        return inputs

    # Which forward pass feeds the statistics: "auto", the hidden states with mmia applying the
    # head to the rows it needs (`mmia.targets.head`) where the model allows it, else the full
    # logits; "full", always the model's (B, T, V) logits (the path before the head existed).
    stats_path = "auto"
    _mask_key = "attention_mask"  # the mask of the positions the logits are for

    def _run(self, inputs: dict):
        """The model on collated inputs (moved to the device, floats in the model's dtype)."""
        import torch

        moved = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                 for k, v in inputs.items()}
        with torch.inference_mode():
            return self.model(**moved, use_cache=False)

    def logits(self, batch: list[Encoded], inputs: dict | None = None):
        """One forward pass over a padded batch: (logits (B, T, V), attention mask (B, T)).
        `inputs`: `collate(batch)` when the caller has it already (the engine collates the next
        batch in its encoding thread)."""
        inputs = self.collate(batch) if inputs is None else inputs
        return self._run(inputs).logits, inputs[self._mask_key]

    def forward_batch(self, batch: list[Encoded], inputs: dict | None = None) -> BatchOutput:
        """One forward pass for the statistics: the hidden states and the head where the model's
        head can be applied by mmia (never a (B, T, V) tensor), else the full logits."""
        inputs = self.collate(batch) if inputs is None else inputs
        return self.forward_with_head(lambda: self._run(inputs), tuple(inputs[self._mask_key].shape))

    def forward_with_head(self, run, shape: tuple) -> BatchOutput:
        """`forward_batch` for a forward pass the caller writes: `run()` calls this target's model
        and returns its output, for positions of `shape` (B, T) (FiMMIA's Whisper scorer passes
        the encoder states it shares between rows)."""
        state = self._head_state()
        if state is None:
            return BatchOutput(logits=run().logits)
        capture, weights = state
        with capture.capturing() as got:
            out = run()
        hidden = got.hidden
        got.hidden = None
        if hidden is None or tuple(hidden.shape[:2]) != tuple(shape):
            return self._full_from_now(run)  # the head was not given (B, T, H) hidden states
        if not self.__dict__.get("_head_checked"):
            matched = matching_head(weights, hidden, out.logits, softcap_of(self.model.config))
            if matched is None:
                return self._full_from_now(run)
            self._head, self._head_checked = (capture, matched), True
            weights = matched
        return BatchOutput(hidden=hidden, head=weights)

    def _head_state(self):
        """(HeadCapture, HeadWeights) of the hidden-state path, or None for the full logits."""
        if self.stats_path == "full":
            return None
        state = self.__dict__.get("_head")
        if state is None:
            found = linear_head(self.model)
            state = self._head = False if found is None else (HeadCapture(found[0]), found[1])
        return state or None

    def _full_from_now(self, run) -> BatchOutput:
        """This model's logits are not mmia's head on its hidden states: the full path, for good
        (`run()` once more, the head unhooked)."""
        state = self.__dict__.get("_head")
        if state:
            state[0].remove()
        self._head = False
        return BatchOutput(logits=run().logits)

    def token_stats(self, batch: list[Encoded]) -> list[dict[str, np.ndarray]]:
        """Per-sample statistics of one batch: dict with `codes` (L,) and each STAT_NAMES (L-1,).

        Only the rows some slice scores are computed (`stat_rows`); the others hold NaN. The
        vocabulary-sized work runs on groups of rows small enough to bound memory, then each
        sample keeps only its own scalars per token.
        """
        return self.reduce_batch(self.forward_batch(batch), batch)

    def _stats_group(self, logits, vocab: int) -> tuple[int, dict | None]:
        """(rows per group of vocabulary-sized work, workspace of its buffers or None);
        `logits`: the tensor the rows come from (its device decides)."""
        if logits.device.type == "cpu":
            return _stats_group_cpu(vocab)
        return device_group_rows(logits.device, vocab), None

    def reduce_batch(self, out: BatchOutput, batch: list[Encoded]) -> list[dict[str, np.ndarray]]:
        """The statistics half of `token_stats`, from `forward_batch`'s output (the engine runs it
        in a worker thread while the model runs on the next batch)."""
        return self._reduce(batch, *out.row_source())

    def reduce_logits(self, logits, batch: list[Encoded]) -> list[dict[str, np.ndarray]]:
        """`reduce_batch` from a batch's full logits (B, T, V)."""
        return self.reduce_batch(BatchOutput(logits=logits), batch)

    def position_nll(self, out: BatchOutput, index, targets):
        """Cross-entropy (n,) float32 of the flattened (B * width) positions `index` of
        `forward_batch`'s output, position `index[j]` predicting token `targets[j]`.

        The vocabulary-sized work runs on groups of positions bounded as the statistics' groups
        are (`_stats_group`: free memory on an accelerator), from the head on the hidden states
        or the full logits, each group's logits upcast to float32 before the log-softmax.
        """
        import torch

        _, vocab, source, logits_of = out.row_source()
        index = torch.as_tensor(np.asarray(index, dtype=np.int64)).to(source.device)
        targets = torch.as_tensor(np.asarray(targets, dtype=np.int64)).to(source.device)
        nll = torch.empty(len(index), dtype=torch.float32, device=source.device)
        group, work = self._stats_group(source, vocab)
        with torch.inference_mode():
            for g in range(0, len(index), group):
                rows = logits_of(index[g : g + group], work).float()
                nll[g : g + group] = torch.nn.functional.cross_entropy(rows, targets[g : g + group], reduction="none")
        return nll

    def _reduce(self, batch: list[Encoded], width: int, vocab: int, source, logits_of) -> list[dict[str, np.ndarray]]:
        """Statistics of a batch of padded width `width`; `logits_of(index, work)` gives the logits
        (n, V) of rows `index` of the flattened (B * width) positions; `source`: their tensor."""
        import torch

        b, rows = len(batch), width - 1
        if rows < 1:
            return [{**{k: np.zeros(0, np.float32) for k in STAT_NAMES}, "codes": e.codes.copy()} for e in batch]
        # Rows of the (b, width-1) grid that need every statistic, then those that need only the
        # distribution's (media rows): one gather puts them first, so the target statistics
        # run on a prefix and nothing is computed for rows that no slice reads.
        t_rows, d_rows, tgt = [], [], []
        for i, e in enumerate(batch):
            need_t, need_d = stat_rows(e.codes)
            t_idx = np.flatnonzero(need_t)
            t_rows.append(i * rows + t_idx)
            d_rows.append(i * rows + np.flatnonzero(need_d & ~need_t))
            tgt.append(e.input_ids[1:][t_idx])
        t_rows, d_rows = np.concatenate(t_rows), np.concatenate(d_rows)
        grid = np.concatenate([t_rows, d_rows])
        n_t = len(t_rows)
        # One (statistic, grid row) array: rows 0-4 the DIST_STATS, 5-9 the TARGET_STATS, so a
        # group's results land in two assignments and each sample's in one copy.
        flat = np.full((len(_STAT_ORDER), b * rows), np.nan, dtype=np.float32)
        n_d = len(DIST_STATS)
        if len(grid):
            # Row r of the (b, rows) grid is row (r // rows) * width + r % rows of the positions.
            src = torch.from_numpy(grid // rows * width + grid % rows).to(source.device)
            targets = torch.from_numpy(np.concatenate(tgt)).to(source.device)
            group, work = self._stats_group(source, vocab)
            with torch.inference_mode():
                for g in range(0, len(grid), group):
                    stop = min(g + group, len(grid))
                    k_t = max(0, min(n_t, stop) - g)
                    rows_in = logits_of(src[g:stop], work)
                    # stats_from_rows upcasts each group's logits to float32 before log_softmax.
                    st = stats_from_rows(rows_in, targets[g : g + k_t], k_t, work)
                    flat[:n_d, grid[g:stop]] = torch.stack([st[k] for k in DIST_STATS]).float().cpu().numpy()
                    if k_t:
                        tv = torch.stack([st[k] for k in TARGET_STATS]).float().cpu().numpy()
                        flat[n_d:, grid[g : g + k_t]] = tv
        out = []
        for i, e in enumerate(batch):
            n = max(len(e) - 1, 0)
            block = flat[:, i * rows : i * rows + n].copy()  # each statistic a contiguous row of it
            rec = {k: block[_STAT_ORDER[k]] for k in STAT_NAMES}
            rec["codes"] = e.codes.copy()
            out.append(rec)
        return out


@dataclass
class BatchOutput:
    """What one forward pass leaves for the statistics: the model's logits (B, T, V), or the
    last hidden states (B, T, H) and the head that maps a group of their rows to logits."""

    logits: object | None = None
    hidden: object | None = None
    head: HeadWeights | None = None

    def row_source(self):
        """(padded width, vocabulary, the tensor rows come from, `logits_of(index, work)`): the
        logits (n, V) of rows `index` of the flattened (B * width) positions, gathered from the
        full logits or made by the head from the hidden states."""
        if self.logits is not None:
            b, width, vocab = self.logits.shape
            flat = self.logits.reshape(b * width, vocab)
            return width, vocab, self.logits, lambda index, work: gather_rows(flat, index, work)
        b, width, h = self.hidden.shape
        flat = self.hidden.reshape(b * width, h)
        return width, self.head.vocab, self.hidden, lambda index, work: self.head.rows(flat, index, work)


_STAT_ORDER = {k: j for j, k in enumerate(DIST_STATS + TARGET_STATS)}
_STATS_WORK = threading.local()


def _cat_padded(parts):
    """Samples' media tensors concatenated on dim 0, zero-padded at the end of any other dim that
    differs (rows encoded by separate processor calls: LLaVA-OneVision's crops, SmolVLM's tiles per
    image). The processors pad a batch the same way, and the models drop what is padding
    (OneVision slices by image_sizes, SmolVLM skips all-zero images)."""
    import torch

    if len({tuple(p.shape[1:]) for p in parts}) > 1:
        size = [max(p.shape[d] for p in parts) for d in range(1, parts[0].dim())]
        parts = [torch.nn.functional.pad(p, [x for d in reversed(range(1, p.dim()))
                                             for x in (0, size[d - 1] - p.shape[d])]) for p in parts]
    return torch.cat(parts, dim=0)


# What one row of a group costs on an accelerator, in float32 words per vocabulary entry: the
# group's logits (and their float32 copy when the model runs in bf16) and the six float32
# temporaries of `token_stats._stats_2d`, rounded up.
_WORDS_PER_ROW = 8


def device_group_rows(device, vocab: int) -> int:
    """Rows per group on an accelerator: half the memory free now (the driver's free memory plus
    what torch's caching allocator holds unused) over what a row costs, so the model's next
    forward pass, which runs beside the statistics, keeps the other half."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return max(1, int(free // 2) // (max(1, vocab) * 4 * _WORDS_PER_ROW))
    return max(1, (1 << 25) // max(1, vocab))  # other accelerators: about 2^25 logits a group


def _stats_group_cpu(vocab: int) -> tuple[int, dict]:
    # On CPU, about 2^19 logits (2 MiB of float32) per group: a group's seven buffers stay in
    # the caches and the per-group Python overhead stays small (1024 rows at V = 512; at least
    # 8 rows, ~5 MiB a buffer at V = 152k). The buffers are kept per thread (the engine reduces
    # in a worker thread, the lowercase view's stream in another; they go with the thread),
    # grown once and reused: fresh multi-MiB tensors are page-faulted in anew on every batch.
    work = _STATS_WORK.__dict__.setdefault("work", stats_workspace())
    return max(8, (1 << 19) // max(1, vocab)), work


def stat_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows needing every statistic, rows needing the distribution's) over a sample's L-1 rows.

    The rows are those `mmia.targets.base.slice_rows` gives the slices: a text slice (prompt,
    answer) reads its rows with all statistics, a media slice (image, audio) with the
    distribution's statistics (DIST_STATS) only. Rows that no slice reads (e.g. predicting a
    chat template's tokens) are skipped.
    """
    codes = np.asarray(codes)
    text = np.logical_or.reduce([slice_rows(codes, s) for s in TEXT_SLICES])
    media = np.logical_or.reduce([slice_rows(codes, s) for s in MEDIA_SLICES])
    return text, text | media


class CausalLMTarget(_Generative):
    """A text-only causal language model (AutoModelForCausalLM + AutoTokenizer)."""

    kind = "causal-lm"


class VisionLanguageTarget(_Generative):
    """An image-text-to-text model (AutoModelForImageTextToText + AutoProcessor), e.g. LLaVA.

    When the saved processor cannot be built here (Qwen2-VL's needs torchvision for its video
    part), the image processor and tokenizer are used directly and the image placeholder is
    expanded by the model's rule (patches / merge_size^2). A video row is read as up to
    `max_frames` evenly spaced frames, each an image (a list of images is its decoded media).
    """

    kind = "vlm"
    media_field = "image"
    media_code = IMAGE
    max_frames = 8

    def __init__(self, path, model, tokenizer, fingerprint, device, dtype, processor=None, image_processor=None):
        super().__init__(path, model, tokenizer, fingerprint, device, dtype)
        self.processor = processor
        self.image_processor = image_processor
        cfg = model.config
        tid = getattr(cfg, "image_token_id", None)
        if tid is None:
            tid = getattr(cfg, "image_token_index", None)
        self.media_token_id = tid
        self.image_token = tokenizer.convert_ids_to_tokens(tid) if tid is not None else "<image>"
        if getattr(cfg, "vision_start_token_id", None) is not None:
            start = tokenizer.convert_ids_to_tokens(cfg.vision_start_token_id)
            end = tokenizer.convert_ids_to_tokens(cfg.vision_end_token_id)
            self.placeholder = f"{start}{self.image_token}{end}"
        else:
            self.placeholder = self._media_token_text() or self.image_token
        # The fast path (`_fast_batch`): image shape (H, W, 3) -> image tokens per image, for the
        # shapes on which it reproduced the processor's own output; off for good after a mismatch.
        ip = getattr(processor, "image_processor", None) if processor is not None else None
        self._fast_pixels = FastPixels(ip) if ip is not None else None
        self._fast_shapes: dict[tuple, int] = {}
        self._fast_off = self._fast_pixels is None or not self._fast_pixels.usable or tid is None

    def _load_media(self, ref):
        from mmia.data.media import load_image

        return load_image(ref)  # uint8 (H, W, 3); a PIL image only where the processor runs

    def _media_of(self, sample):
        if sample.image is None and sample.video is not None:
            from mmia.data.media import load_video

            frames = list(load_video(sample.video, max_frames=self.max_frames))  # uint8 arrays, as images are
            return frames, len(frames)
        return super()._media_of(sample)

    def _given_media(self, sample, decoded):
        if sample.image is None and sample.video is not None:  # a decoded clip (T, H, W, 3): its frames
            frames = list(decoded)
            if len(frames) > self.max_frames:
                frames = [frames[i] for i in np.linspace(0, len(frames) - 1, self.max_frames).round().astype(int)]
            return frames, len(frames)
        return super()._given_media(sample, decoded)

    # Types whose prompt/answer boundary mmia found wrongly before the processor-written parts
    # (and the count from the end) existed: their older cached statistics must not be read.
    _BOUNDARY_FIXED = ("idefics3", "gemma3", "smolvlm", "llava_onevision", "mllama")

    def format_tag(self) -> str:
        # How video rows are read is part of the format (cached statistics of a video row depend on it).
        tag = f"{super().format_tag()}:f{self.max_frames}"
        model_type = getattr(getattr(self.model, "config", None), "model_type", None)
        return f"{tag}:b2" if model_type in self._BOUNDARY_FIXED else tag

    def _tokenize_batch(self, texts, medias):
        """The fast path where it has been checked on this image shape; else the processor, whose
        output on a new image shape is then compared with the fast path's to enable it."""
        fast = self._fast_batch(texts, medias)
        if fast is not None:
            return fast
        out = self._processor_batch(texts, medias)
        self._check_fast(texts, medias, out)
        return out

    def _fast_batch(self, texts, medias):
        """Tokenise with the placeholder unexpanded, repeat the image token as the processor does,
        and preprocess the images in one vectorised step (`FastPixels`); None where not checked."""
        if self._fast_off or not medias or any(m is None or isinstance(m, list) for m in medias):
            return None  # rows without an image, or clips (several images per row): the processor
        shapes = {m.shape for m in medias}
        if len(shapes) != 1 or next(iter(shapes)) not in self._fast_shapes:
            return None
        n = self._fast_shapes[next(iter(shapes))]
        ids = self._expand_media([np.asarray(i, dtype=np.int64) for i in self.tokenizer(list(texts)).input_ids], n)
        if ids is None:
            return None
        pix = self._fast_pixels(medias)
        return [(row, {"pixel_values": pix[i : i + 1]}, {}) for i, row in enumerate(ids)]

    def _expand_media(self, rows, n):
        """Each row's single image token repeated n times; None if a row has not exactly one."""
        out = []
        for row in rows:
            is_media = row == self.media_token_id
            if int(is_media.sum()) != 1:
                return None
            out.append(np.repeat(row, np.where(is_media, n, 1)))
        return out

    def _check_fast(self, texts, medias, out) -> None:
        """Enable the fast path for this batch's image shape if it reproduces `out` (the
        processor's result): the same token ids, pixel values within 1e-6, nothing else."""
        import torch

        if self._fast_off or not medias or any(m is None or isinstance(m, list) for m in medias):
            return
        shapes = {m.shape for m in medias}
        shape = next(iter(shapes))
        if len(shapes) != 1 or shape in self._fast_shapes:
            return
        if len(shape) != 3 or shape[2] != 3 or medias[0].dtype != np.uint8 or not self._fast_pixels.identity_shape(
                *shape[:2]):
            return  # the processor resizes or crops these: it keeps them
        ok = all(set(row[1]) == {"pixel_values"} and not row[2] for row in out)
        if ok:
            proc_ids = [np.asarray(row[0], dtype=np.int64) for row in out]
            counts = {int((i == self.media_token_id).sum()) for i in proc_ids}
            n = counts.pop() if len(counts) == 1 else 0
            unexpanded = [np.asarray(i, dtype=np.int64) for i in self.tokenizer(list(texts)).input_ids]
            ids = self._expand_media(unexpanded, n) if n else None
            ok = ids is not None and all(np.array_equal(a, b) for a, b in zip(ids, proc_ids, strict=True))
        if ok:
            ref = torch.cat([row[1]["pixel_values"] for row in out])
            mine = self._fast_pixels(medias)
            ok = (ref.dtype == mine.dtype and ref.shape == mine.shape
                  and bool(torch.allclose(mine, ref, rtol=0, atol=1e-6)))
        if ok:
            self._fast_shapes[shape] = n
        else:
            self._fast_off = True

    def _processor_batch(self, texts, medias):
        """One processor call for the batch when every sample has an image (or none does) and the
        processor's media tensors have one row per sample (LLaVA); else sample by sample."""
        with_media = [m is not None for m in medias]
        clips = any(isinstance(m, list) for m in medias)  # several images per row: one call per row
        if self.processor is None or len(texts) < 2 or len(set(with_media)) > 1 or clips:
            return super()._tokenize_batch(texts, medias)
        # One list of images per text: SmolVLM's and Mllama's processors read a flat list as one row's.
        kw = {"images": [[_pil(m)] for m in medias]} if with_media[0] else {}
        try:
            out = self._processor_rows(texts, padding=True, **kw)
        except (ValueError, TypeError):  # a processor that refuses this batch: one call per row names the row
            out = None
        return out if out is not None else super()._tokenize_batch(texts, medias)

    def _processor_rows(self, texts, **kw):
        """The processor on `texts`: per row (ids, media extras, per-token extras, its images'
        replacement texts); None when its media tensors do not have one row per text."""
        import torch

        enc = self.processor(text=list(texts), return_tensors="pt", return_text_replacement_offsets=True, **kw)
        offsets = enc.pop("text_replacement_offsets", None) or [[] for _ in texts]
        per_row = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", *_PER_TOKEN)}
        if len(texts) > 1 and any(getattr(v, "shape", (None,))[0] != len(texts) for v in per_row.values()):
            return None
        mask = enc["attention_mask"].bool() if "attention_mask" in enc else torch.ones_like(enc["input_ids"]).bool()
        out = []
        for i in range(len(texts)):
            keep = mask[i]
            token_extras = {k: enc[k][i][keep].numpy() for k in _PER_TOKEN if k in enc}
            repl = [r["replacement"] for r in offsets[i] if r.get("type") == "image"]
            # One text: its media tensors whole (LLaVA's pixel_values have one row per image, a clip's frames).
            extras = {k: v[i : i + 1] for k, v in per_row.items()} if len(texts) > 1 else per_row
            out.append((enc["input_ids"][i][keep].tolist(), extras, token_extras, repl))
        return out

    def _written_ids(self, text, replacements):
        """A part of a row (the prompt part, or the row up to its answer's end) written out as the
        processor wrote the whole row, then tokenised: each image placeholder replaced by the text
        it became (SmolVLM's tiles, row/column tokens and image tokens; LLaVA's repeated <image>),
        the processor's own text rules applied (Mllama puts BOS after leading <|image|> tokens).
        So the part's ids are a prefix of the row's, whatever the expansion."""
        proc = self.processor
        written = proc.prepare_inputs_layout(text=[text])[1][0]  # (images, text, ...) for every processor
        n = written.count(self.image_token)
        if n and replacements:
            written = proc.get_text_with_replacements([written], images_replacements=list(replacements[:n]))[0][0]
        return self.tokenizer(written).input_ids

    def _tokenize(self, text, media):
        images = media if isinstance(media, list) else [media]
        if self.processor is not None:
            kw = {"images": [_pil(m) for m in images]} if media is not None else {}  # one text: a flat list
            return self._processor_rows([text], **kw)[0]
        extras = {}
        if media is not None:
            extras = dict(self.image_processor(images=[_pil(m) for m in images], return_tensors="pt"))
            merge = getattr(self.image_processor, "merge_size", 1) or 1
            # Each image's placeholder, in order, becomes as many tokens as that image has patches.
            pieces = text.split(self.image_token, len(images))
            counts = [int(thw.prod()) // (merge * merge) for thw in extras["image_grid_thw"]]
            text = pieces[0] + "".join(self.image_token * n + rest for n, rest in zip(counts, pieces[1:], strict=False))
        ids = self.tokenizer(text).input_ids
        mm = (np.asarray(ids) == self.media_token_id).astype(np.int64)
        return list(ids), extras, {"mm_token_type_ids": mm}


# Processor outputs with one value (or block) per token, padded with the ids and sliced with them:
# Gemma 3's token_type_ids mark its image tokens, which attend to each other both ways; Mllama's
# cross_attention_mask is (L, images, tiles).
_PER_TOKEN = ("mm_token_type_ids", "token_type_ids", "cross_attention_mask")


def _pil(image):
    """A uint8 RGB array as the PIL image the processors were given before the fast path existed."""
    from PIL import Image

    return image if isinstance(image, Image.Image) else Image.fromarray(image)


class AudioLanguageTarget(_Generative):
    """An audio-text-to-text model with a processor (e.g. Qwen2-Audio: Whisper features + LM)."""

    kind = "audio-lm"
    media_field = "audio"
    media_code = AUDIO

    def __init__(self, path, model, tokenizer, fingerprint, device, dtype, processor):
        super().__init__(path, model, tokenizer, fingerprint, device, dtype)
        self.processor = processor
        cfg = model.config
        tid = getattr(cfg, "audio_token_index", None)
        if tid is None:
            tid = getattr(cfg, "audio_token_id", None)
        self.media_token_id = tid
        token = tokenizer.convert_ids_to_tokens(tid)
        bos = getattr(processor, "audio_bos_token", None) or getattr(tokenizer, "audio_bos_token", None)
        eos = getattr(processor, "audio_eos_token", None) or getattr(tokenizer, "audio_eos_token", None)
        self.placeholder = f"{bos or ''}{token}{eos or ''}"
        self.sampling_rate = int(getattr(processor.feature_extractor, "sampling_rate", 16000))

    def _load_media(self, ref):
        from mmia.data.media import load_audio

        return load_audio(ref, self.sampling_rate)

    def _tokenize(self, text, media):
        kw = {"audio": [media], "sampling_rate": self.sampling_rate} if media is not None else {}
        enc = self.processor(text=[text], return_tensors="pt", **kw)
        ids = enc["input_ids"][0].tolist()
        extras = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        return ids, extras, {}
