"""What a finished trial measured: its objectives, from the Parquet parts of its cell.

Nothing is taken from the tasks' word: the cell's events (and, for ``final``, its trajectories
at the horizon) are read back from the folder, as ``analysis`` would read them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweep.errors import UsageError
from sweep.search.spec import Objective, SearchSpec


def _rows(events, objective: Objective):
    rows = events[events["event"] == objective.row_event]
    if objective.threshold is not None:
        rows = rows[np.isclose(rows["threshold"].to_numpy(dtype=float), objective.threshold, rtol=1e-12, atol=0)]
    return rows


def measure_cell(location: str, cell: Any, search: SearchSpec, horizon: int) -> dict[str, Any]:
    """Every objective of one cell.

    Returns
    -------
    dict
        ``chains`` (chains read back), ``values`` (objective name -> measured value: a
        probability, a median time, a statistic, a cost) and ``counts`` (for probabilities:
        ``{"count": k, "chains": m, "lower": ..., "upper": ...}``, a Wilson interval at the
        search's level; for median times, the Kaplan-Meier CI).
    """
    import analysis
    from analysis._probability import wilson_interval

    where = [("cell", "=", cell.index)]
    events = analysis.load_events(
        location, filters=where, columns=["replicate", "event", "threshold", "generation", "observed"]
    )
    chains = int(events["replicate"].nunique())
    if chains != cell.replicates:
        raise UsageError(
            f"results '{location}': cell {cell.index} holds {chains} chains where {cell.replicates} were "
            "computed; the output location must be storage this driver sees"
        )
    values: dict[str, float] = {}
    counts: dict[str, dict[str, float]] = {}
    for objective in search.objectives:
        if objective.name == "collapse_probability":
            rows = _rows(events, objective)
            k, m = int(rows["observed"].sum()), len(rows)
            lower, upper = wilson_interval(k, m, search.level)
            values[objective.name] = k / m
            counts[objective.name] = {"count": k, "chains": m, "lower": lower, "upper": upper}
        elif objective.name == "median_collapse_time":
            times = analysis.collapse_times(
                events.assign(cell=cell.index), objective.row_event, objective.threshold, horizon=horizon
            )
            row = analysis.survival(times).iloc[0]
            values[objective.name] = float(row["median"])
            counts[objective.name] = {
                "lower": float(row["median_lower"]),
                "upper": float(row["median_upper"]),
                "chains": int(row["chains"]),
            }
        elif objective.name == "final":
            frame = analysis.load(location, filters=where + [("generation", "=", horizon)], columns=[objective.metric])
            data = frame[objective.metric].to_numpy(dtype=float)
            with np.errstate(all="ignore"):
                statistic = np.nanmedian(data) if objective.statistic == "median" else np.nanmean(data)
            values[objective.name] = float(statistic)
            counts[objective.name] = {"chains": int(np.isfinite(data).sum())}
        elif objective.name == "real_fraction":
            values[objective.name] = realised_real_fraction(cell.policy, cell.n)
        elif objective.name == "n":
            values[objective.name] = float(cell.n)
    return {"chains": chains, "values": values, "counts": counts}


def realised_real_fraction(policy: Any, n: int) -> float:
    """The share of real data in each generation's training set, as the engine draws it: the
    policy's real fraction rounded to whole samples (``Policy.counts``), not the nominal
    fraction (fresh_real 0.004 at n = 100 takes no real sample). Generation 1, all real under
    every policy, is left out: it is the same for every cell."""
    if policy.grows:  # accumulate kinds draw no fresh real data after generation 1
        return 0.0
    return policy.counts(n)[2] / n


def told_values(search: SearchSpec, values: dict[str, float]) -> list[float]:
    """The values told to optuna, in objective order: a probability with a target is told as its
    distance to the target (so that the sampler spends its trials near the boundary)."""
    out = []
    for objective in search.objectives:
        value = values[objective.name]
        out.append(abs(value - objective.target) if objective.target is not None else value)
    return out


def violations(search: SearchSpec, values: dict[str, float]) -> list[float]:
    """Each constraint's violation (<= 0: satisfied), as optuna's ``constraints_func`` wants."""
    # a measure that is undefined (NaN) cannot show the constraint holds
    return [1.0 if math.isnan(values[c.name]) else c.violation(values[c.name]) for c in search.constraints]
