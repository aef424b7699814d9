"""Caption format features: length, tokens, digits, case, punctuation, scripts, URLs, years.

Member and non-member captions collected at different times or from different crawls differ in
form as much as in words (LAION-MI: length, casing, digits, punctuation; docs/shift.md), which a
bag of n-grams sees only indirectly. Each feature is a pure function of one text (nothing is
fitted here); the classifier over them is fit inside the folds (`mmia.shift.models`).
"""

from __future__ import annotations

import re

import numpy as np

_URL = re.compile(r"https?://|www\.|\.(?:com|org|net|co\.uk|de|jp)\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_NUMBER = re.compile(r"\d+")
# Characters counted one by one (how often each occurs in the text).
_COUNTED = ",-|'\"(:/&_#."

FORMAT_FEATURE_NAMES = (
    "chars", "tokens", "letter_share", "upper_share_of_letters", "digits", "digit_share", "punctuation",
    "punctuation_share", "non_ascii_share", "cjk_hangul_share", "title_token_share", "all_caps_token_share",
    "has_url", "mean_token_length", "max_token_length", "starts_upper", "starts_digit", "ends_sentence_mark",
    "ends_period", "double_spaces", "outer_whitespace", "all_upper", "all_lower", "numbers",
    "longest_number", "latest_year", "curly_quotes", "ellipsis", "non_ascii_tokens",
    *(f"count[{c}]" for c in _COUNTED),
)


def _is_cjk_or_hangul(c: str) -> bool:
    o = ord(c)
    return 0x3000 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF


def format_vector(text: str) -> list[float]:
    """The format features of one text, in the order of FORMAT_FEATURE_NAMES."""
    n = len(text)
    tokens = text.split()
    nt = len(tokens)
    letters = sum(c.isalpha() for c in text)
    upper = sum(c.isupper() for c in text)
    digits = sum(c.isdigit() for c in text)
    punct = sum(not c.isalnum() and not c.isspace() for c in text)
    lengths = [len(w) for w in tokens] or [0]
    numbers = _NUMBER.findall(text)
    years = [int(y) for y in _YEAR.findall(text)]
    last = text.rstrip()[-1:]
    values = [
        n, nt, letters / max(n, 1), upper / max(letters, 1), digits, digits / max(n, 1), punct, punct / max(n, 1),
        sum(ord(c) > 127 for c in text) / max(n, 1), sum(map(_is_cjk_or_hangul, text)) / max(n, 1),
        sum(w[:1].isupper() for w in tokens) / max(nt, 1), sum(w.isupper() and len(w) > 1 for w in tokens) / max(nt, 1),
        float(bool(_URL.search(text))), float(np.mean(lengths)), max(lengths), float(text[:1].isupper()),
        float(text[:1].isdigit()), float(last in (".", "!", "?")), float(last == "."), text.count("  "),
        float(text != text.strip()), float(text.isupper()), float(text.islower()), len(numbers),
        max((len(x) for x in numbers), default=0), max(years, default=0),
        text.count("\u2019") + text.count("\u201c") + text.count("\u201d"), float("..." in text or "\u2026" in text),
        sum(not w.isascii() for w in tokens),
    ]
    values.extend(text.count(c) for c in _COUNTED)
    return values


def format_features(texts) -> np.ndarray:
    """Documents x FORMAT_FEATURE_NAMES (float64); a pure function of each text."""
    rows = [format_vector(t) for t in texts]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FORMAT_FEATURE_NAMES))
