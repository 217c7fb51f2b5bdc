"""Probabilities across chains with Wilson score intervals.

``divergence_probability`` asks, per cell and generation, how many chains have drifted beyond
``eps`` (a metric of the trajectories); ``collapsed_by`` asks how many have collapsed by then
(from the exact event times). Censoring happens only at the horizon T, so for every t <= T each
chain's status is known and a binomial proportion is exact: no survival machinery is needed.
Wilson intervals keep honest coverage near 0 and 1, where Wald intervals collapse to a point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis._cells import as_generations, cell_table, require_columns
from analysis._survival import collapse_times

__all__ = ["wilson_interval", "divergence_probability", "collapsed_by"]


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion k / n.

    Parameters
    ----------
    k, n : int or array of int
        Successes and trials (broadcast together); ``n = 0`` gives NaN.
    confidence : float
        Coverage, in (0, 1).

    Returns
    -------
    (lower, upper) : floats or arrays
        ``(k + z^2/2) / (n + z^2) -+ z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k!r}, n={n!r}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (k_arr + z**2 / 2) / (n_arr + z**2)
        half = z / (n_arr + z**2) * np.sqrt(k_arr * (n_arr - k_arr) / n_arr + z**2 / 4)
        # k = 0 and k = n sit exactly on the edges (centre - half cancels only up to round-off).
        lower = np.where(n_arr > 0, np.where(k_arr == 0, 0.0, np.clip(centre - half, 0, 1)), np.nan)
        upper = np.where(n_arr > 0, np.where(k_arr == n_arr, 1.0, np.clip(centre + half, 0, 1)), np.nan)
    if lower.ndim == 0:
        return float(lower), float(upper)
    return lower, upper


def _with_intervals(counts: pd.DataFrame, confidence: float) -> pd.DataFrame:
    counts["probability"] = counts["count"] / counts["chains"].where(counts["chains"] > 0)
    counts["lower"], counts["upper"] = wilson_interval(
        counts["count"].to_numpy(), counts["chains"].to_numpy(), confidence
    )
    return counts


def divergence_probability(
    trajectories: pd.DataFrame,
    eps: float,
    generations=None,
    metric: str = "w2",
    *,
    direction: str = "above",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """P(metric > eps at generation t) across chains, per cell and generation.

    Parameters
    ----------
    trajectories : pandas.DataFrame
        The trajectories table of ``docs/schema.md`` (``analysis.load``).
    eps : float
        The threshold.
    generations : int or sequence of int, optional
        Which recorded generations; default all recorded ones.
    metric : str
        A metric column: ``w2``, ``tv``, ``spread_ratio``, ``tail_mass``, ...
    direction : {"above", "below"}
        Count chains with ``metric > eps`` (default) or ``metric < eps`` (e.g. a spread ratio
        that has shrunk below ``eps``).
    confidence : float
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per cell and generation: the cell coordinates, ``generation``, ``metric``,
        ``eps``, ``chains`` (with a finite-or-infinite metric), ``count`` (beyond ``eps``),
        ``probability``, ``lower``, ``upper``, and ``missing`` (chains whose metric is NaN at
        that generation: left out of ``chains``, since NaN says nothing about the distance).
    """
    require_columns(trajectories, ["cell", "replicate", "generation"], "trajectories")
    if metric not in trajectories.columns:
        numeric = [c for c in trajectories.columns if pd.api.types.is_float_dtype(trajectories[c])]
        raise ValueError(f"trajectories have no metric column '{metric}'; numeric columns: {numeric}")
    if direction not in ("above", "below"):
        raise ValueError(f"direction must be 'above' or 'below', got {direction!r}")
    frame = trajectories
    if generations is not None:
        wanted = as_generations(generations)
        recorded = np.unique(frame["generation"])
        absent = np.setdiff1d(wanted, recorded)
        if absent.size:
            raise ValueError(
                f"generations {absent.tolist()} are not recorded in the trajectories (thinned); "
                f"recorded generations include {recorded[:5].tolist()}...{recorded[-3:].tolist()}"
            )
        frame = frame[frame["generation"].isin(wanted)]
    values = frame[metric].to_numpy(dtype=float)
    known = ~np.isnan(values)
    beyond = (values > eps) if direction == "above" else (values < eps)
    work = pd.DataFrame(
        {
            "cell": frame["cell"].to_numpy(),
            "generation": frame["generation"].to_numpy(),
            "chains": known.astype(np.int64),
            "count": (beyond & known).astype(np.int64),
            "missing": (~known).astype(np.int64),
        }
    )
    counts = work.groupby(["cell", "generation"], sort=True).sum().reset_index()
    counts.insert(2, "metric", metric)
    counts.insert(3, "eps", float(eps))
    counts = _with_intervals(counts, confidence)
    cells = cell_table(trajectories).reset_index(drop=True)
    columns = ["generation", "metric", "eps", "chains", "count", "probability", "lower", "upper", "missing"]
    return cells.merge(counts, on="cell", how="right")[list(cells.columns) + columns]


def collapsed_by(
    events: pd.DataFrame,
    event: str = "spread_below",
    threshold: float | None = None,
    generations=None,
    *,
    horizon: int | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """P(the chain's event has happened by generation t), per cell and generation.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table (``analysis.load_events``).
    event, threshold :
        As in :func:`analysis.collapse_times`.
    generations : int or sequence of int, optional
        Default 1..T. Must not exceed the horizon T (beyond it the status is unknown).
    horizon : int, optional
        The horizon T the chains were censored at (the report passes the folder's). Default:
        guessed from the events as :func:`analysis.collapse_times` does, which is only the last
        event's generation when every chain of ``events`` collapsed.
    confidence : float
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per cell and generation: the cell coordinates, ``generation``, ``event``,
        ``threshold``, ``chains``, ``count`` (collapsed by then), ``probability``, ``lower``,
        ``upper``.
    """
    if event == "symbol_lost":
        raise ValueError("collapsed_by counts chains; for 'symbol_lost' use analysis.forgetting_times")
    times = collapse_times(events, event, threshold, horizon=horizon)
    horizon = int(times["horizon"].iloc[0])
    wanted = np.arange(1, horizon + 1) if generations is None else as_generations(generations)
    if wanted.max() > horizon:
        raise ValueError(
            f"generations go up to {wanted.max()} but the horizon is T={horizon}: a chain censored at T "
            "may or may not collapse later; ask for generations <= T"
        )
    parts = []
    for cell, rows in times.groupby("cell", sort=True):
        hit = rows["duration"].to_numpy()[rows["observed"].to_numpy(dtype=bool)]
        parts.append(
            pd.DataFrame(
                {
                    "cell": cell,
                    "generation": wanted,
                    "chains": len(rows),
                    "count": np.searchsorted(np.sort(hit), wanted, side="right"),
                }
            )
        )
    counts = pd.concat(parts, ignore_index=True)
    counts.insert(2, "event", event)
    counts.insert(3, "threshold", times["threshold"].iloc[0])
    counts = _with_intervals(counts, confidence)
    cells = cell_table(times).reset_index(drop=True)
    return cells.merge(counts, on="cell", how="right")
