"""Batched multivariate hypergeometric sampling matches its exact moments."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.families._hypergeom import multivariate_hypergeometric


def test_rows_sum_and_bounds():
    """Every row draws exactly nsample items and never more of a colour than the urn holds."""
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, size=(500, 13))
    counts[:, 0] += 10
    draws = multivariate_hypergeometric(counts, 10, rng=rng)
    assert (draws.sum(axis=1) == 10).all() and (draws <= counts).all() and (draws >= 0).all()


def test_moments_match_theory():
    """Mean m K_i/N and variance m (K_i/N)(1-K_i/N)(N-m)/(N-1) per colour, within 5 standard errors."""
    rng = np.random.default_rng(1)
    urn = np.array([7, 0, 1, 30, 12])
    total, m, reps = urn.sum(), 20, 40000
    draws = multivariate_hypergeometric(np.tile(urn, (reps, 1)), m, rng=rng)
    share = urn / total
    mean = m * share
    var = m * share * (1 - share) * (total - m) / (total - 1)
    assert np.all(np.abs(draws.mean(axis=0) - mean) <= 5 * np.sqrt(var / reps) + 1e-12)
    # Standard error of a sample variance, bounded with the range of a colour's draws.
    assert np.all(np.abs(draws.var(axis=0, ddof=1) - var) <= 5 * np.sqrt(2 * (var + 1) ** 2 / reps) + 1e-12)


def test_refuses_too_large_sample():
    """Drawing more than the smallest urn holds is a ValueError naming nsample."""
    with pytest.raises(ValueError, match="nsample must be in"):
        multivariate_hypergeometric(np.array([[1, 1], [5, 5]]), 3, rng=np.random.default_rng(2))
