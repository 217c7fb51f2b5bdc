"""Theory overlays drawn against the simulation, and 2-D density snapshots of mixture fits.

:func:`theory_curves_figure` draws a long table of simulated values and closed forms (as
:mod:`analysis._report_overlays` computes it); :func:`density_snapshots_figure` draws fitted 2-D
Gaussian-mixture densities of a few chains at a few generations over the truth's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis._cells import require_columns
from analysis.figures._common import GENERATION_LABEL, colours, finish, panels, style

__all__ = ["theory_curves_figure", "mixture_density_2d", "density_snapshots_figure"]

_CURVE_COLUMNS = ["cell", "cell_label", "curve", "bound", "generation", "simulated", "se", "theory"]


def theory_curves_figure(table: pd.DataFrame, *, ylabel: str, title: str = "", path=None) -> Figure:
    """One panel per cell: the simulated value with its 95% band (1.96 standard errors) and every
    closed form drawn over it (solid: an expectation or probability; dashed: a bound).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``cell``, ``cell_label``, ``curve`` (the closed form's label), ``bound`` (``""``,
        ``"lower"`` or ``"upper"``), ``generation``, ``simulated``, ``se`` and ``theory``.
    ylabel, title : str
        The simulated quantity's axis label, and the figure's title.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    require_columns(table, _CURVE_COLUMNS, "table")
    cells = table.drop_duplicates("cell")[["cell", "cell_label"]].to_numpy()
    with style():
        fig, axes = panels(len(cells))
        for ax, (cell, label) in zip(axes, cells):
            rows = table[table["cell"] == cell]
            # the simulation is the same for every curve of the cell: draw it once
            sim = rows.drop_duplicates("generation").sort_values("generation")
            g = sim["generation"].to_numpy(dtype=float)
            mean, half = sim["simulated"].to_numpy(dtype=float), 1.96 * sim["se"].to_numpy(dtype=float)
            ax.fill_between(
                g, mean - half, mean + half, color="tab:blue", alpha=0.25, lw=0, label="simulated, 95% band"
            )
            ax.plot(g, mean, color="tab:blue", lw=1.4, label="simulated")
            for curve, lines in rows.groupby("curve", sort=False):
                lines = lines.sort_values("generation")
                dashed = bool(lines["bound"].fillna("").astype(str).iloc[0])
                ax.plot(
                    lines["generation"],
                    lines["theory"],
                    color="k" if not dashed else "tab:red",
                    lw=1.2,
                    ls="--" if dashed else "-",
                    label=f"theory: {curve}",
                )
            ax.set_title(str(label))
            ax.set_xlabel(GENERATION_LABEL)
            ax.set_ylabel(ylabel)
            ax.legend(loc="best", fontsize=7)
        if title:
            fig.suptitle(title, fontsize=11)
    return finish(fig, path)


