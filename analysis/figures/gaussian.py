"""1-D figures: fan chart of a metric (the fitted spread by default), and fitted densities (Gaussian
or Gaussian mixture) versus the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis import theory
from analysis._cells import cell_labels, cell_table, is_one_d, pick_cells, require_columns, theory_holds
from analysis._declarations import for_frame
from analysis.figures._common import GENERATION_LABEL, SIGMA_LABEL, finish, panels, style

__all__ = ["fan_chart", "density_figure"]

_MAX_PANELS = 12
_METRIC_LABELS = {"w2": "W2 to the truth", "tv": "TV distance to the truth", "kl": "KL(true || fitted), nats"}


_MIXTURE_COLUMNS = ("weights", "means", "sigmas")


def _is_mixture(rows: pd.DataFrame) -> bool:
    return all(c in rows for c in _MIXTURE_COLUMNS) and rows["means"].notna().all()


def _components(fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, sds) of one row: a mixture's components, or one Gaussian."""
    if hasattr(fit, "weights") and hasattr(fit, "sigmas"):
        return (
            np.asarray(fit.weights, dtype=float),
            np.asarray(fit.means, dtype=float),
            np.asarray(fit.sigmas, dtype=float),
        )
    return np.ones(1), np.array([float(fit.mean)]), np.array([np.sqrt(float(fit.var))])


def _pdf(x: np.ndarray, w: np.ndarray, m: np.ndarray, sd: np.ndarray) -> np.ndarray:
    keep = sd > 0
    return (w[keep, None] * stats.norm.pdf(x, m[keep, None], sd[keep, None])).sum(axis=0)


def fan_chart(
    trajectories: pd.DataFrame,
    *,
    cells=None,
    metric: str = "spread_ratio",
    estimator: str = "unbiased",
    theory_line: bool = True,
    overlays=None,
    path=None,
) -> Figure:
    """Fan chart per cell: median and 50% / 90% bands across chains of a metric over generations.

    Parameters
    ----------
    trajectories : pandas.DataFrame
        The trajectories table (``analysis.load``).
    cells : sequence of int, optional
        Which cells (one panel each, at most 12); default all.
    metric : str
        Column to draw; ``spread_ratio`` (default) is drawn on a log axis with the truth at 1.
    estimator : {"unbiased", "ml"}
        The sweep's Gaussian fit, for the theory median ``exp(drift t / 2)`` overlaid on 1-D
        ``replace`` cells at temperature 1 of a family that declares the
        ``gaussian_log_variance`` overlay (a Gaussian theory: not drawn for mixtures).
    theory_line : bool
        Whether to overlay the theory median where it applies.
    overlays : sequence of str, optional
        The theory overlays the family declares (:data:`analysis.theory.OVERLAYS`); default the
        built-in declarations of the frame's ``family`` column (none for another family).
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per cell; the first holds the legend.
    """
    require_columns(trajectories, ["cell", "generation", metric], "trajectories")
    table = pick_cells(trajectories, cells, _MAX_PANELS)
    labels = cell_labels(table)
    if overlays is None:
        declared = for_frame(trajectories)
        overlays = declared.theory_overlays if declared else ()
    median_line = theory_line and "spread_median" in theory.overlay_draws(overlays)
    holds = theory_holds(table)
    with style():
        fig, axes = panels(len(table), sharey=True)
        for ax, cell in zip(axes, table.index):
            rows = trajectories[trajectories["cell"] == cell]
            bands = rows.groupby("generation")[metric].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
            g = bands.index.to_numpy()
            if metric == "spread_ratio":
                ax.set_yscale("log")
                # A spread of exactly 0 (underflow: a point mass) cannot sit on a log axis; draw
                # it at the floor instead, and keep the axis from running below the floor.
                bands = bands.clip(lower=_SPREAD_FLOOR)
            ax.fill_between(g, bands[0.05], bands[0.95], color="C0", alpha=0.18, lw=0, label="90% of chains")
            ax.fill_between(g, bands[0.25], bands[0.75], color="C0", alpha=0.38, lw=0, label="50% of chains")
            ax.plot(g, bands[0.5], color="C0", lw=2, label="median")
            if metric == "spread_ratio":
                ax.axhline(1.0, color="0.4", lw=1, ls=":", label="truth")
                if median_line and holds[cell] and is_one_d(rows):
                    ax.plot(
                        g,
                        np.clip(
                            theory.median_spread_ratio(float(table.loc[cell, "n"]), g, estimator), _SPREAD_FLOOR, None
                        ),
                        color="k",
                        lw=1.3,
                        ls="--",
                        label="theory median exp(drift·t/2)",
                    )
            if metric == "spread_ratio":
                ax.set_ylim(bottom=_SPREAD_FLOOR / 3)
            ax.set_title(labels[cell])
            ax.set_xlabel(GENERATION_LABEL)
            ax.set_ylabel(SIGMA_LABEL if metric == "spread_ratio" else _METRIC_LABELS.get(metric, metric))
            ax.label_outer()
        axes[0].legend(loc="lower left")
    return finish(fig, path)


_SPREAD_FLOOR = 1e-12


