"""PEFT adapters (LoRA and kin) as targets: recognise an adapter directory, find its base, merge.

A LoRA fine-tune is saved as `adapter_config.json` + `adapter_model.safetensors`, with no
config.json. The audited model is the base with the adapter merged into its weights, so the
base is loaded the way `load_target` loads any model, the adapter is applied with
`peft.PeftModel.from_pretrained` and merged (`merge_and_unload`): scoring then runs on a plain
transformers model, with no peft wrapper in the forward pass.

The base comes from `base=` (the CLI's `--base DIR`) when given, else from the adapter's
`base_model_name_or_path` when that is an existing local directory; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from mmia.errors import InputError, ModelNotFoundError
from mmia.targets.base import GENERATIVE_KINDS

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# A full checkpoint in the same folder makes it a model directory, whatever else it holds.
_FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
# Which saved files make the adapter dir's own tokenizer/processor the one to load (else the base's).
_OWN_FILES = {
    "tokenizer": ("tokenizer_config.json", "tokenizer.json"),
    "processor": ("processor_config.json", "preprocessor_config.json"),
    "image processor": ("preprocessor_config.json", "processor_config.json"),
}
# Config fields that do not change the merged weights (the base is fingerprinted by its content).
_NOT_THE_MODEL = ("base_model_name_or_path", "revision", "inference_mode", "peft_version")


def is_adapter_dir(path: str | Path) -> bool:
    """A local directory holding a PEFT adapter (adapter_config.json and no full checkpoint)."""
    p = Path(path).expanduser()
    return (p / ADAPTER_CONFIG).is_file() and not any((p / f).exists() for f in _FULL_WEIGHTS)


def read_adapter_config(path: str | Path) -> dict:
    cfg_path = Path(path).expanduser() / ADAPTER_CONFIG
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the adapter config ({exc})", cfg_path) from None
    if not isinstance(cfg, dict) or not cfg.get("peft_type"):
        raise InputError("not a PEFT adapter config (no peft_type)", cfg_path)
    return cfg


@dataclass(frozen=True)
class AdapterSource:
    """An adapter directory and the base model directory it is merged into."""

    dir: Path
    base: Path
    peft_type: str

    def summary(self) -> dict:
        """What results.json records about the adapter."""
        return {"dir": str(self.dir), "base": str(self.base), "peft_type": self.peft_type}

    def fingerprint(self, base_fingerprint: str) -> str:
        """The base's fingerprint combined with the adapter's weights and config (rank, alpha and
        target modules change the merged model too), so a cache of the base never serves it."""
        from mmia.cache import fingerprint_dir

        cfg = {k: v for k, v in read_adapter_config(self.dir).items() if k not in _NOT_THE_MODEL}
        blob = json.dumps([base_fingerprint, fingerprint_dir(self.dir), cfg], sort_keys=True, default=str)
        return hashlib.sha256(f"peft:{blob}".encode()).hexdigest()[:20]

    def own_files(self, cls, what: str, **kwargs):
        """The adapter's own tokenizer/processor (`what`), loaded with `cls`, when its dir saved one of
        that kind (a fine-tune may add a chat template or tokens); None: use the base's."""
        if not any((self.dir / n).is_file() for n in _OWN_FILES.get(what, ())):
            return None
        try:  # not mmia.offline.from_pretrained: that one wants a config.json, which an adapter dir lacks
            return cls.from_pretrained(str(self.dir), **kwargs)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"cannot load the {what} saved in the adapter {self.dir} ({first})") from None

    def merge_into(self, model, device: str):
        """The base `model` with this adapter merged into its weights (a plain transformers model)."""
        from peft import PeftModel

        where = self.dir / ADAPTER_CONFIG
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                peft_model = PeftModel.from_pretrained(model, str(self.dir), is_trainable=False, torch_device=device)
            except (ValueError, RuntimeError, KeyError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelNotFoundError(f"cannot apply the adapter {self.dir} to the base {self.base} ({first}); "
                                         "is --base the model it was trained on?") from None
        # peft only warns when adapter weights find no place in the base; auditing the base
        # under the adapter's name would be wrong, so that is an error here.
        missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
        if missing:
            raise ModelNotFoundError(f"the adapter {self.dir} does not fit the base {self.base} (its weights do not "
                                     "match the base's module names); is --base the model it was trained on?")
        for w in caught:  # anything else peft said still reaches the user; its own deprecations do not concern them
            if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if peft_model.peft_config["default"].is_prompt_learning:
            raise InputError(f"peft_type {self.peft_type} adds virtual tokens, not weight deltas, and cannot be "
                             "merged; mmia audits adapters that merge into the weights (LoRA, LoHa, LoKr, IA3, ...)",
                             where)
        return peft_model.merge_and_unload()


def open_adapter(path: str | Path, base: str | Path | None = None) -> AdapterSource:
    """Check an adapter directory (safetensors weights, a local base) without loading any weights."""
    from mmia.offline import resolve_model_dir

    adir = Path(path).expanduser()
    cfg = read_adapter_config(adir)
    if not (adir / ADAPTER_WEIGHTS).is_file():
        if (adir / "adapter_model.bin").exists():
            raise InputError("adapter_model.bin is a pickle and mmia loads safetensors only; re-save the adapter "
                             "with save_pretrained(..., safe_serialization=True)", adir)
        raise InputError(f"no {ADAPTER_WEIGHTS} beside {ADAPTER_CONFIG}", adir)
    if base is not None:
        base_dir = Path(base).expanduser()
    else:
        named = cfg.get("base_model_name_or_path")
        if not named or not Path(named).expanduser().is_dir():
            raise ModelNotFoundError(f"{adir}: the PEFT adapter's base {named!r} (base_model_name_or_path in "
                                     f"{ADAPTER_CONFIG}) is not a local directory; pass --base DIR, the base model "
                                     "it was trained on")
        base_dir = Path(named).expanduser()
    if is_adapter_dir(base_dir):
        raise InputError("the base is itself a PEFT adapter; merge it into its own base first "
                         "(merge_and_unload + save_pretrained) and pass that as --base", base_dir)
    base_dir = Path(resolve_model_dir(base_dir, "adapter base model"))
    return AdapterSource(dir=adir, base=base_dir, peft_type=str(cfg["peft_type"]))


def adapter_or_none(path: str | Path, base: str | Path | None = None) -> AdapterSource | None:
    """`open_adapter` for an adapter directory; None for a model directory (where `base` is refused)."""
    if is_adapter_dir(path):
        return open_adapter(path, base)
    if base is not None:
        raise InputError(f"--base is for PEFT adapter targets (a directory with {ADAPTER_CONFIG}); this target is "
                         "a full model", path)
    return None


def resolve_target(target: str | Path, reference, base=None, generative_kinds=GENERATIVE_KINDS):
    """(adapter or None, target kind, reference dir, where the reference came from) before any
    weights load: for a PEFT adapter with no reference given, its base is the reference of a
    generative target (target minus base is what the fine-tune changed)."""
    from mmia.offline import resolve_model_dir
    from mmia.targets.loading import detect_kind

    peft = adapter_or_none(target, base)
    kind = detect_kind(peft.base if peft else resolve_model_dir(target, "target model"))
    reference_from = "--reference" if reference is not None else None
    if peft is not None and reference is None and kind in generative_kinds:
        reference, reference_from = peft.base, "adapter base"
    return peft, kind, reference, reference_from


__all__ = ["ADAPTER_CONFIG", "AdapterSource", "adapter_or_none", "is_adapter_dir", "open_adapter",
           "read_adapter_config", "resolve_target"]
