"""The pieces of the `vlm` testbed's model: tokenizer, processor and LLaVA configuration.

Everything is built here from scratch in transformers' own classes, so the saved directory
loads with `AutoProcessor` and `AutoModelForImageTextToText` like any LLaVA checkpoint (the
processor is saved with the patch size, the image token and the CLS token it must count, so
`<image>` expands to the (image_size / patch_size)^2 features the vision tower passes on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)

# The conversation format the model is trained on (and the chat template writes):
#   "<s>USER: <image>\n{prompt}\nASSISTANT: {answer}</s>"
# The loss covers the answer and the closing </s>.
PROMPT_FORMAT = "USER: <image>\n{prompt}\nASSISTANT:"
ANSWER_FORMAT = " {answer}</s>"
# A video is its frames as images, placeholders adjacent: "USER: <image><image><image><image>\n{prompt}...".
VIDEO_PROMPT_FORMAT = "USER: {media}\n{prompt}\nASSISTANT:"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}"
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def video_chat_template(frames: int) -> str:
    """The conversation format of a model that reads a video as `frames` images: image parts write
    adjacent `<image>` placeholders and a `video` part writes `frames` of them; a newline follows
    the media, so one image part gives exactly what CHAT_TEMPLATE writes."""
    media = (
        "{% set ns = namespace(media=false) %}"
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}<image>{% set ns.media = true %}"
        "{% elif part['type'] == 'video' %}" + IMAGE_TOKEN * frames + "{% set ns.media = true %}"
        "{% elif part['type'] == 'text' %}{% if ns.media %}{{ '\\n' }}{% set ns.media = false %}{% endif %}"
        "{{ part['text'] }}{% endif %}"
        "{% endfor %}{% if ns.media %}{{ '\\n' }}{% endif %}"
    )
    single = (
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}"
    )
    if CHAT_TEMPLATE.count(single) != 1:
        raise RuntimeError("CHAT_TEMPLATE changed: update video_chat_template")
    return CHAT_TEMPLATE.replace(single, media)


@dataclass(frozen=True)
class VlmShape:
    """Sizes of the testbed model (recorded in the manifest)."""

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 96
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 3
    text_heads: int = 4
    vocab_size: int = 512
    max_positions: int = 1024  # room for several frames as images (8 x 64 image tokens)

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def as_dict(self) -> dict:
        return {**asdict(self), "image_tokens": self.image_tokens}


def prompt_text(prompt: str, frames: int | None = None) -> str:
    """The text before the answer: one image, or (`frames` given) a clip of that many frames."""
    if frames is None:
        return PROMPT_FORMAT.format(prompt=prompt)
    return VIDEO_PROMPT_FORMAT.format(media=IMAGE_TOKEN * frames, prompt=prompt)


def full_text(prompt: str, answer: str, frames: int | None = None) -> str:
    return prompt_text(prompt, frames) + ANSWER_FORMAT.format(answer=answer)


def make_processor(tokenizer, shape: VlmShape, chat_template: str = CHAT_TEMPLATE):
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": shape.image_size},
        crop_size={"height": shape.image_size, "width": shape.image_size},
        do_center_crop=True,
        do_resize=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=shape.patch_size,
        vision_feature_select_strategy="default",
        # A CLIP tower with a CLS token: the processor must count it, then "default" drops it.
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=chat_template,
    )


def make_config(tokenizer, shape: VlmShape):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=shape.vision_hidden * 2,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        projection_dim=shape.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.text_hidden,
        intermediate_size=shape.text_hidden * 3,
        num_hidden_layers=shape.text_layers,
        num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_heads,
        max_position_embeddings=shape.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,  # the last layer (the default, -2, would skip half of a 2-layer tower)
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
    )
