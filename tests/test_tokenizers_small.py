"""The testbeds' CLIP tokenizer: BPE merges with a fixed tie-break, the same in every process."""

import os
import subprocess
import sys

from mmia.testbeds.tokenizers_small import bpe_merges


def test_bpe_merges_known_answer():
    # Sennrich et al.'s example; ties go to the smaller pair in string order
    words = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    assert bpe_merges(words, 4) == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w")]
    assert bpe_merges(words, 0) == []
    assert len(bpe_merges({"ab": 1}, 10)) == 1  # stops when no pair is left


_SCRIPT = """
import hashlib
from mmia.testbeds.tokenizers_small import train_tokenizer
corpus = [f"a photo of {a} {b}." for a in ("Anna", "Bo", "Cecile", "Dara") for b in ("Smith", "Nowak", "Lee")]
tok = train_tokenizer("clip", corpus * 3, 600)
print(hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest())
"""


def test_clip_tokenizer_is_the_same_in_every_process():
    """Python salts str hashes per process (and the `tokenizers` trainer numbered CLIP's suffixed
    characters in hash-map order): two processes with different hash seeds must agree."""
    out = [subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": seed}).stdout
           for seed in ("1", "2")]
    assert out[0] == out[1] and len(out[0].strip()) == 64
