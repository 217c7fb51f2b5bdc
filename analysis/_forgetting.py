"""Forgetting: how long a symbol survives given how often it was seen.

A per-symbol event row (the categorical family's ``symbol_lost``, the language models'
``word_lost``, any event a family declares ``per_symbol``) says when a symbol's fitted
probability first hit 0 (right-censored at T), together with its count in the first training set. Symbols are binned by that count and each
bin gets a Kaplan-Meier median forgetting time (censoring-aware: rare symbols are lost early and
common ones often outlive T). Theory (Feller diffusion, ``analysis.theory.forgetting_median``)
predicts a median of about ``2c / ln 2`` generations: slope 1 on log-log axes.

Symbols of one chain are not independent (their counts sum to n), so the KM bands per bin are
only indicative; the CI of the slope comes from resampling whole chains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines.utils import median_survival_times

from analysis._bootstrap import (
    NO_FIT,
    bootstrap_line,
    chain_time_counts,
    km_medians,
    loglog_fit,
    percentile_interval,
    stream,
)
from analysis._cells import cell_table
from analysis._survival import collapse_times, fit_km

__all__ = ["forgetting_times", "forgetting_rates"]


def _edges(counts: np.ndarray, bins, event: str) -> np.ndarray:
    if bins is not None:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 1:
            raise ValueError(f"bins must be increasing count edges starting at >= 1, e.g. [1, 2, 4, 8], got {bins!r}")
        return edges
    distinct = np.unique(counts[counts > 0])
    if distinct.size == 0:
        raise ValueError(f"no {event} rows with initial_count >= 1; nothing to bin")
    if distinct.size <= 12:
        return np.append(distinct, distinct[-1] + 1).astype(float)
    # Powers of two: equal width on the log axis the rate is fitted on.
    return 2.0 ** np.arange(0, np.floor(np.log2(distinct[-1])) + 2)


def _binned(events: pd.DataFrame, bins, event: str) -> pd.DataFrame:
    times = collapse_times(events, event)
    counts = times["initial_count"].to_numpy(dtype=float)
    edges = _edges(counts, bins, event)
    times["bin"] = np.searchsorted(edges, counts, side="right") - 1
    inside = (counts >= edges[0]) & (counts < edges[-1])
    times["bin_low"] = np.where(inside, edges[np.clip(times["bin"], 0, len(edges) - 2)], np.nan)
    times["bin_high"] = np.where(inside, edges[np.clip(times["bin"] + 1, 1, len(edges) - 1)], np.nan)
    return times[inside]


def forgetting_times(
    events: pd.DataFrame, *, bins=None, confidence: float = 0.95, event: str = "symbol_lost"
) -> pd.DataFrame:
    """Kaplan-Meier median forgetting time per cell and initial-count bin.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table with ``event`` rows (``analysis.load_events``).
    bins : sequence of int, optional
        Count edges ``[e0, e1, ...]``; bin i holds ``e_i <= count < e_{i+1}``. Default: one bin
        per distinct count when there are at most 12, else powers of two. Count 0 (lost at
        generation 1 by construction) is never binned.
    confidence : float
        Level of the KM confidence band.
    event : str
        The per-symbol event (one row per chain and symbol, with ``initial_count``).

    Returns
    -------
    pandas.DataFrame
        One row per cell and non-empty bin: the cell coordinates, ``bin_low``, ``bin_high``,
        ``count`` (geometric mean of the symbols' initial counts), ``symbols`` (rows), ``chains``,
        ``censored_share``, ``median``, ``median_lower``, ``median_upper`` (inf where the curve
        or band stays above one half by T) and ``horizon``.
    """
    times = _binned(events, bins, event)
    records = []
    for (cell, low), rows in times.groupby(["cell", "bin_low"], sort=True):
        kmf = fit_km(rows["duration"], rows["observed"], confidence)
        band = median_survival_times(kmf.confidence_interval_)
        records.append(
            {
                "cell": cell,
                "bin_low": low,
                "bin_high": rows["bin_high"].iloc[0],
                "count": float(np.exp(np.log(rows["initial_count"].to_numpy(dtype=float)).mean())),
                "symbols": len(rows),
                "chains": rows["replicate"].nunique(),
                "censored_share": float(1 - rows["observed"].mean()),
                "median": float(kmf.median_survival_time_),
                "median_lower": float(band.iloc[0, 0]),
                "median_upper": float(band.iloc[0, 1]),
                "horizon": int(rows["horizon"].iloc[0]),
            }
        )
    return cell_table(times).reset_index(drop=True).merge(pd.DataFrame.from_records(records), on="cell", how="right")


def forgetting_rates(
    events: pd.DataFrame,
    *,
    bins=None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    event: str = "symbol_lost",
) -> pd.DataFrame:
    """Log-log line of median forgetting time versus initial count, per cell, with bootstrap CI.

    Fits ``ln median = a + b ln count`` over the bins of :func:`forgetting_times` whose median
    is finite; chains are resampled (all their symbols together) to get the intervals.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table with ``event`` rows (``analysis.load_events``).
    bins : sequence of int, optional
        As in :func:`forgetting_times`.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Level of the percentile intervals.
    seed : int
        Root of the bootstrap's streams; each cell draws from its own (seed and cell number), so
        a cell's interval does not depend on the other cells in ``events``.
    event : str
        As in :func:`forgetting_times`.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the cell coordinates, ``bins``, ``bins_used``, ``excluded_counts``
        (bins left out for an infinite median, as ``low-high``), ``slope`` with
        ``slope_lower`` / ``slope_upper``, ``intercept`` with ``intercept_lower`` /
        ``intercept_upper``, ``boot_dropped_share`` (share of resamples in which some used bin's
        median became inf: dropped whole, so the intervals are conditional on every used bin's
        median being finite), ``theory_slope`` (1, Feller diffusion), ``n_boot`` and ``note``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    table = forgetting_times(events, bins=bins, confidence=confidence, event=event)
    times = _binned(events, bins, event)
    records = []
    for cell, cell_bins in table.groupby("cell", sort=True):
        finite = cell_bins[np.isfinite(cell_bins["median"]) & (cell_bins["median"] > 0)]
        excluded = cell_bins.drop(index=finite.index)
        record = {
            "cell": cell,
            "bins": len(cell_bins),
            "bins_used": len(finite),
            "theory_slope": 1.0,
            "excluded_counts": ", ".join(
                f"{int(a)}-{int(b) - 1}" for a, b in zip(excluded["bin_low"], excluded["bin_high"])
            ),
            "n_boot": n_boot,
            "note": "",
        }
        if len(finite) < 2:
            record.update(NO_FIT, note="fewer than two count bins with a finite median")
            records.append(record)
            continue
        x = finite["count"].to_numpy()
        intercept, slope = loglog_fit(x, finite["median"].to_numpy()[None, :])
        rows = times[times["cell"] == cell]
        replicates, chain = np.unique(rows["replicate"].to_numpy(), return_inverse=True)
        counts = []
        for low in finite["bin_low"]:
            in_bin = (rows["bin_low"] == low).to_numpy()
            counts.append(
                chain_time_counts(
                    chain[in_bin], rows["duration"].to_numpy()[in_bin], rows["observed"].to_numpy()[in_bin]
                )
            )
        # Whole chains are resampled (all their symbols together): one sample shared by the bins.
        # chain_time_counts sizes its arrays by the largest chain index present in the bin.
        boot_intercept, boot_slope, dropped = bootstrap_line(
            x,
            [len(replicates)],
            lambda weights: np.stack([km_medians(weights[:, : c[1].shape[0]], *c) for c in counts], axis=1),
            n_boot=n_boot,
            rng=stream(seed, (int(cell),)),
        )
        record.update(slope=float(slope[0]), intercept=float(intercept[0]), boot_dropped_share=dropped)
        record["slope_lower"], record["slope_upper"] = percentile_interval(boot_slope, confidence)
        record["intercept_lower"], record["intercept_upper"] = percentile_interval(boot_intercept, confidence)
        records.append(record)
    columns = [
        "bins",
        "bins_used",
        "excluded_counts",
        "slope",
        "slope_lower",
        "slope_upper",
        "intercept",
        "intercept_lower",
        "intercept_upper",
        "boot_dropped_share",
        "theory_slope",
        "n_boot",
        "note",
    ]
    cells = cell_table(times).reset_index(drop=True)
    return cells.merge(pd.DataFrame.from_records(records), on="cell", how="right")[list(cells.columns) + columns]
