"""A randomly initialised tiny LLaVA (LlavaForConditionalGeneration) saved in Hugging Face format.

For tests and benchmarks/fimmia.py (which puts tests/ on its path) that need the real LLaVA code
path (processor, image-token expansion, vision tower, projector, Llama decoder, KV cache) but no
trained weights. The image takes (image_size / patch_size)^2 tokens; the word-level tokenizer
knows `words` plus the specials.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
BASIC_WORDS = (
    "a an the is are of in on at to and with describe picture image video frame what shape colour "
    "red green blue yellow purple orange pink white black grey circle square triangle star ring "
    "small medium large left right top bottom centre there one two three four it this that "
    "background striped dotted plain moving up down sound tone noise"
).split()


def build_random_llava(
    out_dir: str | Path,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 64,
    layers: int = 2,
    words: list[str] | None = None,
    seed: int = 0,
) -> Path:
    import torch
    from tiny_models import _llama, llava_processor
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    out = Path(out_dir)
    vocab_words = list(dict.fromkeys([*SPECIALS, *(words or BASIC_WORDS), ".", ",", "?", "\n"]))
    vocab = {w: i for i, w in enumerate(vocab_words)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_proc = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    proc = llava_processor(LlavaProcessor, image_proc, tok, patch_size)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=patch_size,
        ),
        text_config=_llama(
            len(vocab),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=4096,
        ),
        image_token_id=vocab["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out
