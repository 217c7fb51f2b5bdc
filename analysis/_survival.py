"""Collapse times per chain and Kaplan-Meier survival per cell (lifelines).

A chain that has not collapsed by the horizon T is right-censored at T (``observed=False``), so
its collapse time is only known to exceed T. Events checked every k generations
(``checked_every`` = k > 1) are also interval-censored: a time t means the event was first seen
at the check at t, so it happened in (t - k, t]; ``collapse_times`` carries the interval's first
generation as ``lower``. Averaging the observed times alone is biased low;
Kaplan-Meier uses the censored chains as "still at risk" and is the honest estimate. Its median
is ``inf`` when the survival curve never drops to one half by T: that is kept as ``inf`` in
every table (and shown as "> T" in reports), never replaced by T.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times, restricted_mean_survival_time

from analysis._cells import cell_table, coordinate_columns, require_columns

__all__ = ["collapse_times", "survival", "survival_curves", "fit_km", "interval_start"]

_EVENT_COLUMNS = ("cell", "replicate", "event", "threshold", "generation", "observed")


def _select_threshold(rows: pd.DataFrame, event: str, threshold: float | None) -> pd.DataFrame:
    known = np.sort(rows["threshold"].dropna().unique())
    if threshold is None:
        if len(known) > 1:
            raise ValueError(
                f"events hold several thresholds for event '{event}': {known.tolist()}; pass threshold=<one of them>"
            )
        return rows
    match = np.isclose(rows["threshold"].to_numpy(dtype=float), float(threshold), rtol=1e-9, atol=0)
    if not match.any():
        raise ValueError(
            f"events have no rows with event='{event}' and threshold={threshold!r}; "
            f"thresholds present for that event: {known.tolist()}"
        )
    return rows[match]


def collapse_times(
    events: pd.DataFrame,
    event: str = "spread_below",
    threshold: float | None = None,
    *,
    horizon: int | None = None,
) -> pd.DataFrame:
    """Collapse (event) time of every chain, right-censored at the horizon.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table of ``docs/schema.md`` (``analysis.load_events``).
    event : str
        Which event: ``spread_below``, ``distance_above``, ``collapse``, ``diverged``,
        ``symbol_lost`` or another per-symbol event (``word_lost``: rows with a ``symbol``).
    threshold : float, optional
        The event's threshold; required when the events hold several for ``event``.
    horizon : int, optional
        The horizon T. Default: the generation of the censored rows (all censored rows sit at
        T); when every chain collapsed, the largest collapse time (the whole curve is then seen,
        so restricted means up to it equal those up to T).

    Returns
    -------
    pandas.DataFrame
        One row per chain (per chain and symbol for a per-symbol event): the cell coordinates,
        ``replicate``, ``event``, ``threshold``, ``duration`` (generation of the event, or T if
        censored), ``observed`` (bool) and ``horizon``; a per-symbol event adds ``symbol`` and
        ``initial_count``; last, ``lower``: the first generation the event can have happened
        at, ``duration - checked_every + 1`` for observed rows (``duration`` itself when events
        were checked every generation, or the table has no ``checked_every``) and ``duration``
        for censored ones, so that the event generation lies in ``[lower, duration]``.
        Kaplan-Meier on ``lower`` instead of ``duration`` bounds the curve from below.
    """
    require_columns(events, _EVENT_COLUMNS, "events")
    rows = events[events["event"] == event]
    if rows.empty:
        raise ValueError(
            f"events have no rows with event='{event}'; events present: "
            f"{sorted(events['event'].dropna().unique().tolist())}"
        )
    rows = _select_threshold(rows, event, threshold)
    # One row per chain and symbol for a per-symbol event (symbol_lost, a family's word_lost):
    # known by its rows carrying a symbol, not by its name.
    per_symbol = event == "symbol_lost" or (
        "symbol" in rows and rows["symbol"].notna().all() and (rows["symbol"] >= 0).all()
    )
    keys = ["cell", "replicate"] + (["symbol"] if per_symbol else [])
    if per_symbol:
        require_columns(rows, ["symbol", "initial_count"], "events")
    if rows.duplicated(keys).any():
        raise ValueError(
            f"events hold more than one '{event}' row per {'/'.join(keys)}; "
            "a results folder must not mix sweeps (check for parts of two runs in one folder)"
        )
    observed = rows["observed"].astype(bool).to_numpy()
    duration = rows["generation"].to_numpy(dtype=np.int64)
    if horizon is None:
        horizon = int(duration[~observed].max()) if (~observed).any() else int(duration.max())
    elif (duration > horizon).any():
        raise ValueError(f"horizon={horizon} is below the largest event generation {duration.max()}")
    extra = ["symbol", "initial_count"] if per_symbol else []
    out = rows[coordinate_columns(rows) + ["replicate", "event", "threshold"] + extra].copy()
    out["duration"] = duration
    out["observed"] = observed
    out["horizon"] = int(horizon)
    out["lower"] = interval_start(duration, observed, rows["checked_every"] if "checked_every" in rows else None)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def interval_start(duration, observed, checked_every=None) -> np.ndarray:
    """First generation of each event's interval: ``duration - k + 1`` for observed events checked
    every k generations (never below 1), ``duration`` for censored ones and for k = 1."""
    duration = np.asarray(duration, dtype=np.int64)
    if checked_every is None:
        return duration.copy()
    k = np.asarray(pd.Series(checked_every).fillna(1), dtype=np.int64)
    start = np.minimum(np.maximum(duration - k + 1, 1), duration)
    return np.where(np.asarray(observed, dtype=bool), start, duration)


def fit_km(durations, observed, confidence: float = 0.95) -> KaplanMeierFitter:
    """Fit lifelines' Kaplan-Meier estimator (exponential Greenwood confidence bands)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return KaplanMeierFitter(alpha=1 - confidence).fit(
        np.asarray(durations, dtype=float), np.asarray(observed, dtype=bool)
    )


