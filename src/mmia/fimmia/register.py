"""FiMMIA in the method registry."""

from __future__ import annotations

from mmia.attacks.registry import register_attack
from mmia.errors import InputError
from mmia.fimmia.pipeline import FimmiaConfig

PAPER = (
    "FiMMIA: scaling semantic perturbation-based membership inference across modalities, arXiv 2512.02786; "
    "SMIA: Mozaffari & Marathe, Semantic Membership Inference Attack against Large Language Models, "
    "arXiv 2406.10218"
)


# Both FiMMIA networks: trained on labelled rows of generative targets, any modality.
_SPEC = dict(family="neural", paper=PAPER, config=FimmiaConfig, target_kinds=("vlm", "audio-lm"),
             modalities=("image", "video", "audio", "text"), needs_labels=True)


@register_attack("fimmia", **_SPEC)
def fimmia_method(*_args, **_kwargs):
    """FiMMIA (arXiv 2512.02786; SMIA, arXiv 2406.10218): a network on neighbours' loss and embedding deltas.

    It is trained before it scores, so it runs through `mmia fimmia train` and `mmia fimmia score`
    (Python: `mmia.fimmia.api`), not through `mmia attack`.
    """
    raise InputError("fimmia is a trained attack: run `mmia fimmia train` and then `mmia fimmia score`")


@register_attack("fimmia+loss", **_SPEC)
def fimmia_with_loss(*_args, **_kwargs):
    """FiMMIA (arXiv 2512.02786) with the sample's own loss, and the base's, beside each delta: a variant.

    The reference network sees loss changes only; this one can also use what the loss attack
    uses. It runs through `mmia fimmia train --with-loss` and `mmia fimmia score`.
    """
    raise InputError("fimmia+loss is a trained attack: run `mmia fimmia train --with-loss`, then `mmia fimmia score`")
