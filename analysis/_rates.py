"""How fast collapse happens: median collapse time versus n, and per-cell decay rates.

``rates`` fits ``ln median = a + b ln n`` across the cells of each policy; theory says b -> 1 for
the unbiased 1-D Gaussian under ``replace`` (``analysis.theory.collapse_time_slope``). Its CI
comes from a bootstrap over chains: chains are resampled within each cell, KM medians
recomputed and the line refitted (``scipy.stats.bootstrap`` over chain indices, one stream per
line), so the CI carries both the censoring and the spread of chains. Cells whose median is ``inf`` (fewer than half collapsed by T) cannot sit on a log-log
line; they are left out of the fit and named in ``excluded_n``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import theory
from analysis._bootstrap import (
    NO_FIT,
    bootstrap_line,
    chain_time_counts,
    km_medians,
    loglog_fit,
    percentile_interval,
    stream,
)
from analysis._cells import cell_table, group_columns, is_gaussian_1d, is_replace, require_columns
from analysis._survival import survival

__all__ = ["rates", "decay_rates"]


def _format_n(values) -> str:
    return ", ".join(str(int(v)) for v in sorted(values))


def rates(
    times: pd.DataFrame,
    *,
    by: str = "policy",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Log-log slope of median collapse time versus n, per policy, with a bootstrap CI.

    Parameters
    ----------
    times : pandas.DataFrame
        Output of :func:`analysis.collapse_times` (one row per chain).
    by : str
        Column whose values are the lines (default ``policy``; ``family`` is added when present).
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Level of the percentile intervals.
    seed : int
        Root of the bootstrap's streams: each line draws from its own stream, derived from the
        seed and its ``by`` values (``SeedSequence(seed, spawn_key=(hash,))``), so the same seed
        gives the same interval for a line whatever other lines are in ``times``.

    Returns
    -------
    pandas.DataFrame
        One row per line: the ``by`` columns, ``cells``, ``cells_used``, ``excluded_n`` (n of the
        cells left out because their median is inf, comma-separated), ``n_min`` / ``n_max`` of the
        cells used, ``slope`` with ``slope_lower`` / ``slope_upper``, ``intercept`` (of ln t on
        ln n) with ``intercept_lower`` / ``intercept_upper``, ``boot_dropped_share`` (share of
        resamples in which some used cell's median became inf: they are dropped whole, so the
        intervals are conditional on every used cell's median being finite), ``n_boot`` and
        ``note`` (why a slope is NaN).
    """
    require_columns(times, ["cell", "n", "replicate", "duration", "observed"], "times")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if "symbol" in times:
        raise ValueError("rates needs one row per chain; for symbol_lost times use analysis.forgetting_rates")
    medians = survival(times, confidence=confidence).set_index("cell")["median"]
    keys = group_columns(times, by)
    records = []
    for key, rows in times.groupby(keys, sort=True, dropna=False):
        cells = cell_table(rows)
        finite = [c for c in cells.index if np.isfinite(medians[c]) and medians[c] > 0]
        used = cells.loc[finite]
        record = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        record.update(
            cells=len(cells),
            cells_used=len(used),
            excluded_n=_format_n(cells.drop(index=finite)["n"]),
            n_min=used["n"].min() if len(used) else np.nan,
            n_max=used["n"].max() if len(used) else np.nan,
            n_boot=n_boot,
            note="",
        )
        if used["n"].nunique() < 2:
            note = (
                "only one n in this line: no slope to fit"
                if cells["n"].nunique() < 2
                else "fewer than two n with a finite median (median > T); raise T or relax the threshold"
            )
            record.update(NO_FIT, note=note)
            records.append(record)
            continue
        x = used["n"].to_numpy(dtype=float)
        intercept, slope = loglog_fit(x, medians[finite].to_numpy()[None, :])
        # Chains are resampled within each cell, independently across cells.
        counts = []
        for cell in finite:
            chains = rows[rows["cell"] == cell]
            counts.append(chain_time_counts(np.arange(len(chains)), chains["duration"], chains["observed"]))
        boot_intercept, boot_slope, dropped = bootstrap_line(
            x,
            [c[1].shape[0] for c in counts],
            lambda *weights: np.stack([km_medians(w, *c) for w, c in zip(weights, counts)], axis=1),
            n_boot=n_boot,
            rng=stream(seed, tuple(record[k] for k in keys)),
        )
        record.update(slope=float(slope[0]), intercept=float(intercept[0]), boot_dropped_share=dropped)
        record["slope_lower"], record["slope_upper"] = percentile_interval(boot_slope, confidence)
        record["intercept_lower"], record["intercept_upper"] = percentile_interval(boot_intercept, confidence)
        records.append(record)
    columns = keys + [
        "cells",
        "cells_used",
        "excluded_n",
        "n_min",
        "n_max",
        "slope",
        "slope_lower",
        "slope_upper",
        "intercept",
        "intercept_lower",
        "intercept_upper",
        "boot_dropped_share",
        "n_boot",
        "note",
    ]
    return pd.DataFrame.from_records(records)[columns]