def _rmst_se(kmf: KaplanMeierFitter, horizon: float) -> float:
    """Standard error of the restricted mean (Klein & Moeschberger, eq. 4.5.2).

    lifelines' ``return_variance`` gives the variance of min(T, horizon) across chains, not of the
    estimate, hence this: Var = sum over event times t_j <= horizon of A_j^2 d_j / (n_j (n_j - d_j)),
    with A_j the area under the curve from t_j to the horizon.
    """
    curve = kmf.survival_function_.iloc[:, 0]
    grid = curve.index.to_numpy(dtype=float)
    inside = grid <= horizon
    grid, level = grid[inside], curve.to_numpy()[inside]
    # Area under the step curve from each grid time to the horizon (right-continuous steps).
    widths = np.diff(np.append(grid, horizon))
    area_from = np.cumsum((level * widths)[::-1])[::-1]
    table = kmf.event_table.loc[grid]
    d = table["observed"].to_numpy(dtype=float)
    n = table["at_risk"].to_numpy(dtype=float)
    # The last chain's event adds no variance (Greenwood's convention, as in lifelines).
    use = (d > 0) & (n > d)
    return float(np.sqrt(np.sum(area_from[use] ** 2 * d[use] / (n[use] * (n[use] - d[use])))))


def _group_fits(times: pd.DataFrame, confidence: float):
    require_columns(times, ["cell", "duration", "observed", "horizon"], "times")
    if times.empty:
        raise ValueError("times is empty; build it with analysis.collapse_times(events, ...)")
    for cell, rows in times.groupby("cell", sort=True):
        yield cell, rows, fit_km(rows["duration"], rows["observed"], confidence)


def survival(times: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier summary of collapse per cell.

    Parameters
    ----------
    times : pandas.DataFrame
        Output of :func:`collapse_times`.
    confidence : float
        Level of the confidence intervals.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the cell coordinates, ``chains``, ``events`` (observed collapses),
        ``censored_share``, ``median`` with ``median_lower`` / ``median_upper`` (from the
        confidence band of the curve; ``inf`` where the curve or band stays above one half by
        T), ``rmst`` (restricted mean collapse time up to the horizon, lifelines) with
        ``rmst_se``, and ``horizon``.
    """
    cells = cell_table(times)
    records = []
    for cell, rows, kmf in _group_fits(times, confidence):
        horizon = float(rows["horizon"].iloc[0])
        band = median_survival_times(kmf.confidence_interval_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rmst = restricted_mean_survival_time(kmf, t=horizon)
        observed = rows["observed"].to_numpy(dtype=bool)
        records.append(
            {
                "cell": cell,
                "chains": len(rows),
                "events": int(observed.sum()),
                "censored_share": float(1 - observed.mean()),
                "median": float(kmf.median_survival_time_),
                "median_lower": float(band.iloc[0, 0]),
                "median_upper": float(band.iloc[0, 1]),
                "rmst": float(rmst),
                "rmst_se": _rmst_se(kmf, horizon),
                "horizon": int(horizon),
            }
        )
    summary = pd.DataFrame.from_records(records)
    return cells.reset_index(drop=True).merge(summary, on="cell", how="right")


def survival_curves(times: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier curves with confidence bands, long format, for plotting.

    Returns
    -------
    pandas.DataFrame
        One row per cell and time on the curve's timeline (0, every event or censoring time):
        the cell coordinates, ``generation``, ``survival`` (probability of not having collapsed
        by then), ``lower`` and ``upper`` (exponential Greenwood band).
    """
    cells = cell_table(times)
    parts = []
    for cell, _, kmf in _group_fits(times, confidence):
        band = kmf.confidence_interval_
        parts.append(
            pd.DataFrame(
                {
                    "cell": cell,
                    "generation": kmf.survival_function_.index.to_numpy(dtype=float),
                    "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
                    "lower": band.iloc[:, 0].to_numpy(),
                    "upper": band.iloc[:, 1].to_numpy(),
                }
            )
        )
    return cells.reset_index(drop=True).merge(pd.concat(parts, ignore_index=True), on="cell", how="right")
