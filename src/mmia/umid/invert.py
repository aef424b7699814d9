"""Text-guided cross-modal inversion with R independent random restarts per query.

For each query embedding e_t, R inputs of the other modality are optimised to maximise
cos(encoder(decode(u_r)), e_t). All restarts of all queries in a batch are one batched tensor
and one optimiser: Adam's update is elementwise and the loss is a sum over restarts, so each
restart follows exactly the path it would follow alone (the sequential procedure is the same
computation, one restart at a time; benchmarks/umid.py compares the two).

Parameterisations (`param`):
- "pixels" / "waveform": the raw input (sigmoid-bounded pixels; tanh-bounded samples).
- "latent": a coarse grid upsampled bilinearly: (3, g, g) for images; for audio a (g, g)
  log-mel grid mapped to the model's features (a low-rate spectral latent). Few degrees of
  freedom keep the optimiser on smooth, natural-ish inputs, where free pixels can match any
  text embedding (gibberish included).

Starts are drawn per query from its own seeded generator, so a query's result does not depend
on which batch it falls in, and its R starts are independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mmia.umid.target import ContrastiveAdapter

PARAMS = ("latent", "pixels")


@dataclass(frozen=True)
class InversionSettings:
    restarts: int = 8
    steps: int = 60
    lr: float = 0.1
    param: str = "latent"  # "latent" or "pixels" (the waveform for audio)
    grid: int = 4
    optimizer: str = "adam"  # "adam" or "sgd" (the predecessors' pixel-space SGD)
    n_checkpoints: int = 4  # cosine recorded at evenly spaced steps (trajectory signals)

    def key(self) -> str:
        return (f"R{self.restarts}-s{self.steps}-lr{self.lr}-{self.param}-g{self.grid}-{self.optimizer}"
                f"-c{self.n_checkpoints}")


class Decoder:
    """Maps free parameters u to the model's media input and then to a normalised embedding."""

    def __init__(self, target: ContrastiveAdapter, param: str, grid: int):
        if param not in PARAMS:
            raise ValueError(f"unknown parameterisation {param!r}; one of {PARAMS}")
        self.target, self.param, self.grid = target, param, grid
        if target.media_kind == "image":
            c, h, w = target.media_shape
            self.shape = (c, grid, grid) if param == "latent" else (c, h, w)
        else:
            self.shape = (grid, grid) if param == "latent" else target.media_shape

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        t = self.target
        if t.media_kind == "image":
            if self.param == "latent":
                u = F.interpolate(u, size=t.media_shape[1:], mode="bilinear", align_corners=False)
            return t.embed_pixels(torch.sigmoid(u))
        if self.param == "latent":
            frames, mels = t.feature_shape
            up = F.interpolate(u[:, None], size=(frames, mels), mode="bilinear", align_corners=False)[:, 0]
            # dB range of speech-like log-mels of [-1, 1] audio
            return t.embed_features(-30.0 + 40.0 * torch.tanh(up))
        return t.embed_waveform(0.5 * torch.tanh(u))


def draw_starts(seeds: list[int], restarts: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(len(seeds) * restarts, *shape) standard-normal starts; query i's from generator seeds[i]."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s) % (2**63 - 1))
        out.append(torch.randn((restarts, *shape), generator=g))
    return torch.cat(out)


def _optimise(decoder: Decoder, u0: torch.Tensor, targets: torch.Tensor, st: InversionSettings):
    """Optimise a batch of starts towards their target embeddings; returns final z, cos trajectory."""
    u = u0.clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=st.lr) if st.optimizer == "adam" else torch.optim.SGD([u], lr=st.lr)
    marks = set(np.linspace(0, st.steps - 1, st.n_checkpoints).round().astype(int).tolist()) if st.steps else set()
    traj = []
    for step in range(st.steps):
        z = decoder.embed(u)
        cos = (z * targets).sum(-1)
        if step in marks:
            traj.append(cos.detach())
        opt.zero_grad(set_to_none=True)
        (-cos.sum()).backward()
        opt.step()
    with torch.no_grad():
        z = decoder.embed(u)
        cos = (z * targets).sum(-1)
    traj = torch.stack(traj, 1) if traj else cos[:, None]
    return z, cos, traj


def invert(
    target: ContrastiveAdapter,
    text_emb: torch.Tensor,
    seeds: list[int],
    settings: InversionSettings,
    *,
    sequential: bool = False,
) -> dict[str, np.ndarray]:
    """Invert Q text embeddings with R restarts each.

    Returns "z" (Q, R, d) final normalised embeddings, "cos" (Q, R) final cosines and "traj"
    (Q, R, C) cosines at the checkpoints. `sequential=True` runs each restart alone (the
    predecessors' loop), for comparison.
    """
    q, r = text_emb.shape[0], settings.restarts
    decoder = Decoder(target, settings.param, settings.grid)
    starts = draw_starts(seeds, r, decoder.shape)
    goals = text_emb.repeat_interleave(r, dim=0)
    if sequential:
        parts = [_optimise(decoder, starts[i : i + 1], goals[i : i + 1], settings) for i in range(q * r)]
        z, cos, traj = (torch.cat([p[k] for p in parts]) for k in range(3))
    else:
        z, cos, traj = _optimise(decoder, starts, goals, settings)
    return {
        "z": z.detach().reshape(q, r, -1).numpy(),
        "cos": cos.detach().reshape(q, r).numpy(),
        "traj": traj.detach().reshape(q, r, -1).numpy(),
    }
