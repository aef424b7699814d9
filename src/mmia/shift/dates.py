"""Date detection (Das, Zhang, Tramèr 2024): the years and dates a text mentions.

Member and non-member sets gathered at different times mention different years; the blind
attack reads them straight from the text. `date_features` is a pure function of one text; the
classifier over these features is fit inside each fold.
"""

from __future__ import annotations

import re

import numpy as np

MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)
_MONTH_RE = "|".join([*MONTHS, *(m[:3] for m in MONTHS), "sept"])
# A year from 1800 to 2099 standing alone (not inside a longer number such as a phone number).
YEAR_RE = re.compile(r"(?<![\d.,/-])(1[89]\d\d|20\d\d)(?![\d])")
# 2019-05-12, 2019/5/12
ISO_DATE_RE = re.compile(r"\b(1[89]\d\d|20\d\d)[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12]\d|3[01])\b")
# 12/05/2019, 5.12.19
NUMERIC_DATE_RE = re.compile(r"\b(0?[1-9]|[12]\d|3[01])[-/.](0?[1-9]|[12]\d|3[01])[-/.](\d{4}|\d{2})\b")
# May 12, 2019 / 12 May 2019 / May 2019
MONTH_DATE_RE = re.compile(
    rf"\b(?:(?:{_MONTH_RE})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:1[89]\d\d|20\d\d)"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH_RE})\.?,?\s+(?:1[89]\d\d|20\d\d)"
    rf"|(?:{_MONTH_RE})\.?,?\s+(?:1[89]\d\d|20\d\d))\b",
    re.IGNORECASE,
)
MONTH_WORD_RE = re.compile(rf"\b(?:{_MONTH_RE})\b", re.IGNORECASE)

FEATURE_NAMES = (
    "n_years", "max_year", "min_year", "n_dates", "n_month_words", "has_year", "has_date",
)


def years_mentioned(text: str) -> list[int]:
    """Years (1800-2099) written in the text, in order of appearance."""
    years = [int(m.group(1)) for m in YEAR_RE.finditer(text)]
    # Two-digit years of numeric dates (12/05/98): 00-49 -> 20xx, 50-99 -> 19xx.
    years += [_two_digit_year(int(m.group(3))) for m in NUMERIC_DATE_RE.finditer(text) if len(m.group(3)) == 2]
    return years


def _two_digit_year(yy: int) -> int:
    return 2000 + yy if yy < 50 else 1900 + yy


def count_dates(text: str) -> int:
    """Full dates (a day, a month and a year, or a month and a year) written in the text."""
    return (len(ISO_DATE_RE.findall(text)) + len(NUMERIC_DATE_RE.findall(text))
            + len(MONTH_DATE_RE.findall(text)))


def date_features(text: str) -> np.ndarray:
    """The date features of one text (see FEATURE_NAMES); max_year and min_year are 0 when no year is written."""
    years = years_mentioned(text)
    n_dates = count_dates(text)
    return np.array(
        [
            len(years),
            max(years) if years else 0.0,
            min(years) if years else 0.0,
            n_dates,
            len(MONTH_WORD_RE.findall(text)),
            float(bool(years)),
            float(n_dates > 0),
        ],
        dtype=np.float64,
    )


def date_matrix(texts) -> np.ndarray:
    return np.stack([date_features(t) for t in texts]) if len(texts) else np.zeros((0, len(FEATURE_NAMES)))
