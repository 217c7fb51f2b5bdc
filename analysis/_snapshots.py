"""2-D density snapshots for the report: a few chains' fitted densities at the first, middle and
last recorded generation, over the truth.

Two declared sources (:data:`analysis.theory.OVERLAYS`): ``density_snapshots_2d`` reads the fits
from the trajectories' ``weights``, ``means`` and ``covariances`` columns (generation 0: the
truth); ``replayed_density_snapshots_2d`` is for fits the tables do not hold (a KDE is its
training points): it recomputes block 0 of a cell from the folder's spec and root seed, as
``sweep replay`` does (bit for bit the stored chains), and keeps the fitted parameters at the
chosen generations. Fits are drawn as Gaussian mixtures: a parameter object with ``weights``,
``means`` and ``covariances`` is one, one with ``points`` and ``kernel`` is a KDE (equal weights,
one shared kernel covariance); a truth that is neither (a scikit-learn shape) is drawn as samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis._cells import cell_labels
from analysis._report_context import FamilyRows, Report, few_cells
from analysis.figures.overlays import density_snapshots_figure

__all__ = ["snapshot_generations", "replay_fits", "snapshot_section"]

_CHAINS = 3
_TRUTH_SAMPLES = 3000
_MIXTURE_COLUMNS = ("weights", "means", "covariances")


def snapshot_generations(recorded) -> list[int]:
    """The first fitted, the middle and the last of the recorded generations (without duplicates)."""
    recorded = np.sort(np.asarray(recorded, dtype=np.int64))
    fitted = recorded[recorded > 0]
    if not fitted.size:
        return []
    middle = fitted[np.abs(fitted - fitted[-1] / 2).argmin()]
    return sorted({int(fitted[0]), int(middle), int(fitted[-1])})


def _as_mixtures(params: Any, chains: int) -> list[tuple] | None:
    """(weights, means, covariances) of the first ``chains`` chains of a batched fit, or None."""
    if all(hasattr(params, a) for a in _MIXTURE_COLUMNS):
        return [
            (
                np.asarray(params.weights[b]),
                np.asarray(params.means[b]).ravel(),
                np.asarray(params.covariances[b]).ravel(),
            )
            for b in range(chains)
        ]
    if hasattr(params, "points") and hasattr(params, "kernel"):
        out = []
        for b in range(chains):
            points = np.asarray(params.points[b])
            out.append((np.full(len(points), 1.0 / len(points)), points.ravel(), np.asarray(params.kernel[b]).ravel()))
        return out  # one shared 2 x 2 kernel: mixture_density_2d broadcasts it
    return None


def replay_fits(location: str, cell: int, generations: list[int], *, chains: int = _CHAINS) -> tuple[pd.DataFrame, Any]:
    """Recompute block 0 of ``cell`` and return its first chains' fits at ``generations``.

    Returns
    -------
    (fits, truth)
        ``fits``: one row per (generation, replicate) with ``weights``, ``means`` and
        ``covariances`` (None where the fit is not a mixture or a KDE); ``truth``: the truth as
        such a tuple, or an (m, 2) array of its samples.
    """
    from threadpoolctl import threadpool_limits

    from sweep.engine import BlockRun
    from sweep.grid import block_rng
    from sweep.replay import stored_cells

    meta, spec, grid = stored_cells(location)
    target = grid[cell]
    target.family.prepare(location, write=False)
    run = BlockRun(
        target.family, target, 0, rng=block_rng(int(meta["root_entropy"]), target, 0), events_spec=spec.events
    )
    horizon = spec.generations
    run.start(horizon)
    chains = min(chains, run.batch)
    rows = []
    with threadpool_limits(1):  # as the tasks run: the same rounding, so the same chains
        for generation in sorted(generations):
            run.advance(generation, horizon, np.zeros(horizon + 1, dtype=bool))  # no metrics: only the fits
            for b, mixture in enumerate(_as_mixtures(run.state.params, chains) or [(None,) * 3] * chains):
                rows.append(dict(zip(("generation", "replicate", *_MIXTURE_COLUMNS), (generation, b, *mixture))))
    truth = _as_mixtures(run.truth, 1)
    if truth is None:
        samples = target.family.sample(run.truth, _TRUTH_SAMPLES, rng=np.random.default_rng(0))
        truth = np.asarray(samples)[0]
    else:
        truth = truth[0]
    return pd.DataFrame(rows), truth


def _stored(fam: FamilyRows, cells: list[int], generations: list[int]) -> tuple[pd.DataFrame, dict]:
    rows = fam.traj[fam.traj["cell"].isin(cells)]
    chains = sorted(rows["replicate"].unique())[:_CHAINS]
    truth = {}
    for cell in cells:
        first = rows[(rows["cell"] == cell) & (rows["generation"] == 0)].iloc[0]
        truth[cell] = tuple(first[c] for c in _MIXTURE_COLUMNS)
    picked = rows[rows["generation"].isin(generations) & rows["replicate"].isin(chains)]
    return picked[["cell", "generation", "replicate", *_MIXTURE_COLUMNS]], truth


def _two_d(traj: pd.DataFrame) -> bool:
    """Whether the rows are 2-D fits (a ``mean`` of two values)."""
    return "mean" in traj and len(traj) > 0 and np.asarray(traj["mean"].iloc[0]).size == 2


def snapshot_section(rep: Report, fam: FamilyRows, *, replay: bool) -> None:
    """Add the density-snapshot figure of a 2-D family (nothing for other dimensions).

    Parameters
    ----------
    rep, fam
        The report and one family's rows.
    replay : bool
        Recompute the fits (block 0 of at most two cells, as ``sweep replay``) instead of reading
        the mixture columns.
    """
    traj = fam.traj
    generations = snapshot_generations(traj["generation"].unique())
    if not _two_d(traj) or not generations:
        return
    location = rep.results
    if replay and location is None:
        return
    cells = few_cells(fam.cells, 2 if replay else 3, "first")
    if replay:
        parts, truth = [], {}
        for cell in cells:
            fits, truth[cell] = replay_fits(str(location), int(cell), generations)
            parts.append(fits.assign(cell=cell))
        picked = pd.concat(parts, ignore_index=True)
        picked = picked[picked["weights"].notna()]
    else:
        if not all(c in traj for c in _MIXTURE_COLUMNS) or traj["means"].isna().any():
            return
        picked, truth = _stored(fam, cells, generations)
    if picked.empty:
        return
    labels = cell_labels(fam.cells)
    picked = picked.assign(cell_label=picked["cell"].map(labels))
    chains = sorted(picked["replicate"].unique())
    source = "recomputed from the spec and seed (block 0, as sweep replay)" if replay else "from the trajectories"
    rep.figure(
        density_snapshots_figure(picked, truth),
        f"density_2d_{fam.tag}",
        f"Fitted 2-D densities of chains {', '.join(map(str, chains))} at generations "
        f"{', '.join(map(str, generations))} ({source}; contours at 5%, 25% and 60% of the true peak) "
        "over the truth (grey)",
    )
