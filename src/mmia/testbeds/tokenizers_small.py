"""Small BPE tokenizers for testbed models, all trained here (`train_tokenizer`).

The contrastive testbeds' are trained on a neutral corpus: it holds caption templates and a
large pool of names drawn from the same generator as the testbed's people but with another seed,
so member and non-member names are tokenised alike (a vocabulary learned from member names
alone would itself leak membership).

The CLIP tokenizer's merges are learned here, not by the `tokenizers` trainer: with CLIP's
end-of-word suffix that trainer numbers the suffixed characters in hash-map order, which changes
from process to process, and its ties between equally frequent pairs follow those numbers, so
the same corpus gave a different vocabulary, and a different trained model, on every build.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
SUFFIX = "</w>"


def train_tokenizer(kind: str, corpus: list[str], vocab_size: int):
    """A CLIPTokenizer ("clip"), RobertaTokenizer ("roberta", for CLAP) or the vlm testbed's
    byte-level BPE fast tokenizer ("llava") trained on `corpus`."""
    if kind == "clip":
        return _train_clip(corpus, vocab_size)
    if kind == "llava":
        return _train_llava(corpus, vocab_size)
    if kind == "roberta":
        from transformers import RobertaTokenizer

        # byte-level BPE without a word suffix: the trainer's alphabet is the fixed byte alphabet
        return RobertaTokenizer().train_new_from_iterator(corpus, vocab_size=vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def _train_clip(corpus: list[str], vocab_size: int):
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer  # CLIP's own normaliser and pre-tokeniser
    words: Counter[str] = Counter()
    for text in corpus:
        words.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate([*CLIP_SPECIALS, *alphabet, *(c + SUFFIX for c in alphabet)])}
    merges = bpe_merges(words, vocab_size - len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges)


def bpe_merges(words: Counter[str] | dict[str, int], n_merges: int, suffix: str = SUFFIX) -> list[tuple[str, str]]:
    """The first `n_merges` BPE merges of `words` (word -> count; the last symbol of a word
    carries `suffix`): each time the most frequent adjacent pair, ties going to the smallest
    pair in string order, so the result depends on the counts alone."""
    names = sorted(w for w in words if w)
    symbols = [[*w[:-1], w[-1] + suffix] for w in names]
    freq = [int(words[w]) for w in names]
    stats: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, syms in enumerate(symbols):
        for pair in zip(syms, syms[1:], strict=False):
            stats[pair] += freq[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in stats.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < n_merges:
        neg, pair = heapq.heappop(heap)
        if stats.get(pair, 0) != -neg or neg == 0:
            continue  # stale: the pair's count changed and a fresh entry was pushed
        merges.append(pair)
        joined = pair[0] + pair[1]
        changed = set()
        for i in sorted(where.pop(pair)):
            old = symbols[i]
            new, k = [], 0
            while k < len(old):
                if k + 1 < len(old) and old[k] == pair[0] and old[k + 1] == pair[1]:
                    new.append(joined)
                    k += 2
                else:
                    new.append(old[k])
                    k += 1
            if len(new) == len(old):
                continue  # an index entry left from before an earlier merge
            for p in zip(old, old[1:], strict=False):
                stats[p] -= freq[i]
                changed.add(p)
            for p in zip(new, new[1:], strict=False):
                stats[p] += freq[i]
                where[p].add(i)
                changed.add(p)
            symbols[i] = new
        for p in sorted(changed):
            if stats[p] > 0:
                heapq.heappush(heap, (-stats[p], p))
            else:
                stats.pop(p, None)
    return merges


def _train_llava(corpus: list[str], vocab_size: int):
    """Byte-level BPE with the vlm testbed's specials (`<s>` first, the image token), as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from mmia.testbeds.vlm_parts import IMAGE_TOKEN, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[
        ("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="right",
        model_max_length=512,
    )
