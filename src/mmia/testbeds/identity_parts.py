"""The steps the identity testbeds (clip-identities, clap-voices) share, whatever their media:
the name tokenizer, contrastive training on (media, caption) pairs, the name query files and
the text side of the build-time check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmia.data.ids import stable_seed


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def pooled(x):
    """transformers 5.x returns an output object from get_*_features; older versions a tensor."""
    return x if hasattr(x, "shape") else x.pooler_output


def name_tokenizer(kind: str, seed: int, n_names: int, templates, generic_captions, vocab: int):
    """A tokenizer learned from captions of a neutral pool of names (another seed of the same
    generator, so no member name is favoured) and the generic captions."""
    from mmia.testbeds.names import person_names
    from mmia.testbeds.tokenizers_small import train_tokenizer

    pool = person_names(n_names, stable_seed("tokenizer-names", seed) % (2**31))
    trng = np.random.default_rng(stable_seed("tokenizer", seed))
    corpus = [templates[int(trng.integers(len(templates)))].format(n) for n in pool]
    corpus += sorted(set(generic_captions))
    return train_tokenizer(kind, corpus, vocab)


def train_pairs(model, testbed: str, media_features, enc, groups, logit_scale, s: dict, seed: int) -> dict:
    """Contrastive training on every (media, caption) pair; `media_features(index tensor)` gives
    the media side of a batch. Returns train_contrastive's record."""
    import torch

    from mmia.progress import progress_bar
    from mmia.testbeds.contrastive_train import train_contrastive

    def batch_fn(idx):
        t = torch.as_tensor(idx)
        media = media_features(t)
        length = int(enc["attention_mask"][t].sum(1).max())  # pad to the batch's longest, not to text_len
        txt = model.get_text_features(input_ids=enc["input_ids"][t, :length],
                                      attention_mask=enc["attention_mask"][t, :length])
        return pooled(media), pooled(txt)

    n = len(groups)
    total = s["epochs"] * int(np.ceil(n / s["batch_size"]))
    with progress_bar(f"training {testbed}", total, unit="steps") as bar:
        return train_contrastive(
            model, n, batch_fn, np.asarray(groups), logit_scale, epochs=s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], seed=stable_seed("train", seed) % (2**31),
            progress=lambda *_: bar.advance(),
        )


def write_name_queries(out: Path, members, eval_non, calibration) -> list[dict]:
    """queries.jsonl (members 1, evaluation non-members 0) and calibration-names.jsonl; returns the queries."""

    def qid(name):
        return "q" + format(stable_seed("query-id", name) % 16**10, "010x")

    queries = [{"id": qid(n), "text": n, "label": 1} for n in members]
    queries += [{"id": qid(n), "text": n, "label": 0} for n in eval_non]
    write_jsonl(out / "queries.jsonl", queries)
    write_jsonl(out / "calibration-names.jsonl", [{"id": qid(n), "text": n, "label": 0} for n in calibration])
    return queries


def text_embeddings(model, tok, texts: list[str]):
    """Unit-length text embeddings of `texts` (call under torch.no_grad)."""
    import torch

    te_in = tok(texts, padding=True, return_tensors="pt")
    return torch.nn.functional.normalize(pooled(model.get_text_features(**te_in)), dim=-1)


def on_one_thread(build, out_dir: Path, **kwargs):
    """`build(out_dir, **kwargs)` with one torch thread: faster on shared cores and bit-reproducible
    (restored afterwards)."""
    from mmia.testbeds.vlm_train import one_thread

    with one_thread():
        return build(out_dir, **kwargs)


def start_build(testbed: str, settings: dict, overrides: dict, out_dir: Path, media_folder: str, seed: int):
    """(settings with `overrides`, the output folder with its media folder made, members,
    calibration names, evaluation non-members)."""
    from mmia.testbeds.names import identity_split

    s = dict(settings)
    s.update(overrides)
    out = Path(out_dir)
    (out / media_folder).mkdir(parents=True, exist_ok=True)
    members, calibration, eval_non = identity_split(
        testbed, seed, s["n_members"], s["n_calibration"], s["n_eval_nonmembers"]
    )
    return s, out, members, calibration, eval_non


def training_pairs(members, per_member: int, member_item, n_generic: int, generic_item, templates):
    """(media, captions, groups) of the training set: `per_member` items of each member
    (`member_item(gi, name)` gives a function drawing one), captioned with the templates in turn,
    one group per member; then `n_generic` generic (item, caption) pairs from `generic_item()`,
    one group per distinct caption."""
    media, captions, groups = [], [], []
    for gi, name in enumerate(members):
        draw = member_item(gi, name)
        for k in range(per_member):
            media.append(draw())
            captions.append(templates[(k + gi) % len(templates)].format(name))
            groups.append(gi)
    generic_groups: dict[str, int] = {}
    for _ in range(n_generic):
        item, cap = generic_item()
        media.append(item)
        captions.append(cap)
        groups.append(len(members) + generic_groups.setdefault(cap, len(generic_groups)))
    return media, captions, groups


def people_manifest(templates, query_template: str, members, eval_non, calibration) -> dict:
    """The manifest's record of the captions and of who is a member."""
    return {
        "caption_templates": list(templates),
        "query_template": query_template,
        "members": members,
        "nonmembers_eval": eval_non,
        "nonmembers_calibration": calibration,
        "name_generator": "Faker first_name + last_name, locales drawn at random per name, one seeded pool split "
        "at random into members / calibration / evaluation non-members",
    }
