"""`load_target`: a local Hugging Face directory -> the right adapter, on the right device."""

from __future__ import annotations

import json
from pathlib import Path

from mmia.cache import fingerprint_dir
from mmia.errors import InputError, ModelNotFoundError
from mmia.targets.base import resolve_device, resolve_dtype

_AUDIO_TYPES = {"qwen2_audio"}
_VLM_TYPES = {"llava", "llava_next", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3",
              "mllama"}
# Types refused, with why: scoring them as the others would put the wrong tokens in the answer.
_REFUSED_TYPES = {
    "paligemma": "PaliGemma is a prefix-LM (image, prompt and a newline attend both ways; the answer is a "
                 "suffix the processor places after that newline), a layout mmia does not build yet",
}


def detect_kind(path: str | Path, base: str | Path | None = None) -> str:
    """The target kind from config.json: 'causal-lm', 'vlm', 'audio-lm', 'clip' or 'clap'.

    'audio-lm' covers audio-language decoders (Qwen2-Audio) and audio encoder-decoders (Whisper).
    A PEFT adapter directory has the kind of its base (`base`, else the one its config names).
    """
    from mmia.targets.peft_adapter import adapter_or_none

    source = adapter_or_none(path, base)
    if source is not None:
        return detect_kind(source.base)
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise ModelNotFoundError(f"{path} has no config.json (not a Hugging Face model directory)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    mtype = cfg.get("model_type", "")
    archs = cfg.get("architectures") or []
    if mtype in _REFUSED_TYPES:
        raise ModelNotFoundError(f"{path}: model type {mtype!r} is not supported: {_REFUSED_TYPES[mtype]}")
    if mtype in ("clip", "siglip") or "CLIPModel" in archs or "SiglipModel" in archs:
        return "clip"  # the image-text contrastive kind: CLIP and SigLIP
    if mtype == "clap" or "ClapModel" in archs:
        return "clap"
    if mtype in _AUDIO_TYPES or ("audio_config" in cfg and "text_config" in cfg):
        return "audio-lm"
    from mmia.targets.seq2seq import speech_seq2seq_config

    if speech_seq2seq_config(cfg, path):  # Whisper-style encoder-decoder; before the causal-LM fallback
        return "audio-lm"
    if mtype in _VLM_TYPES or ("vision_config" in cfg and "text_config" in cfg):
        return "vlm"
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        return "causal-lm"
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if mtype in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal-lm"
    raise InputError(
        f"cannot tell what kind of model this is (model_type {mtype!r}, architectures {archs}); "
        "pass kind= one of causal-lm, vlm, audio-lm, clip, clap",
        cfg_path,
    )


class _NoVideoProcessor:
    """Stands in for a processor's video processor, which is never called (mmia reads a video as
    frames, each an image); its settings read as None (SmolVLM's chat template reads num_frames/fps)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def without_video(cls):
    """Processor class `cls` less its video processor. transformers 5.x builds none without
    torchvision (LLaVA-OneVision's and SmolVLM's processors insist on one), though a real
    checkpoint's processor config names one: loaded this way, its settings are left unread."""

    class NoVideo(cls):
        video_processor = _NoVideoProcessor()

        @classmethod
        def get_attributes(klass):
            return [a for a in super().get_attributes() if a != "video_processor"]

        @classmethod
        def _get_arguments_from_pretrained(klass, *args, **kwargs):
            # None in the video processor's place: the processors' __init__ take it positionally.
            loaded = list(super()._get_arguments_from_pretrained(*args, **kwargs))
            loaded.insert(cls.get_attributes().index("video_processor"), None)
            return loaded

    NoVideo.__name__ = NoVideo.__qualname__ = cls.__name__
    return NoVideo


def _processor_class(path: Path):
    """The processor class the saved files name (processor_config.json, or the older layouts'
    preprocessor_config.json / tokenizer_config.json), or None."""
    import transformers as tf

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        f = path / name
        cls_name = json.loads(f.read_text(encoding="utf-8")).get("processor_class") if f.exists() else None
        if cls_name:
            return getattr(tf, cls_name, None)
    return None


def _quiet_transformers() -> None:
    import transformers  # noqa: F401  (imported first, so quiet_libraries reaches its switches)

    from mmia.progress import quiet_libraries

    quiet_libraries()


def load_target(path: str | Path, kind: str | None = None, device: str | None = None, dtype=None,
                chat_template: bool = True, base: str | Path | None = None):
    """Load a target adapter from a local model directory (safetensors only, offline).

    `kind` defaults to what config.json says; `device` to CUDA when present else CPU; `dtype`
    to bfloat16 on CUDA and float32 on CPU. Generative targets format rows that have a prompt
    with the model's chat template when it has one (`chat_template=False`: plain text).
    `path` may be a PEFT adapter directory: it is merged into `base` (default: the local base its
    adapter_config.json names; the result's `peft` attribute says which); see `mmia.targets.peft_adapter`.
    """
    from mmia.targets.peft_adapter import adapter_or_none

    source = adapter_or_none(path, base)
    adapter = _load(source.base if source else path, kind, device, dtype, source)
    if source is not None:
        adapter.path, adapter.peft = source.dir, source
    if hasattr(adapter, "use_chat_template"):
        adapter.use_chat_template = chat_template
        adapter.fingerprint = f"{adapter.fingerprint}:{adapter.format_tag()}"
    return adapter


def _load(path, kind, device, dtype, peft=None):
    from mmia.offline import from_pretrained as load_files
    from mmia.offline import resolve_model_dir

    path = Path(resolve_model_dir(path, "target model"))
    kind = kind or detect_kind(path)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    _quiet_transformers()
    import transformers as tf

    fp = peft.fingerprint(fingerprint_dir(path)) if peft else fingerprint_dir(path)
    fingerprint = f"{fp}:{str(torch_dtype).removeprefix('torch.')}"

    def from_pretrained(cls, name, what, **kwargs):
        # A PEFT adapter's own tokenizer/processor, when it saved one, is the one it was trained with.
        own = peft.own_files(cls, what, **kwargs) if peft else None
        return own if own is not None else load_files(cls, name, what, **kwargs)

    def model_of(cls):
        m = load_files(cls, path, "target model", dtype=torch_dtype).to(device)
        return (peft.merge_into(m, device) if peft else m).eval()

    if kind == "causal-lm":
        from mmia.targets.generative import CausalLMTarget

        tok = from_pretrained(tf.AutoTokenizer, path, "tokenizer")
        return CausalLMTarget(path, model_of(tf.AutoModelForCausalLM), tok, fingerprint, device, torch_dtype)
    if kind == "vlm":
        from mmia.targets.generative import VisionLanguageTarget

        model = model_of(tf.AutoModelForImageTextToText)
        try:
            proc = from_pretrained(tf.AutoProcessor, path, "processor")
            tok = proc.tokenizer
            return VisionLanguageTarget(path, model, tok, fingerprint, device, torch_dtype, processor=proc)
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            # The processor's video processor needs torchvision (LLaVA-OneVision, SmolVLM): the
            # processor less its video part. Qwen2-VL (its processor saved or not): image
            # processor and tokenizer, below.
            cls = _processor_class(path)
            if cls is not None and "video_processor" in cls.get_attributes() and "torchvision" in str(exc).lower():
                try:
                    proc = from_pretrained(without_video(cls), path, "processor")
                except (ImportError, AttributeError, ValueError, TypeError) as exc2:
                    exc = exc2
                else:
                    return VisionLanguageTarget(path, model, proc.tokenizer, fingerprint, device, torch_dtype,
                                                processor=proc)
            if not hasattr(model.config, "vision_start_token_id"):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelNotFoundError(f"cannot build the processor of {path}: {first}") from None
        tok = from_pretrained(tf.AutoTokenizer, path, "tokenizer")
        ip = from_pretrained(tf.AutoImageProcessor, path, "image processor")
        return VisionLanguageTarget(path, model, tok, fingerprint, device, torch_dtype, image_processor=ip)
    if kind == "audio-lm":
        from mmia.targets.generative import AudioLanguageTarget
        from mmia.targets.seq2seq import load_speech_seq2seq, speech_seq2seq_config

        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        if speech_seq2seq_config(cfg, path):
            return load_speech_seq2seq(path, model_of(tf.AutoModelForSpeechSeq2Seq), fingerprint, device, torch_dtype)
        arch = (cfg.get("architectures") or [""])[0]
        cls = getattr(tf, arch, None) if arch.endswith("ForConditionalGeneration") else None
        if cls is None:
            raise InputError(f"audio-language architecture {arch!r} is not supported", path / "config.json")
        proc = from_pretrained(tf.AutoProcessor, path, "processor")
        return AudioLanguageTarget(path, model_of(cls), proc.tokenizer, fingerprint, device, torch_dtype, proc)
    if kind in ("clip", "clap"):
        from mmia.targets.contrastive import CLAPTarget, CLIPTarget, SiglipTarget

        mtype = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type", "")
        cls, adapter = {"clip": (tf.CLIPModel, CLIPTarget), "clap": (tf.ClapModel, CLAPTarget)}[kind]
        if mtype == "siglip":
            cls, adapter = tf.SiglipModel, SiglipTarget
        proc = from_pretrained(tf.AutoProcessor, path, "processor")
        return adapter(path, model_of(cls), proc, fingerprint, device, torch_dtype)
    raise ValueError(f"unknown target kind {kind!r}")
