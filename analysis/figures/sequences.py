"""Figures of per-item side tables and of survival shares: the distribution of each generation's
per-sequence values (Shumailov et al.'s perplexity histograms), and the share of a vocabulary
still present over generations."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis._cells import cell_labels, require_columns
from analysis.figures._common import GENERATION_LABEL, colours, finish, panels, plain_log_axis, style

__all__ = ["distribution_figure", "share_figure"]

_MAX_PANELS = 6
_BINS = 40
#: Quantile columns of a share curve (:func:`share_figure`): 90% band, 50% band, median.
SHARE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def use_log_axis(values: np.ndarray) -> bool:
    """Whether positive values spread over more than a decade (a perplexity's usually do)."""
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 10


def distribution_figure(
    side: pd.DataFrame,
    *,
    value: str,
    generations,
    cells=None,
    what: str | None = None,
    path=None,
) -> Figure:
    """Per cell, the distribution of per-item values at several generations, overlaid.

    Parameters
    ----------
    side : pandas.DataFrame
        A side table (``analysis.load_side(folder, "sequences")``): ``cell``, ``generation`` and
        the ``value`` column, one row per chain, generation and item, with the cell coordinates.
    value : str
        The column to draw (``perplexity``).
    generations : sequence of int
        The generations to overlay, one colour each (dark to light, early to late).
    cells : sequence of int, optional
        One panel each (at most 6); default the first 6 cells.
    what : str, optional
        The axis label; default ``value``.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per cell, step histograms (densities) over common bins, on a log axis when
        the values span more than a decade (the density is then per decade).
    """
    require_columns(side, ["cell", "generation", value], "side table")
    cells = list(cells) if cells is not None else sorted(side["cell"].unique())[:_MAX_PANELS]
    if len(cells) > _MAX_PANELS:
        raise ValueError(f"cells: expected at most {_MAX_PANELS} cells to draw, got {len(cells)}")
    generations = sorted(int(g) for g in generations)
    rows = side[side["cell"].isin(cells) & side["generation"].isin(generations)]
    values = rows[value].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"side table: no finite '{value}' values in the cells and generations asked for")
    log = use_log_axis(finite)
    scale = np.log10 if log else (lambda x: x)
    low, high = scale(finite.min()), scale(finite.max())
    # Common bins for every panel and generation, so the histograms compare by eye.
    edges = np.linspace(low, high if high > low else low + 1.0, _BINS + 1)
    labels = cell_labels(rows)
    palette = dict(zip(generations, colours(len(generations), "plasma")))
    with style():
        fig, axes = panels(len(cells))
        for ax, cell in zip(axes, cells):
            mine = rows[rows["cell"] == cell]
            for g in generations:
                x = mine.loc[mine["generation"] == g, value].to_numpy(dtype=float)
                x = scale(x[np.isfinite(x)])
                if x.size == 0:
                    continue
                density, _ = np.histogram(x, bins=edges, density=True)
                ax.stairs(density, 10.0**edges if log else edges, color=palette[g], lw=1.6, label=f"generation {g}")
            if log:
                ax.set_xscale("log")
                plain_log_axis(ax.xaxis)
            ax.set_title(labels.get(int(cell), f"cell {cell}"))
            ax.set_xlabel(what or value)
            ax.set_ylabel("density per decade" if log else "density")
        axes[0].legend(loc="upper right", fontsize=8)
    return finish(fig, path)


def share_figure(curves: list[tuple[str, str, pd.DataFrame]], *, labels: dict[int, str], path=None) -> Figure:
    """Shares over generations, one panel per curve table: median and 50% band per cell (and the
    90% band for up to three cells).

    Parameters
    ----------
    curves : list of (title, y label, table)
        Each table holds ``cell``, ``generation`` and the quantile columns
        :data:`SHARE_QUANTILES` (across chains) of a share in [0, 1].
    labels : dict
        Legend label of each cell (:func:`analysis._cells.cell_labels`).
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per table, a colour per cell; the first panel holds the legend.
    """
    for _, _, table in curves:
        require_columns(table, ["cell", "generation", *SHARE_QUANTILES], "share table")
    cells = sorted({int(c) for _, _, table in curves for c in table["cell"].unique()})
    palette = dict(zip(cells, colours(len(cells))))
    with style():
        fig, axes = panels(len(curves), ncols=2, panel=(5.2, 4.0))
        for ax, (title, ylabel, table) in zip(axes, curves):
            for cell, rows in table.groupby("cell", sort=True):
                rows = rows.sort_values("generation")
                g, colour = rows["generation"].to_numpy(), palette[int(cell)]
                if len(cells) <= 3:  # more 90% bands only hide each other
                    ax.fill_between(g, rows[0.05], rows[0.95], color=colour, alpha=0.12, lw=0)
                ax.fill_between(g, rows[0.25], rows[0.75], color=colour, alpha=0.25, lw=0)
                ax.plot(g, rows[0.5], color=colour, lw=1.8, label=labels.get(int(cell), f"cell {cell}"))
            # A share can pass 1 (fresh real data brings words back): never clip it.
            ax.set_ylim(0, max(1.05, 1.05 * float(table[0.95].max())))
            ax.set_xlabel(GENERATION_LABEL)
            ax.set_ylabel(ylabel)
            ax.set_title(title)
        bands = "50% / 90%" if len(cells) <= 3 else "50%"
        axes[0].legend(loc="best", fontsize=8, title=f"median, {bands} of chains", title_fontsize=8)
    return finish(fig, path)
