"""Training loop shared by the contrastive testbeds (CLIPModel, ClapModel) from scratch."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def grouped_clip_loss(media: torch.Tensor, text: torch.Tensor, groups: torch.Tensor, scale: torch.Tensor):
    """Symmetric contrastive loss where every pair of one group counts as a positive.

    Several images of one person (or one generic caption) often share a batch; plain CLIP
    loss would push them apart as negatives, so the target spreads over the whole group.
    """
    media = F.normalize(media, dim=-1)
    text = F.normalize(text, dim=-1)
    logits = scale.exp().clamp(max=100) * media @ text.T
    pos = (groups[:, None] == groups[None, :]).float()
    target = pos / pos.sum(1, keepdim=True)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean())


def train_contrastive(
    model,
    n: int,
    batch_fn: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
    groups: np.ndarray,
    scale: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train `model` on `n` pairs; `batch_fn(indices)` returns (media embeddings, text embeddings).

    `scale` is the model's learned log temperature (CLIP: logit_scale; CLAP: logit_scale_a).

    One thread (bit-reproducible and fastest on shared cores); cosine learning-rate schedule
    with a short warm-up. Returns the settings and final loss for the manifest.
    """
    from mmia.testbeds.vlm_train import one_thread

    with one_thread():
        return _train(model, n, batch_fn, groups, scale, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      progress=progress)


def _train(model, n, batch_fn, groups, scale, *, epochs, batch_size, lr, seed, progress) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    steps = epochs * int(np.ceil(n / batch_size))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps))
    )
    g = torch.as_tensor(groups)
    model.train()
    t0 = time.time()
    step = 0
    losses: list[float] = []
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            media, text = batch_fn(idx)
            loss = grouped_clip_loss(media, text, g[idx], scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress:
                progress(step, steps, losses[-1])
    model.eval()
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": "AdamW(weight_decay=0.05), cosine schedule, 5% warm-up",
        "steps": steps,
        "final_loss": float(np.mean(losses[-10:])),
        "train_seconds": round(time.time() - t0, 1),
    }
