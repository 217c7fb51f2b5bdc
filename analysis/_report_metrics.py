"""The report's metric parts, for every family from its declarations: fan charts of the declared
metrics that no other section draws, and a table of each cell's final-generation medians with
distribution-free confidence intervals (the "table per method": rows are cells with the
coordinates that vary between them, such as the policy and a swept family field).

Which columns are metrics comes from the family's declared ``metrics`` (sweep.json), never from
its name: a metric is drawn when it is a numeric (not boolean, not list) per-chain column of the
trajectories with a finite value after generation 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import _markdown as md
from analysis._cells import axis_name, coordinate_columns, format_value, varying
from analysis._report_context import FamilyRows, Report, few_cells, sorted_cells
from analysis.figures.metrics import MAX_CELLS, metric_fans

__all__ = ["declared_metrics", "median_interval", "final_medians", "metrics_section"]

#: Panels per fan figure and metric columns per table: more reads badly on a page.
PANELS = 12
TABLE_METRICS = 5
LEVEL = 0.95


def declared_metrics(fam: FamilyRows) -> list[str]:
    """The declared metrics that are numeric per-chain columns with a finite value after
    generation 0, distance and spread metric first, then in declaration order."""
    info, traj = fam.info, fam.traj
    later = traj["generation"] > 0
    order = [m for m in (info.distance_metric, info.spread_metric) if m] + list(info.metrics)
    out = []
    for metric in dict.fromkeys(order):
        if metric not in traj or metric in coordinate_columns(traj):
            continue
        column = traj[metric]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        if np.isfinite(column[later].to_numpy(dtype=float, na_value=np.nan)).any():
            out.append(metric)
    return out


def median_interval(values, level: float = LEVEL) -> tuple[float, float, float, float]:
    """The median of ``values`` and its distribution-free (order-statistic) confidence interval.

    Parameters
    ----------
    values : array-like
        One value per chain; non-finite values are left out.
    level : float
        Wanted coverage.

    Returns
    -------
    (median, lower, upper, coverage) : tuple of float
        ``[x_(k), x_(m-k+1)]`` for the largest k whose exact coverage under Binomial(m, 1/2),
        ``1 - 2 P(B <= k - 1)``, is at least ``level``; with too few values for that (m < 6
        at 95%), the range [min, max] and its smaller coverage ``1 - 2^(1-m)``. NaNs when no
        value is finite (coverage 0).
    """
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    m = x.size
    if m == 0:
        return np.nan, np.nan, np.nan, 0.0
    k = np.arange(1, m // 2 + 1)
    coverage = 1 - 2 * stats.binom.cdf(k - 1, m, 0.5)
    ok = k[coverage >= level]
    k = int(ok[-1]) if ok.size else 1  # coverage falls as k grows: the last k that still reaches it
    covered = float(1 - 2 * stats.binom.cdf(k - 1, m, 0.5)) if m > 1 else 0.0
    # + 0.0 turns a -0.0 (an entropy of exactly nothing) into 0.0, which prints as "0", not "-0".
    return float(np.median(x)) + 0.0, float(x[k - 1]) + 0.0, float(x[m - k]) + 0.0, covered


def final_medians(traj: pd.DataFrame, metrics, generation: int, level: float = LEVEL) -> pd.DataFrame:
    """Per cell and metric at ``generation``: ``median``, ``lower``, ``upper``, ``coverage``,
    ``chains`` (finite values used) and ``missing`` (non-finite values left out)."""
    rows = traj[traj["generation"] == generation]
    out = []
    for cell, group in rows.groupby("cell", sort=True):
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float, na_value=np.nan)  # nullable ints: NA -> NaN
            median, lower, upper, coverage = median_interval(values, level)
            finite = int(np.isfinite(values).sum())
            out.append(
                {
                    "cell": int(cell),
                    "metric": metric,
                    "median": median,
                    "lower": lower,
                    "upper": upper,
                    "coverage": coverage,
                    "chains": finite,
                    "missing": len(values) - finite,
                }
            )
    return pd.DataFrame(out, columns=["cell", "metric", "median", "lower", "upper", "coverage", "chains", "missing"])


def _fans(rep: Report, fam: FamilyRows, metrics: list[str]) -> None:
    cells = few_cells(fam.cells, MAX_CELLS)
    rep.lines += ["### Declared metrics over generations", ""]
    for start in range(0, len(metrics), PANELS):
        chunk = metrics[start : start + PANELS]
        suffix = "" if len(metrics) <= PANELS else f"_{start // PANELS + 1}"
        rep.figure(
            metric_fans(fam.traj, chunk, cells=cells),
            f"metrics_{fam.tag}{suffix}",
            "Declared metrics over generations, per cell: median and 50% / 90% of chains"
            + ("" if len(cells) == len(fam.cells) else f" ({len(cells)} of {len(fam.cells)} cells)"),
        )


def _entry(row) -> str:
    text = md.estimate(row.median, row.lower, row.upper)
    if row.coverage < LEVEL and np.isfinite(row.median):
        text += " †"
    if row.missing:
        text += f" ({row.missing} non-finite left out)"
    return text


def _table(rep: Report, fam: FamilyRows, metrics: list[str]) -> None:
    table = final_medians(fam.traj, metrics, fam.horizon)
    if table.empty:
        return
    cells = sorted_cells(fam.cells)
    shown = varying(cells, [c for c in coordinate_columns(cells) if c not in ("cell", "cell_key", "policy_kind")])
    shown = [c for c in shown if c not in ("keep", "synthetic", "real") or "policy" not in shown]
    lookup = {(r.cell, r.metric): r for r in table.itertuples()}
    chains = fam.traj[fam.traj["generation"] == fam.horizon].groupby("cell").size()
    rep.lines += [
        f"### Final-generation medians per cell (T = {fam.horizon})",
        "",
        f"Median over chains at T of each declared metric, with a distribution-free {LEVEL:.0%} interval "
        "(order statistics: Binomial(m, 1/2) counts of chains below the median)."
        + (
            " † marks cells with too few chains for that level (fewer than 6 at 95%): the range [min, max] "
            "is shown instead."
            if ((table["coverage"] < LEVEL) & table["median"].notna()).any()
            else ""
        ),
        "",
    ]
    # What each column means, as the family declares it (the tables name columns only).
    meanings = [f"- `{m}`: {fam.info.metrics[m]}" for m in metrics if fam.info.metrics.get(m)]
    rep.lines += meanings + ([""] if meanings else [])
    for start in range(0, len(metrics), TABLE_METRICS):
        chunk = metrics[start : start + TABLE_METRICS]
        rows = []
        for cell, coords in zip(cells["cell"], cells.to_dict("records")):
            rows.append(
                [int(cell)]
                + [format_value(coords[c]) for c in shown]
                + [int(chains.get(cell, 0))]
                + [_entry(lookup[(cell, m)]) if (cell, m) in lookup else "–" for m in chunk]
            )
        rep.lines += [md.table(["cell"] + [axis_name(c) for c in shown] + ["chains"] + chunk, rows), ""]


def metrics_section(rep: Report, fam: FamilyRows) -> None:
    """Fan charts of the declared metrics not drawn elsewhere, and the final-median table."""
    metrics = declared_metrics(fam)
    if not metrics:
        return
    drawn = {fam.info.distance_metric, fam.info.spread_metric}
    fans = [m for m in metrics if m not in drawn]
    if fans:
        _fans(rep, fam, fans)
    _table(rep, fam, metrics)
