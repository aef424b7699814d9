"""The model's output head applied by mmia to the rows the statistics need.

A forward pass normally ends with the head (lm_head, Whisper's proj_out) over every position:
(B, T, V) logits, 152k wide for Qwen2-VL, most of the memory of a batch. Here a forward
pre-hook on the head keeps the hidden states the head is given (B, T, H) and lets only the
first position of each row through, so the model's own forward (media merging, rotary
positions, masks: everything per architecture) runs unchanged and its logits are (B, 1, V).
The statistics then apply the head to groups of the rows they read (`HeadWeights.rows`).

What a model does after its head, mmia must do too. The kept position is the check: on the
first batch, mmia's head on that position is compared with the model's own logits there,
plain and with the config's final soft-capping (Gemma 2 and Gemma 3's causal LM apply it in
`forward`); the closer that matches is used. A model whose logits neither reproduces (a logit
scale, a future post-processing step) keeps the full-logits path.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class HeadWeights:
    """The head as a linear map (weight (V, H), bias (V,) or None) and the soft cap after it."""

    weight: object
    bias: object | None
    softcap: float | None = None

    @property
    def vocab(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, h):
        """Logits of hidden rows `h` (..., H), in the weight's dtype, as the model computes them."""
        import torch

        out = torch.nn.functional.linear(h, self.weight, self.bias)
        if self.softcap is not None:
            # The model's own order of operations (Gemma): divide, tanh, multiply.
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

    def rows(self, flat_hidden, index, work: dict | None):
        """Logits (n, V) of the rows `index` of `flat_hidden` (B*T, H).

        In float32 on CPU the product goes into the workspace's input buffer (as
        `token_stats.gather_rows` does for full logits), so no fresh vocabulary-sized tensor is
        page-faulted in per group.
        """
        import torch

        h = flat_hidden.index_select(0, index)
        if work is None or h.dtype != torch.float32 or self.weight.dtype != torch.float32:
            return self(h)
        n, vocab = len(index), self.vocab
        buf = work.get("rows")
        if buf is None or buf.shape[1] != vocab or buf.shape[0] < n or buf.device != h.device:
            buf = work["rows"] = torch.empty((n, vocab), dtype=torch.float32, device=h.device)
        out = buf[:n]
        if self.bias is not None:
            torch.addmm(self.bias, h, self.weight.t(), out=out)
        else:
            torch.mm(h, self.weight.t(), out=out)
        if self.softcap is not None:
            out.div_(self.softcap).tanh_().mul_(self.softcap)
        return out


class HeadCapture:
    """A forward pre-hook on the model's output head. Inside `capturing()` (in this thread only:
    the engine's statistics thread and other callers of the model see the head unchanged) it
    keeps the head's input and passes on only its first position."""

    def __init__(self, module):
        self.module = module
        self._local = threading.local()
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        if not getattr(self._local, "on", False) or not args or getattr(args[0], "dim", lambda: 0)() != 3:
            return None
        h = args[0]
        self._local.hidden = h
        return (h[:, :1, :], *args[1:])

    @contextmanager
    def capturing(self):
        self._local.on, self._local.hidden = True, None
        try:
            yield self._local
        finally:
            self._local.on = False

    def remove(self) -> None:
        self._handle.remove()


def linear_head(model):
    """(head module, HeadWeights without a cap) when the model's output head is a plain linear
    layer; None otherwise (mmia then keeps the model's full logits)."""
    import torch

    try:
        head = model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if not isinstance(head, torch.nn.Linear) or type(head).forward is not torch.nn.Linear.forward:
        return None  # a subclass (e.g. a quantised layer) may compute something else
    return head, HeadWeights(head.weight, head.bias)


def softcap_of(config) -> float | None:
    """The final logit soft cap a config names (Gemma 2 / 3), on itself or its text config."""
    for cfg in (config, getattr(config, "text_config", None)):
        cap = getattr(cfg, "final_logit_softcapping", None) if cfg is not None else None
        if isinstance(cap, int | float) and cap > 0:
            return float(cap)
    return None


def matching_head(weights: HeadWeights, hidden, model_logits, softcap: float | None) -> HeadWeights | None:
    """The head (plain, or soft-capped by `softcap`) whose logits at the kept position equal the
    model's own `model_logits` (B, 1, V); None when neither does."""
    import torch

    tol = 1e-5 if model_logits.dtype == torch.float32 and weights.weight.dtype == torch.float32 else 1e-2
    want = model_logits.float()
    scale = 1.0 + float(want.abs().max()) if want.numel() else 1.0
    best, best_err = None, None
    for cap in (None, softcap) if softcap is not None else (None,):
        cand = HeadWeights(weights.weight, weights.bias, cap)
        with torch.inference_mode():
            got = cand(hidden[:, :1, :]).float()
        if got.shape != want.shape:
            return None
        err = float((got - want).abs().max()) if want.numel() else 0.0
        if best_err is None or err < best_err:
            best, best_err = cand, err
    return best if best_err is not None and best_err <= tol * scale else None
