"""The identity testbeds split one name pool at random: nothing about a name predicts membership.

`mmia demo`'s blind check once flagged the seed-0 `clap-voices` query split as shifted
(sentence-embedding AUC 0.64 on the names alone); docs/umid.md reports the investigation (a
chance split, not a bias). These tests would catch a real bias in how the builders draw or
split names: members drawn from another locale mix, a split that follows the order names were
generated in, or one that follows their spelling (sorted names), pooled over many seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, mannwhitneyu

from mmia.data.ids import stable_seed
from mmia.testbeds.names import LOCALES, identity_split, person_names

SEEDS = range(12)
SIZES = (100, 100, 100)  # the full testbeds' members, calibration, evaluation non-members


def _rows(pool, locales, group):
    where = {n: i for i, n in enumerate(pool)}
    return [(locales[where[n]], where[n], len(n), n.split()[-1][0].lower()) for n in group]


def _p_values(members: list[tuple], nonmembers: list[tuple]) -> dict[str, float]:
    """Two-sample tests of locale mix, generation order, name length and surname initial."""
    table = np.array([[sum(r[0] == loc for r in g) for loc in LOCALES] for g in (members, nonmembers)])
    table = table[:, table.sum(0) > 0]
    initials = sorted({r[3] for r in members + nonmembers})
    p = {"locale": chi2_contingency(table).pvalue}
    for name, k in (("order", 1), ("length", 2)):
        p[name] = mannwhitneyu([r[k] for r in members], [r[k] for r in nonmembers]).pvalue
    p["initial"] = mannwhitneyu([initials.index(r[3]) for r in members],
                                [initials.index(r[3]) for r in nonmembers]).pvalue
    return p


@pytest.mark.parametrize("testbed", ["clip-identities", "clap-voices"])
def test_member_and_nonmember_names_are_drawn_alike(testbed):
    mem, non = [], []
    for seed in SEEDS:
        pool, locales = person_names(sum(SIZES), stable_seed(testbed, seed, "names") % (2**31), with_locales=True)
        members, _, evaluation = identity_split(testbed, seed, *SIZES)
        mem += _rows(pool, locales, members)
        non += _rows(pool, locales, evaluation)
    assert len(mem) == len(non) == 100 * len(SEEDS)
    p = _p_values(mem, non)
    assert min(p.values()) > 1e-3, p


def test_the_checks_catch_biased_splits():
    """The same checks, pooled the same way, fail for splits with the biases they look for."""
    biased = {"members drawn first": lambda pool, loc: (list(range(100)), list(range(200, 300))),
              "sorted by surname": lambda pool, loc: _halves(sorted(range(300), key=lambda i: pool[i].split()[-1])),
              "sorted by length": lambda pool, loc: _halves(sorted(range(300), key=lambda i: len(pool[i]))),
              "members from other locales": lambda pool, loc: _halves(sorted(range(300), key=lambda i: loc[i] < "es"))}
    for what, split in biased.items():
        mem, non = [], []
        for seed in SEEDS:
            pool, locales = person_names(300, stable_seed("clap-voices", seed, "names") % (2**31), with_locales=True)
            m_idx, n_idx = split(pool, locales)
            mem += _rows(pool, locales, [pool[i] for i in m_idx])
            non += _rows(pool, locales, [pool[i] for i in n_idx])
        assert min(_p_values(mem, non).values()) < 1e-3, what


def _halves(order):
    return order[:100], order[200:]
