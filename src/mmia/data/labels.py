"""Label parsing: 1/0, true/false, member/nonmember (any case); blank means unlabelled."""

from __future__ import annotations

import math

_MEMBER = {"1", "true", "member", "yes", "in"}
_NONMEMBER = {"0", "false", "nonmember", "non-member", "non_member", "no", "out"}


class UnknownLabel(ValueError):
    pass


def parse_label(value) -> int | None:
    """Return 1 (member), 0 (non-member) or None (no label); raise UnknownLabel otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        if value in (0, 1):
            return int(value)
        raise UnknownLabel(f"unknown label {value!r} (expected 1/0, true/false or member/nonmember)")
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "":
            return None
        if v in _MEMBER or v == "1.0":
            return 1
        if v in _NONMEMBER or v == "0.0":
            return 0
    raise UnknownLabel(f"unknown label {value!r} (expected 1/0, true/false or member/nonmember)")
