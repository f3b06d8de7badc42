"""One palette and the shared rules of every figure the package draws (matplotlib, Agg).

- :data:`PALETTE`: one fixed colour per family (ncp19, cnn, lstm, gru, ctrnn, cfc, feedforward, the
  expert, …), the same in every figure and video; :func:`colour` finds a driver's family in its label
  (``ncp19``, ``zoo/ncp19-s1``, ``ncp19-noise-s2``, ``ncp19+noise``: all ncp19); a label of no family gets
  a colour of its own from :data:`OTHER_COLOURS`, the same in every figure. :func:`style` adds a dashed
  line for the noise-augmented variant of a family.
- :data:`RECORDED`: what recorded data (a dataset's labels) is called in legends and captions; it is drawn
  in the expert's colour (it is the reference, as the expert is in closed loop).
- Axes: :func:`counts_axis` (a count or rate: starts at 0, and shows 0..1 when everything is 0, never a
  negative count), :func:`headroom` (room above the largest bar, line or label), :func:`mark_small_bars`
  (a marker, and optionally the value, on a bar too short to see, e.g. the expert's 0 off-road events),
  :func:`pass_line` (a target drawn on the axis, e.g. the suite's 0.35 m).
- :func:`subplots` and :func:`save_figure`: a figure on the Agg backend, written atomically and closed.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "EXPERT",
    "OTHER_COLOURS",
    "PALETTE",
    "RECORDED",
    "colour",
    "counts_axis",
    "display_name",
    "family_of",
    "headroom",
    "mark_small_bars",
    "pass_line",
    "rgb",
    "save_figure",
    "style",
    "subplots",
]

EXPERT = "expert"
RECORDED = "recorded"
"""The name of recorded data (a dataset's steering labels) in every legend and caption."""

PALETTE: dict[str, str] = {
    "ncp19": "#1f77b4",  # blue
    "cnn": "#ff7f0e",  # orange
    "lstm": "#2ca02c",  # green
    "gru": "#d62728",  # red
    "ctrnn": "#9467bd",  # purple
    "cfc": "#8c564b",  # brown
    "feedforward": "#e377c2",  # pink
    EXPERT: "#7f7f7f",  # grey: readable on white figures and on the videos' dark panels
    "ltc-fc": "#17becf",  # cyan
    "ltc-random": "#bcbd22",  # olive
}
"""One colour per family, in every figure (and video) of the package."""

OTHER_COLOURS = ("#393b79", "#637939", "#e7ba52", "#6b6ecf", "#000000", "#a55194")
"""Colours for labels of no known family (a user's ``mine``), chosen by the label's hash: stable across figures."""

_SEED_SUFFIX = re.compile(r"(-noise)?-s\d+$")


def family_of(name: str) -> str | None:
    """The family in a driver's label: ``zoo/ncp19-s1`` → ``ncp19``, ``cnn+noise`` → ``cnn``, ``recorded`` →
    ``expert``; None for a label of no known family."""
    base = str(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = _SEED_SUFFIX.sub("", base.split("+", 1)[0])
    if base == RECORDED:
        return EXPERT
    if base in PALETTE:
        return base
    for family in sorted(PALETTE, key=len, reverse=True):  # a unique name made from a family: ncp19-2
        if base.startswith(family + "-") or base.startswith(family + "_"):
            return family
    return None


def colour(name: str) -> str:
    """The colour of a driver (its family's, see :data:`PALETTE`), as ``#rrggbb``."""
    family = family_of(name)
    if family is not None:
        return PALETTE[family]
    return OTHER_COLOURS[zlib.crc32(str(name).encode()) % len(OTHER_COLOURS)]


def rgb(name: str) -> tuple[int, int, int]:
    """:func:`colour` as an RGB tuple of ints (for OpenCV drawing on RGB frames)."""
    c = colour(name).lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def style(name: str) -> dict[str, Any]:
    """Line style of a driver: its colour; dashed for a noise-augmented variant (``+noise``, ``-noise-``) and
    the expert (the reference)."""
    text = str(name)
    dashed = "+noise" in text or "-noise" in text or family_of(text) == EXPERT
    return {"color": colour(text), "linestyle": "--" if dashed else "-"}


def display_name(name: str, recorded: bool = False) -> str:
    """The name in a legend: ``expert`` is :data:`RECORDED` where the data is recorded (``recorded``)."""
    return RECORDED if recorded and name == EXPERT else name


# -------------------------------------------------------------------------------------------- axes


def counts_axis(ax: Any, axis: str = "y", minimum_top: float = 1.0) -> None:
    """A count or rate axis: starts at 0; its top is the data's (with :func:`headroom`) or ``minimum_top``,
    whichever is larger, so that all-zero counts show 0..1, never a negative or a ±0.04 axis."""
    set_ = ax.set_ylim if axis == "y" else ax.set_xlim
    top = _data_max(ax, axis)
    set_(0.0, top * 1.12 if top > 0 else minimum_top)
    for line in ax.get_lines():  # a line of zeros lies on the axis: drawn whole, over it
        line.set_clip_on(False)


def headroom(ax: Any, axis: str = "y", fraction: float = 0.12, bottom: float | None = 0.0) -> None:
    """Room above the largest value drawn (bars, lines, bands, labels): the top at ``(1 + fraction)`` times
    the data's maximum; ``bottom`` (default 0) fixes the other end, None keeps it."""
    get, set_ = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    top = _data_max(ax, axis)
    low = get()[0] if bottom is None else bottom
    if top > low:
        set_(low, low + (top - low) * (1 + fraction))
    else:
        set_(low, low + 1.0)


def _data_max(ax: Any, axis: str) -> float:
    """The largest data coordinate along ``axis`` of the lines, bars and bands on ``ax`` (0 if none)."""
    import numpy as np

    values: list[float] = []
    i = 1 if axis == "y" else 0
    for line in ax.get_lines():
        if line.get_gid() == "pass_line":
            continue
        data = np.asarray(line.get_xydata(), float)
        if data.size:
            values.extend(data[:, i][np.isfinite(data[:, i])].tolist())
    for patch in ax.patches:
        bbox = patch.get_bbox() if hasattr(patch, "get_bbox") else None
        if bbox is not None:
            values += [v for v in ((bbox.y0, bbox.y1) if axis == "y" else (bbox.x0, bbox.x1)) if np.isfinite(v)]
    for coll in ax.collections:
        for path in coll.get_paths():
            v = np.asarray(path.vertices, float)
            if v.size:
                values.extend(v[:, i][np.isfinite(v[:, i])].tolist())
    return max(values, default=0.0)


def mark_small_bars(
    ax: Any, bars: Any, values: Sequence[float], colour_: str, label: bool = False, fmt: str = "{:.3f}"
) -> None:
    """On each horizontal bar of ``bars`` shorter than 1.5 % of the axis (a 0 is a result, not a missing bar), a
    marker in the bar's colour at its end; with ``label``, its value beside it. Call after the axis limits are set."""
    import math

    lo, hi = ax.get_xlim()
    span = (hi - lo) or 1.0
    for bar, value in zip(bars, values):
        if value is None or not math.isfinite(value):
            continue
        y = bar.get_y() + bar.get_height() / 2
        if value < 0.015 * span:
            ax.plot(
                [value], [y], marker="D", markersize=4, color=colour_, markeredgecolor="black", markeredgewidth=0.5,
                linestyle="none", clip_on=False, zorder=4,
            )  # fmt: skip
            if label:
                ax.annotate(
                    fmt.format(value).rstrip("0").rstrip(".") or "0", (value, y), xytext=(5, 0), textcoords="offset points", va="center",
                    fontsize=7, color="#333333",
                )  # fmt: skip


def pass_line(ax: Any, value: float, text: str, axis: str = "x") -> Any:
    """A target drawn across the axis at ``value`` (dashed, dark), named in the legend by ``text``."""
    draw = ax.axvline if axis == "x" else ax.axhline
    line = draw(value, color="black", linestyle="--", linewidth=1.0, label=text, zorder=3)
    line.set_gid("pass_line")
    return line


# ----------------------------------------------------------------------------------------- figures


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``matplotlib.pyplot.subplots`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (a reader never sees half a file) and close it."""
    import matplotlib.pyplot as plt

    from drive.io import atomic_path

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
