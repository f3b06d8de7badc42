"""Training figures: predicted against recorded steering over a validation episode, a matplotlib figure (Agg;
the colours of :mod:`drive.eval.plots`) that :func:`drive.train.loop.write_validation_figure` saves and logs."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def validation_figure(
    time_s: np.ndarray, label: np.ndarray, prediction: np.ndarray, title: str, model: str | None = None
) -> Any:
    """Line plot of normalised steering (the recorded label and the prediction) against time, an open matplotlib
    figure; the prediction in the colour of ``model``'s family (default: the title's first word,
    ``ncp19, epoch 3: …``)."""
    from drive.eval.plots import EXPERT, RECORDED, colour

    model = model if model is not None else title.split(",", 1)[0].split(":", 1)[0].strip()
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    ax.plot(time_s, label, label=f"{RECORDED} (label)", color=colour(EXPERT), linewidth=1.4)
    ax.plot(
        time_s, prediction, label=f"prediction ({model})" if model else "prediction", color=colour(model), linewidth=1.0
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("steering (normalised)")
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    return fig
