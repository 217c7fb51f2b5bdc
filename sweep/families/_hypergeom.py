"""Batched multivariate hypergeometric sampling (uniform subsample of counts, no replacement).

numpy's ``Generator.multivariate_hypergeometric`` takes one urn at a time. Here every chain's urn
is split recursively in halves: the number drawn from the left half of a node is univariate
hypergeometric given the node's draw, and each tree level is one vectorised call over all chains
and nodes, so a batch costs about 2k draws per chain and log2(k) numpy calls.
"""

from __future__ import annotations

import numpy as np


def multivariate_hypergeometric(counts: np.ndarray, nsample: int, *, rng: np.random.Generator) -> np.ndarray:
    """Draw ``nsample`` items without replacement from each row's urn.

    Parameters
    ----------
    counts : ndarray of int, shape (B, k)
        Items of each colour in each chain's urn.
    nsample : int
        Items to draw per chain; at most the smallest row total.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (B, k)
        Drawn items of each colour; each row sums to ``nsample``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    batch, k = counts.shape
    totals = counts.sum(axis=1)
    if nsample < 0 or (batch and nsample > totals.min()):
        raise ValueError(f"nsample must be in [0, smallest urn = {totals.min()}], got {nsample}")
    width = 1 << max(0, (k - 1).bit_length())
    padded = np.zeros((batch, width), dtype=np.int64)
    padded[:, :k] = counts
    # Node sums of each tree level, from the leaves (level L) up to the root (level 0).
    levels = [padded]
    while levels[-1].shape[1] > 1:
        levels.append(levels[-1].reshape(batch, -1, 2).sum(axis=2))
    levels.reverse()
    take = np.full((batch, 1), nsample, dtype=np.int64)
    for children in levels[1:]:
        pairs = children.reshape(batch, -1, 2)
        left = rng.hypergeometric(pairs[:, :, 0], pairs[:, :, 1], take)
        take = np.stack([left, take - left], axis=2).reshape(batch, -1)
    return take[:, :k]
