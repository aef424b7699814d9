"""Blind distribution-shift checks: can members and non-members be told apart without the model?

Das, Zhang, Tramèr (2024, arXiv 2406.16201) showed that model-free classifiers beat published
membership-inference attacks on their own benchmarks; FiMMIA (arXiv 2512.02786) extends those
blind baselines to images and audio. `run_shift` runs them on one labelled set with the
cross-validation protocol of `mmia.shift.protocol` and gives a verdict (`mmia.shift.verdict`).
"""

from mmia.shift.api import resolve_methods, run_shift
from mmia.shift.verdict import NO_SHIFT, SHIFTED

__all__ = ["NO_SHIFT", "SHIFTED", "resolve_methods", "run_shift"]
