"""Synthetic results frames with known answers, following docs/schema.md.

Gaussian chains under ``replace`` use the exact sufficient-statistic recursion
(``var' = var * chi2_{n-1}/(n-1)``, ``mean' ~ N(mean, var/n)``); with fresh real data they sample.
Categorical chains are Wright-Fisher: ``counts' ~ Multinomial(n, counts/n)``. Events are detected
at every generation, as the engine does, and censored at T.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

Q01, Q99 = stats.norm.ppf([0.01, 0.99])


def _coords(family, cell, n, real, replicates):
    kind = "replace" if real == 0 else "fresh_real"
    return {
        "family": family,
        "cell": np.int32(cell),
        "cell_key": np.int64(1000 + cell),
        "n": np.int64(n),
        "policy": kind if real == 0 else f"fresh_real({real:g})",
        "policy_kind": kind,
        "keep": 0.0,
        "synthetic": 1.0 - real,
        "real": float(real),
        "replicate": np.arange(replicates, dtype=np.int64),
        "seed": "12345",
    }


def _long(coords, generations, **metrics):
    """Trajectory rows (chain-major, then generation) from (R, T+1) metric arrays."""
    replicates = len(coords["replicate"])
    frame = {
        **coords,
        "replicate": np.repeat(coords["replicate"], generations + 1),
        "generation": np.tile(np.arange(generations + 1, dtype=np.int32), replicates),
    }
    return pd.DataFrame({**frame, **{name: values.ravel() for name, values in metrics.items()}})


def _first(hit: np.ndarray, horizon: int):
    """First generation (column index) where ``hit`` holds, or T censored."""
    any_hit = hit.any(axis=1)
    return np.where(any_hit, hit.argmax(axis=1), horizon), any_hit


def gaussian_chains(n, replicates, generations, *, real=0.0, estimator="unbiased", rng):
    """Means and variances of shape (R, T+1), generation 0 = truth N(0, 1)."""
    mean = np.zeros((replicates, generations + 1))
    var = np.ones((replicates, generations + 1))
    fresh = int(round(real * n))
    for t in range(1, generations + 1):
        m, v = mean[:, t - 1], var[:, t - 1]
        if fresh == 0:
            mean[:, t] = rng.normal(m, np.sqrt(v / n))
            var[:, t] = v * rng.chisquare(n - 1, replicates) / (n - 1)
        else:
            data = np.concatenate(
                [
                    rng.normal(m[:, None], np.sqrt(v)[:, None], (replicates, n - fresh)),
                    rng.normal(0.0, 1.0, (replicates, fresh)),
                ],
                axis=1,
            )
            mean[:, t], var[:, t] = data.mean(axis=1), data.var(axis=1, ddof=1)
        if estimator == "ml":
            var[:, t] *= (n - 1) / n
    return mean, var


def gaussian_frames(
    ns=(10, 40),
    reals=(0.0,),
    replicates=40,
    generations=30,
    *,
    ratios=(0.5,),
    eps=(0.5,),
    estimator="unbiased",
    seed=0,
    trajectories=True,
):
    """Trajectories and events frames of 1-D Gaussian cells over ``ns`` x ``reals``.

    ``trajectories=False`` returns ``None`` in their place (building them is most of the cost).
    """
    rng = np.random.default_rng(seed)
    traj, events = [], []
    for cell, (n, real) in enumerate([(n, r) for r in reals for n in ns]):
        mean, var = gaussian_chains(n, replicates, generations, real=real, estimator=estimator, rng=rng)
        sd = np.sqrt(var)
        w2 = np.sqrt(mean**2 + (sd - 1) ** 2)
        coords = _coords("gaussian", cell, n, real, replicates)
        if trajectories:
            tail = stats.norm.cdf((Q01 - mean) / sd) + stats.norm.sf((Q99 - mean) / sd)
            traj.append(_long(coords, generations, spread_ratio=sd, w2=w2, mean=mean, var=var, tail_mass=tail))
        for name, values, thresholds in (("spread_below", sd, ratios), ("distance_above", w2, eps)):
            for th in thresholds:
                gen, seen = _first(values < th if name == "spread_below" else values > th, generations)
                events.append(
                    pd.DataFrame(
                        {
                            **coords,
                            "event": name,
                            "threshold": float(th),
                            "symbol": None,
                            "initial_count": None,
                            "generation": gen.astype(np.int32),
                            "observed": seen,
                        }
                    )
                )
    return (pd.concat(traj, ignore_index=True) if trajectories else None), pd.concat(events, ignore_index=True)


def categorical_frames(ns=(50,), probs=None, replicates=40, generations=60, *, eps=(0.3,), seed=0):
    """Wright-Fisher categorical cells; generation g's fit is counts_g / n (counts_1 from the truth)."""
    rng = np.random.default_rng(seed)
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02]) if probs is None else np.asarray(probs)
    k = len(probs)
    traj, events = [], []
    for cell, n in enumerate(ns):
        p = np.empty((replicates, generations + 1, k))
        p[:, 0] = probs
        counts = np.empty((replicates, generations + 1, k), dtype=np.int64)
        for t in range(1, generations + 1):
            counts[:, t] = rng.multinomial(n, p[:, t - 1])
            p[:, t] = counts[:, t] / n
        alive = p > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(alive, p * np.log(p), 0).sum(axis=2)
        tv = 0.5 * np.abs(p - probs).sum(axis=2)
        coords = _coords("categorical", cell, n, 0.0, replicates)
        traj.append(
            _long(
                coords,
                generations,
                surviving=alive.sum(axis=2).astype(np.int32),
                entropy=entropy,
                tv=tv,
                max_prob=p.max(axis=2),
                heterozygosity=1 - (p**2).sum(axis=2),
            )
        )
        gen, seen = _first(alive.sum(axis=2) == 1, generations)
        events.append(
            pd.DataFrame(
                {
                    **coords,
                    "event": "collapse",
                    "threshold": np.nan,
                    "symbol": None,
                    "initial_count": None,
                    "generation": gen.astype(np.int32),
                    "observed": seen,
                }
            )
        )
        for th in eps:
            gen, seen = _first(tv > th, generations)
            events.append(
                pd.DataFrame(
                    {
                        **coords,
                        "event": "distance_above",
                        "threshold": float(th),
                        "symbol": None,
                        "initial_count": None,
                        "generation": gen.astype(np.int32),
                        "observed": seen,
                    }
                )
            )
        for s in range(k):
            gen, seen = _first(~alive[:, :, s], generations)
            events.append(
                pd.DataFrame(
                    {
                        **coords,
                        "event": "symbol_lost",
                        "threshold": np.nan,
                        "symbol": np.int32(s),
                        "initial_count": counts[:, 1, s],
                        "generation": gen.astype(np.int32),
                        "observed": seen,
                    }
                )
            )
    events = pd.concat(events, ignore_index=True)
    events["symbol"] = events["symbol"].astype("Int32")
    events["initial_count"] = events["initial_count"].astype("Int64")
    return pd.concat(traj, ignore_index=True), events


def write_results(
    root, trajectories, events, *, name="synthetic", family="gaussian", generations=None, extra_spec=None
):
    """Write a results folder as ``sweep run`` does: sweep.json + hive ``cell=<c>`` Parquet parts."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    generations = int(trajectories["generation"].max()) if generations is None else generations
    spec = {"name": name, "generations": generations, "family": {"name": family}, **(extra_spec or {})}
    (root / "sweep.json").write_text(json.dumps({"spec": spec, "root_entropy": 12345, "version": "0.1.0"}))
    events = events.copy()
    for column in ("symbol", "initial_count"):
        events[column] = events[column].astype("Int32" if column == "symbol" else "Int64")
    for kind, frame in (("trajectories", trajectories), ("events", events)):
        for cell, rows in frame.groupby("cell"):
            folder = root / kind / f"cell={cell}"
            folder.mkdir(parents=True, exist_ok=True)
            # The partition key lives in the folder name, not in the file (hive convention).
            table = pa.Table.from_pandas(rows.drop(columns="cell"), preserve_index=False)
            pq.write_table(table, folder / f"part-c{cell}-b0-1.parquet")
    return root
