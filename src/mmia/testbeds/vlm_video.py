"""The `vlm-video` testbed: the `vlm` testbed's small LLaVA, reading a short clip as several images.

A sample is a clip of FRAMES frames from the scenes generator (one or two shapes moving in a
named direction); the model sees each frame as one image placeholder, placeholders adjacent:
`USER: <image><image><image><image>\\n{prompt}\\nASSISTANT: {answer}</s>`. Frames are cut into
16x16 patches (16 tokens each, 64 per clip) to keep training as cheap as the image testbed's.
Everything else is the `vlm` testbed's (`mmia.testbeds.vlm.train_pair`): a tokenizer trained on
the pool's text, a CLIP tower pretrained on dense labels of every pool frame then frozen, a base
model trained on a disjoint pool of clips, and the target fine-tuned from it on the members.

Layout of a build: `matched_video.jsonl` and `shifted_video.jsonl` (manifest splits `matched`
and `shifted`) with their frame folders in `media_video_64_4f/`, `base/`, `target/`,
`manifest.json`. Not in `mmia demo` (its first run has a 10-minute budget): build it with
`mmia testbed vlm-video --out DIR`.
"""

from __future__ import annotations

import time
from pathlib import Path

from mmia.testbeds.base import Testbed, register_testbed
from mmia.testbeds.manifest import split_ids, write_manifest
from mmia.testbeds.vlm import Stage, VlmSettings, manifest_head, pair_manifest, scene_data, train_pair
from mmia.testbeds.vlm_parts import ANSWER_FORMAT, IMAGE_TOKEN, VIDEO_PROMPT_FORMAT, VlmShape, video_chat_template

VERSION = "1"
FRAMES = 4

DEFAULT = VlmSettings(
    n_pool=2000,
    n_members=400,
    n_nonmembers=400,
    shape=VlmShape(patch_size=16),
    vision=Stage(epochs=3, lr=2e-3, batch=64),
    base=Stage(epochs=3, lr=3e-3, batch=32),
    target=Stage(epochs=4, lr=1e-3, batch=16),
)
QUICK = VlmSettings(
    n_pool=64,
    n_members=16,
    n_nonmembers=16,
    shape=VlmShape(patch_size=16, vision_hidden=32, vision_layers=1, vision_heads=2, text_hidden=48, text_layers=1,
                   text_heads=2, vocab_size=320),
    vision=Stage(epochs=1, lr=2e-3, batch=64),
    base=Stage(epochs=1, lr=3e-3, batch=32),
    target=Stage(epochs=2, lr=1e-3, batch=8),
)


def build_vlm_video(out_dir: Path, *, seed: int = 0, quick: bool = False,
                    settings: VlmSettings | None = None) -> Testbed:
    """Write clips, base and target models and manifest.json into `out_dir`."""
    cfg = settings or (QUICK if quick else DEFAULT)
    shape = cfg.shape
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    splits, members, nonmembers, pool = scene_data(out_dir, cfg, seed=seed, video=True, n_frames=FRAMES)
    timings = {"data": time.perf_counter() - t0}

    pair = train_pair(out_dir, cfg, pool, members, nonmembers, seed=seed, tag="vlm-video", frames=FRAMES,
                      chat_template=video_chat_template(FRAMES))
    timings.update(pair.timings)
    timings["total"] = time.perf_counter() - t0
    timings["total_cpu"] = time.process_time() - cpu0

    lo = pair.losses
    manifest = {
        **manifest_head("vlm-video", VERSION, cfg, seed=seed, quick=quick, media="video", splits=splits),
        "frames_per_video": FRAMES,
        "format": {"prompt": VIDEO_PROMPT_FORMAT, "answer": ANSWER_FORMAT, "frames": FRAMES,
                   "media": f"one {IMAGE_TOKEN} per frame, in order, adjacent ({FRAMES} frames: "
                            f"{IMAGE_TOKEN * FRAMES}); each frame takes {shape.image_tokens} image tokens",
                   "loss_covers": "answer tokens and the closing </s>"},
        "ids": {name: split_ids(out_dir / p) for name, p in splits.items()},
        "pool_stream": {"name": "pool", "n": cfg.n_pool, "settings": "default", "kind": "video"},
        **pair_manifest(out_dir, cfg, pair),
        "media_reliance": {
            "base_nonmember_loss_own_clips": float(lo["base_nonmember"].mean()),
            "base_nonmember_loss_shuffled_clips": float(lo["base_shuffled"].mean()),
            "base_nonmember_loss_reversed_clips": float(lo["base_reversed"].mean()),
            "note": "mean answer loss of the base model on the matched non-members with their own clips, "
                    "with clips shuffled between samples, and with their frames in reverse order; gaps show "
                    "the answers depend on the frames and on their order (motion)",
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    write_manifest(out_dir, manifest)
    return Testbed.from_dir(out_dir)


@register_testbed("vlm-video", summary="the vlm testbed's small LLaVA reading 4-frame clips as 4 images, fine-tuned "
                  "on known member clips, with its base model (not in the demo)", in_demo=False, version=VERSION,
                  roles={"membership": "matched", "shifted": "shifted"})
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_vlm_video(out_dir, seed=seed, quick=quick)
