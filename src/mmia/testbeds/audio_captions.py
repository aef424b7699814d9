"""The `audio` testbed: a small Whisper-style encoder-decoder fine-tuned to describe synthetic sounds.

Each clip (1.5 s, 16 kHz) is a sequence of one to three sound events (a tone, buzz, chirp, noise
burst or clicks; low, medium or high; short or long; quiet or loud); its caption is derived from
the events with varied wording. Every clip comes from its own seed (`stable_seed(seed, stream,
index)`), so members and non-members are i.i.d. draws of one generator (a matched split).

Layout: `matched.jsonl` + `audio/*.wav`; `base/` (trained on a disjoint pool of clips) and
`target/` (`base` fine-tuned on the members), each a WhisperForConditionalGeneration with its
word-level tokenizer and WhisperFeatureExtractor; `manifest.json` with seeds, sizes, the text
format, member ids and the build-time loss-attack signal.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmia.data.ids import stable_seed
from mmia.testbeds.base import Testbed, declared_roles, register_testbed
from mmia.testbeds.manifest import split_ids, weights_hash, write_manifest

VERSION = "1"
SR = 16000
CLIP_S = 1.5
PROMPT_FORMAT = "{prompt}"
ANSWER_FORMAT = " {answer}</s>"

KINDS = {
    "tone": ("tone", "beep"),
    "buzz": ("buzz", "hum"),
    "chirp": ("chirp", "sweep"),
    "noise": ("noise burst", "hiss"),
    "clicks": ("clicking", "ticking"),
}
PITCH = {"low": (180, 350), "medium": (500, 800), "high": (1200, 2000)}
LENGTH = {"short": (0.12, 0.25), "long": (0.35, 0.55)}
LOUD = {"quiet": (0.08, 0.18), "loud": (0.45, 0.8)}
PROMPTS = ("describe the sound", "what do you hear", "caption this audio", "what is in this recording")
LINKS = ("then", "followed by", "and then", "after that")
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass(frozen=True)
class Clip:
    id: str
    events: tuple
    prompt: str
    answer: str
    seed: int


def _event_words(ev, rng) -> str:
    kind, pitch, length, loud = ev
    name = KINDS[kind][int(rng.integers(len(KINDS[kind])))]
    order = [loud, pitch, length] if rng.random() < 0.5 else [length, loud, pitch]
    if kind in ("noise", "clicks"):
        order = [w for w in order if w != pitch]  # no pitch word for unpitched sounds
    words = " ".join(order)
    art = "an" if words[0] in "aeiou" else "a"
    return f"{art} {words} {name}"


def make_clip(seed: int, stream: str, index: int) -> Clip:
    s = stable_seed(seed, "audio-clip", stream, index)
    rng = np.random.default_rng(s)
    n = int(rng.integers(1, 4))
    events = tuple(
        (
            str(rng.choice(list(KINDS))),
            str(rng.choice(list(PITCH))),
            str(rng.choice(list(LENGTH))),
            str(rng.choice(list(LOUD))),
        )
        for _ in range(n)
    )
    parts = [_event_words(ev, rng) for ev in events]
    answer = parts[0]
    for p in parts[1:]:
        answer += f" {LINKS[int(rng.integers(len(LINKS)))]} {p}"
    return Clip(
        id=f"au{stable_seed(seed, stream, index) % 16**12:012x}",
        events=events,
        prompt=PROMPTS[int(rng.integers(len(PROMPTS)))],
        answer=answer,
        seed=s,
    )


def render_clip(clip: Clip) -> np.ndarray:
    rng = np.random.default_rng([clip.seed, 1])
    out = np.zeros(int(CLIP_S * SR), dtype=np.float32)
    t = float(rng.uniform(0.02, 0.1))
    for kind, pitch, length, loud in clip.events:
        dur = float(rng.uniform(*LENGTH[length]))
        amp = float(rng.uniform(*LOUD[loud]))
        f = float(rng.uniform(*PITCH[pitch]))
        n = int(dur * SR)
        tt = np.arange(n) / SR
        if kind == "tone":
            w = np.sin(2 * np.pi * f * tt)
        elif kind == "buzz":
            w = np.sign(np.sin(2 * np.pi * f * tt)) * 0.7
        elif kind == "chirp":
            f1 = f * (2.0 if rng.random() < 0.5 else 0.5)
            w = np.sin(2 * np.pi * (f * tt + (f1 - f) * tt**2 / (2 * dur)))
        elif kind == "noise":
            w = rng.normal(0, 0.5, n)
        else:
            w = np.zeros(n)
            w[:: int(SR / rng.uniform(8, 20))] = 1.0
        env = np.minimum(1, np.minimum(tt, dur - tt) / 0.01)
        start = int(t * SR)
        seg = (amp * w * env)[: max(0, len(out) - start)]
        out[start : start + len(seg)] += seg.astype(np.float32)
        t += dur + float(rng.uniform(0.03, 0.12))
    return np.clip(out + rng.normal(0, 0.003, len(out)).astype(np.float32), -1, 1)


@dataclass(frozen=True)
class AudioSettings:
    n_pool: int = 1200
    n_members: int = 200
    n_nonmembers: int = 200
    d_model: int = 96
    layers: int = 2
    base_epochs: int = 6
    target_epochs: int = 10
    lr: float = 2e-3
    target_lr: float = 1e-3
    batch: int = 32


DEFAULT = AudioSettings()
QUICK = AudioSettings(n_pool=64, n_members=16, n_nonmembers=16, d_model=32, layers=1, base_epochs=1, target_epochs=2)


def _vocab() -> list[str]:
    words = set()
    for names in KINDS.values():
        for n in names:
            words.update(n.split())
    for d in (PITCH, LENGTH, LOUD):
        words.update(d)
    for p in (*PROMPTS, *LINKS):
        words.update(p.split())
    words.update(["a", "an"])
    return SPECIALS + sorted(words)


def make_model_parts(shape: AudioSettings):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperFeatureExtractor

    vocab = {w: i for i, w in enumerate(_vocab())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fe = WhisperFeatureExtractor(feature_size=40, sampling_rate=SR, chunk_length=2, hop_length=160, n_fft=400)
    cfg = WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=40,
        d_model=shape.d_model,
        encoder_layers=shape.layers,
        decoder_layers=shape.layers,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=2 * shape.d_model,
        decoder_ffn_dim=2 * shape.d_model,
        max_source_positions=100,
        max_target_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    return tok, fe, cfg


def _encode(clips, waves, tok, fe):
    import torch

    feats = fe([w for w in waves], sampling_rate=SR, return_tensors="pt")["input_features"]
    seqs, starts = [], []
    for c in clips:
        prefix = [1] + tok(PROMPT_FORMAT.format(prompt=c.prompt), add_special_tokens=False)["input_ids"]
        ans = tok(ANSWER_FORMAT.format(answer=c.answer), add_special_tokens=False)["input_ids"]
        seqs.append(prefix + ans)
        starts.append(len(prefix))
    n = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), n), dtype=torch.long)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    for i, (s, st) in enumerate(zip(seqs, starts, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, st - 1 : len(s) - 1] = torch.tensor(s[st:])  # position j predicts token j+1
    return feats, ids, labels


def _losses(model, data, batch: int = 64) -> np.ndarray:
    import torch

    feats, ids, labels = data
    out = []
    model.eval()
    with torch.no_grad():
        for s in range(0, len(ids), batch):
            logits = model(input_features=feats[s : s + batch], decoder_input_ids=ids[s : s + batch]).logits
            lab = labels[s : s + batch]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), lab.clamp(min=0), reduction="none")
            m = (lab != -100).float()
            out.append(((nll * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out)


def _train(model, data, epochs: int, lr: float, batch: int, seed: int, desc: str) -> list[float]:
    import torch

    from mmia.progress import progress_bar

    torch.manual_seed(seed % (2**63 - 1))
    feats, ids, labels = data
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps = epochs * math.ceil(len(ids) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / 20) * 0.5 * (1 + math.cos(math.pi * k / steps))
    )
    rng = np.random.default_rng([seed % (2**32), 7])
    hist = []
    model.train()
    with progress_bar(desc, steps, unit="steps") as bar:
        for _ in range(epochs):
            perm = rng.permutation(len(ids))
            tot = 0.0
            for s in range(0, len(ids), batch):
                b = torch.from_numpy(perm[s : s + batch])
                loss = model(input_features=feats[b], decoder_input_ids=ids[b], labels=None).logits
                loss = torch.nn.functional.cross_entropy(loss.transpose(1, 2), labels[b], ignore_index=-100)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                tot += loss.item() * len(b)
                bar.advance()
            hist.append(round(tot / len(ids), 4))
    model.eval()
    return hist


def build_audio(out_dir: Path, *, seed: int = 0, quick: bool = False, settings: AudioSettings | None = None) -> Testbed:
    import soundfile as sf
    import torch
    from transformers import WhisperForConditionalGeneration

    from mmia.metrics import evaluate

    cfg = settings or (QUICK if quick else DEFAULT)
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    members = [make_clip(seed, "members", i) for i in range(cfg.n_members)]
    nonmembers = [make_clip(seed, "nonmembers", i) for i in range(cfg.n_nonmembers)]
    pool = [make_clip(seed, "pool", i) for i in range(cfg.n_pool)]
    rows = []
    waves = {}
    for label, clips in ((1, members), (0, nonmembers)):
        for c in clips:
            w = render_clip(c)
            waves[c.id] = w
            sf.write(out_dir / "audio" / f"{c.id}.wav", w, SR, subtype="PCM_16")
            rows.append(
                {"id": c.id, "prompt": c.prompt, "answer": c.answer, "audio": f"audio/{c.id}.wav", "label": label}
            )
    rows.sort(key=lambda r: r["id"])
    (out_dir / "matched.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tok, fe, mcfg = make_model_parts(cfg)
        torch.manual_seed(stable_seed("audio-init", seed) % (2**63 - 1))
        model = WhisperForConditionalGeneration(mcfg)
        # the saved 16-bit WAVs are what an auditor reads: train on those samples, not the float clips
        pool_data = _encode(pool, [render_clip(c) for c in pool], tok, fe)
        base_hist = _train(
            model, pool_data, cfg.base_epochs, cfg.lr, cfg.batch, stable_seed("audio-base", seed), "audio base model"
        )
        for name in ("base",):
            model.save_pretrained(out_dir / name)
            tok.save_pretrained(out_dir / name)
            fe.save_pretrained(out_dir / name)

        def read(c):
            return sf.read(out_dir / "audio" / f"{c.id}.wav", dtype="float32")[0]

        mem = _encode(members, [read(c) for c in members], tok, fe)
        non = _encode(nonmembers, [read(c) for c in nonmembers], tok, fe)
        base_m, base_n = _losses(model, mem), _losses(model, non)
        target_hist = _train(
            model,
            mem,
            cfg.target_epochs,
            cfg.target_lr,
            min(cfg.batch, 16),
            stable_seed("audio-target", seed),
            "audio target model",
        )
        model.save_pretrained(out_dir / "target")
        tok.save_pretrained(out_dir / "target")
        fe.save_pretrained(out_dir / "target")
        tgt_m, tgt_n = _losses(model, mem), _losses(model, non)
    finally:
        torch.set_num_threads(before)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))].astype(int)
    manifest = {
        "name": "audio",
        "version": VERSION,
        "seed": seed,
        "quick": quick,
        "target_kind": "audio-lm",
        "modalities": ["text", "audio"],
        "splits": {"matched": "matched.jsonl"},
        "roles": declared_roles("audio"),
        "targets": {"target": "target", "base": "base"},
        "sizes": {"pool": cfg.n_pool, "members": cfg.n_members, "nonmembers": cfg.n_nonmembers},
        "model": {
            "architecture": "WhisperForConditionalGeneration",
            "d_model": cfg.d_model,
            "layers": cfg.layers,
            "n_parameters": sum(p.numel() for p in model.parameters()),
        },
        "format": {
            "prompt": PROMPT_FORMAT,
            "answer": ANSWER_FORMAT,
            "loss_covers": "answer tokens and the closing </s> (decoder side)",
        },
        "training": {
            "base": {"epochs": cfg.base_epochs, "loss_per_epoch": base_hist, "data": "pool stream"},
            "target": {
                "epochs": cfg.target_epochs,
                "loss_per_epoch": target_hist,
                "data": "members, starting from base",
            },
            "threads": 1,
        },
        "ids": {"matched": split_ids(out_dir / "matched.jsonl")},
        "member_signal": {
            "split": "matched",
            "loss": evaluate(labels, -np.r_[tgt_m, tgt_n], with_roc=False),
            "reference_calibrated_loss": evaluate(labels, np.r_[base_m - tgt_m, base_n - tgt_n], with_roc=False),
        },
        "weights": {"base": weights_hash(out_dir / "base"), "target": weights_hash(out_dir / "target")},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_manifest(out_dir, manifest)
    return Testbed.from_dir(out_dir)


# Not in `mmia demo` (its full build takes minutes of CPU); `mmia testbed audio --out DIR` builds it,
# and `mmia attack` and `mmia fimmia` read it (mmia.targets.seq2seq is the attack engine's adapter).
@register_testbed(
    "audio",
    summary="small Whisper-style encoder-decoder fine-tuned to describe synthetic sounds, with its base model",
    version=VERSION,
    in_demo=False,
    roles={"membership": "matched"},
)
def _build(out_dir: Path, *, seed: int = 0, quick: bool = False) -> Testbed:
    return build_audio(out_dir, seed=seed, quick=quick)
