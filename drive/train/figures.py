"""Training figures: predicted against label steering over a validation episode, as a PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from drive.io import atomic_path  # noqa: E402


def plot_validation(
    path: str | Path, time_s: np.ndarray, label: np.ndarray, prediction: np.ndarray, title: str
) -> Path:
    """Line plot of normalised steering (label and prediction) against time, written atomically."""
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    ax.plot(time_s, label, label="label (expert)", color="black", linewidth=1.2)
    ax.plot(time_s, prediction, label="prediction", color="tab:orange", linewidth=1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("steering (normalised)")
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