def _default_generations(recorded: np.ndarray) -> list[int]:
    horizon = int(recorded.max())
    targets = [1, max(1, horizon // 4), horizon]
    chosen = [int(recorded[np.abs(recorded - t).argmin()]) for t in targets]
    return sorted(set(chosen))


def density_figure(
    trajectories: pd.DataFrame,
    *,
    cells=None,
    generations=None,
    chains: int = 5,
    path=None,
) -> Figure:
    """Fitted 1-D densities of a few chains at selected generations, over the truth.

    Each panel (row = cell, column = generation) shades the true density (generation 0) and
    draws the fitted densities of the first ``chains`` replicates: N(mean, var) from float
    ``mean`` and ``var`` columns, or the whole mixture (modes, lost and merged ones included) from
    ``weights``, ``means`` and ``sigmas`` columns. Collapsed chains
    are tall narrow spikes; the y axis is capped at 4x the truth's peak so the truth stays
    readable, and each panel states the median spread ratio over all chains.

    Parameters
    ----------
    trajectories : pandas.DataFrame
        1-D trajectories: float ``mean`` and ``var`` columns, or mixture ``weights``, ``means``
        and ``sigmas`` columns (gmm1d).
    cells : sequence of int, optional
        Rows of panels; default the first three cells.
    generations : sequence of int, optional
        Columns; default three recorded generations near 1, T/4 and T.
    chains : int
        How many chains to draw per panel.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    require_columns(trajectories, ["cell", "replicate", "generation", "spread_ratio"], "trajectories")
    mixture = _is_mixture(trajectories)
    if not mixture and not is_one_d(trajectories):
        raise ValueError(
            "density_figure needs 1-D trajectories: float 'mean' and 'var' columns (no NaN), "
            "or mixture 'weights', 'means' and 'sigmas' columns"
        )
    if cells is None:
        cells = cell_table(trajectories).index[:3].tolist()
    table = pick_cells(trajectories, cells, 4)
    recorded = np.unique(trajectories["generation"])
    generations = _default_generations(recorded) if generations is None else list(generations)
    absent = sorted(set(generations) - set(recorded.tolist()))
    if absent:
        raise ValueError(f"generations {absent} are not recorded; recorded ones include {recorded[-5:].tolist()}")
    labels = cell_labels(table)
    columns = ["replicate", "generation"] + (list(_MIXTURE_COLUMNS) if mixture else ["mean", "var"])
    with style():
        fig, grid = panels(len(table) * len(generations), ncols=len(generations), panel=(4.0, 3.0))
        for r, cell in enumerate(table.index):
            rows = trajectories[trajectories["cell"] == cell]
            truth = _components(next(rows.loc[rows["generation"] == 0, columns].itertuples()))
            sd0 = float(np.sqrt((truth[0] * (truth[2] ** 2 + truth[1] ** 2)).sum() - (truth[0] * truth[1]).sum() ** 2))
            lo0, hi0 = float((truth[1] - 4 * truth[2]).min()), float((truth[1] + 4 * truth[2]).max())
            truth_x = np.linspace(lo0, hi0, 800)
            peak = _pdf(truth_x, *truth).max()
            shown = rows[rows["replicate"].isin(np.sort(rows["replicate"].unique())[:chains])]
            for c, gen in enumerate(generations):
                ax = grid[r * len(generations) + c]
                fits = [_components(fit) for fit in shown.loc[shown["generation"] == gen, columns].itertuples()]
                # Per panel: the truth, and every drawn chain's components (chains wander), with a
                # margin capped so one chain whose variance grew does not squash the rest.
                low, high = lo0, hi0
                for _, m, sd in fits:
                    margin = np.minimum(2 * sd, 4 * sd0)
                    low, high = min(low, (m - margin).min()), max(high, (m + margin).max())
                base = np.linspace(low, high, 600)
                ax.fill_between(base, _pdf(base, *truth), color="0.75", label="truth (generation 0)")
                for i, (w, m, sd) in enumerate(fits):
                    if not (sd > 0).any():
                        continue
                    # Add points around each component so narrow spikes are resolved.
                    spikes = (m[sd > 0, None] + sd[sd > 0, None] * np.linspace(-5, 5, 201)).ravel()
                    x = np.sort(np.concatenate([base, spikes]))
                    ax.plot(
                        x,
                        _pdf(x, w, m, sd),
                        lw=1.2,
                        color=f"C{i % 10}",
                        label=f"fitted, {len(fits)} chains" if i == 0 else None,
                    )
                median = rows.loc[rows["generation"] == gen, "spread_ratio"].median()
                ax.text(
                    0.98,
                    0.95,
                    f"median {SIGMA_LABEL}\n= {median:.3g}",
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=9,
                )
                ax.set_xlim(low, high)
                ax.set_ylim(0, 4 * peak)
                ax.set_title(f"{labels[cell]}; generation {gen}", fontsize=10)
                ax.set_xlabel("x")
                ax.set_ylabel("density (capped at 4× true peak)" if c == 0 else "")
        grid[0].legend(loc="upper left", fontsize=8)
    return finish(fig, path)
