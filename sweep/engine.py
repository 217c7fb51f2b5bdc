"""Advance one block of chains through T generations of fit, mix and refit.

The block is vectorised across its chains: every generation is a handful of array operations on
arrays whose leading dimension is the chain. Events are checked at every generation; metrics only
at recorded generations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sweep.families import Family
from sweep.grid import Cell
from sweep.policies import Policy


@dataclass(frozen=True)
class Ops:
    """How training sets are drawn, merged, subsampled and fitted in one representation."""

    draw: Callable[..., Any]
    combine: Callable[[Any, Any], Any]
    subsample: Callable[..., Any]
    fit: Callable[[Any, Any, np.random.Generator], Any]  # (training set, previous fit, rng)
    size: Callable[[Any], int]
    start: Callable[[Any], Any] = lambda first: first


class Pool:
    """Samples kept across generations (data representation, accumulating policies).

    Preallocated for the whole horizon, so appending a generation copies n samples instead of
    the whole pool (which would make a sweep quadratic in T).
    """

    def __init__(self, first: np.ndarray, capacity: int):
        self.buffer = np.empty((first.shape[0], max(capacity, first.shape[1])) + first.shape[2:], dtype=first.dtype)
        self.size = 0
        self.append(first)

    def append(self, data: np.ndarray) -> "Pool":
        m = data.shape[1]
        self.buffer[:, self.size : self.size + m] = data
        self.size += m
        return self

    def view(self) -> np.ndarray:
        return self.buffer[:, : self.size]


def _as_array(data: Any) -> np.ndarray:
    return data.view() if isinstance(data, Pool) else data


def _distinct_indices(batch: int, total: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct indices in [0, total) per row, uniformly over m-subsets, in O(m log m).

    Draw with replacement and redraw duplicates until none are left: the procedure only compares
    labels for equality, so its outcome is invariant under relabelling and hence uniform.
    """
    index = rng.integers(0, total, size=(batch, m))
    while True:
        index.sort(axis=1)
        duplicate = np.zeros(index.shape, dtype=bool)
        np.equal(index[:, 1:], index[:, :-1], out=duplicate[:, 1:])
        count = int(np.count_nonzero(duplicate))
        if count == 0:
            return index
        index[duplicate] = rng.integers(0, total, size=count)


def _subsample_rows(data: Any, m: int, *, rng: np.random.Generator) -> np.ndarray:
    """A uniform subsample of m of each chain's samples, without replacement."""
    data = _as_array(data)
    batch, total = data.shape[:2]
    if m >= total:
        return data
    if 4 * m > total:
        # The m smallest of independent uniform keys are a uniform m-subset: O(total).
        keys = rng.random((batch, total))
        index = np.argpartition(keys, m - 1, axis=1)[:, :m]
    else:
        index = _distinct_indices(batch, total, m, rng)
    return np.take_along_axis(data, index.reshape(index.shape + (1,) * (data.ndim - 2)), axis=1)


def representation(family: Family, policy: Policy) -> str:
    """'stats' when the family's sufficient statistics can carry this policy exactly, else 'data'."""
    if family.sufficient and (not policy.subsamples or family.exact_subsample):
        return "stats"
    return "data"


def ops_for(family: Family, policy: Policy, *, n: int, generations: int) -> Ops:
    if representation(family, policy) == "stats":
        return Ops(
            draw=family.draw,
            combine=family.combine,
            subsample=family.subsample_stats,
            fit=lambda stats, previous, rng: family.fit_stats(stats),
            size=lambda stats: stats.m,
        )
    return Ops(
        draw=family.sample,
        combine=lambda a, b: a.append(b) if isinstance(a, Pool) else np.concatenate([a, b], axis=1),
        subsample=_subsample_rows,
        fit=lambda data, previous, rng: family.fit(_as_array(data), previous=previous, rng=rng),
        size=lambda data: _as_array(data).shape[1],
        start=(lambda first: Pool(first, n * (generations + 1))) if policy.grows else (lambda first: first),
    )


def next_training(
    ops: Ops, policy: Policy, n: int, state: Any, pool: Any, params: Any, truth: Any, rng: np.random.Generator
) -> tuple[Any, Any]:
    """Build the next training set (and, for accumulate_subsample, the pool) from the three sources."""
    if state is None:  # generation 1: every source is the truth
        first = ops.draw(truth, n, rng=rng)
        if policy.kind == "accumulate_subsample":
            return first, ops.start(first)
        return ops.start(first), None
    if policy.kind == "replace":
        return ops.draw(params, n, rng=rng), None
    if policy.kind == "accumulate":
        return ops.combine(state, ops.draw(params, n, rng=rng)), None
    if policy.kind == "accumulate_subsample":
        pool = ops.combine(pool, ops.draw(params, n, rng=rng))
        return ops.subsample(pool, n, rng=rng), pool
    kept, synthetic, real = policy.counts(n)
    parts = []
    if kept >= ops.size(state):
        parts.append(state)
    elif kept > 0:
        parts.append(ops.subsample(state, kept, rng=rng))
    if synthetic > 0:
        parts.append(ops.draw(params, synthetic, rng=rng))
    if real > 0:
        parts.append(ops.draw(truth, real, rng=rng))
    training = parts[0]
    for part in parts[1:]:
        training = ops.combine(training, part)
    return training, None


def simulate_block(
    family: Family,
    cell: Cell,
    block: int,
    *,
    generations: int,
    recorded: np.ndarray,
    events_spec: Any,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run one block; return (trajectory columns, event columns).

    Returns
    -------
    trajectories : dict of ndarray
        ``replicate``, ``generation`` and the family's metrics, one row per chain and recorded
        generation, ordered by generation then chain (metrics of several values per chain are 2-D).
    events : dict of ndarray
        ``replicate`` plus the columns of :meth:`sweep.events.EventSet.columns`, ordered by chain.
    """
    replicates = np.arange(cell.block_range(block).start, cell.block_range(block).stop)
    batch = replicates.size
    is_recorded = np.zeros(generations + 1, dtype=bool)
    is_recorded[recorded] = True
    ops = ops_for(family, cell.policy, n=cell.n, generations=generations)
    truth = family.truth(batch)
    tracker = family.events(batch, generations, events_spec)
    snapshots = [family.metrics(truth)]
    params, state, pool = truth, None, None
    with np.errstate(all="ignore"):  # a degenerate chain becomes a 'diverged' event, not a crash
        for generation in range(1, generations + 1):
            state, pool = next_training(ops, cell.policy, cell.n, state, pool, params, truth, rng)
            params = ops.fit(state, params, rng)
            tracker.update(generation, params, state)
            if is_recorded[generation]:
                snapshots.append(family.metrics(params))
    # Rows are generation-major: concatenating snapshots is a plain copy, where chain-major
    # order would transpose every metric (readers sort anyway; see analysis.load).
    trajectories = {
        "replicate": np.tile(replicates, recorded.size),
        "generation": np.repeat(recorded.astype(np.int32), batch),
    }
    for name in snapshots[0]:
        trajectories[name] = np.concatenate([np.asarray(s[name]) for s in snapshots], axis=0)
    events = tracker.set.columns()
    events["replicate"] = replicates[events.pop("chain")]
    return trajectories, events
