"""Seeded gibberish queries: the non-member reference that needs no real names.

Generators (mixed in equal parts, seeded, so a reference is reproducible):
- "chars": random printable characters (the predecessors' 10-character strings);
- "letters": two capitalised words of random letters (name-shaped, unpronounceable);
- "pseudowords": two capitalised pronounceable pseudo-words from consonant-vowel syllables
  (name-shaped and name-sounding, but no one's name).
"""

from __future__ import annotations

import string

import numpy as np

from mmia.data.ids import stable_seed

GENERATORS = ("chars", "letters", "pseudowords")
_PRINTABLE = string.ascii_letters + string.digits + string.punctuation
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "ch", "dr", "gr", "kl", "pr", "sh", "st", "tr", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "l", "s", "t", "m", "k"]


def _chars(rng: np.random.Generator, length: int = 10) -> str:
    return "".join(_PRINTABLE[i] for i in rng.integers(len(_PRINTABLE), size=length))


def _letters(rng: np.random.Generator) -> str:
    words = []
    for _ in range(2):
        n = int(rng.integers(4, 10))
        words.append("".join(string.ascii_lowercase[i] for i in rng.integers(26, size=n)).capitalize())
    return " ".join(words)


def _pseudoword(rng: np.random.Generator) -> str:
    syl = [
        _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] + _CODAS[rng.integers(len(_CODAS))]
        for _ in range(int(rng.integers(2, 4)))
    ]
    return "".join(syl).capitalize()


def gibberish(n: int, seed: int = 0, generators=GENERATORS) -> list[str]:
    """`n` distinct gibberish strings, generators in turn; the same list for the same seed."""
    unknown = set(generators) - set(GENERATORS)
    if unknown or not generators:
        raise ValueError(f"unknown gibberish generator(s) {sorted(unknown)}; choose from {GENERATORS}")
    rng = np.random.default_rng(stable_seed("umid-gibberish", seed))
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        kind = generators[i % len(generators)]
        i += 1
        if kind == "chars":
            s = _chars(rng)
        elif kind == "letters":
            s = _letters(rng)
        else:
            s = f"{_pseudoword(rng)} {_pseudoword(rng)}"
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
