"""Seeded person names from several Faker locales: members and non-members share one generator."""

from __future__ import annotations

import numpy as np

LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES", "it_IT", "pl_PL", "nl_NL", "pt_BR")


def _faker():
    """Faker's class, imported here: it is the `testbeds` extra, not a core dependency."""
    try:
        from faker import Faker
    except ImportError:
        from mmia.errors import InputError

        raise InputError("mmia testbeds need faker: pip install 'mmia[testbeds]'") from None
    return Faker


def person_names(n: int, seed: int, locales=LOCALES, *, with_locales: bool = False):
    """`n` distinct "First Last" names, the same for the same seed on every machine.

    Each name's locale is drawn at random, so every split of the list (members, non-members)
    has the same mix of locales and name styles. `with_locales=True` also returns each name's
    locale (for checks of that claim).
    """
    Faker = _faker()
    fakers = []
    for i, loc in enumerate(locales):
        f = Faker(loc)
        f.seed_instance(seed * 1000 + i)
        fakers.append(f)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    out_locales: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(len(fakers)))
        f = fakers[k]
        name = f"{f.first_name()} {f.last_name()}"
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
            out_locales.append(locales[k])
    return (out, out_locales) if with_locales else out


def split_names(names: list[str], n_members: int, n_calibration: int, rng: np.random.Generator):
    """Random split of one generator's names into members, calibration and evaluation non-members."""
    order = rng.permutation(len(names))
    shuffled = [names[i] for i in order]
    return (
        shuffled[:n_members],
        shuffled[n_members : n_members + n_calibration],
        shuffled[n_members + n_calibration :],
    )


def identity_split(testbed: str, seed: int, n_members: int, n_calibration: int, n_eval: int):
    """The testbeds' people: one seeded name pool split at random (members, calibration, evaluation).

    The permutation's generator depends on the seed alone, never on the names, so a member and
    a non-member name are exchangeable: nothing about a name (locale, length, spelling) makes it
    more likely to be a member. tests/test_testbeds_names.py checks this over many seeds.
    """
    from mmia.data.ids import stable_seed

    names = person_names(n_members + n_calibration + n_eval, stable_seed(testbed, seed, "names") % (2**31))
    return split_names(names, n_members, n_calibration, np.random.default_rng(stable_seed("split", seed)))
