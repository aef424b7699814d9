"""Training and scoring loops of the `vlm` testbed (one torch thread, seeded, bit-reproducible).

Three stages, as the notes advise for a tiny LLaVA: (1) the CLIP vision tower is trained alone on
a dense classification of the scene (what covers each patch, plus background and count), then
frozen; (2) the projector and language model learn to answer about a pool of scenes (the base
model); (3) the base model is fine-tuned on the members (the target).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from mmia.progress import progress_bar
from mmia.testbeds.scenes import (
    ALL_BACKGROUNDS,
    ALL_COLOURS,
    BACKGROUND_KINDS,
    SHAPES,
    TEXTURES,
    SceneRecord,
    patch_cover_labels,
    patch_labels,
    render_scene,
    scene_labels,
)
from mmia.testbeds.vlm_parts import full_text, prompt_text


@contextmanager
def one_thread():
    """Train with one torch thread: faster on shared cores and bit-reproducible (see the notes)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed % (2**63 - 1))


@dataclass
class Encoded:
    """Tensors of a set of records, padded to the longest; labels cover the answer only.

    `pixel_values` is (N, 3, H, W) for images, or (N, F, 3, H, W) for clips of F frames (each
    frame one image of the model's input; a batch flattens them in order)."""

    ids: list[str]
    input_ids: object
    attention_mask: object
    labels: object
    pixel_values: object

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx):
        # Trim padding to the longest row of the batch (rows are right-padded).
        idx = np.asarray(idx)
        length = int(self.attention_mask[idx].sum(dim=1).max())
        return {
            "input_ids": self.input_ids[idx, :length],
            "attention_mask": self.attention_mask[idx, :length],
            "labels": self.labels[idx, :length],
            "pixel_values": self.pixel_values[idx].flatten(0, 1) if self.pixel_values.ndim == 5
            else self.pixel_values[idx],
        }


def encode(processor, records: list[SceneRecord], image_size: int, chunk: int = 256,
           frames: int | None = None) -> Encoded:
    """Run the saved processor itself over the records, so training sees what an auditor will.

    With `frames`, each record is a clip of that many frames, each frame one image placeholder."""
    import torch

    parts = []
    for start in range(0, len(records), chunk):
        recs = records[start : start + chunk]
        if frames is None:
            images = [render_scene(r.scene, image_size)[0] for r in recs]
        else:
            images = [f for r in recs for f in render_scene(r.scene, image_size, frames)]
        full = processor(text=[full_text(r.prompt, r.answer, frames) for r in recs], images=images,
                         padding="longest", return_tensors="pt")
        prompts = processor(text=[prompt_text(r.prompt, frames) for r in recs], images=images, padding="longest",
                            return_tensors="pt")
        plen = prompts["attention_mask"].sum(dim=1)
        labels = full["input_ids"].clone()
        for i, n in enumerate(plen.tolist()):
            # The prompt's tokens must be a prefix of the full text's, or the answer slice is wrong.
            if not torch.equal(full["input_ids"][i, :n], prompts["input_ids"][i, :n]):
                raise RuntimeError(f"prompt tokens are not a prefix of the full text for {recs[i].id}")
            labels[i, :n] = -100
        labels[full["attention_mask"] == 0] = -100
        pixels = full["pixel_values"]
        if frames is not None:
            pixels = pixels.reshape(len(recs), frames, *pixels.shape[1:])
        parts.append((full["input_ids"], full["attention_mask"], labels, pixels))
    width = max(p[0].shape[1] for p in parts)
    pad = processor.tokenizer.pad_token_id

    def padded(t, value):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Encoded(
        ids=[r.id for r in records],
        input_ids=torch.cat([padded(p[0], pad) for p in parts]),
        attention_mask=torch.cat([padded(p[1], 0) for p in parts]),
        labels=torch.cat([padded(p[2], -100) for p in parts]),
        pixel_values=torch.cat([p[3] for p in parts]),
    )


