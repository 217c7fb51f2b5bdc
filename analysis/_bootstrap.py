"""Bootstrap of log-log lines through Kaplan-Meier medians: resampling, fast medians, line fits.

A bootstrap CI of a rate needs thousands of KM medians; lifelines takes ~8 ms per fit, so
1000 resamples of 20 cells would take minutes. Resampling chains only reweights them, so the
KM curves of all resamples follow from a few matrix products over (chains x distinct times).
The arithmetic mirrors lifelines' (``S = exp(cumsum(log(n - d) - log n))``, median = first time
with ``S <= 1/2``) and ``tests/analysis/test_bootstrap.py`` checks the two agree exactly; the
point estimates reported everywhere still come from lifelines.

The resampling itself is ``scipy.stats.bootstrap`` (chain indices as the data, one sample per
independently resampled group of chains), and each line draws from its own stream
(:func:`stream`), so its interval does not depend on what else is in the frame.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
from scipy import stats

#: The fit columns of a line that has too few finite medians to fit (rates and forgetting rates).
NO_FIT = {
    "slope": np.nan,
    "slope_lower": np.nan,
    "slope_upper": np.nan,
    "intercept": np.nan,
    "intercept_lower": np.nan,
    "intercept_upper": np.nan,
    "boot_dropped_share": np.nan,
}


def stream(seed: int, key) -> np.random.Generator:
    """The bootstrap generator of one line: ``SeedSequence(seed, spawn_key=(hash of key,))``.

    Parameters
    ----------
    seed : int
        The caller's seed (non-negative).
    key : tuple
        The line's group key (e.g. ``("gaussian", "replace")``); numpy scalars and Python values of
        the same value hash alike.

    Returns
    -------
    numpy.random.Generator
        Same seed and key, same stream, whatever other lines are analysed alongside.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    values = [v.item() if isinstance(v, np.generic) else v for v in (key if isinstance(key, tuple) else (key,))]
    text = json.dumps(values, default=str)
    # A 63-bit digest of the key's text: stable across processes, unlike hash().
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(digest,)))


def draw_counts(draws: np.ndarray, chains: int) -> np.ndarray:
    """How often each chain is drawn in each resample: (B, chains) counts from (B, m) drawn indices."""
    draws = np.atleast_2d(np.asarray(draws)).astype(np.int64)
    n_boot = draws.shape[0]
    offsets = (np.arange(n_boot) * chains)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * chains).reshape(n_boot, chains)


def _sample(chains: int) -> np.ndarray:
    # scipy.stats.bootstrap refuses one-observation samples; a lone chain drawn twice has the
    # same KM curve (KM is invariant to scaling all weights), so it stands in for it.
    return np.arange(chains) if chains > 1 else np.zeros(2, dtype=np.int64)


def bootstrap_line(x: np.ndarray, chains: list[int], medians, *, n_boot: int, rng: np.random.Generator):
    """Bootstrap distribution of the log-log line through per-group KM medians.

    Parameters
    ----------
    x : (K,) array
        Abscissae of the K medians (n, or a count).
    chains : list of int
        Size of each independently resampled group of chains (one per cell for rates; a single
        group for forgetting, whose bins share chains).
    medians : callable
        ``medians(*counts)`` with one (B, chains_i) array of draw counts per group returns the
        (B, K) medians of those resamples.
    n_boot : int
        Resamples (``scipy.stats.bootstrap``'s ``n_resamples``).
    rng : numpy.random.Generator
        The line's stream (:func:`stream`).

    Returns
    -------
    intercepts, slopes : (B,) arrays
        NaN for a resample in which some median is inf (fewer than half the resampled chains
        collapsed by T): such a resample is dropped whole, never refitted on the other points,
        so the interval over the rest is conditional on every median being finite.
    dropped_share : float
        The share of such resamples.
    """

    def statistic(*draws, axis=-1):
        values = medians(*(draw_counts(d, c) for d, c in zip(draws, chains)))
        intercept, slope = loglog_fit(x, values)
        finite = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
        return np.stack([np.where(finite, intercept, np.nan), np.where(finite, slope, np.nan)])

    with warnings.catch_warnings():
        # NaN rows (dropped resamples) make scipy's own percentile interval NaN and warn; the
        # interval is taken over the finite resamples by percentile_interval instead.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            [_sample(c) for c in chains],
            statistic,
            n_resamples=n_boot,
            vectorized=True,
            paired=False,
            axis=-1,
            method="percentile",
            rng=rng,
        )
    intercepts, slopes = result.bootstrap_distribution
    return intercepts, slopes, float(np.mean(~np.isfinite(slopes)))


def chain_time_counts(chain: np.ndarray, duration: np.ndarray, observed: np.ndarray):
    """Per chain and distinct time: events and removals, for :func:`km_medians`.

    Parameters
    ----------
    chain : array of int
        Index of each row's chain, 0..C-1 (a chain may own several rows, e.g. one per symbol).
    duration, observed : arrays
        Time and event flag of each row.

    Returns
    -------
    times : (U,) array
    events, removed : (C, U) arrays
    """
    times, where = np.unique(np.asarray(duration, dtype=float), return_inverse=True)
    chains = int(chain.max()) + 1
    events = np.zeros((chains, len(times)))
    removed = np.zeros((chains, len(times)))
    np.add.at(removed, (chain, where), 1.0)
    np.add.at(events, (chain, where), np.asarray(observed, dtype=float))
    return times, events, removed


def km_medians(weights: np.ndarray, times: np.ndarray, events: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """KM median of each weighted resample (``inf`` where the curve stays above one half).

    ``weights`` has shape (B, C); ``events`` and ``removed`` (C, U) from :func:`chain_time_counts`.
    """
    deaths = weights @ events
    gone = weights @ removed
    at_risk = gone.sum(axis=1, keepdims=True) - np.cumsum(gone, axis=1) + gone
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.log(at_risk - deaths) - np.log(at_risk)
    # No one at risk: the curve stays where it was (lifelines forward-fills the same way).
    step = np.where(at_risk > 0, step, 0.0)
    below = np.exp(np.cumsum(step, axis=1)) <= 0.5
    first = below.argmax(axis=1)
    return np.where(below.any(axis=1), times[first], np.inf)


def loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line ``ln y = a + b ln x`` for every row of ``y``; skips non-finite points.

    ``x`` has shape (K,), ``y`` (B, K). Rows with fewer than two usable points, or a single
    distinct x, give NaN. Returns (intercepts, slopes), each of shape (B,).
    """
    lx = np.broadcast_to(np.log(np.asarray(x, dtype=float)), np.shape(y))
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(np.asarray(y, dtype=float))
    use = np.isfinite(ly) & np.isfinite(lx)
    w = use.astype(float)
    count = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = (w * np.where(use, lx, 0)).sum(axis=1) / count
        my = (w * np.where(use, ly, 0)).sum(axis=1) / count
        dx = np.where(use, lx - mx[:, None], 0)
        dy = np.where(use, ly - my[:, None], 0)
        sxx = (dx * dx).sum(axis=1)
        slope = (dx * dy).sum(axis=1) / sxx
    bad = (count < 2) | ~(sxx > 1e-12)
    slope = np.where(bad, np.nan, slope)
    return np.where(bad, np.nan, my - slope * mx), slope


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval over the finite values (NaN, NaN if none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
