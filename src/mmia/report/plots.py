"""Report plots (PNG): log-log ROC curves, the view that shows behaviour at low false-positive
rates; histograms of two score sets; a p-value against set size."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str, path: Path) -> Path:
    """Draw ROC curves {name: (fpr, tpr, auc)} on log-log axes with the chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    # Axis floor: a decade below the smallest non-zero FPR any curve reaches (1 / #non-members).
    smallest = min((f[f > 0].min() for f, _, _ in curves.values() if (f > 0).any()), default=1e-3)
    floor = max(1e-5, 10 ** np.floor(np.log10(smallest) - 0.5))
    grid = np.logspace(np.log10(floor), 0, 200)
    ax.plot(grid, grid, ls="--", color="grey", lw=0.8, label="chance")
    ordered = sorted(curves.items(), key=lambda kv: -kv[1][2])
    shown = 10  # the legend names the ten best; the rest are thin dotted lines (their AUCs are in the table)
    for i, (name, (fpr, tpr, auc)) in enumerate(ordered):
        top = i < shown
        ax.step(np.maximum(fpr, floor), np.maximum(tpr, floor), where="post", ls="-" if top else ":",
                lw=1.2 if top else 0.8, alpha=1.0 if top else 0.6, label=f"{name} ({auc:.3f})" if top else None)
    if len(ordered) > shown:
        ax.plot([], [], ls=":", color="grey", label=f"{len(ordered) - shown} more (dotted; see the table)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right")
    # Fixed margins, not tight_layout: measuring log-axis tick labels costs as much as drawing them,
    # and a report draws one of these per section.
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.93)
    return _save(fig, path, tight=False)


def _save(fig, path: Path, tight: bool = True) -> Path:
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def histogram_plot(groups: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Overlaid histograms of score sets {name: scores}, on shared bins."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    values = [np.asarray(v, dtype=np.float64) for v in groups.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    bins = np.histogram_bin_edges(finite, bins=min(30, max(5, len(finite) // 4))) if len(finite) else 10
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=110)
    for name, v in zip(groups, values, strict=True):
        ax.hist(v[np.isfinite(v)], bins=bins, alpha=0.5, label=f"{name} (n={int(np.isfinite(v).sum())})")
    ax.set_xlabel("score (higher: more member-like)")
    ax.set_ylabel("samples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def p_value_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float, title: str, path: Path) -> Path:
    """Median p-value against suspect-set size {name: (sizes, p)}, log scale, with the alpha line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=110)
    for name, (sizes, p) in curves.items():
        ax.plot(sizes, np.maximum(p, 1e-12), marker="o", label=name)
    ax.axhline(alpha, ls="--", color="grey", lw=0.8, label=f"alpha {alpha}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("suspect set size")
    ax.set_ylabel("p-value")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)
