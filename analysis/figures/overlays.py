"""Theory overlays drawn against the simulation, and 2-D density snapshots of mixture fits.

:func:`theory_curves_figure` draws a long table of simulated values and closed forms (as
:mod:`analysis._report_overlays` computes it); :func:`density_snapshots_figure` draws fitted 2-D
Gaussian-mixture densities of a few chains at a few generations over the truth's.
"""

from __future__ import annotations

import textwrap

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
    covariances : array of 4k floats (row-major k x 2 x 2), as the ``covariances`` column, or 4
        floats: one covariance shared by every component (a KDE's kernel)
    x, y : 1-D arrays
        Equally spaced grid coordinates.

    Components of weight 0 or with a singular covariance (a collapsed component) are left out.
    A KDE of more than :data:`_EXACT_KERNELS` points whose kernel spans two grid steps is
    evaluated by binning its points on the grid (linear binning) and convolving with the kernel
    (FFT): within about 1% of its peak, which a contour figure does not show.
    """
    w = np.asarray(weights, dtype=float)
    m = np.asarray(means, dtype=float).reshape(-1, 2)
    c = np.asarray(covariances, dtype=float).reshape(-1, 2, 2)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(c) == 1 and len(w) > _EXACT_KERNELS and _binnable(c[0], x, y):
        return _binned_kde(w, m, c[0], x, y)
    gx, gy = np.meshgrid(x, y)
    points = np.stack([gx, gy], axis=-1)
    if len(c) == 1 and len(w) > 1:
        return _shared_kernel(w, m, c[0], points)
    total = np.zeros(gx.shape)
    for weight, mean, cov in zip(w, m, np.broadcast_to(c, (len(w), 2, 2))):
        if weight > 0:
            total += weight * _gaussian(points - mean, cov)
    return total


def _shared_kernel(w: np.ndarray, m: np.ndarray, kernel: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A KDE's density, exactly: whitened by the kernel, in chunks of kernels (grid x chunk arrays)."""
    det = kernel[0, 0] * kernel[1, 1] - kernel[0, 1] * kernel[1, 0]
    if not det > 0 or not np.isfinite(det):
        return np.zeros(points.shape[:-1])
    whiten = np.linalg.inv(np.linalg.cholesky(kernel))
    grid = points.reshape(-1, 2) @ whiten.T
    centres = m @ whiten.T
    total = np.zeros(len(grid))
    for start in range(0, len(centres), 256):
        part = centres[start : start + 256]
        squared = ((grid[:, None, :] - part[None, :, :]) ** 2).sum(axis=-1)
        total += np.exp(-0.5 * squared) @ w[start : start + 256]
    return (total / (2 * np.pi * np.sqrt(det))).reshape(points.shape[:-1])


#: Kernels evaluated exactly; a KDE with more points is binned where its kernel is wide enough.
_EXACT_KERNELS = 64


def _binnable(kernel: np.ndarray, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether the kernel spans at least two grid steps along both axes (binning then errs by
    about 1% of the peak; measured 1e-2 at two steps)."""
    sd = np.sqrt(np.clip(np.linalg.eigvalsh(kernel), 0, None)).min()
    return bool(sd >= 2 * max(x[1] - x[0], y[1] - y[0]))


def _gaussian(offsets: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """N(0, cov) density at ``offsets`` (..., 2); zero for a singular or non-finite covariance."""
    det = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
    if not det > 0 or not np.isfinite(det):
        return np.zeros(offsets.shape[:-1])
    dx, dy = offsets[..., 0], offsets[..., 1]
    # the quadratic form of the 2 x 2 inverse, written out (einsum over a grid is ten times slower)
    quad = (cov[1, 1] * dx * dx - (cov[0, 1] + cov[1, 0]) * dx * dy + cov[0, 0] * dy * dy) / det
    return np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(det))


def _binned_kde(w: np.ndarray, m: np.ndarray, kernel: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    dx, dy = x[1] - x[0], y[1] - y[0]
    # linear binning: each point's weight split over the four grid nodes around it
    fx, fy = (m[:, 0] - x[0]) / dx, (m[:, 1] - y[0]) / dy
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    rx, ry = fx - ix, fy - iy
    grid = np.zeros((len(y), len(x)))
    for ox, oy, share in ((0, 0, (1 - rx) * (1 - ry)), (1, 0, rx * (1 - ry)), (0, 1, (1 - rx) * ry), (1, 1, rx * ry)):
        cx, cy = ix + ox, iy + oy
        inside = (cx >= 0) & (cx < len(x)) & (cy >= 0) & (cy < len(y))
        np.add.at(grid, (cy[inside], cx[inside]), (w * share)[inside])
    ox = (np.arange(len(x)) - (len(x) - 1) / 2) * dx
    oy = (np.arange(len(y)) - (len(y) - 1) / 2) * dy
    gx, gy = np.meshgrid(ox, oy)
    kernel_grid = _gaussian(np.stack([gx, gy], axis=-1), kernel)
    return np.clip(fftconvolve(grid, kernel_grid, mode="same"), 0, None)


def density_snapshots_figure(snapshots: pd.DataFrame, truth: dict, *, title: str = "", path=None) -> Figure:
    """Rows of panels, one row per cell and one panel per generation: the truth (grey: its
    density filled, or its samples) and each chain's fitted density as contour lines (one colour
    per chain) at 5%, 25% and 60% of that density's own peak, so that a fit that spread out far
    beyond the truth (a KDE under replace) is drawn as clearly as one that stayed. Each panel has
    its own window, covering the truth and that generation's fits: the axes show the scale.

    Parameters
    ----------
    snapshots : pandas.DataFrame
        One row per (cell, generation, replicate) with ``cell_label``, ``weights``, ``means`` and
        ``covariances`` (as :func:`mixture_density_2d` takes them).
    truth : dict
        Cell -> the truth: (weights, means, covariances), or an (m, 2) array of its samples.
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
    shares = np.array([0.05, 0.25, 0.6])
    with style():
        fig, axes = panels(len(cells) * ncols, ncols=ncols, panel=(3.4, 3.2))
        for row, cell in enumerate(cells):
            fits = snapshots[snapshots["cell"] == cell]
            samples = isinstance(truth[cell], np.ndarray)
            chains = sorted(fits["replicate"].unique())
            palette = dict(zip(chains, colours(len(chains), "plasma")))
            for col, generation in enumerate(generations[cell]):
                ax = axes[row * ncols + col]
                now = fits[fits["generation"] == generation]
                x, y = _window(truth[cell], now)
                if samples:
                    ax.scatter(*truth[cell].T, s=1, color="0.6", alpha=0.4, lw=0, rasterized=True)
                else:
                    true_density = mixture_density_2d(*truth[cell], x, y)
                    peak = float(true_density.max())
                    if peak > 0:
                        ax.contourf(x, y, true_density, levels=[*(peak * shares), 1.01 * peak], cmap="Greys", alpha=0.5)
                for f in now.itertuples():
                    density = mixture_density_2d(f.weights, f.means, f.covariances, x, y)
                    top = float(np.nanmax(density)) if density.size else 0.0
                    if np.isfinite(top) and top > 0:
                        ax.contour(x, y, density, levels=top * shares, colors=[palette[f.replicate]], linewidths=1.0)
                ax.set_xlim(x[0], x[-1])
                ax.set_ylim(y[0], y[-1])
                ax.set_aspect("equal", adjustable="box")
                ax.grid(False)
                # the cell's label (long for a generator axis) once per row, wrapped to the panel
                label = textwrap.fill(str(fits["cell_label"].iloc[0]), 44) + "\n" if col == 0 else ""
                ax.set_title(f"{label}generation {generation}", fontsize=8, loc="left" if col == 0 else "center")
        fig.suptitle(
            title
            or "Fitted densities (lines, one colour per chain; 5/25/60% of each one's peak) over the truth (grey)",
            fontsize=11,
        )
    return finish(fig, path)


def _window(truth, fits: pd.DataFrame, points: int = 121) -> tuple[np.ndarray, np.ndarray]:
    """A square grid covering the truth (its components 3 sd around each mean, or its samples'
    1%-99% range widened by a fifth) and the fits: every component's mean (a mixture), or the
    2%-98% range of the points (a KDE, more than 50 of them)."""
    if isinstance(truth, np.ndarray):
        low, high = np.quantile(truth, 0.01, axis=0), np.quantile(truth, 0.99, axis=0)
        low, high = low - 0.2 * (high - low), high + 0.2 * (high - low)
    else:
        weights, means, covs = truth
        m = np.asarray(means, dtype=float).reshape(-1, 2)
        c = np.broadcast_to(np.asarray(covs, dtype=float).reshape(-1, 2, 2), (len(m), 2, 2))
        sd = np.sqrt(np.clip(np.diagonal(c, axis1=1, axis2=2), 0, None)).max(axis=1)
        low, high = (m - 3 * sd[:, None]).min(axis=0), (m + 3 * sd[:, None]).max(axis=0)
    centres = np.concatenate([np.asarray(m, dtype=float).reshape(-1, 2) for m in fits["means"]] or [np.empty((0, 2))])
    centres = centres[np.isfinite(centres).all(axis=1)]
    if len(centres) > 50:  # a KDE's points: cover the bulk, not a few stray points
        low = np.minimum(low, np.quantile(centres, 0.02, axis=0))
        high = np.maximum(high, np.quantile(centres, 0.98, axis=0))
    elif len(centres):  # a mixture's components: every mean, with a margin
        low, high = np.minimum(low, centres.min(axis=0) - 1.0), np.maximum(high, centres.max(axis=0) + 1.0)
    middle, half = (low + high) / 2, max((high - low).max() / 2, 1e-9)
    return (
        np.linspace(middle[0] - half, middle[0] + half, points),
        np.linspace(middle[1] - half, middle[1] + half, points),
    )
