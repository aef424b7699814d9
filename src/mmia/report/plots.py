"""Log-log ROC plots (PNG), the view that shows behaviour at low false-positive rates."""

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
    for i, (name, (fpr, tpr, auc)) in enumerate(ordered):
        style = "-" if i < 10 else ":"
        ax.step(np.maximum(fpr, floor), np.maximum(tpr, floor), where="post", ls=style, lw=1.2,
                label=f"{name} ({auc:.3f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right", ncol=1 if len(curves) <= 12 else 2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