def mixture_density_2d(weights, means, covariances, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Density of a 2-D Gaussian mixture on the grid ``x`` by ``y``: shape ``(len(y), len(x))``.

    Parameters
    ----------
    weights : array of k floats
    means : array of 2k floats (row-major k x 2), as the ``means`` column
    covariances : array of 4k floats (row-major k x 2 x 2), as the ``covariances`` column
    x, y : 1-D arrays
        Grid coordinates.

    Components of weight 0 or with a singular covariance (a collapsed component) are left out.
    """
    w = np.asarray(weights, dtype=float)
    m = np.asarray(means, dtype=float).reshape(-1, 2)
    c = np.asarray(covariances, dtype=float).reshape(-1, 2, 2)
    gx, gy = np.meshgrid(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    points = np.stack([gx, gy], axis=-1)
    total = np.zeros(gx.shape)
    for weight, mean, cov in zip(w, m, c):
        det = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
        if weight <= 0 or not det > 0:
            continue
        inverse = np.array([[cov[1, 1], -cov[0, 1]], [-cov[1, 0], cov[0, 0]]]) / det
        d = points - mean
        quad = np.einsum("...i,ij,...j->...", d, inverse, d)
        total += weight * np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(det))
    return total


def density_snapshots_figure(snapshots: pd.DataFrame, truth: dict, *, title: str = "", path=None) -> Figure:
    """Rows of panels, one row per cell and one panel per generation: the truth's density filled
    (grey) and each chain's fitted density as contour lines (one colour per chain).

    Parameters
    ----------
    snapshots : pandas.DataFrame
        One row per (cell, generation, replicate) with ``cell_label``, ``weights``, ``means`` and
        ``covariances`` (the columns of a ``gmm`` sweep in 2-D).
    truth : dict
        Cell -> (weights, means, covariances) of the truth (generation 0's row).
    title : str
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    require_columns(
        snapshots, ["cell", "cell_label", "generation", "replicate", "weights", "means", "covariances"], "snapshots"
    )
    cells = list(dict.fromkeys(snapshots["cell"]))
    generations = {c: sorted(snapshots.loc[snapshots["cell"] == c, "generation"].unique()) for c in cells}
    ncols = max(len(g) for g in generations.values())
    with style():
        fig, axes = panels(len(cells) * ncols, ncols=ncols, panel=(3.4, 3.2))
        for row, cell in enumerate(cells):
            x, y = _window(truth[cell], snapshots[snapshots["cell"] == cell])
            true_density = mixture_density_2d(*truth[cell], x, y)
            levels = true_density.max() * np.array([0.05, 0.25, 0.6])
            chains = sorted(snapshots.loc[snapshots["cell"] == cell, "replicate"].unique())
            palette = colours(len(chains), "plasma")
            for col, generation in enumerate(generations[cell]):
                ax = axes[row * ncols + col]
                ax.contourf(x, y, true_density, levels=[*levels, 1.01 * true_density.max()], cmap="Greys", alpha=0.5)
                at = snapshots[(snapshots["cell"] == cell) & (snapshots["generation"] == generation)]
                for colour, fit in zip(palette, at.sort_values("replicate").itertuples()):
                    density = mixture_density_2d(fit.weights, fit.means, fit.covariances, x, y)
                    if density.max() > levels[0]:
                        ax.contour(x, y, density, levels=levels, colors=[colour], linewidths=1.0)
                ax.set_aspect("equal", adjustable="box")
                ax.grid(False)
                ax.set_title(f"{at['cell_label'].iloc[0]}\ngeneration {generation}", fontsize=9)
        fig.suptitle(title or "Fitted densities (lines, one colour per chain) over the truth (grey)", fontsize=11)
    return finish(fig, path)


def _window(truth: tuple, fits: pd.DataFrame, points: int = 121) -> tuple[np.ndarray, np.ndarray]:
    """A square grid covering the truth's components and every fitted component (3 sd around each mean)."""
    centres, spreads = [], []
    for weights, means, covs in [truth, *fits[["weights", "means", "covariances"]].itertuples(index=False)]:
        m = np.asarray(means, dtype=float).reshape(-1, 2)
        c = np.asarray(covs, dtype=float).reshape(-1, 2, 2)
        keep = np.asarray(weights, dtype=float) > 0
        centres.append(m[keep])
        spreads.append(np.sqrt(np.clip(np.diagonal(c[keep], axis1=1, axis2=2), 0, None)).max(axis=1, initial=0))
    centres, spreads = np.concatenate(centres), np.concatenate(spreads)
    finite = np.isfinite(centres).all(axis=1) & np.isfinite(spreads)
    centres, spreads = centres[finite], spreads[finite]
    low, high = (centres - 3 * spreads[:, None]).min(axis=0), (centres + 3 * spreads[:, None]).max(axis=0)
    middle, half = (low + high) / 2, max((high - low).max() / 2, 1e-9)
    return (
        np.linspace(middle[0] - half, middle[0] + half, points),
        np.linspace(middle[1] - half, middle[1] + half, points),
    )
