"""The generative engine on real-size shapes: mmia's pipeline vs a raw batched forward vs a
per-sample loop, side by side in one run (called by benchmarks/gpu.sh on a CUDA machine).

Random-initialised models of LLaVA-1.5-7B's and Qwen2-VL-7B's shapes (`from_config`, bfloat16
on CUDA; nothing downloaded), a small word-level tokenizer whose ids are all the text needs
(the model's vocabulary, and so the statistics' width, is the real one: 32,064 and 152,064),
and synthetic image+text rows of uneven length written as PNG + JSONL, read back by mmia's own
loader. For each shape it prints, for the same rows:

- pipeline        `iter_token_stats` with a token budget: encoding thread, forward pass (hidden
                  states), statistics thread applying the head to the rows it needs, in groups
                  sized from free GPU memory
- pipeline-full   the same with the model's full (B, T, V) logits (`stats_path = "full"`)
- raw forward     `model(**inputs)` alone on the pipeline's own batches, collated and on the
                  device beforehand: no encoding, no statistics (the floor)
- per-sample      one row at a time (encode, forward, statistics), on the first rows only

with tokens/s (real tokens, not padding), peak GPU memory (torch.cuda.max_memory_allocated,
and above the weights), the ratios pipeline/raw (aim <= 1.15) and pipeline vs per-sample
(aim >= 4x), and the largest statistic difference between pipeline and pipeline-full.

`--small` builds the same architectures at tiny widths (real vocabularies) to prove the
script end to end on a CPU; its figures are CPU smoke numbers, not GPU results.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>"]
WORDS = ("a an the is are of in on at to and with describe picture image shape colour red green blue yellow "
         "circle square triangle star small large left right top bottom centre one two three it this that "
         "there background striped dotted plain up down near far above below behind front").split()

# The real models' widths (config.json of llava-hf/llava-1.5-7b-hf and Qwen/Qwen2-VL-7B-Instruct).
SHAPES = {
    "llava-1.5-7b": {
        "text": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=32, vocab_size=32064),
        "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=336, patch_size=14),
    },
    "qwen2-vl-7b": {
        "text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152064, mrope=[16, 24, 24]),
        "vision": dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, patch_size=14),
    },
}
SMALL = {
    "llava-1.5-7b": {
        "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=2, vocab_size=32064),
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=56, patch_size=14),
    },
    "qwen2-vl-7b": {
        "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, vocab_size=152064, mrope=[4, 6, 6]),
        "vision": dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14),
    },
}


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys([*SPECIALS, *WORDS, ".", ",", "?"]))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})


def build_target(name: str, spec: dict, device: str, root: Path):
    """A mmia VisionLanguageTarget around a random-initialised model of `spec`'s shape."""
    import torch
    import transformers as tf

    from mmia.targets.generative import VisionLanguageTarget

    tok = _tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    text, vision = dict(spec["text"]), dict(spec["vision"])
    common = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, max_position_embeddings=32768)
    torch.manual_seed(0)
    if name.startswith("llava"):
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        size = vision["image_size"]
        cfg = tf.LlavaConfig(vision_config=tf.CLIPVisionConfig(**vision),
                             text_config=tf.LlamaConfig(**text, **common), image_token_id=ids["<image>"],
                             vision_feature_layer=-2, vision_feature_select_strategy="default")
        proc = tf.LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": size},
                                                                       crop_size={"height": size, "width": size}),
                                 tokenizer=tok, patch_size=vision["patch_size"],
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
        with torch.device(device):  # initialised on the device (a 7B model initialised on CPU takes minutes)
            model = tf.LlavaForConditionalGeneration._from_config(cfg, dtype=dtype).to(device).eval()
        return VisionLanguageTarget(root, model, tok, f"bench:{name}", device, dtype, processor=proc), size
    mrope = text.pop("mrope")
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": mrope, "rope_theta": 1000000.0}
    cfg = tf.Qwen2VLConfig(text_config={**text, **common}, vision_config=vision,
                           image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                           bos_token_id=1, eos_token_id=2)
    side = 448 if vision["depth"] > 1 else 56  # 448 x 448: 1,024 patches, 256 image tokens
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=vision["patch_size"],
                                     merge_size=2, temporal_patch_size=2)
    with torch.device(device):
        model = tf.Qwen2VLForConditionalGeneration._from_config(cfg, dtype=dtype).to(device).eval()
    return VisionLanguageTarget(root, model, tok, f"bench:{name}", device, dtype, image_processor=ip), side


def write_rows(root: Path, n: int, side: int, max_words: int, seed: int) -> Path:
    """`n` rows: a random `side` x `side` PNG, a prompt, an answer of 8 to `max_words` words."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"im{i}.png")
        words = rng.choice(WORDS, size=int(rng.integers(8, max_words + 1)))
        rows.append({"id": f"r{i}", "image": f"im{i}.png", "prompt": "describe the picture .",
                     "answer": " ".join(words), "label": i % 2})
    path = root / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class Meter:
    """Wall time and peak accelerator memory of one block."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0
        self.peak = torch.cuda.max_memory_allocated() if self.cuda else None


