"""The `vlm` testbed: a small LLaVA fine-tuned on known member scenes, with its base model.

Layout of a build:
- `matched.jsonl`, `shifted.jsonl` and their media: the scenes splits of this seed (members are
  exactly the target's fine-tuning set; non-members were never trained on by either model);
- `base/`: the model trained on a disjoint pool of scenes (the "no leak" model, a reference);
- `target/`: `base` fine-tuned on the members (the "leak" model);
- `manifest.json`: seeds, sizes, training settings and losses, member and non-member ids, and the
  build-time member signal (loss-attack AUC with its bootstrap interval on the matched split).
Each model directory holds config.json, model.safetensors, the tokenizer and the processor, and
loads alone with `AutoModelForImageTextToText` / `AutoProcessor`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mmia.data.ids import stable_seed
from mmia.testbeds.base import Testbed, declared_roles, register_testbed
from mmia.testbeds.manifest import split_ids, weights_hash, write_manifest
from mmia.testbeds.scenes import MATCHED, N_FRAMES, scene_stream, split_records, write_scenes_split
from mmia.testbeds.tokenizers_small import train_tokenizer
from mmia.testbeds.vlm_parts import (
    ANSWER_FORMAT,
    CHAT_TEMPLATE,
    PROMPT_FORMAT,
    VlmShape,
    make_config,
    make_processor,
)

VERSION = "1"


@dataclass(frozen=True)
class Stage:
    epochs: int
    lr: float
    batch: int


@dataclass(frozen=True)
class VlmSettings:
    """Sizes and training settings; `quick` is the miniature used by tests."""

    n_pool: int = 2000
    n_members: int = 500
    n_nonmembers: int = 500
    shape: VlmShape = field(default_factory=VlmShape)
    vision: Stage = Stage(epochs=4, lr=2e-3, batch=64)
    base: Stage = Stage(epochs=3, lr=3e-3, batch=32)
    target: Stage = Stage(epochs=4, lr=1e-3, batch=16)


DEFAULT = VlmSettings()
QUICK = VlmSettings(
    n_pool=96,
    n_members=24,
    n_nonmembers=24,
    shape=VlmShape(vision_hidden=32, vision_layers=1, vision_heads=2, text_hidden=48, text_layers=1, text_heads=2,
                   vocab_size=320),
    vision=Stage(epochs=1, lr=2e-3, batch=32),
    base=Stage(epochs=1, lr=3e-3, batch=32),
    target=Stage(epochs=2, lr=1e-3, batch=12),
)


def _save(model, processor, path: Path) -> None:
    model.save_pretrained(path)  # safetensors
    processor.save_pretrained(path)


@dataclass
class TrainedPair:
    """What `train_pair` made: the target (the base was saved before fine-tuning) and its measurements."""

    model: object
    vision_accuracy: dict
    base_history: list
    target_history: list
    losses: dict  # answer losses: base_/target_ x member/nonmember, and the media-reliance probes
    timings: dict


def scene_data(out_dir: Path, cfg: VlmSettings, *, seed: int, video: bool = False, n_frames: int = N_FRAMES):
    """The scenes a VLM testbed audits and trains on: the matched and shifted split files (name ->
    file), the member and non-member records, and the pre-training pool."""
    splits = {}
    for split in ("matched", "shifted"):
        path = write_scenes_split(out_dir, split, n_members=cfg.n_members, n_nonmembers=cfg.n_nonmembers, seed=seed,
                                  image_size=cfg.shape.image_size, video=video, n_frames=n_frames)
        splits[split] = path.name
    members, nonmembers = split_records("matched", n_members=cfg.n_members, n_nonmembers=cfg.n_nonmembers, seed=seed,
                                        video=video)
    pool = scene_stream(seed, "pool", cfg.n_pool, MATCHED, video=video)
    return splits, members, nonmembers, pool


def manifest_head(name: str, version: str, cfg: VlmSettings, *, seed: int, quick: bool, media: str,
                  splits: dict) -> dict:
    """The first entries of a VLM testbed's manifest: what was built, from which seed, of what sizes."""
    return {
        "name": name,
        "version": version,
        "seed": seed,
        "quick": quick,
        "target_kind": "vlm",
        "modalities": ["text", media],
        "splits": splits,
        "roles": declared_roles(name),
        "targets": {"target": "target", "base": "base"},
        "sizes": {"pool": cfg.n_pool, "members": cfg.n_members, "nonmembers": cfg.n_nonmembers,
                  "shifted_nonmembers": cfg.n_nonmembers},
    }


