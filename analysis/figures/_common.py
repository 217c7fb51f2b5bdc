"""Shared look of every figure: fonts, panel grids, colours, labels, and saving PNG + SVG.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot: nothing
is registered globally (a report of fifty figures leaks no memory), the process's backend is
left alone, and PNG output goes through Agg.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

DPI = 150
PANEL = (4.6, 3.4)  # inches per panel: ~690 x 510 px at DPI, readable when scaled to a page
_STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.framealpha": 0.85,
    "svg.fonttype": "none",
}
SIGMA_LABEL = "σ_t / σ_true"
GENERATION_LABEL = "generation"
N_LABEL = "n (samples per generation)"


@contextmanager
def style():
    """Apply the figure style (fonts, grid) while building and saving a figure."""
    with matplotlib.rc_context(_STYLE):
        yield


def panels(count: int, ncols: int = 3, panel: tuple[float, float] = PANEL, **subplot_kw):
    """A constrained-layout figure with ``count`` panels on a grid; returns (figure, axes list)."""
    if count < 1:
        raise ValueError("a figure needs at least one panel; the table given has no rows to draw")
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), dpi=DPI, layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    axes = list(grid.ravel())
    for extra in axes[count:]:
        fig.delaxes(extra)
    return fig, axes[:count]


def colours(count: int, cmap: str = "viridis") -> list:
    """``count`` distinguishable colours from a sequential map (ordered cells, e.g. by n)."""
    if count <= 1:
        return [matplotlib.colormaps[cmap](0.35)]
    return [matplotlib.colormaps[cmap](x) for x in np.linspace(0.0, 0.85, count)]


def policy_colours(names) -> dict:
    """One categorical colour per policy (or line) name, stable in sorted order."""
    palette = matplotlib.colormaps["tab10"].colors
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(names)))}


def format_time(value: float, horizon: int | None = None) -> str:
    """A collapse time for display: ``"37"``, or ``"> 200"`` (``"∞"`` without a horizon) for inf."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return f"> {horizon}" if horizon is not None else "∞"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def metric_label(metric: str | None) -> str:
    """How figures name a metric column: ``w2`` -> ``W2``, ``tv`` -> ``TV``; ``distance`` if None."""
    if not metric:
        return "distance"
    return metric.upper() if len(metric) <= 3 else metric


def event_description(event: str, threshold, *, distance: str | None = None, description: str = "") -> str:
    """Human wording of an event: ``"σ_t / σ_true < 0.5"``, ``"W2 > 0.3"``, ``"one symbol left"``.

    The wording goes by the event's name, never by the family: ``distance`` is the declared
    distance metric (``w2``, ``tv``) that ``distance_above`` thresholds; an event name outside
    the shared vocabulary is worded by its declared ``description`` and threshold.
    """
    has_threshold = threshold is not None and not (isinstance(threshold, float) and math.isnan(threshold))
    if event == "spread_below":
        return f"{SIGMA_LABEL} < {threshold:g}"
    if event == "distance_above":
        return f"{metric_label(distance)} > {threshold:g}"
    if event == "weight_below":
        return f"a mode lost (a component's weight < {threshold:g})"
    if event == "modes_closer":
        return f"modes merged (two component means < {threshold:g} true σ apart)"
    known = {"collapse": "one symbol left", "diverged": "non-finite fit", "symbol_lost": "symbol lost"}
    if event in known:
        return known[event]
    what = f"{event}: {description}" if description else event
    return f"{what} (threshold {threshold:g})" if has_threshold else what


def plain_log_axis(axis) -> None:
    """Label a log axis with plain numbers at 1, 2, 5 x 10^k (``40`` rather than ``4x10^1``)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def save_figure(fig: Figure, path) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` (at :data:`DPI`) and ``<path>.svg``; returns both paths.

    A ``.png`` or ``.svg`` suffix on ``path`` is ignored; other dots (``spread_0.5``) are kept.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with style():
        for suffix in (".png", ".svg"):
            target = stem.parent / (stem.name + suffix)
            fig.savefig(target, dpi=DPI)
            written.append(target)
    return written


def finish(fig: Figure, path) -> Figure:
    """Save when a path is given, and return the figure either way."""
    if path is not None:
        save_figure(fig, path)
    return fig
