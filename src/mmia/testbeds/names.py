"""Seeded person names from several Faker locales: members and non-members share one generator."""

from __future__ import annotations

import numpy as np

LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES", "it_IT", "pl_PL", "nl_NL", "pt_BR")


def person_names(n: int, seed: int, locales=LOCALES) -> list[str]:
    """`n` distinct "First Last" names, the same for the same seed on every machine.

    Each name's locale is drawn at random, so every split of the list (members, non-members)
    has the same mix of locales and name styles.
    """
    from faker import Faker

    fakers = []
    for i, loc in enumerate(locales):
        f = Faker(loc)
        f.seed_instance(seed * 1000 + i)
        fakers.append(f)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        f = fakers[int(rng.integers(len(fakers)))]
        name = f"{f.first_name()} {f.last_name()}"
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out
