"""FiMMIA: perturbation-based neural membership inference for multimodal LLMs.

Papers: FiMMIA (arXiv 2512.02786), a multimodal port of SMIA (Mozaffari & Marathe, arXiv
2406.10218). Neighbours come from `mmia.perturb`; the target's losses on them, text and media
embedding deltas feed a small network trained on labelled samples (`network.py`).
"""
