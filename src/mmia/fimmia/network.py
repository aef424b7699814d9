"""The FiMMIA attack network and its training.

Branches: loss delta (1 -> h), text-embedding delta (Dt -> h), media-embedding delta (Dm -> h),
each Linear + ReLU; their concatenation goes through an MLP head to 2 logits. The logits have
NO activation (the reference applied a ReLU to them, which zeroes negative evidence); the
member probability is softmax(logits)[1]. A sample's score is the mean member probability over
its K neighbours.

Training: cross-entropy on (sample, neighbour) rows; early stopping on a validation part split
by SAMPLE, never by neighbour (rows of one sample on both sides would leak its identity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

from mmia.data.ids import stable_seed
from mmia.fimmia.features import FeatureNormaliser, FeatureSet

MODEL_FORMAT = "mmia-fimmia/1"


class NetConfig(BaseModel):
    """Shape of the attack network (saved in the model's config.json)."""

    loss_inputs: int = Field(1, ge=1, le=3, description="1: the loss delta (faithful); 2: and the original "
                             "loss; 3: and the base's loss (fimmia+loss)")
    text_dim: int | None = None  # None: no text branch
    media_dim: int | None = None  # None: no media branch
    branch_hidden: int = Field(64, ge=1)
    head_hidden: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class TrainConfig(BaseModel):
    """Optimisation settings of the attack network."""

    max_epochs: int = Field(200, ge=1)
    patience: int = Field(15, ge=1, description="epochs without validation improvement before stopping")
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of training SAMPLES held for early stopping")
    seed: int = 0


class AttackNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        h = cfg.branch_hidden
        self.cfg = cfg
        self.loss_branch = nn.Sequential(nn.Linear(cfg.loss_inputs, h), nn.ReLU())
        self.text_branch = nn.Sequential(nn.Linear(cfg.text_dim, h), nn.ReLU()) if cfg.text_dim else None
        self.media_branch = nn.Sequential(nn.Linear(cfg.media_dim, h), nn.ReLU()) if cfg.media_dim else None
        n_branches = 1 + (self.text_branch is not None) + (self.media_branch is not None)
        self.head = nn.Sequential(
            nn.Linear(n_branches * h, cfg.head_hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, 2),  # logits: no activation here
        )

    def forward(self, loss, text=None, media=None):
        parts = [self.loss_branch(loss)]
        if self.text_branch is not None:
            parts.append(self.text_branch(text))
        if self.media_branch is not None:
            parts.append(self.media_branch(media))
        return self.head(torch.cat(parts, dim=-1))


def split_by_sample(ids, labels, fraction: float, seed: int, salt: str = "split") -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices by SAMPLE id: (rest, held), ~`fraction` of the samples held.

    Rows that share an id (one sample scored under two models in the two-model protocol) always
    fall on the same side. Samples are stratified by their set of labels; the order comes from
    stable_seed(seed, salt, id), so the split depends on ids only, not on the file order. Each
    stratum keeps at least one sample on each side when it has two or more.
    """
    ids = [str(i) for i in ids]
    labels = np.asarray(labels)
    rows_of: dict[str, list[int]] = {}
    for i, sid in enumerate(ids):
        rows_of.setdefault(sid, []).append(i)
    strata: dict[tuple, list[str]] = {}
    for sid, rows in rows_of.items():
        strata.setdefault(tuple(sorted({int(labels[r]) for r in rows})), []).append(sid)
    held_ids: set[str] = set()
    for key in sorted(strata):
        group = sorted(strata[key], key=lambda sid: stable_seed(seed, salt, sid))
        n = int(round(fraction * len(group)))
        if len(group) >= 2:
            n = min(max(n, 1), len(group) - 1)
        held_ids.update(group[:n])
    held = np.array([i for i, sid in enumerate(ids) if sid in held_ids], dtype=np.int64)
    rest = np.array([i for i, sid in enumerate(ids) if sid not in held_ids], dtype=np.int64)
    return rest, held


@dataclass
class FimmiaModel:
    """A trained attack: the network, the normaliser fit on its training rows, and its settings."""

    net: AttackNet
    normaliser: FeatureNormaliser
    settings: dict = field(default_factory=dict)  # neighbour config, embedders, field, scorer
    train_ids: list[str] = field(default_factory=list)
    history: dict = field(default_factory=dict)

    def _tensors(self, fs: FeatureSet):
        n, k = fs.loss.shape
        cols = [self.normaliser.loss(fs.loss)]
        if self.net.cfg.loss_inputs >= 2:  # fimmia+loss: the sample's own loss beside each delta
            cols.append(np.repeat(self.normaliser.original(fs.original_loss)[:, None], k, axis=1))
        if self.net.cfg.loss_inputs >= 3:
            if fs.base_loss is None:
                raise ValueError("this attack model reads the base model's loss but the features have none")
            cols.append(np.repeat(self.normaliser.original(fs.base_loss)[:, None], k, axis=1))
        loss = torch.from_numpy(np.stack(cols, axis=-1).reshape(n * k, len(cols)))
        text = media = None
        if self.net.text_branch is not None:
            if fs.text is None:
                raise ValueError("this attack model has a text branch but the features have no text deltas")
            text = torch.from_numpy(self.normaliser.text(fs.text).reshape(n * k, -1))
        if self.net.media_branch is not None:
            if fs.media is None:
                raise ValueError("this attack model has a media branch but the features have no media deltas")
            media = torch.from_numpy(self.normaliser.media(fs.media).reshape(n * k, -1))
        return loss, text, media

    def neighbour_probs(self, fs: FeatureSet) -> np.ndarray:
        """(N, K) member probability of each (sample, neighbour) row."""
        self.net.eval()
        loss, text, media = self._tensors(fs)
        with torch.no_grad():
            logits = self.net(loss, text, media)
        return torch.softmax(logits.double(), dim=-1)[:, 1].numpy().reshape(fs.loss.shape)

    def score(self, fs: FeatureSet) -> np.ndarray:
        """(N,) sample scores: mean member probability over the neighbours (higher = member)."""
        return self.neighbour_probs(fs).mean(axis=1)

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(out / "model.safetensors"))
        cfg = {
            "format": MODEL_FORMAT,
            "net": self.net.cfg.model_dump(),
            "normaliser": self.normaliser.to_dict(),
            "settings": self.settings,
            "train_ids": list(self.train_ids),
            "history": self.history,
        }
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, model_dir: str | Path) -> FimmiaModel:
        from safetensors.torch import load_file

        from mmia.errors import ModelNotFoundError

        d = Path(model_dir)
        cfg_path, w_path = d / "config.json", d / "model.safetensors"
        if not cfg_path.exists() or not w_path.exists():
            raise ModelNotFoundError(f"{d} is not a FiMMIA attack model (needs config.json and model.safetensors)")
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("format") != MODEL_FORMAT:
            raise ModelNotFoundError(f"{cfg_path} is not a FiMMIA attack model config (format {cfg.get('format')!r})")
        net = AttackNet(NetConfig(**cfg["net"]))
        net.load_state_dict(load_file(str(w_path)))
        net.eval()
        return cls(
            net=net,
            normaliser=FeatureNormaliser.from_dict(cfg["normaliser"]),
            settings=cfg.get("settings", {}),
            train_ids=cfg.get("train_ids", []),
            history=cfg.get("history", {}),
        )


def _rows(fs: FeatureSet, idx: np.ndarray):
    sub = fs.subset(idx)
    n, k = sub.loss.shape
    y = np.repeat(sub.labels, k)
    return sub, y


def train_attack(
    features: FeatureSet,
    use_text: bool = True,
    use_media: bool = True,
    net: NetConfig | None = None,
    train: TrainConfig | None = None,
    settings: dict | None = None,
    use_loss: bool = False,
) -> FimmiaModel:
    """Train the attack on labelled features; validation samples (not rows) are held out for
    early stopping, and the normaliser is fit on the remaining training rows only.

    `use_loss` (the `fimmia+loss` variant): the sample's own loss, and the base model's where the
    features carry it, enter the loss branch beside each delta."""
    if features.labels is None:
        raise ValueError("training needs labelled features")
    if len(np.unique(features.labels)) != 2:
        raise ValueError("training needs both members and non-members")
    train = train or TrainConfig()
    fit_idx, val_idx = split_by_sample(features.ids, features.labels, train.val_fraction, train.seed, "fimmia-val")
    if len(val_idx) == 0 or len(np.unique(features.labels[val_idx])) < 2:
        from mmia.errors import InputError

        n = len(set(features.ids))
        raise InputError(f"training needs at least 2 member and 2 non-member samples (one of each is held out for "
                         f"early stopping; val_fraction {train.val_fraction}), got {n} samples")
    fit, y_fit = _rows(features, fit_idx)
    val, y_val = _rows(features, val_idx)
    use_text = use_text and features.text is not None
    use_media = use_media and features.media is not None
    norm = FeatureNormaliser.fit(fit.loss, fit.text if use_text else None, fit.media if use_media else None,
                                 original=fit.original_loss if use_loss else None)
    net_cfg = (net or NetConfig()).model_copy(
        update={
            "loss_inputs": 1 if not use_loss else (3 if features.base_loss is not None else 2),
            "text_dim": features.text.shape[-1] if use_text else None,
            "media_dim": features.media.shape[-1] if use_media else None,
        }
    )
    torch.manual_seed(stable_seed(train.seed, "fimmia-init") % (2**31))
    model = FimmiaModel(net=AttackNet(net_cfg), normaliser=norm, settings=dict(settings or {}))
    x_fit, x_val = model._tensors(fit), model._tensors(val)
    t_fit, t_val = torch.from_numpy(y_fit), torch.from_numpy(y_val)
    opt = torch.optim.AdamW(model.net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(stable_seed(train.seed, "fimmia-batches") % (2**31))
    best, best_state, best_epoch, stale = float("inf"), None, -1, 0
    curve = []
    n_rows = len(t_fit)
    for epoch in range(train.max_epochs):
        model.net.train()
        perm = torch.randperm(n_rows, generator=gen)
        for s in range(0, n_rows, train.batch_size):
            b = perm[s : s + train.batch_size]
            logits = model.net(*(None if x is None else x[b] for x in x_fit))
            loss = lossf(logits, t_fit[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.net.eval()
        with torch.no_grad():
            v = float(lossf(model.net(*x_val), t_val))
        curve.append(round(v, 6))
        if v < best - 1e-6:
            best, best_epoch, stale = v, epoch, 0
            best_state = {k: t.detach().clone() for k, t in model.net.state_dict().items()}
        else:
            stale += 1
            if stale >= train.patience:
                break
    if best_state is None:
        raise ValueError("the validation loss was never finite: the features hold NaN or infinite values")
    model.net.load_state_dict(best_state)
    model.net.eval()
    model.train_ids = sorted(set(features.ids))
    model.history = {
        "best_epoch": best_epoch,
        "epochs_run": len(curve),
        "val_loss": curve,
        "n_fit_samples": len(fit_idx),
        "n_val_samples": len(val_idx),
        "val_ids": sorted({features.ids[i] for i in val_idx}),
        "train": train.model_dump(),
    }
    return model
