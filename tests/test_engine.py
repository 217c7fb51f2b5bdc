"""Engine pieces: uniform subsampling without replacement and the growing pool."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.stats import chisquare

from sweep.engine import Pool, _subsample_rows


@pytest.mark.parametrize("total, m", [(6, 2), (12, 5)], ids=["rejection", "random-keys"])
def test_subsample_is_uniform_over_subsets(total, m):
    """Every m-subset of a chain's samples is equally likely (chi-square over all subsets)."""
    rng = np.random.default_rng(4)
    subsets = list(combinations(range(total), m))
    rows = 60 * len(subsets)
    data = np.tile(np.arange(total, dtype=float), (rows, 1))
    picked = np.sort(_subsample_rows(data, m, rng=rng), axis=1).astype(int)
    assert all(len(set(r)) == m for r in picked.tolist())
    lookup = {s: i for i, s in enumerate(subsets)}
    counts = np.bincount([lookup[tuple(r)] for r in picked.tolist()], minlength=len(subsets))
    assert chisquare(counts).pvalue > 1e-4


def test_pool_appends_without_regrowing():
    """A pool keeps every appended generation in order in one preallocated buffer."""
    first = np.arange(6.0).reshape(2, 3)
    pool = Pool(first, capacity=9)
    buffer = pool.buffer
    pool.append(first + 10).append(first + 20)
    assert pool.buffer is buffer and pool.size == 9
    assert pool.view()[1].tolist() == [3, 4, 5, 13, 14, 15, 23, 24, 25]
