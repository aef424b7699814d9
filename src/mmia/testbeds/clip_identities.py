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
from mmia.testbeds.base import Testbed, register_testbed
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


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


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
    from mmia.testbeds.vlm_train import one_thread

    with one_thread():  # faster on shared cores and bit-reproducible; restored afterwards
        return _build_clip_identities(out_dir, seed=seed, quick=quick, **overrides)


def _build_clip_identities(out_dir: Path, *, seed: int, quick: bool, **overrides) -> Testbed:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from mmia.metrics import auc as auc_of
    from mmia.progress import progress_bar
    from mmia.testbeds.contrastive_train import train_contrastive
    from mmia.testbeds.faces import draw_face, draw_generic, random_appearance
    from mmia.testbeds.names import identity_split, person_names
    from mmia.testbeds.tokenizers_small import train_tokenizer

    s = dict(QUICK if quick else FULL)
    s.update(overrides)
    out = Path(out_dir)
    (out / "photos").mkdir(parents=True, exist_ok=True)
    members, calibration, eval_non = identity_split(
        "clip-identities", seed, s["n_members"], s["n_calibration"], s["n_eval_nonmembers"]
    )
    size = s["image_size"]

    def appearance(name):
        return random_appearance(np.random.default_rng(stable_seed("appearance", seed, name)))

    # Training pairs: member photos with name captions, generic shape captions.
    images, captions, groups = [], [], []
    for gi, name in enumerate(members):
        app = appearance(name)
        rng = np.random.default_rng(stable_seed("train-photos", seed, name))
        for k in range(s["images_per_member"]):
            images.append(draw_face(app, rng, size))
            captions.append(CAPTION_TEMPLATES[(k + gi) % len(CAPTION_TEMPLATES)].format(name))
            groups.append(gi)
    rng = np.random.default_rng(stable_seed("generic", seed))
    generic_groups: dict[str, int] = {}
    for _ in range(s["n_generic"]):
        img, cap = draw_generic(rng, size)
        images.append(img)
        captions.append(cap)
        groups.append(len(members) + generic_groups.setdefault(cap, len(generic_groups)))

    # Tokenizer from a neutral pool of names (another seed of the same generator).
    pool = person_names(s["tokenizer_names"], stable_seed("tokenizer-names", seed) % (2**31))
    trng = np.random.default_rng(stable_seed("tokenizer", seed))
    corpus = [CAPTION_TEMPLATES[int(trng.integers(len(CAPTION_TEMPLATES)))].format(n) for n in pool]
    corpus += sorted(set(captions[len(members) * s["images_per_member"] :]))
    tok = train_tokenizer("clip", corpus, s["vocab"])

    improc = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    mean = np.asarray(improc.image_mean, dtype=np.float32)
    std = np.asarray(improc.image_std, dtype=np.float32)
    pix = torch.from_numpy(((np.stack(images).astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy())
    enc = tok(captions, padding="max_length", truncation=True, max_length=s["text_len"], return_tensors="pt")

    torch.manual_seed(stable_seed("clip-init", seed) % (2**31))
    model = CLIPModel(_clip_config(s, len(tok), tok))

    def batch_fn(idx):
        t = torch.as_tensor(idx)
        img = model.get_image_features(pixel_values=pix[t])
        length = int(enc["attention_mask"][t].sum(1).max())  # pad to the batch's longest, not to text_len
        txt = model.get_text_features(input_ids=enc["input_ids"][t, :length],
                                      attention_mask=enc["attention_mask"][t, :length])
        return _pooled(img), _pooled(txt)

    total = s["epochs"] * int(np.ceil(len(images) / s["batch_size"]))
    with progress_bar("training clip-identities", total, unit="steps") as bar:
        train = train_contrastive(
            model, len(images), batch_fn, np.asarray(groups), model.logit_scale, epochs=s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], seed=stable_seed("train", seed) % (2**31),
            progress=lambda *_: bar.advance(),
        )

    model_dir = out / "model"
    model.save_pretrained(model_dir)
    CLIPProcessor(image_processor=improc, tokenizer=tok).save_pretrained(model_dir)

    # Query files and fresh photos (never trained on) for the biometric baseline.
    def qid(name):
        return "q" + format(stable_seed("query-id", name) % 16**10, "010x")

    queries = [{"id": qid(n), "text": n, "label": 1} for n in members]
    queries += [{"id": qid(n), "text": n, "label": 0} for n in eval_non]
    _write_jsonl(out / "queries.jsonl", queries)
    _write_jsonl(out / "calibration-names.jsonl", [{"id": qid(n), "text": n, "label": 0} for n in calibration])
    photo_rows, photo_pix = [], []
    for q in queries:
        rng = np.random.default_rng(stable_seed("fresh-photo", seed, q["text"]))
        img = draw_face(appearance(q["text"]), rng, size)
        rel = f"photos/{q['id']}.png"
        Image.fromarray(img).save(out / rel)
        photo_rows.append({"id": q["id"], "text": QUERY_TEMPLATE.format(q["text"]), "image": rel, "label": q["label"]})
        photo_pix.append(img)
    _write_jsonl(out / "photos.jsonl", photo_rows)

    with torch.no_grad():
        ph = torch.from_numpy(((np.stack(photo_pix).astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2))
        ie = torch.nn.functional.normalize(_pooled(model.get_image_features(pixel_values=ph)), dim=-1)
        te_in = tok([r["text"] for r in photo_rows], padding=True, return_tensors="pt")
        te = torch.nn.functional.normalize(_pooled(model.get_text_features(**te_in)), dim=-1)
        cos = (ie * te).sum(-1).numpy()
    labels = np.array([q["label"] for q in queries])
    photo_auc = auc_of(labels, cos)

    n_params = sum(p.numel() for p in model.parameters())
    manifest = {
        "name": "clip-identities",
        "target_kind": "clip",
        "modalities": ["image", "text"],
        "splits": {"queries": "queries.jsonl", "calibration": "calibration-names.jsonl", "photos": "photos.jsonl"},
        "targets": {"target": "model"},
        "seed": seed,
        "quick": quick,
        "sizes": {k: s[k] for k in ("n_members", "n_calibration", "n_eval_nonmembers", "images_per_member",
                                     "n_generic")} | {"n_train_pairs": len(images), "n_parameters": n_params},
        "model": {k: s[k] for k in ("image_size", "patch_size", "width", "layers", "heads", "text_len", "vocab")},
        "training": train,
        "caption_templates": list(CAPTION_TEMPLATES),
        "query_template": QUERY_TEMPLATE,
        "members": members,
        "nonmembers_eval": eval_non,
        "nonmembers_calibration": calibration,
        "name_generator": "Faker first_name + last_name, locales drawn at random per name, one seeded pool split "
        "at random into members / calibration / evaluation non-members",
        "build_time_signal": {"photo_cosine_auc": photo_auc},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Testbed.from_dir(out)


def _pooled(x):
    """transformers 5.x returns an output object from get_*_features; older versions a tensor."""
    return x if hasattr(x, "shape") else x.pooler_output


# version 2: the tokenizer's merges are learned deterministically (version 1 builds differed from
# run to run: tokenizers_small.py)
@register_testbed("clip-identities", summary="small CLIPModel trained on photos of named synthetic people",
                  cost=50, version="2")
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_clip_identities(out_dir, seed=seed, quick=quick)
