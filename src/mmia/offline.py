"""Offline by default: Hugging Face libraries never reach the network unless asked."""

from __future__ import annotations

import os
from pathlib import Path

from mmia.errors import ModelNotFoundError

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_state = {"allow_download": False}


def configure(allow_download: bool = False) -> None:
    """Set the offline switches; call before transformers/huggingface_hub are imported."""
    _state["allow_download"] = allow_download
    for var in _OFFLINE_VARS:
        if allow_download:
            os.environ.pop(var, None)
        else:
            os.environ[var] = "1"
    if "huggingface_hub" in __import__("sys").modules:
        # Already imported: its constants were read at import, so update them too.
        import huggingface_hub.constants as hc

        hc.HF_HUB_OFFLINE = not allow_download


def downloads_allowed() -> bool:
    return _state["allow_download"]


HOW_TO_POINT = (
    "mmia runs offline: pass the path of a local model directory in Hugging Face format "
    "(config.json plus *.safetensors weights, saved with save_pretrained or fetched on a networked "
    "machine with `hf download NAME --local-dir DIR`), or pass --allow-download"
)


def resolve_model_dir(name: str | Path, what: str = "model") -> str:
    """Return a local directory, or the hub name when downloads are allowed; else a clear error."""
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise ModelNotFoundError(f"{what} directory {p} has no config.json; {HOW_TO_POINT}")
        return str(p)
    if downloads_allowed():
        return str(name)
    raise ModelNotFoundError(f"{what} '{name}' is not a local directory; {HOW_TO_POINT}")


def _is_model_class(cls) -> bool:
    from transformers import PreTrainedModel

    return cls.__name__.startswith("AutoModel") or (isinstance(cls, type) and issubclass(cls, PreTrainedModel))


def from_pretrained(cls, name: str | Path, what: str = "model", **kwargs):
    """`cls.from_pretrained` with safetensors only and an error that says how to fix a miss."""
    target = resolve_model_dir(name, what)
    if _is_model_class(cls):
        kwargs.setdefault("use_safetensors", True)  # never unpickle a .bin checkpoint
    try:
        return cls.from_pretrained(target, **kwargs)
    except OSError as exc:
        first = str(exc).splitlines()[0]
        raise ModelNotFoundError(f"cannot load {what} from '{name}' ({first}); {HOW_TO_POINT}") from None
