"""Statistics of generated text, batched across chains: word counts, entropy, distinct bigrams,
tail mass. Tokens come as (B, S, L) blocks of ids in [0, V)."""

from __future__ import annotations

import numpy as np


def word_counts(tokens: np.ndarray, vocab: int) -> np.ndarray:
    """Each chain's count of every token type, (B, V)."""
    B = tokens.shape[0]
    flat = (np.arange(B, dtype=np.int64)[:, None] * vocab + tokens.reshape(B, -1)).ravel()
    return np.bincount(flat, minlength=B * vocab).reshape(B, vocab)


def entropy(counts: np.ndarray) -> np.ndarray:
    """Unigram entropy in nats of each row of counts (B, V)."""
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / total
        plogp = np.where(counts > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=1)


def distinct_2(tokens: np.ndarray, vocab: int) -> np.ndarray:
    """Distinct bigrams over bigrams (within blocks) of each chain, (B,)."""
    B, S, L = tokens.shape
    if L < 2:
        return np.full(B, np.nan)
    t = tokens.astype(np.int64)
    keys = (np.arange(B, dtype=np.int64)[:, None, None] * vocab + t[:, :, :-1]) * vocab + t[:, :, 1:]
    unique = np.unique(keys.ravel())
    distinct = np.bincount(unique // (vocab * vocab), minlength=B)
    return distinct / float(S * (L - 1))


def tail_words(train_counts: np.ndarray, share: float) -> np.ndarray:
    """The rarest words of the real training text: taken from the rarest up while their total
    stays within ``share`` of the text (ties in id order), so the real text's tail mass is at most
    ``share``. Only words that occur (not ``<unk>``)."""
    present = np.flatnonzero(train_counts > 0)
    order = present[np.lexsort((-present, train_counts[present]))]  # rarest first, later ids first
    mass = np.cumsum(train_counts[order]) / train_counts.sum()
    return np.sort(order[mass <= share])


def tail_mass(counts: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Share of each chain's tokens that are tail words, (B,)."""
    return counts[:, tail].sum(axis=1) / np.maximum(counts.sum(axis=1), 1)
