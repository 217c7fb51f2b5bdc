"""Categorical figure: forgetting time versus initial count, and surviving symbols over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import theory
from analysis._cells import cell_labels, require_columns
from analysis.figures._common import GENERATION_LABEL, colours, finish, panels, plain_log_axis, style

__all__ = ["forgetting_figure"]


def forgetting_figure(
    table: pd.DataFrame,
    *,
    fits: pd.DataFrame | None = None,
    trajectories: pd.DataFrame | None = None,
    theory_line: bool = True,
    path=None,
) -> Figure:
    """Median forgetting time versus a symbol's initial count (log-log), and surviving symbols.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`analysis.forgetting_times`.
    fits : pandas.DataFrame, optional
        Output of :func:`analysis.forgetting_rates`: fitted line per cell, slope in the legend.
    trajectories : pandas.DataFrame, optional
        Categorical trajectories: adds a second panel with the median and 50% band of
        ``surviving`` symbols over generations, per cell.
    theory_line : bool
        Whether to draw the theory ``2c / ln 2`` (the ``forgetting_time`` overlay).
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    The first panel also draws the theory ``2c / ln 2`` (Feller diffusion, c << n) unless
    ``theory_line`` is False. Bins whose
    median is inf are hollow triangles at the horizon.
    """
    require_columns(table, ["cell", "count", "median", "median_lower", "median_upper", "horizon"], "table")
    cells = table.drop_duplicates("cell").sort_values(["n", "cell"] if "n" in table else ["cell"])
    labels = cell_labels(cells)
    palette = dict(zip(cells["cell"], colours(len(cells))))
    horizon = int(table["horizon"].max())
    with style():
        fig, axes = panels(2 if trajectories is not None else 1, ncols=2, panel=(5.2, 4.0))
        ax = axes[0]
        for cell in cells["cell"]:
            rows = table[table["cell"] == cell].sort_values("count")
            done = rows[np.isfinite(rows["median"])]
            label = labels[cell]
            if fits is not None:
                fit = fits[fits["cell"] == cell]
                if len(fit) and np.isfinite(fit["slope"].iloc[0]):
                    fit = fit.iloc[0]
                    label += f": slope {fit.slope:.2f} [{fit.slope_lower:.2f}, {fit.slope_upper:.2f}]"
                    grid = np.geomspace(done["count"].min(), done["count"].max(), 50)
                    ax.plot(grid, np.exp(fit.intercept) * grid**fit.slope, color=palette[cell], ls="--", lw=1)
            count, median = done["count"].to_numpy(dtype=float), done["median"].to_numpy(dtype=float)
            upper = np.minimum(done["median_upper"].to_numpy(dtype=float), horizon)
            ax.errorbar(
                count,
                median,
                yerr=np.vstack([median - done["median_lower"].to_numpy(dtype=float), upper - median]),
                fmt="o",
                color=palette[cell],
                capsize=3,
                label=label,
            )
            never = rows[~np.isfinite(rows["median"])]
            ax.plot(never["count"], np.full(len(never), horizon), "^", mfc="none", color=palette[cell], ms=8)
        if theory_line:
            counts = np.geomspace(max(1.0, table["count"].min()), table["count"].max(), 50)
            ax.plot(counts, theory.forgetting_median(counts), color="k", lw=1.2, label="theory 2c / ln 2 (c << n)")
        ax.axhline(horizon, color="0.4", lw=1, ls=":", label=f"horizon T={horizon} (△: median > T)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
        ax.set_xlabel("initial count of the symbol (first training set)")
        ax.set_ylabel("median generations until lost")
        ax.set_title("Forgetting time versus initial count")
        ax.legend(loc="upper left", fontsize=8)
        if trajectories is not None:
            require_columns(trajectories, ["cell", "generation", "surviving"], "trajectories")
            ax = axes[1]
            for cell in cells["cell"]:
                rows = trajectories[trajectories["cell"] == cell]
                bands = rows.groupby("generation")["surviving"].quantile([0.25, 0.5, 0.75]).unstack()
                g = bands.index.to_numpy()
                ax.fill_between(g, bands[0.25], bands[0.75], color=palette[cell], alpha=0.25, lw=0)
                ax.plot(g, bands[0.5], color=palette[cell], lw=1.8, label=f"{labels[cell]} (median, 50% band)")
            ax.set_xlabel(GENERATION_LABEL)
            ax.set_ylabel("surviving symbols")
            ax.set_title("Symbols still in the model")
            ax.legend(loc="upper right", fontsize=8)
    return finish(fig, path)
