"""Collapse figures: Kaplan-Meier curves, median collapse time versus n, probability heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from analysis import theory
from analysis._cells import cell_labels, group_columns, group_labels, require_columns
from analysis._declarations import for_frame
from analysis.figures._common import (
    GENERATION_LABEL,
    N_LABEL,
    colours,
    event_description,
    finish,
    panels,
    plain_log_axis,
    policy_colours,
    style,
)
from analysis._survival import survival_curves

__all__ = ["survival_figure", "collapse_time_figure", "probability_heatmap"]


def _key(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _wording(times: pd.DataFrame) -> str:
    """The event of ``times`` in words, from the built-in declarations of its family if any."""
    event, threshold = str(times["event"].iloc[0]), times["threshold"].iloc[0]
    declared = for_frame(times)
    info = declared.event(event) if declared else None
    return event_description(
        event,
        threshold,
        distance=declared.distance_metric if declared else None,
        description=info.description if info else "",
    )


def survival_figure(times: pd.DataFrame, *, confidence: float = 0.95, what: str | None = None, path=None) -> Figure:
    """Kaplan-Meier curves of collapse with confidence bands: one panel per policy (and per value
    of every other axis but n: temperature, family fields), one line per n.

    Parameters
    ----------
    times : pandas.DataFrame
        Output of :func:`analysis.collapse_times`.
    confidence : float
        Level of the bands (exponential Greenwood, from lifelines).
    what : str, optional
        The event in words, for the title (the report passes the folder's declared wording);
        default from the event's name and the built-in declarations of the ``family`` column.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    curves = survival_curves(times, confidence=confidence)
    keys = group_columns(curves, "policy")
    titles = group_labels(curves, keys)
    horizon = int(times["horizon"].max())
    what = _wording(times) if what is None else what
    groups = list(curves.groupby(keys, sort=True, dropna=False))
    with style():
        fig, axes = panels(len(groups), panel=(5.6, 3.6) if len(groups) == 1 else (4.6, 3.4))
        for ax, (key, rows) in zip(axes, groups):
            cells = rows.drop_duplicates("cell").sort_values("n")
            labels = cell_labels(cells)
            for colour, cell in zip(colours(len(cells)), cells["cell"]):
                curve = rows[rows["cell"] == cell]
                g = np.append(curve["generation"].to_numpy(), horizon)
                extend = lambda col: np.append(curve[col].to_numpy(), curve[col].iloc[-1])  # noqa: E731
                ax.step(g, extend("survival"), where="post", color=colour, lw=1.8, label=labels[cell])
                ax.fill_between(g, extend("lower"), extend("upper"), step="post", color=colour, alpha=0.18, lw=0)
            ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
            ax.axvline(horizon, color="0.3", lw=1, ls="--", label=f"horizon T={horizon}")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlim(0, horizon * 1.02)
            ax.set_title(titles[_key(key)])
            ax.set_xlabel(GENERATION_LABEL)
            ax.set_ylabel("P(not yet collapsed)")
            ax.legend(loc="best", fontsize=8)
        fig.suptitle(f"Not yet {what} (Kaplan-Meier, {confidence:.0%} bands)", fontsize=11)
    return finish(fig, path)


def collapse_time_figure(
    summary: pd.DataFrame,
    *,
    fits: pd.DataFrame | None = None,
    ratio: float | None = None,
    estimator: str = "unbiased",
    path=None,
) -> Figure:
    """Median collapse time versus n on log-log axes, one line per policy (and per value of every
    other axis but n), with CIs and theory.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`analysis.survival`.
    fits : pandas.DataFrame, optional
        Output of :func:`analysis.rates`; draws each policy's fitted line, slope in the legend.
    ratio : float, optional
        For ``spread_below`` collapse of 1-D Gaussians: overlay the theory for ``replace``
        (first-passage median and the drift line ``2 ln r / drift``).
    estimator : {"unbiased", "ml"}
        The sweep's Gaussian fit, for the theory lines.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    Cells whose median is inf are drawn as hollow triangles at the horizon ("median > T"); an
    upper CI bound of inf is drawn up to the horizon with an arrow head.
    """
    require_columns(summary, ["n", "policy", "median", "median_lower", "median_upper", "horizon"], "summary")
    keys = group_columns(summary, "policy")
    horizon = int(summary["horizon"].max())
    names = group_labels(summary, keys)
    palette = policy_colours(names.values())
    with style():
        fig, (ax,) = panels(1, panel=(6.4, 5.2))
        inf_labelled = False
        for key, rows in summary.groupby(keys, sort=True, dropna=False):
            line = names[_key(key)]
            rows = rows.sort_values("n")
            colour = palette[line]
            done = rows[np.isfinite(rows["median"])]
            label = line
            if fits is not None:
                match = fits[(fits[keys] == pd.Series(dict(zip(keys, _key(key))))).all(axis=1)]
                if len(match) and np.isfinite(match["slope"].iloc[0]):
                    fit = match.iloc[0]
                    label += f": slope {fit.slope:.2f} [{fit.slope_lower:.2f}, {fit.slope_upper:.2f}]"
                    grid = np.geomspace(fit.n_min, fit.n_max, 50)
                    ax.plot(grid, np.exp(fit.intercept) * grid**fit.slope, color=colour, lw=1, ls="--")
            if done.empty:  # the policy shows only as hollow triangles; still name it in the legend
                ax.plot([], [], "^", mfc="none", color=colour, ms=9, label=f"{line}: median > T at every n")
            n, median = done["n"].to_numpy(dtype=float), done["median"].to_numpy(dtype=float)
            upper = np.minimum(done["median_upper"].to_numpy(dtype=float), horizon)
            if len(done):
                ax.errorbar(
                    n,
                    median,
                    yerr=np.vstack([median - done["median_lower"].to_numpy(dtype=float), upper - median]),
                    fmt="o-",
                    color=colour,
                    capsize=3,
                    lw=1.5,
                    label=label,
                )
            open_top = done[~np.isfinite(done["median_upper"])]
            ax.plot(open_top["n"], np.full(len(open_top), horizon), "^", color=colour, ms=6)
            never = rows[~np.isfinite(rows["median"])]
            if len(never):
                ax.plot(never["n"], np.full(len(never), horizon), "^", mfc="none", color=colour, ms=9)
                if not inf_labelled:  # one neutral legend entry for the hollow markers of every policy
                    ax.plot([], [], "^", mfc="none", color="0.3", ms=9, label="median > T (not fitted)")
                    inf_labelled = True
        ax.axhline(horizon, color="0.4", lw=1, ls=":", label=f"horizon T={horizon}")
        if ratio is not None:
            ns = np.geomspace(max(2.0, summary["n"].min()), summary["n"].max(), 100)
            ax.plot(
                ns,
                theory.median_collapse_time(ns, ratio, estimator, "first_passage"),
                color="k",
                lw=1.2,
                label="theory, replace: first-passage median",
            )
            ax.plot(
                ns,
                theory.median_collapse_time(ns, ratio, estimator, "drift"),
                color="k",
                lw=1.2,
                ls=":",
                label="theory, replace: drift line 2 ln r / drift",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Plain numbers read better than 2x10^1; tick exactly the n of the grid.
        ax.set_xticks(sorted(summary["n"].unique()), [str(int(n)) for n in sorted(summary["n"].unique())])
        ax.xaxis.set_minor_formatter(NullFormatter())
        plain_log_axis(ax.yaxis)
        ax.set_xlabel(N_LABEL)
        ax.set_ylabel("median collapse time (generations)")
        # Below the axes: with several policies a legend inside would hide points near T.
        # Lines named by several axes ("replace, temperature=0.7, k=3: slope ...") need a full row each.
        wide = max((len(t) for t in ax.get_legend_handles_labels()[1]), default=0) > 40
        fig.legend(loc="outside lower center", ncols=1 if wide else 2, fontsize=8)
    return finish(fig, path)


def probability_heatmap(
    table: pd.DataFrame,
    *,
    title: str | None = None,
    colorbar_label: str = "probability",
    path=None,
) -> Figure:
    """Heatmap of a probability over (n, fresh-real fraction ``real``), with Wilson CIs written in.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (n, real): e.g. :func:`analysis.collapsed_by` or
        :func:`analysis.divergence_probability` at the horizon, restricted to one policy kind
        family (``replace`` and ``fresh_real`` cells share the axis ``real``).
    title, colorbar_label : str
        Texts; the colour bar is labelled with the latter.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    require_columns(table, ["n", "real", "probability", "lower", "upper"], "table")
    if table.duplicated(["n", "real"]).any():
        raise ValueError(
            "probability_heatmap needs one row per (n, real); filter one generation (e.g. the horizon) "
            "and one kind of policy (keep == 0) first"
        )
    grid = table.pivot(index="real", columns="n", values="probability")
    lower = table.pivot(index="real", columns="n", values="lower")
    upper = table.pivot(index="real", columns="n", values="upper")
    with style():
        fig, (ax,) = panels(1, panel=(1.2 + 1.15 * grid.shape[1], 1.4 + 0.75 * grid.shape[0]))
        image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                p = grid.iat[i, j]
                if np.isfinite(p):
                    ax.text(
                        j,
                        i,
                        f"{p:.2f}\n[{lower.iat[i, j]:.2f}, {upper.iat[i, j]:.2f}]",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if p < 0.6 else "black",
                    )
        ax.set_xticks(range(grid.shape[1]), [str(int(n)) for n in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
        ax.grid(False)
        ax.set_xlabel(N_LABEL)
        ax.set_ylabel("fresh real fraction (real)")
        if title:
            ax.set_title(title)
        fig.colorbar(image, ax=ax, label=colorbar_label)
    return finish(fig, path)