def train_pair(out_dir: Path, cfg: VlmSettings, pool, members, nonmembers, *, seed: int, tag: str = "vlm",
               frames: int | None = None, chat_template: str = CHAT_TEMPLATE) -> TrainedPair:
    """Tokenizer, processor, vision tower, base model (saved to out_dir/base) and target (out_dir/target).

    Shared by the image (`vlm`) and video (`vlm-video`, `frames` images per sample) testbeds; `tag`
    names the seeds of each stage. Runs on one torch thread.
    """
    from transformers import LlavaForConditionalGeneration

    from mmia.testbeds.vlm_train import encode, one_thread, pretrain_vision, seed_torch, train_answer_losses, train_lm

    shape = cfg.shape
    timings: dict[str, float] = {}
    with one_thread():
        t = time.perf_counter()
        # The tokenizer learns from the pool only, as a real one learns from pretraining text.
        tokenizer = train_tokenizer("llava", [r.prompt + "\n" + r.answer for r in pool], shape.vocab_size)
        processor = make_processor(tokenizer, shape, chat_template)
        config = make_config(tokenizer, shape)

        vision_state, vision_acc = pretrain_vision(
            config.vision_config, pool, processor, epochs=cfg.vision.epochs, lr=cfg.vision.lr,
            batch=cfg.vision.batch, seed=stable_seed(f"{tag}-vision", seed), image_size=shape.image_size,
            patch=shape.patch_size, frames=frames)
        timings["vision"] = time.perf_counter() - t

        t = time.perf_counter()
        seed_torch(stable_seed(f"{tag}-init", seed))
        model = LlavaForConditionalGeneration(config)
        model.model.vision_tower.load_state_dict(vision_state)
        model.model.vision_tower.requires_grad_(False)
        pool_data = encode(processor, pool, shape.image_size, frames=frames)
        base_hist = train_lm(model, pool_data, epochs=cfg.base.epochs, lr=cfg.base.lr, batch=cfg.base.batch,
                             seed=stable_seed(f"{tag}-base", seed), desc="base model")
        _save(model, processor, out_dir / "base")
        timings["base"] = time.perf_counter() - t

        t = time.perf_counter()
        member_data = encode(processor, members, shape.image_size, frames=frames)
        nonmember_data = encode(processor, nonmembers, shape.image_size, frames=frames)
        losses = {"base_member": train_answer_losses(model, member_data),
                  "base_nonmember": train_answer_losses(model, nonmember_data)}
        # Does the model look at the media? The same answers with other samples' images (clips).
        perm = np.random.default_rng(stable_seed(f"{tag}-shuffle", seed)).permutation(len(nonmember_data))
        losses["base_shuffled"] = train_answer_losses(
            model, replace(nonmember_data, pixel_values=nonmember_data.pixel_values[perm]))
        if frames is not None:  # and at the order of the frames? The same clips played backwards.
            losses["base_reversed"] = train_answer_losses(
                model, replace(nonmember_data, pixel_values=nonmember_data.pixel_values.flip(1)))
        target_hist = train_lm(model, member_data, epochs=cfg.target.epochs, lr=cfg.target.lr,
                               batch=cfg.target.batch, seed=stable_seed(f"{tag}-target", seed), desc="target model")
        _save(model, processor, out_dir / "target")
        timings["target"] = time.perf_counter() - t

        # Build-time member signal on the matched split: the loss attack (lower loss = member), and
        # the same calibrated by the base model (reference attack), on samples no model trained on.
        t = time.perf_counter()
        losses["target_member"] = train_answer_losses(model, member_data)
        losses["target_nonmember"] = train_answer_losses(model, nonmember_data)
        timings["signal"] = time.perf_counter() - t
    return TrainedPair(model, vision_acc, base_hist, target_hist, losses, timings)


