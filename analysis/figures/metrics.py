"""Fan charts of many metrics at once: one small panel per metric, one fan (median, 50% and 90%
bands across chains) per cell, generation 0 (the truth's value) as a dotted reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis._cells import cell_labels, pick_cells, require_columns
from analysis.figures._common import GENERATION_LABEL, colours, finish, panels, style

__all__ = ["metric_fans", "MAX_CELLS"]

#: Fans overlaid in one panel: beyond this the bands hide each other.
MAX_CELLS = 6
_QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]


def _log_scale(values: np.ndarray) -> bool:
    """A log axis for a positive metric spanning more than two decades (distances that explode)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or (finite <= 0).any():
        return False
    low, high = np.quantile(finite, [0.05, 0.95])
    return bool(high > 100 * low)


def metric_fans(
    trajectories: pd.DataFrame,
    metrics,
    *,
    cells=None,
    titles: dict | None = None,
    ncols: int = 4,
    path=None,
) -> Figure:
    """One panel per metric; in each, a fan per cell over generations (generation 1 on).

    Parameters
    ----------
    trajectories : pandas.DataFrame
        The trajectories table (``analysis.load``).
    metrics : sequence of str
        Numeric per-chain columns, one panel each, in this order.
    cells : sequence of int, optional
        Cells to overlay (at most :data:`MAX_CELLS`); default all.
    titles : dict, optional
        Panel title per metric (default the column name).
    ncols : int
        Panels per row.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    Returns
    -------
    matplotlib.figure.Figure
        One legend below the panels (cells, bands, truth).

    Non-finite values (a diverged chain) are left out of the quantiles; generation 0, the truth,
    is drawn as a dotted line at its median where it is finite (a model-only metric is NaN there).
    """
    metrics = list(metrics)
    require_columns(trajectories, ["cell", "generation"] + metrics, "trajectories")
    table = pick_cells(trajectories, cells, MAX_CELLS, "fans per panel")
    cells = table.index.tolist()
    rows = trajectories[trajectories["cell"].isin(cells)]
    labels = cell_labels(table)
    palette = colours(len(cells), "viridis") if len(cells) > 3 else [f"C{i}" for i in range(len(cells))]
    titles = titles or {}
    with style():
        fig, axes = panels(len(metrics), ncols=ncols, panel=(3.6, 2.7))
        for ax, metric in zip(axes, metrics):
            values = rows[metric].astype(float).replace([np.inf, -np.inf], np.nan)
            later = rows["generation"] > 0
            for colour, cell in zip(palette, cells):
                mine = values[later & (rows["cell"] == cell)]
                bands = mine.groupby(rows.loc[mine.index, "generation"]).quantile(_QUANTILES).unstack()
                if bands.empty:
                    continue
                g = bands.index.to_numpy()
                ax.fill_between(g, bands[0.05], bands[0.95], color=colour, alpha=0.12, lw=0)
                ax.fill_between(g, bands[0.25], bands[0.75], color=colour, alpha=0.3, lw=0)
                ax.plot(g, bands[0.5], color=colour, lw=1.6, label=labels[int(cell)])
            truth = values[~later].dropna()  # a model-only metric has no value for the truth
            if len(truth):
                ax.axhline(truth.median(), color="0.3", lw=1, ls=":", label="generation 0 (truth)")
            if _log_scale(values[later].to_numpy()):
                ax.set_yscale("log")
            ax.set_title(titles.get(metric, metric), fontsize=10)
            ax.set_xlabel(GENERATION_LABEL)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
        axes[0].plot([], [], color="0.5", lw=6, alpha=0.3, label="50% of chains")
        axes[0].plot([], [], color="0.5", lw=6, alpha=0.12, label="90% of chains")
        handles, names = axes[0].get_legend_handles_labels()
        seen = dict(zip(names, handles))  # the truth line may be in several panels: name it once
        for ax in axes[1:]:
            for handle, name in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(name, handle)
        # Below the panels, not inside one: every panel's data stays visible.
        fig.legend(seen.values(), seen.keys(), loc="outside lower center", ncols=min(4, len(seen)), fontsize=8)
    return finish(fig, path)
