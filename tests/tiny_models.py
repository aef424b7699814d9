"""Tiny random models in transformers' own architectures, saved with save_pretrained (tests only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CORPUS = [
    "A small red cat sits on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "a blue bird flies in the sky",
    "Describe the image: two dogs play in the park",
    "What is in the picture? A man rides a horse.",
]
QWEN_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
AUDIO_SPECIALS = ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]


def make_tokenizer(vocab_size: int = 300, extra_specials=(), add_eos: bool = False, extra=None):
    """A byte-level BPE tokenizer trained on a few sentences; BOS prepended (and EOS if asked)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", *extra_specials]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    single = "<s> $A </s>" if add_eos else "<s> $A"
    sp = [("<s>", 1), ("</s>", 2)] if add_eos else [("<s>", 1)]
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=sp)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", extra_special_tokens=extra or {}
    )


def _llama(vocab: int, **kw):
    from transformers import LlamaConfig

    base = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        max_position_embeddings=256,
    )
    base.update(kw)
    return LlamaConfig(**base)


def llava_processor(processor_cls, image_processor, tok, patch_size: int = 8):
    """A LLaVA(-Next) processor: <image> placeholders, the CLS token counted, the default feature strategy."""
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )


def save_causal_lm(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(seed)
    LlamaForCausalLM(_llama(len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_gpt2(out: Path, seed: int = 1) -> Path:
    """A GPT-2 with a different (smaller) tokenizer: tokenises the same text differently."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = make_tokenizer(vocab_size=280)
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_whisper(out: Path, seed: int = 0, d_model: int = 16, tok=None) -> Path:
    """A tiny random Whisper with the audio testbed's word-level tokenizer (or `tok`) and features."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from mmia.testbeds.audio_captions import AudioSettings, make_model_parts

    own_tok, fe, cfg = make_model_parts(AudioSettings(d_model=d_model, layers=1))
    torch.manual_seed(seed)
    WhisperForConditionalGeneration(cfg).save_pretrained(out)
    (tok or own_tok).save_pretrained(out)
    fe.save_pretrained(out)
    return out


def write_audio_captions(root: Path, stream: str, n: int = 16, *, unequal: bool = False,
                         text_last: bool = False) -> Path:
    """`n` labelled caption rows of the audio testbed's kind, `root/a.jsonl` with the clips beside it;
    `unequal`: clip i cut to SR / 2 + 800 i samples; `text_last`: the last row a text row (no prompt)."""
    import soundfile as sf

    from mmia.testbeds.audio_captions import SR, make_clip, render_clip

    rows = []
    for i in range(n):
        c = make_clip(0, stream, i)
        wave = render_clip(c)
        sf.write(root / f"{i}.wav", wave[: SR // 2 + 800 * i] if unequal else wave, SR)
        row = {"id": c.id, "audio": f"{i}.wav", "label": i % 2}
        if text_last and i == n - 1:
            row["text"] = c.answer
        else:
            row["prompt"], row["answer"] = c.prompt, c.answer
        rows.append(row)
    path = root / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _save_llava_like(out: Path, seed: int, config_cls, model_cls, processor_cls, image_processor, **config) -> Path:
    """A tiny LLaVA of either generation: one tokenizer, CLIP vision tower and Llama text config."""
    import torch
    from transformers import CLIPVisionConfig

    tok = make_tokenizer(extra_specials=["<image>"], extra={"image_token": "<image>"})
    vc = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    cfg = config_cls(vision_config=vc, text_config=_llama(len(tok)), image_token_index=tok.image_token_id,
                     vision_feature_layer=-1, vision_feature_select_strategy="default", **config)
    torch.manual_seed(seed)
    model_cls(cfg).save_pretrained(out)
    llava_processor(processor_cls, image_processor, tok).save_pretrained(out)
    return out


def save_llava(out: Path, seed: int = 0) -> Path:
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save_llava_like(out, seed, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, ip)


def _save_qwen_vl(out: Path, seed: int, config_cls, model_cls, vision: dict) -> Path:
    """A tiny Qwen-VL of either generation: one tokenizer, text config and image processor."""
    import torch
    from transformers import Qwen2VLImageProcessorPil

    tok = make_tokenizer(
        extra_specials=QWEN_SPECIALS,
        extra={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
    )
    ids = {s: tok.convert_tokens_to_ids(s) for s in QWEN_SPECIALS}
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
    )
    cfg = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    model_cls(cfg).save_pretrained(out)
    Qwen2VLImageProcessorPil(
        min_pixels=32 * 32, max_pixels=64 * 64, patch_size=8, merge_size=2, temporal_patch_size=2
    ).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_qwen2vl(out: Path, seed: int = 0) -> Path:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, in_chans=3, patch_size=8,
                  spatial_merge_size=2, temporal_patch_size=2)
    return _save_qwen_vl(out, seed, Qwen2VLConfig, Qwen2VLForConditionalGeneration, vision)


def save_qwen2audio(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    tok = make_tokenizer(
        extra_specials=AUDIO_SPECIALS,
        extra={"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"},
    )
    cfg = Qwen2AudioConfig(
        audio_config=dict(
            d_model=32,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            num_mel_bins=128,
            max_source_positions=1500,
        ),
        text_config=dict(
            model_type="qwen2",
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    Qwen2AudioForConditionalGeneration(cfg).save_pretrained(out)
    Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok, chat_template=None
    ).save_pretrained(out)
    return out


def _towers(vocab_size: int, **text) -> dict:
    """The text and vision towers of the tiny CLIP and SigLIP: 1 layer, width 32, 32 px images."""
    layer = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    ids = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return dict(text_config=dict(vocab_size=vocab_size, **ids, **layer, **text),
                vision_config=dict(**layer, image_size=32, patch_size=8))


def save_clip(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = make_tokenizer(add_eos=True)
    cfg = CLIPConfig(**_towers(len(tok), max_position_embeddings=64), projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(out)
    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out


def save_siglip(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    tok = make_tokenizer(add_eos=True)
    cfg = SiglipConfig(**_towers(len(tok), max_position_embeddings=16, projection_size=32))
    torch.manual_seed(seed)
    SiglipModel(cfg).save_pretrained(out)
    ip = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    SiglipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out


def save_clap(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    tok = make_tokenizer(add_eos=True)
    cfg = ClapConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=80,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        audio_config=dict(
            spec_size=64,
            window_size=4,
            num_mel_bins=16,
            patch_size=4,
            patch_stride=(4, 4),
            hidden_size=32,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            patch_embeds_hidden_size=16,
            enable_fusion=False,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    ClapModel(cfg).save_pretrained(out)
    fe = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=48000,
        max_length_s=1,
        truncation="rand_trunc",
        fft_window_size=1024,
        hop_length=480,
    )
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    return out


# Vision-language types beyond LLaVA and Qwen2-VL (tests/test_vlm_types.py).
def save_llava_next(out: Path, seed: int = 0) -> Path:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    pin = [[32, 32], [32, 64], [64, 32]]
    ip = LlavaNextImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=pin
    )
    return _save_llava_like(out, seed, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor, ip,
                            image_grid_pinpoints=pin)


def save_qwen2_5_vl(out: Path, seed: int = 0) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=8,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=32, out_hidden_size=32,
                  fullatt_block_indexes=[1])
    return _save_qwen_vl(out, seed, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, vision)


def _gemma_text(vocab, **kw):
    base = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        max_position_embeddings=512,
    )
    base.update(kw)
    return base


def _siglip_vision(**kw):
    from transformers import SiglipVisionConfig

    base = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    base.update(kw)
    return SiglipVisionConfig(**base)


def save_idefics3(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    tok = make_tokenizer(extra_specials=["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"])
    ip = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    # image_seq_len = (image_size / patch_size)^2 / scale_factor^2 = 16 / 4
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4)
    vc = Idefics3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    cfg = Idefics3Config(
        vision_config=vc,
        text_config=_llama(len(tok)),
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    Idefics3ForConditionalGeneration(cfg).save_pretrained(out)
    proc.save_pretrained(out)
    return out


def save_paligemma(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    tok = make_tokenizer(extra_specials=["<image>"], extra={"image_token": "<image>"})
    ip = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    ip.image_seq_length = 16
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
    cfg = PaliGemmaConfig(
        vision_config=_siglip_vision(),
        text_config=GemmaConfig(**_gemma_text(len(tok))),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    PaliGemmaForConditionalGeneration(cfg).save_pretrained(out)
    proc.save_pretrained(out)
    return out


def save_gemma3(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
    )

    sp = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
    tok = make_tokenizer(extra_specials=list(sp.values()), extra=sp)
    ip = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=4)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in sp.items()}
    cfg = Gemma3Config(
        text_config=Gemma3TextConfig(**_gemma_text(len(tok), sliding_window=64)),
        vision_config=_siglip_vision(),
        mm_tokens_per_image=4,
        boi_token_index=ids["boi_token"],
        eoi_token_index=ids["eoi_token"],
        image_token_index=ids["image_token"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg)
    with torch.no_grad():  # transformers initialises the image projection to zeros: every image would read alike
        for name, param in model.named_parameters():
            if "mm_input_projection" in name:
                param.normal_(0, 0.2)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def write_media_dataset(
    root: Path, n: int = 6, image: bool = True, audio: bool = False, prompt: bool = True, seed: int = 0
) -> Path:
    """A small labelled JSONL set with PNG images and/or WAV clips beside it."""
    import json

    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        row = {"id": f"s{i}", "label": i % 2}
        text = CORPUS[i % len(CORPUS)] + (" again" * (i // len(CORPUS)))
        if prompt:
            row["prompt"], row["answer"] = "Describe the image:", text
        else:
            row["text"] = text
        if image:
            Image.fromarray(rng.integers(0, 255, (24 + 4 * i, 30, 3), dtype=np.uint8)).save(root / f"img{i}.png")
            row["image"] = f"img{i}.png"
        if audio:
            sf.write(root / f"clip{i}.wav", (rng.standard_normal(8000 + 800 * i) * 0.1).astype(np.float32), 16000)
            row["audio"] = f"clip{i}.wav"
        rows.append(row)
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A factory: tiny_dir('llava') builds (once per session) and returns a saved tiny model."""
    built = {}
    root = tmp_path_factory.mktemp("tiny-models")

    def get(name: str):
        if name not in built:
            built[name] = globals()[f"save_{name}"](root / name)
        return built[name]

    return get


def fit_causal_lm(model, tokenizer, texts, steps: int, lr: float):
    """Full-batch AdamW on next-token loss over `texts` (the trainable parameters only); eval mode after."""
    import torch

    batch = tokenizer(list(texts), return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(**batch, labels=labels).loss.backward()
        opt.step()
    return model.eval()


def save_lora_adapter(
    base_dir: Path,
    out: Path,
    *,
    seed: int = 0,
    r: int = 4,
    target_modules=("q_proj", "v_proj"),
    train_texts=None,
    steps: int = 20,
    lr: float = 1e-2,
) -> Path:
    """A LoRA adapter of the model saved in `base_dir`, written like a user's fine-tune (adapter
    files only, safetensors). Untrained, its A and B are random (the usual zero B would hide a
    merge that does nothing); with `train_texts`, a seeded fine-tune on them (causal LMs)."""
    import json

    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    arch = json.loads((Path(base_dir) / "config.json").read_text())["architectures"][0]
    torch.manual_seed(seed)
    model = getattr(transformers, arch).from_pretrained(base_dir)
    cfg = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(target_modules),
        lora_dropout=0.0,
        init_lora_weights=train_texts is not None,
    )
    model = get_peft_model(model, cfg)
    if train_texts is not None:
        fit_causal_lm(model, transformers.AutoTokenizer.from_pretrained(base_dir), train_texts, steps, lr)
    model.save_pretrained(out, safe_serialization=True)
    return Path(out)


def fimmia_train_then_score(data: Path, target: Path, tmp_path: Path, k: int = 3, quiet_train: bool = False):
    """`mmia fimmia train --holdout 0.5` on an image data file, then `mmia fimmia score` on its
    held-out rows. Returns (train CliResult, the attack's config.json, held-out ids, score CliResult,
    score results.json or None when scoring failed)."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from mmia.cli import app

    runner, atk, cache = CliRunner(), tmp_path / "atk", str(tmp_path / "c")
    train = runner.invoke(app, [*(["-q"] if quiet_train else []), "fimmia", "train", str(data), "--target",
                                str(target), "--out", str(atk), "--k", str(k), "--field", "answer+media",
                                "--holdout", "0.5", "--text-embedder", "none", "--cache-dir", cache])
    if train.exit_code != 0:
        return train, None, set(), None, None
    cfg = json.loads((atk / "config.json").read_text())
    held_ids = set(pd.read_parquet(atk / "holdout" / "scores.parquet")["id"])
    rows = [json.loads(x) for x in Path(data).read_text().splitlines()]
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({**r, "image": str(Path(data).parent / r["image"])}) + "\n"
                            for r in rows if r["id"] in held_ids))
    score = runner.invoke(app, ["-q", "fimmia", "score", str(held), "--target", str(target), "--attack-model",
                                str(atk), "--out", str(tmp_path / "s"), "--cache-dir", cache])
    out = json.loads((tmp_path / "s" / "results.json").read_text()) if score.exit_code == 0 else None
    return train, cfg, held_ids, score, out


def record_batch_widths(target) -> list[tuple[int, int]]:
    """Patch `target.forward_batch` to record each forward batch's (rows, padded width) in the list returned."""
    seen, inner = [], target.forward_batch

    def forward(batch, inputs=None):
        seen.append((len(batch), max(len(e) for e in batch)))
        return inner(batch, inputs)

    target.forward_batch = forward
    return seen


WORDS = "the quick brown fox jumps over a lazy dog in the park".split()


def write_texts(root: Path, texts: list[str]) -> Path:
    """`root/text.jsonl`: one text row per text, ids t0, t1, ..., labels alternating 0, 1."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "text.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    return path