def _schedule(opt, total: int, warmup: float = 0.05, floor: float = 0.1):
    import torch

    n_warm = max(1, int(total * warmup))

    def factor(step):
        if step < n_warm:
            return (step + 1) / n_warm
        t = (step - n_warm) / max(1, total - n_warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _vision_data(records: list[SceneRecord], processor, image_size: int, patch: int, frames: int | None):
    """(pixel values, per-patch labels, per-image labels) for the vision tower's pretraining:
    one image per record, or every frame of each record's clip (labels follow the movers)."""
    import torch

    if frames is None:
        images = [render_scene(r.scene, image_size)[0] for r in records]
        plabels = [patch_labels(r.scene, image_size, patch) for r in records]
        scenes = [r.scene for r in records]
    else:
        images = [f for r in records for f in render_scene(r.scene, image_size, frames)]
        plabels = [patch_cover_labels(r.scene, image_size, patch, frames, t) for r in records for t in range(frames)]
        scenes = [r.scene for r in records for _ in range(frames)]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    plabels = {k: torch.tensor(np.stack([p[k] for p in plabels])) for k in ("shape", "colour", "texture")}
    glabels = {k: torch.tensor([scene_labels(s)[k] for s in scenes])
               for k in ("background", "background_kind", "count")}
    return pixels, plabels, glabels


def pretrain_vision(vision_config, records: list[SceneRecord], processor, *, epochs: int, lr: float, batch: int,
                    seed: int, image_size: int, patch: int, frames: int | None = None) -> tuple[dict, dict]:
    """Train a CLIPVisionModel on dense scene classification; returns (state_dict, final accuracies).

    With `frames`, the records are clips and the tower learns from every frame of each."""
    import torch
    from torch import nn
    from transformers import CLIPVisionModel

    seed_torch(seed)
    tower = CLIPVisionModel(vision_config)
    h = vision_config.hidden_size
    n_patch = {"shape": len(SHAPES) + 1, "colour": len(ALL_COLOURS) + 1, "texture": len(TEXTURES) + 1}
    n_global = {"background": len(ALL_BACKGROUNDS), "background_kind": len(BACKGROUND_KINDS), "count": 8}
    patch_head = nn.Linear(h, sum(n_patch.values()))
    global_head = nn.Linear(h, sum(n_global.values()))
    pixels, plabels, glabels = _vision_data(records, processor, image_size, patch, frames)
    params = [*tower.parameters(), *patch_head.parameters(), *global_head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(pixels) / batch)
    sched = _schedule(opt, epochs * steps_per_epoch)
    rng = np.random.default_rng([seed, 11])
    ce = nn.CrossEntropyLoss()
    acc: dict[str, float] = {}
    with progress_bar("vision tower", epochs * steps_per_epoch, unit="steps") as bar:
        for epoch in range(epochs):
            order = rng.permutation(len(pixels))
            correct = {k: 0 for k in (*n_patch, *n_global)}
            seen_p = seen_g = 0
            for s in range(steps_per_epoch):
                idx = torch.as_tensor(order[s * batch : (s + 1) * batch])
                out = tower(pixel_values=pixels[idx])
                tokens = out.last_hidden_state[:, 1:]
                logits_p = patch_head(tokens).split(list(n_patch.values()), dim=-1)
                logits_g = global_head(out.pooler_output).split(list(n_global.values()), dim=-1)
                loss = 0.0
                for (k, _), lg in zip(n_patch.items(), logits_p, strict=True):
                    y = plabels[k][idx]
                    loss = loss + ce(lg.reshape(-1, lg.shape[-1]), y.reshape(-1))
                    correct[k] += int((lg.argmax(-1) == y).sum())
                for (k, _), lg in zip(n_global.items(), logits_g, strict=True):
                    y = glabels[k][idx]
                    loss = loss + ce(lg, y)
                    correct[k] += int((lg.argmax(-1) == y).sum())
                seen_p += idx.numel() * tokens.shape[1]
                seen_g += idx.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                bar.advance()
            if epoch == epochs - 1:
                acc = {k: round(correct[k] / (seen_p if k in n_patch else seen_g), 4) for k in correct}
    return tower.state_dict(), acc


def train_lm(model, data: Encoded, *, epochs: int, lr: float, batch: int, seed: int, desc: str) -> list[float]:
    """Train the projector and language model (the vision tower stays frozen); returns mean loss per epoch."""
    import torch

    seed_torch(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    steps_per_epoch = math.ceil(len(data) / batch)
    sched = _schedule(opt, epochs * steps_per_epoch)
    rng = np.random.default_rng([seed, 12])
    history = []
    model.train()
    with progress_bar(desc, epochs * steps_per_epoch, unit="steps") as bar:
        for _ in range(epochs):
            order = rng.permutation(len(data))
            total = 0.0
            for s in range(steps_per_epoch):
                out = model(**data.batch(order[s * batch : (s + 1) * batch]))
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                total += float(out.loss.detach())
                bar.advance()
            history.append(round(total / steps_per_epoch, 4))
    model.eval()
    return history


def train_answer_losses(model, data: Encoded, batch: int = 64) -> np.ndarray:
    """Mean negative log-likelihood of each sample's answer tokens (the loss attack's statistic)."""
    import torch

    out = np.empty(len(data))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = np.arange(start, min(start + batch, len(data)))
            b = data.batch(idx)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                           pixel_values=b["pixel_values"]).logits[:, :-1]
            target = b["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
            mask = (target != -100).float()
            out[idx] = ((nll * mask).sum(1) / mask.sum(1)).numpy()
    return out
