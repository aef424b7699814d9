"""Small BPE tokenizers for testbed models, trained on a neutral corpus.

The corpus holds caption templates and a large pool of names drawn from the same generator as
the testbed's people but with another seed, so member and non-member names are tokenised
alike (a vocabulary learned from member names alone would itself leak membership).
"""

from __future__ import annotations


def train_tokenizer(kind: str, corpus: list[str], vocab_size: int):
    """A CLIPTokenizer ("clip") or RobertaTokenizer ("roberta", for CLAP) trained on `corpus`."""
    if kind == "clip":
        from transformers import CLIPTokenizer

        base = CLIPTokenizer()
    elif kind == "roberta":
        from transformers import RobertaTokenizer

        base = RobertaTokenizer()
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    return base.train_new_from_iterator(corpus, vocab_size=vocab_size)
