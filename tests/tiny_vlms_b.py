"""Tiny random LLaVA-OneVision, SmolVLM and Mllama models in transformers' own classes, saved with
save_pretrained as a real checkpoint directory is laid out (model, processor, chat template).

LLaVA-OneVision's and SmolVLM's processors hold a video processor. transformers 5.x builds none
without torchvision (`check_argument_for_proper_class` cannot even look its base class up), but the
class itself constructs, and its `to_dict` does not depend on torchvision: the processor is built
with that one check relaxed, so `save_pretrained` writes the `video_processor` settings a real
checkpoint has. Loading such a directory is `mmia.targets.loading`'s business (it reads no videos
through the processor).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from tiny_models import _llama, make_tokenizer

# Chat templates in the shape of the real checkpoints' (llava-hf/llava-onevision-qwen2-*-ov-hf,
# HuggingFaceTB/SmolVLM-*-Instruct, meta-llama/Llama-3.2-*-Vision-Instruct), trimmed of tools/system.
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
MLLAMA_TEMPLATE = (
    "{{- bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@contextmanager
def _video_processor_accepted():
    """Let a processor take its (constructible) video processor although torchvision is absent."""
    from unittest import mock

    from transformers.processing_utils import ProcessorMixin

    check = ProcessorMixin.check_argument_for_proper_class

    def relaxed(self, name, arg):
        return type(arg) if name == "video_processor" else check(self, name, arg)

    with mock.patch.object(ProcessorMixin, "check_argument_for_proper_class", relaxed):
        yield


def _qwen2_text(vocab: int) -> dict:
    return dict(model_type="qwen2", vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                max_position_embeddings=512)


def save_llava_onevision(out: Path, seed: int = 0) -> Path:
    """SigLIP tower (32x32, patch 8: 16 tokens a crop) + Qwen2; anyres crops on a 32/64 grid."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )
    from transformers.models.llava_onevision.video_processing_llava_onevision import LlavaOnevisionVideoProcessor

    tok = make_tokenizer(extra_specials=["<image>", "<video>", "<|im_start|>", "<|im_end|>"],
                         extra={"image_token": "<image>", "video_token": "<video>"})
    pins = [[32, 32], [32, 64], [64, 32], [64, 64]]
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=8, vision_use_head=False)
    cfg = LlavaOnevisionConfig(vision_config=vision, text_config=_qwen2_text(len(tok)),
                               image_token_index=tok.convert_tokens_to_ids("<image>"),
                               video_token_index=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=pins,
                               vision_feature_layer=-1, vision_feature_select_strategy="full")
    torch.manual_seed(seed)
    LlavaOnevisionForConditionalGeneration(cfg).save_pretrained(out)
    ip = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pins)
    with _video_processor_accepted():
        proc = LlavaOnevisionProcessor(image_processor=ip, tokenizer=tok,
                                       video_processor=LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32}),
                                       num_image_tokens=16, vision_feature_select_strategy="full",
                                       chat_template=ONEVISION_TEMPLATE)
    proc.save_pretrained(out)
    return out


def save_smolvlm(out: Path, seed: int = 0) -> Path:
    """SmolVLM vision tower (32x32, patch 8, pixel shuffle 2: 4 tokens a tile) + Llama; images split
    into 32x32 tiles (up to 2x2) plus the global view."""
    import torch
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
        SmolVLMProcessor,
    )
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    grid = [f"<row_{r}_col_{c}>" for r in (1, 2) for c in (1, 2)]
    tok = make_tokenizer(extra_specials=["<image>", "<fake_token_around_image>", "<global-img>", "<|im_start|>",
                                         "<end_of_utterance>", *grid],
                         extra={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                                "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"})
    cfg = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=_llama(len(tok), max_position_embeddings=512).to_dict(), scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=0)
    torch.manual_seed(seed)
    SmolVLMForConditionalGeneration(cfg).save_pretrained(out)
    ip = SmolVLMImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    vp = SmolVLMVideoProcessor(size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    with _video_processor_accepted():
        proc = SmolVLMProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, image_seq_len=4,
                                chat_template=SMOLVLM_TEMPLATE)
    proc.save_pretrained(out)
    return out


def save_mllama(out: Path, seed: int = 0) -> Path:
    """Mllama: a tiled vision encoder (32x32 tiles, up to 4) whose features the Llama text model
    reads through a cross-attention layer (layer 1 of 2); one <|image|> token per image."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor

    tok = make_tokenizer(extra_specials=["<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                                         "<|python_tag|>"],
                         extra={"image_token": "<|image|>"})
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                  image_size=32, patch_size=8, max_num_tiles=4, intermediate_layers_indices=[0],
                  vision_output_dim=64)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, cross_attention_layers=[1], bos_token_id=1, eos_token_id=2, pad_token_id=0,
                max_position_embeddings=512)
    cfg = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg)
    with torch.no_grad():  # open the cross-attention gates (zero at init: the image would not count)
        for name, param in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                param.fill_(1.0)
    model.save_pretrained(out)
    ip = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=4)
    MllamaProcessor(image_processor=ip, tokenizer=tok, chat_template=MLLAMA_TEMPLATE).save_pretrained(out)
    return out