def run_shape(name: str, spec: dict, args, root: Path) -> None:
    import torch

    from mmia.data import load_dataset
    from mmia.engine import iter_token_stats, score_rows
    from mmia.targets.token_stats import STAT_NAMES

    t0 = time.perf_counter()
    target, side = build_target(name, spec, args.device, root)
    weights = torch.cuda.memory_allocated() if args.device.startswith("cuda") else 0
    ds = load_dataset(write_rows(root, args.rows, side, args.max_words, seed=1))
    samples = ds.samples
    built = time.perf_counter() - t0
    budget = {"batch_size": args.batch_size, "max_batch_tokens": args.max_batch_tokens}
    list(iter_token_stats(target, samples[: min(4, len(samples))], **budget))  # warm-up: kernels, fast paths

    batches = []  # the pipeline's own batches (collated inputs), for the raw forward
    inner = target.forward_batch

    def recording(batch, inputs=None):
        batches.append(inputs)
        return inner(batch, inputs)

    target.forward_batch = recording
    with Meter(args.device) as m_pipe:
        got = dict(iter_token_stats(target, samples, **budget))
    target.forward_batch = inner
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(int(b["attention_mask"].numel()) for b in batches)

    target.stats_path = "full"
    with Meter(args.device) as m_full:
        full = dict(iter_token_stats(target, samples, **budget))
    target.stats_path = "auto"
    diff = max(float(np.nanmax(np.abs(got[i][k] - full[i][k]), initial=0.0)) for i in got for k in STAT_NAMES)

    moved = [{k: v.to(target.device, target.dtype) if v.is_floating_point() else v.to(target.device)
              for k, v in b.items()} for b in batches]
    with torch.inference_mode():
        target.model(**moved[0], use_cache=False)  # warm-up of the full-logits forward
        with Meter(args.device) as m_raw:
            for b in moved:
                out = target.model(**b, use_cache=False)
                del out
    del moved

    loop_rows = samples[: args.loop_rows]
    loop_tokens = sum(len(e) for e in target.encode_batch(list(loop_rows)))
    with Meter(args.device) as m_loop:
        for s in loop_rows:
            score_rows(target, [s])

    mib = 2**20
    print(f"\n{name} (random init, {str(target.dtype).removeprefix('torch.')}, {args.device}): {len(samples)} rows, "
          f"{tokens:,} tokens ({padded:,} padded) in {len(batches)} batches of <= {args.batch_size} rows and "
          f"{args.max_batch_tokens:,} tokens; vocabulary {target.model.get_output_embeddings().weight.shape[0]:,}; "
          f"weights {weights / mib:,.0f} MiB; built in {built:.1f} s")
    print(f"  {'mode':<26}{'seconds':>9}{'tokens/s':>12}{'peak MiB':>12}{'above weights':>15}")
    rows = [("pipeline (hidden states)", m_pipe, tokens), ("pipeline-full (logits)", m_full, tokens),
            ("raw batched forward", m_raw, tokens), (f"per-sample loop ({len(loop_rows)} rows)", m_loop, loop_tokens)]
    for label, m, n in rows:
        mem = ("-", "-") if m.peak is None else (f"{m.peak / mib:,.0f}", f"{(m.peak - weights) / mib:,.0f}")
        print(f"  {label:<26}{m.seconds:9.2f}{n / m.seconds:12,.0f}{mem[0]:>12}{mem[1]:>15}")
    rate = {label: n / m.seconds for label, m, n in rows}
    print(f"  pipeline / raw forward time: {m_pipe.seconds / m_raw.seconds:.2f}x (aim <= 1.15x)")
    print(f"  pipeline vs per-sample loop: {rate[rows[0][0]] / rate[rows[3][0]]:.1f}x tokens/s (aim >= 4x)")
    if m_pipe.peak is not None:
        ratio = (m_full.peak - weights) / max(m_pipe.peak - weights, 1)
        print(f"  peak above weights, pipeline-full / pipeline: {ratio:.2f}x")
    print(f"  largest statistic difference, hidden-state vs full-logits path: {diff:.2e}")
    del target, got, full
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="tiny widths on CPU: proves the script, measures nothing")
    ap.add_argument("--device", default=None, help="default: cuda, or cpu with --small")
    ap.add_argument("--shapes", default="llava-1.5-7b,qwen2-vl-7b")
    ap.add_argument("--rows", type=int, default=None, help="rows per shape (default 192; 24 with --small)")
    ap.add_argument("--loop-rows", type=int, default=None, help="rows of the per-sample loop (default 32; 6)")
    ap.add_argument("--max-words", type=int, default=None, help="longest answer (default 300; 40 with --small)")
    ap.add_argument("--batch-size", type=int, default=64, help="row cap of a batch")
    ap.add_argument("--max-batch-tokens", type=int, default=None, help="token budget (default 16384; 400)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    args.device = args.device or ("cpu" if args.small else "cuda")
    args.rows = args.rows or (24 if args.small else 192)
    args.loop_rows = args.loop_rows or (6 if args.small else 32)
    args.max_words = args.max_words or (40 if args.small else 300)
    args.max_batch_tokens = args.max_batch_tokens or (400 if args.small else 16384)

    import torch

    from mmia import progress

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --small for the CPU smoke run")
    progress.set_quiet(True)
    shapes = SMALL if args.small else SHAPES
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (smoke run: not GPU figures)"
    print(f"mmia generative engine benchmark on {where}; torch {torch.__version__}")
    for name in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            run_shape(name, shapes[name], args, Path(tmp))


if __name__ == "__main__":
    main()