def pair_manifest(out_dir: Path, cfg: VlmSettings, pair: TrainedPair) -> dict:
    """The manifest fields both LLaVA testbeds share: model, training, member signal, hashes."""
    from mmia.metrics import evaluate

    lo = pair.losses
    labels = np.r_[np.ones(len(lo["target_member"])), np.zeros(len(lo["target_nonmember"]))].astype(int)
    loss_attack = evaluate(labels, -np.r_[lo["target_member"], lo["target_nonmember"]], with_roc=False)
    ref_attack = evaluate(labels, np.r_[lo["base_member"] - lo["target_member"],
                                        lo["base_nonmember"] - lo["target_nonmember"]], with_roc=False)
    base_only = evaluate(labels, -np.r_[lo["base_member"], lo["base_nonmember"]], with_roc=False)
    return {
        "model": {**cfg.shape.as_dict(), "architecture": "LlavaForConditionalGeneration",
                  "n_parameters": sum(p.numel() for p in pair.model.parameters())},
        "training": {
            "vision": {**asdict(cfg.vision), "task": "dense scene classification on the pool, then frozen",
                       "final_train_accuracy": pair.vision_accuracy},
            "base": {**asdict(cfg.base), "data": "pool stream (disjoint from members and non-members)",
                     "loss_per_epoch": pair.base_history},
            "target": {**asdict(cfg.target), "data": "members of the matched split, starting from base",
                       "loss_per_epoch": pair.target_history},
            "threads": 1,
            "optimizer": "AdamW, linear warm-up then cosine decay, gradient clipping 1.0",
        },
        "member_signal": {
            "split": "matched",
            "loss": loss_attack,
            "reference_calibrated_loss": ref_attack,
            "base_model_loss": base_only,
            "mean_answer_loss": {"target_members": float(lo["target_member"].mean()),
                                 "target_nonmembers": float(lo["target_nonmember"].mean()),
                                 "base_members": float(lo["base_member"].mean()),
                                 "base_nonmembers": float(lo["base_nonmember"].mean())},
            "note": "loss attack of the target on all members against the held-out matched non-members; "
                    "base_model_loss is a sanity check and should sit near 0.5",
        },
        "weights_sha256": {"target": weights_hash(out_dir / "target"), "base": weights_hash(out_dir / "base")},
    }


def build_vlm(out_dir: Path, *, seed: int = 0, quick: bool = False, settings: VlmSettings | None = None) -> Testbed:
    """Write data, base and target models and manifest.json into `out_dir`."""
    cfg = settings or (QUICK if quick else DEFAULT)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    splits, members, nonmembers, pool = scene_data(out_dir, cfg, seed=seed)
    timings = {"data": time.perf_counter() - t0}

    pair = train_pair(out_dir, cfg, pool, members, nonmembers, seed=seed, tag="vlm")
    timings.update(pair.timings)
    timings["total"] = time.perf_counter() - t0
    timings["total_cpu"] = time.process_time() - cpu0

    manifest = {
        **manifest_head("vlm", VERSION, cfg, seed=seed, quick=quick, media="image", splits=splits),
        "format": {"prompt": PROMPT_FORMAT, "answer": ANSWER_FORMAT,
                   "loss_covers": "answer tokens and the closing </s>"},
        "ids": {name: split_ids(out_dir / p) for name, p in splits.items()},
        "pool_stream": {"name": "pool", "n": cfg.n_pool, "settings": "default"},
        **pair_manifest(out_dir, cfg, pair),
        "image_reliance": {
            "base_nonmember_loss_own_images": float(pair.losses["base_nonmember"].mean()),
            "base_nonmember_loss_shuffled_images": float(pair.losses["base_shuffled"].mean()),
            "note": "mean answer loss of the base model on the matched non-members with their own images "
                    "and with images shuffled between samples; a gap shows the answers depend on the image",
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    write_manifest(out_dir, manifest)
    return Testbed.from_dir(out_dir)


@register_testbed("vlm", summary="small LLaVA (CLIP tower + Llama LM) fine-tuned on known member scenes, "
                  "with its base model", version=VERSION, cost=220,
                  roles={"membership": "matched", "shifted": "shifted"})
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_vlm(out_dir, seed=seed, quick=quick)