def decay_rates(
    trajectories: pd.DataFrame,
    *,
    generation: int | None = None,
    estimator: str = "unbiased",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per-cell decay rate per generation, with a normal CI and the ``replace`` closed form.

    * gaussian (``spread_ratio``): ``rate`` = mean over chains of ``ln(spread_ratio_t^2) / t``,
      the drift of the log variance (per dimension for d > 1); theory for the 1-D gaussian
      family under ``replace``: ``theory.log_var_drift(n, estimator)`` (none for gmm1d or kde).
    * categorical (``heterozygosity``): ``rate = ln(mean_t H / H_0) / t``; theory under
      ``replace``: ``ln(1 - 1/n)``. Its CI uses the delta method.

    Parameters
    ----------
    trajectories : pandas.DataFrame
        The trajectories table (``analysis.load``).
    generation : int, optional
        The t used; default the last recorded generation (the horizon T).
    estimator : {"unbiased", "ml"}
        Which Gaussian fit the sweep used, for the theory column only.
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the cell coordinates, ``quantity`` (``log_var`` or
        ``log_heterozygosity``), ``generation``, ``chains``, ``rate``, ``rate_lower``,
        ``rate_upper``, ``theory_rate`` (NaN where no closed form applies) and ``missing``
        (chains whose value at t is NaN or whose log is not finite, left out). Chains left out
        for a spread ratio of 0 are the most collapsed ones (their variance underflowed), so
        with ``missing > 0`` the mean over the others is biased towards 0: read it with
        ``missing`` (the report shows both).
    """
    require_columns(trajectories, ["cell", "replicate", "generation"], "trajectories")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    t = int(trajectories["generation"].max()) if generation is None else int(generation)
    if t < 1:
        raise ValueError(f"generation must be >= 1 to measure a rate per generation, got {t}")
    cells = cell_table(trajectories)
    replace = is_replace(cells)
    records = []
    for cell, rows in trajectories.groupby("cell", sort=True):
        at_t = rows[rows["generation"] == t]
        if at_t.empty:
            raise ValueError(f"cell {cell} has no trajectory rows at generation {t}; pick a recorded generation")
        n = float(cells.loc[cell, "n"]) if "n" in cells else np.nan
        record = {"cell": cell, "generation": t}
        if "spread_ratio" in rows and rows["spread_ratio"].notna().any():
            with np.errstate(divide="ignore"):
                values = 2 * np.log(at_t["spread_ratio"].to_numpy(dtype=float)) / t
            ok = np.isfinite(values)
            mean, se = values[ok].mean(), values[ok].std(ddof=1) / np.sqrt(ok.sum())
            theory_rate = theory.log_var_drift(n, estimator) if replace[cell] and is_gaussian_1d(rows) else np.nan
            record.update(quantity="log_var", rate=mean, rate_lower=mean - z * se, rate_upper=mean + z * se)
        elif "heterozygosity" in rows and rows["heterozygosity"].notna().any():
            h0 = rows.loc[rows["generation"] == 0, "heterozygosity"].mean()
            values = at_t["heterozygosity"].to_numpy(dtype=float)
            ok = np.isfinite(values)
            mean_h = values[ok].mean()
            se_log = values[ok].std(ddof=1) / np.sqrt(ok.sum()) / mean_h
            with np.errstate(divide="ignore"):
                rate = np.log(mean_h / h0) / t
            theory_rate = float(np.log(1 - 1 / n)) if replace[cell] else np.nan
            record.update(
                quantity="log_heterozygosity",
                rate=rate,
                rate_lower=rate - z * se_log / t,
                rate_upper=rate + z * se_log / t,
            )
        else:
            raise ValueError(
                f"cell {cell}: trajectories have neither 'spread_ratio' (gaussian) nor "
                "'heterozygosity' (categorical) values; decay_rates knows no rate for this family"
            )
        record.update(chains=int(ok.sum()), theory_rate=float(theory_rate), missing=int((~ok).sum()))
        records.append(record)
    columns = ["quantity", "generation", "chains", "rate", "rate_lower", "rate_upper", "theory_rate", "missing"]
    out = pd.DataFrame.from_records(records)
    return cells.reset_index(drop=True).merge(out, on="cell", how="right")[list(cells.columns) + columns]
