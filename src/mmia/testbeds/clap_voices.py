"""`clap-voices`: a small ClapModel trained from scratch on captioned recordings of named voices.

The audio counterpart of `clip-identities`: each synthetic identity has a seeded Faker name
and a consistent timbre (mmia.testbeds.voices: pitch, formants, tilt, vibrato, breathiness),
each clip a fresh utterance. Member voices are trained with captions naming them, mixed with
generic sound captions; non-members never are. Files as in clip-identities, with `recordings/`
(a fresh clip per query identity) and `recordings.jsonl` for the biometric baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmia.data.ids import stable_seed
from mmia.testbeds.base import Testbed, register_testbed
from mmia.testbeds.clip_identities import _pooled, _write_jsonl

CAPTION_TEMPLATES = (
    "the voice of {}",
    "{}",
    "{} speaking",
    "a recording of {}",
    "{} says hello",
    "{} talking quietly",
)
QUERY_TEMPLATE = "the voice of {}"
SAMPLING_RATE = 16000

FULL = dict(
    n_members=100, n_calibration=100, n_eval_nonmembers=100, clips_per_member=10, n_generic=600,
    mels=32, spec_size=64, width=32, text_width=64, layers=2, heads=4, text_len=40, vocab=1500,
    epochs=30, batch_size=100, lr=2e-3, tokenizer_names=4000,
)
QUICK = dict(
    n_members=10, n_calibration=6, n_eval_nonmembers=10, clips_per_member=2, n_generic=20,
    mels=32, spec_size=64, width=16, text_width=32, layers=1, heads=2, text_len=32, vocab=400,
    epochs=2, batch_size=32, lr=2e-3, tokenizer_names=300,
)


def _clap_config(s: dict, vocab_size: int, tok):
    from transformers import ClapConfig

    proj = s["text_width"]
    depths = (1,) * s["layers"]
    heads = tuple(s["heads"] * 2**i for i in range(s["layers"]))
    return ClapConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=s["text_width"], num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"], intermediate_size=2 * s["text_width"],
            max_position_embeddings=s["text_len"] + 8, projection_dim=proj, pad_token_id=tok.pad_token_id,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        ),
        audio_config=dict(
            num_mel_bins=s["mels"], spec_size=s["spec_size"], window_size=4, patch_size=4, patch_stride=(4, 4),
            patch_embeds_hidden_size=s["width"], hidden_size=s["width"] * 2 ** (s["layers"] - 1), depths=depths,
            num_attention_heads=heads, num_hidden_layers=s["layers"], projection_dim=proj,
            hidden_dropout_prob=0.0, enable_fusion=False,
        ),
        projection_dim=proj,
    )


def build_clap_voices(out_dir: Path, *, seed: int = 0, quick: bool = False, **overrides) -> Testbed:
    """Build the testbed into `out_dir`; `overrides` change any size or training setting."""
    from mmia.testbeds.vlm_train import one_thread

    with one_thread():  # faster on shared cores and bit-reproducible; restored afterwards
        return _build_clap_voices(out_dir, seed=seed, quick=quick, **overrides)


def _build_clap_voices(out_dir: Path, *, seed: int, quick: bool, **overrides) -> Testbed:
    import soundfile as sf
    import torch
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor

    from mmia.metrics import auc as auc_of
    from mmia.progress import progress_bar
    from mmia.testbeds.contrastive_train import train_contrastive
    from mmia.testbeds.names import identity_split, person_names
    from mmia.testbeds.tokenizers_small import train_tokenizer
    from mmia.testbeds.voices import generic_sound, random_voice, speak

    s = dict(QUICK if quick else FULL)
    s.update(overrides)
    out = Path(out_dir)
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    members, calibration, eval_non = identity_split(
        "clap-voices", seed, s["n_members"], s["n_calibration"], s["n_eval_nonmembers"]
    )

    def voice(name):
        return random_voice(np.random.default_rng(stable_seed("voice", seed, name)))

    waves, captions, groups = [], [], []
    for gi, name in enumerate(members):
        v = voice(name)
        rng = np.random.default_rng(stable_seed("train-clips", seed, name))
        for k in range(s["clips_per_member"]):
            waves.append(speak(v, rng, SAMPLING_RATE))
            captions.append(CAPTION_TEMPLATES[(k + gi) % len(CAPTION_TEMPLATES)].format(name))
            groups.append(gi)
    rng = np.random.default_rng(stable_seed("generic-sounds", seed))
    generic_groups: dict[str, int] = {}
    for _ in range(s["n_generic"]):
        w, cap = generic_sound(rng, SAMPLING_RATE)
        waves.append(w)
        captions.append(cap)
        groups.append(len(members) + generic_groups.setdefault(cap, len(generic_groups)))

    pool = person_names(s["tokenizer_names"], stable_seed("tokenizer-names", seed) % (2**31))
    trng = np.random.default_rng(stable_seed("tokenizer", seed))
    corpus = [CAPTION_TEMPLATES[int(trng.integers(len(CAPTION_TEMPLATES)))].format(n) for n in pool]
    corpus += sorted(set(captions[len(members) * s["clips_per_member"] :]))
    tok = train_tokenizer("roberta", corpus, s["vocab"])

    fe = ClapFeatureExtractor(
        feature_size=s["mels"], sampling_rate=SAMPLING_RATE, hop_length=160, max_length_s=1, fft_window_size=512,
        frequency_min=50, frequency_max=8000, truncation="rand_trunc", padding="repeatpad",
    )
    feats = torch.from_numpy(np.asarray(fe(waves, sampling_rate=SAMPLING_RATE, return_tensors="np")["input_features"]))
    enc = tok(captions, padding="max_length", truncation=True, max_length=s["text_len"], return_tensors="pt")

    torch.manual_seed(stable_seed("clap-init", seed) % (2**31))
    model = ClapModel(_clap_config(s, len(tok), tok))

    def batch_fn(idx):
        t = torch.as_tensor(idx)
        a = model.get_audio_features(input_features=feats[t])
        length = int(enc["attention_mask"][t].sum(1).max())  # pad to the batch's longest, not to text_len
        txt = model.get_text_features(input_ids=enc["input_ids"][t, :length],
                                      attention_mask=enc["attention_mask"][t, :length])
        return _pooled(a), _pooled(txt)

    total = s["epochs"] * int(np.ceil(len(waves) / s["batch_size"]))
    with progress_bar("training clap-voices", total, unit="steps") as bar:
        train = train_contrastive(
            model, len(waves), batch_fn, np.asarray(groups), model.logit_scale_a, epochs=s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], seed=stable_seed("train", seed) % (2**31),
            progress=lambda *_: bar.advance(),
        )

    model_dir = out / "model"
    model.save_pretrained(model_dir)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(model_dir)

    def qid(name):
        return "q" + format(stable_seed("query-id", name) % 16**10, "010x")

    queries = [{"id": qid(n), "text": n, "label": 1} for n in members]
    queries += [{"id": qid(n), "text": n, "label": 0} for n in eval_non]
    _write_jsonl(out / "queries.jsonl", queries)
    _write_jsonl(out / "calibration-names.jsonl", [{"id": qid(n), "text": n, "label": 0} for n in calibration])
    rec_rows, rec_waves = [], []
    for q in queries:
        rng = np.random.default_rng(stable_seed("fresh-clip", seed, q["text"]))
        w = speak(voice(q["text"]), rng, SAMPLING_RATE)
        rel = f"recordings/{q['id']}.wav"
        sf.write(out / rel, w, SAMPLING_RATE, subtype="FLOAT")
        rec_rows.append({"id": q["id"], "text": QUERY_TEMPLATE.format(q["text"]), "audio": rel, "label": q["label"]})
        rec_waves.append(w)
    _write_jsonl(out / "recordings.jsonl", rec_rows)

    model.eval()
    with torch.no_grad():
        f = fe(rec_waves, sampling_rate=SAMPLING_RATE, return_tensors="np")["input_features"]
        f = torch.from_numpy(np.asarray(f))
        ae = torch.nn.functional.normalize(_pooled(model.get_audio_features(input_features=f)), dim=-1)
        te_in = tok([r["text"] for r in rec_rows], padding=True, return_tensors="pt")
        te = torch.nn.functional.normalize(_pooled(model.get_text_features(**te_in)), dim=-1)
        cos = (ae * te).sum(-1).numpy()
    labels = np.array([q["label"] for q in queries])

    manifest = {
        "name": "clap-voices",
        "target_kind": "clap",
        "modalities": ["audio", "text"],
        "splits": {"queries": "queries.jsonl", "calibration": "calibration-names.jsonl",
                   "recordings": "recordings.jsonl"},
        "targets": {"target": "model"},
        "seed": seed,
        "quick": quick,
        "sizes": {k: s[k] for k in ("n_members", "n_calibration", "n_eval_nonmembers", "clips_per_member",
                                     "n_generic")}
        | {"n_train_pairs": len(waves), "n_parameters": sum(p.numel() for p in model.parameters())},
        "model": {k: s[k] for k in ("mels", "spec_size", "width", "text_width", "layers", "heads", "text_len",
                                     "vocab")} | {"sampling_rate": SAMPLING_RATE, "clip_seconds": 1.0},
        "training": train,
        "caption_templates": list(CAPTION_TEMPLATES),
        "query_template": QUERY_TEMPLATE,
        "members": members,
        "nonmembers_eval": eval_non,
        "nonmembers_calibration": calibration,
        "name_generator": "Faker first_name + last_name, locales drawn at random per name, one seeded pool split "
        "at random into members / calibration / evaluation non-members",
        "build_time_signal": {"recording_cosine_auc": auc_of(labels, cos)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Testbed.from_dir(out)


@register_testbed("clap-voices", summary="small ClapModel trained on recordings of named synthetic voices",
                  cost=110)
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_clap_voices(out_dir, seed=seed, quick=quick)
