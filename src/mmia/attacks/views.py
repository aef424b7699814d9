"""The views of the data an attack can read, and the one table of how `mmia attack` opens each.

A view is one engine stream over the data set, yielding (index, output) for every sample in the
engine's length-sorted order: the target's token statistics, those of the lowercased text, a
reference model's, a contrastive target's embeddings. An attack declares the views it reads when
it registers (`register_attack(..., views=...)`; each family has a default, `FAMILY_VIEWS` in
the registry). The runner (`score_samples`) opens one stream per view that some requested attack
declares, in this table's order, steps them in lockstep, and hands each attack a `SampleRecord`
whose `views` map each opened view's name to its output for that sample.

Adding a view: one entry in `VIEWS` (the key its engine counts go under in results.json, and a
function opening its stream), and `views=(...)` on the attacks that read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamInputs:
    """What a view's stream is opened from: one `score_samples` call's arguments."""

    target: object
    reference: object | None
    samples: list
    configs: dict  # attack name -> config, of the requested attacks that read this view
    cache: object | None
    batch_size: int
    max_batch_tokens: int | None
    skip_bad: bool
    source: object  # the data file, named in errors


# (inputs, its EngineCounts, the progress bar or None) -> the stream, or None where it cannot be
# opened (the reference view without a reference model); its attacks then read no such view.
Opener = Callable[[StreamInputs, object, object], Iterator | None]


@dataclass(frozen=True)
class View:
    counts: str  # key of its engine counts in results.json ("target": the target's own pass)
    open: Opener
    summary: str


def _token_stats(x: StreamInputs, model, counts, bar, variant: str = "") -> Iterator:
    from mmia.engine import iter_token_stats

    return iter_token_stats(model, x.samples, variant=variant, cache=x.cache, batch_size=x.batch_size,
                            max_batch_tokens=x.max_batch_tokens, counts=counts, skip_bad=x.skip_bad,
                            source=x.source, bar=bar)


def _target_stats(x: StreamInputs, counts, bar) -> Iterator:
    return _token_stats(x, x.target, counts, bar)


def _lower_stats(x: StreamInputs, counts, bar) -> Iterator:
    return _token_stats(x, x.target, counts, bar, variant="lower")


def _reference_stats(x: StreamInputs, counts, bar) -> Iterator | None:
    return None if x.reference is None else _token_stats(x, x.reference, counts, bar)


def _embeddings(x: StreamInputs, counts, bar) -> Iterator:
    from mmia.engine import iter_embeddings

    # One pass serves every reader: as many augmentations as the most any asks, the first seed.
    cfgs = list(x.configs.values())
    n_aug = max((c.n_aug for c in cfgs if hasattr(c, "n_aug")), default=0)
    seed = next((c.seed for c in cfgs if hasattr(c, "seed")), 0)
    return iter_embeddings(x.target, x.samples, n_aug=n_aug, seed=seed, cache=x.cache, batch_size=x.batch_size,
                           counts=counts, skip_bad=x.skip_bad, source=x.source, bar=bar)


# The order here is the streams' order (the target's pass first, carrying the progress bar).
VIEWS: dict[str, View] = {
    "stats": View("target", _target_stats,
                  "the target's token statistics: {'codes': (L,), statistic: (L-1,)}"),
    "lower": View("lower", _lower_stats, "the same for the lowercased text (a second pass of the target)"),
    "reference": View("reference", _reference_stats,
                      "the reference model's token statistics, in its own tokenisation"),
    "embeddings": View("target", _embeddings,
                       "a contrastive target's {'text', 'media', 'aug'} embeddings"),
}


def views_of(specs) -> list[str]:
    """The views some of the attacks declare, in `VIEWS`' order."""
    wanted = {v for s in specs for v in s.views}
    return [v for v in VIEWS if v in wanted]
