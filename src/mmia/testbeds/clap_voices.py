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
    return on_one_thread(_build_clap_voices, out_dir, seed=seed, quick=quick, **overrides)


def _build_clap_voices(out_dir: Path, *, seed: int, quick: bool, **overrides) -> Testbed:
    import soundfile as sf
    import torch
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor

    from mmia.metrics import auc as auc_of
    from mmia.testbeds.voices import generic_sound, random_voice, speak

    s, out, members, calibration, eval_non = start_build(
        "clap-voices", QUICK if quick else FULL, overrides, out_dir, "recordings", seed
    )

    def voice(name):
        return random_voice(np.random.default_rng(stable_seed("voice", seed, name)))

    def member_clips(gi, name):
        v, rng = voice(name), np.random.default_rng(stable_seed("train-clips", seed, name))
        return lambda: speak(v, rng, SAMPLING_RATE)

    generic_rng = np.random.default_rng(stable_seed("generic-sounds", seed))
    waves, captions, groups = training_pairs(members, s["clips_per_member"], member_clips, s["n_generic"],
                                             lambda: generic_sound(generic_rng, SAMPLING_RATE), CAPTION_TEMPLATES)

    generic = captions[len(members) * s["clips_per_member"] :]
    tok = name_tokenizer("roberta", seed, s["tokenizer_names"], CAPTION_TEMPLATES, generic, s["vocab"])

    fe = ClapFeatureExtractor(
        feature_size=s["mels"], sampling_rate=SAMPLING_RATE, hop_length=160, max_length_s=1, fft_window_size=512,
        frequency_min=50, frequency_max=8000, truncation="rand_trunc", padding="repeatpad",
    )
    feats = torch.from_numpy(np.asarray(fe(waves, sampling_rate=SAMPLING_RATE, return_tensors="np")["input_features"]))
    enc = tok(captions, padding="max_length", truncation=True, max_length=s["text_len"], return_tensors="pt")

    torch.manual_seed(stable_seed("clap-init", seed) % (2**31))
    model = ClapModel(_clap_config(s, len(tok), tok))

    train = train_pairs(model, "clap-voices", lambda t: model.get_audio_features(input_features=feats[t]), enc,
                        groups, model.logit_scale_a, s, seed)

    model_dir = out / "model"
    model.save_pretrained(model_dir)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(model_dir)

    queries = write_name_queries(out, members, eval_non, calibration)
    rec_rows, rec_waves = [], []
    for q in queries:
        rng = np.random.default_rng(stable_seed("fresh-clip", seed, q["text"]))
        w = speak(voice(q["text"]), rng, SAMPLING_RATE)
        rel = f"recordings/{q['id']}.wav"
        sf.write(out / rel, w, SAMPLING_RATE, subtype="FLOAT")
        rec_rows.append({"id": q["id"], "text": QUERY_TEMPLATE.format(q["text"]), "audio": rel, "label": q["label"]})
        rec_waves.append(w)
    write_jsonl(out / "recordings.jsonl", rec_rows)

    model.eval()
    with torch.no_grad():
        f = fe(rec_waves, sampling_rate=SAMPLING_RATE, return_tensors="np")["input_features"]
        f = torch.from_numpy(np.asarray(f))
        ae = torch.nn.functional.normalize(pooled(model.get_audio_features(input_features=f)), dim=-1)
        te = text_embeddings(model, tok, [r["text"] for r in rec_rows])
        cos = (ae * te).sum(-1).numpy()
    labels = np.array([q["label"] for q in queries])

    manifest = {
        "name": "clap-voices",
        "target_kind": "clap",
        "modalities": ["audio", "text"],
        "splits": {"queries": "queries.jsonl", "calibration": "calibration-names.jsonl",
                   "recordings": "recordings.jsonl"},
        "roles": declared_roles("clap-voices"),
        "targets": {"target": "model"},
        "seed": seed,
        "quick": quick,
        "sizes": {k: s[k] for k in ("n_members", "n_calibration", "n_eval_nonmembers", "clips_per_member",
                                     "n_generic")}
        | {"n_train_pairs": len(waves), "n_parameters": sum(p.numel() for p in model.parameters())},
        "model": {k: s[k] for k in ("mels", "spec_size", "width", "text_width", "layers", "heads", "text_len",
                                     "vocab")} | {"sampling_rate": SAMPLING_RATE, "clip_seconds": 1.0},
        "training": train,
        **people_manifest(CAPTION_TEMPLATES, QUERY_TEMPLATE, members, eval_non, calibration),
        "build_time_signal": {"recording_cosine_auc": auc_of(labels, cos)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Testbed.from_dir(out)


@register_testbed("clap-voices", summary="small ClapModel trained on recordings of named synthetic voices",
                  cost=110, roles={"membership": "recordings", "names": "queries", "controls": "calibration"})
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_clap_voices(out_dir, seed=seed, quick=quick)
