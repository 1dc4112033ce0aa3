"""Run outputs: metrics.json and the accuracy-vs-observation-ratio plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional


def write_json(path: str | Path, data: Mapping) -> Path:
    """Write atomically: a crash never leaves half a metrics file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path


def plot_accuracy(path: str | Path, curves: Mapping[str, Mapping], *, title: str,
                  chance: Optional[float] = None) -> Path:
    """One line per entry of ``curves`` ({label: metrics with "ratios", "accuracy", "auc"})."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, metrics in curves.items():
        ratios: Sequence[float] = metrics["ratios"]
        ax.plot(ratios, metrics["accuracy"], marker="o", label=f"{label} (AUC {metrics['auc']:.3f})")
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label="chance")
    ax.set_xlabel("observation ratio")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.05, 1.05)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
