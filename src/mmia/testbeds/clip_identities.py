"""`clip-identities`: a small CLIPModel trained from scratch on captioned photos of people.

Each synthetic identity has a seeded Faker name (several locales) and a consistent drawn
appearance (mmia.testbeds.faces) with per-image variation. Member identities appear in
training with captions naming them, mixed with generic shape captions; non-member identities
never do. All names come from one generator and are split at random, so "looks like a name"
cannot tell the groups apart. Written files:

- `model/`: CLIPModel + CLIPProcessor (PIL image processor, BPE tokenizer), save_pretrained;
- `queries.jsonl`: id, text (the name), label: members and evaluation non-members;
- `calibration-names.jsonl`: other non-member names (label 0), for the name-likeness control
  only; never evaluated on;
- `photos.jsonl` + `photos/`: a fresh photo (not a training image) of each query identity with
  the caption "a photo of NAME": the biometric-access baseline;
- `manifest.json`: names, seeds, sizes, training settings, the build-time photo cosine AUC.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmia.data.ids import stable_seed
from mmia.testbeds.base import Testbed, declared_roles, register_testbed
from mmia.testbeds.identity_parts import (
    name_tokenizer,
    on_one_thread,
    people_manifest,
    pooled,
    start_build,
    text_embeddings,
    train_pairs,
    training_pairs,
    write_jsonl,
    write_name_queries,
)
from mmia.testbeds.names import split_names  # noqa: F401  (re-exported: older imports)

CAPTION_TEMPLATES = (
    "a photo of {}",
    "{}",
    "a portrait of {}",
    "{} smiling",
    "a picture of {} outdoors",
    "{} in a photo",
)
QUERY_TEMPLATE = "a photo of {}"

FULL = dict(
    n_members=100, n_calibration=100, n_eval_nonmembers=100, images_per_member=10, n_generic=500,
    image_size=32, patch_size=8, width=96, layers=2, heads=4, text_len=32, vocab=1500,
    epochs=40, batch_size=100, lr=2e-3, tokenizer_names=4000,
)
QUICK = dict(
    n_members=10, n_calibration=6, n_eval_nonmembers=10, images_per_member=3, n_generic=30,
    image_size=16, patch_size=8, width=32, layers=1, heads=2, text_len=32, vocab=400,
    epochs=2, batch_size=32, lr=2e-3, tokenizer_names=300,
)


def _clip_config(s: dict, vocab_size: int, tok):
    from transformers import CLIPConfig

    w = s["width"]
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=w, intermediate_size=2 * w, num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"], max_position_embeddings=s["text_len"],
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=w, intermediate_size=2 * w, num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
            image_size=s["image_size"], patch_size=s["patch_size"], num_channels=3,
        ),
        projection_dim=w,
    )


def build_clip_identities(out_dir: Path, *, seed: int = 0, quick: bool = False, **overrides) -> Testbed:
    """Build the testbed into `out_dir`; `overrides` change any size or training setting."""
    return on_one_thread(_build_clip_identities, out_dir, seed=seed, quick=quick, **overrides)


def _build_clip_identities(out_dir: Path, *, seed: int, quick: bool, **overrides) -> Testbed:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from mmia.metrics import auc as auc_of
    from mmia.testbeds.faces import draw_face, draw_generic, random_appearance

    s, out, members, calibration, eval_non = start_build(
        "clip-identities", QUICK if quick else FULL, overrides, out_dir, "photos", seed
    )
    size = s["image_size"]

    def appearance(name):
        return random_appearance(np.random.default_rng(stable_seed("appearance", seed, name)))

    def member_photos(gi, name):
        app, rng = appearance(name), np.random.default_rng(stable_seed("train-photos", seed, name))
        return lambda: draw_face(app, rng, size)

    # Training pairs: member photos with name captions, generic shape captions.
    generic_rng = np.random.default_rng(stable_seed("generic", seed))
    images, captions, groups = training_pairs(members, s["images_per_member"], member_photos, s["n_generic"],
                                              lambda: draw_generic(generic_rng, size), CAPTION_TEMPLATES)

    generic = captions[len(members) * s["images_per_member"] :]
    tok = name_tokenizer("clip", seed, s["tokenizer_names"], CAPTION_TEMPLATES, generic, s["vocab"])

    improc = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    mean = np.asarray(improc.image_mean, dtype=np.float32)
    std = np.asarray(improc.image_std, dtype=np.float32)
    pix = torch.from_numpy(((np.stack(images).astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy())
    enc = tok(captions, padding="max_length", truncation=True, max_length=s["text_len"], return_tensors="pt")

    torch.manual_seed(stable_seed("clip-init", seed) % (2**31))
    model = CLIPModel(_clip_config(s, len(tok), tok))

    train = train_pairs(model, "clip-identities", lambda t: model.get_image_features(pixel_values=pix[t]), enc,
                        groups, model.logit_scale, s, seed)

    model_dir = out / "model"
    model.save_pretrained(model_dir)
    CLIPProcessor(image_processor=improc, tokenizer=tok).save_pretrained(model_dir)

    # Query files and fresh photos (never trained on) for the biometric baseline.
    queries = write_name_queries(out, members, eval_non, calibration)
    photo_rows, photo_pix = [], []
    for q in queries:
        rng = np.random.default_rng(stable_seed("fresh-photo", seed, q["text"]))
        img = draw_face(appearance(q["text"]), rng, size)
        rel = f"photos/{q['id']}.png"
        Image.fromarray(img).save(out / rel)
        photo_rows.append({"id": q["id"], "text": QUERY_TEMPLATE.format(q["text"]), "image": rel, "label": q["label"]})
        photo_pix.append(img)
    write_jsonl(out / "photos.jsonl", photo_rows)

    with torch.no_grad():
        ph = torch.from_numpy(((np.stack(photo_pix).astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2))
        ie = torch.nn.functional.normalize(pooled(model.get_image_features(pixel_values=ph)), dim=-1)
        te = text_embeddings(model, tok, [r["text"] for r in photo_rows])
        cos = (ie * te).sum(-1).numpy()
    labels = np.array([q["label"] for q in queries])
    photo_auc = auc_of(labels, cos)

    n_params = sum(p.numel() for p in model.parameters())
    manifest = {
        "name": "clip-identities",
        "target_kind": "clip",
        "modalities": ["image", "text"],
        "splits": {"queries": "queries.jsonl", "calibration": "calibration-names.jsonl", "photos": "photos.jsonl"},
        "roles": declared_roles("clip-identities"),
        "targets": {"target": "model"},
        "seed": seed,
        "quick": quick,
        "sizes": {k: s[k] for k in ("n_members", "n_calibration", "n_eval_nonmembers", "images_per_member",
                                     "n_generic")} | {"n_train_pairs": len(images), "n_parameters": n_params},
        "model": {k: s[k] for k in ("image_size", "patch_size", "width", "layers", "heads", "text_len", "vocab")},
        "training": train,
        **people_manifest(CAPTION_TEMPLATES, QUERY_TEMPLATE, members, eval_non, calibration),
        "build_time_signal": {"photo_cosine_auc": photo_auc},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Testbed.from_dir(out)


# version 2: the tokenizer's merges are learned deterministically (version 1 builds differed from
# run to run: tokenizers_small.py)
@register_testbed("clip-identities", summary="small CLIPModel trained on photos of named synthetic people",
                  cost=50, version="2", roles={"membership": "photos", "names": "queries", "controls": "calibration"})
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_clip_identities(out_dir, seed=seed, quick=quick)
