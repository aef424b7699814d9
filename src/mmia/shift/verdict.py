"""The verdict of a blind check: can the two sets be told apart without the model?

Rule (documented in docs/shift.md):
- Per method, a one-sided Mann-Whitney p-value that out-of-fold member scores exceed
  non-member scores (the rank-sum test whose statistic is the AUC itself).
- Holm's step-down correction over all methods tried (family-wise error at `alpha`).
- "shifted" when some method both survives the correction and has the lower end of its AUC
  bootstrap interval above 0.5 + `margin`; otherwise "no shift detected".
The margin asks for a practically relevant separation, not merely a detectable one: with large
sets a 0.51 AUC would be significant but would not invalidate an attack reaching 0.80.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MARGIN = 0.05
DEFAULT_ALPHA = 0.01
SHIFTED = "shifted"
NO_SHIFT = "no shift detected"


def mann_whitney_p(labels, scores) -> float:
    """One-sided p-value for 'member scores tend to exceed non-member scores'."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[y == 1], s[y == 0]
    if np.ptp(s) == 0:
        return 1.0
    return float(mannwhitneyu(pos, neg, alternative="greater").pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    adj_sorted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj_sorted, 1.0)
    return out


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str
    best: str | None
    adjusted_p: dict[str, float]


def decide(entries: list[dict], margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA) -> Verdict:
    """Verdict from per-method dicts with `name`, `auc`, `auc_ci95` and `p_value`."""
    if not entries:
        return Verdict(NO_SHIFT, "No blind method could run on this set; nothing was checked.", None, {})
    adj = holm([e["p_value"] for e in entries])
    adjusted = {e["name"]: float(a) for e, a in zip(entries, adj, strict=True)}
    passing = [
        e for e in entries
        if e["auc_ci95"] is not None and e["auc_ci95"][0] > 0.5 + margin and adjusted[e["name"]] < alpha
    ]
    best_all = max(entries, key=lambda e: e["auc"])
    rule = (f"rule: AUC 95% interval above {0.5 + margin:.2f} and Holm-adjusted one-sided Mann-Whitney "
            f"p < {alpha:g} over {len(entries)} method(s)")
    if passing:
        best = max(passing, key=lambda e: e["auc"])
        lo, hi = best["auc_ci95"]
        detail = (
            f"A classifier that never sees the model separates members from non-members: {best['name']} reaches "
            f"AUC {best['auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}, adjusted p = {adjusted[best['name']]:.2g}; {rule}). "
            "Membership-inference results on this set are confounded by the distribution shift: an attack's AUC "
            "or TPR at low FPR may measure the shift rather than memorisation, so compare every attack with this "
            "blind baseline and trust only what clearly exceeds it, or rebuild the set with matched members and "
            "non-members."
        )
        return Verdict(SHIFTED, detail, best["name"], adjusted)
    lo, hi = best_all["auc_ci95"] if best_all["auc_ci95"] is not None else (float("nan"), float("nan"))
    detail = (
        f"No blind method separates members from non-members beyond the margin: the best, {best_all['name']}, "
        f"reaches AUC {best_all['auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}, adjusted p = "
        f"{adjusted[best_all['name']]:.2g}; {rule}). This does not prove the sets are matched (only these "
        "features were tried), but attack results on this set are not explained by any shift these checks "
        "detect; an attack should still be compared with the blind AUC shown here."
    )
    return Verdict(NO_SHIFT, detail, best_all["name"], adjusted)
