"""Batched n-gram counts: B chains' models in one sorted array of keys, fitted, sampled, scored.

An n-gram of order N is a context of N - 1 tokens and the next token. Each block of L tokens
starts from the start token BOS (id V, used only in contexts), so its first token's context is
N - 1 BOS. The n-gram of chain b with context code c (the N - 1 tokens in base V + 1) and token w
has the key ``(b C + c) V + w`` (C = (V + 1)^(N - 1)). The maximum-likelihood model of every chain
is the sorted array of the keys present with their counts: a context's continuations are one
contiguous run of keys, found by two binary searches, so sampling a token for every sequence of
every chain is three ``searchsorted`` calls whatever the vocabulary.

Counts are integers and sampling draws an integer below a run's total, so a chain's tokens do not
depend on the other chains of its block (no floating-point sums across chains). Decoding weights
(temperature, top-k, top-p) are integers too: each count's tempered weight relative to its
context's largest, in units of 2^-32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WEIGHT_UNIT = float(2**32)


def key_space(order: int, vocab: int) -> int:
    """C V: the keys one chain spans (contexts times tokens)."""
    return (vocab + 1) ** (order - 1) * vocab


def max_chains(order: int, vocab: int) -> int:
    """The most chains whose keys fit in an int64."""
    return max(0, (2**63 - 1) // key_space(order, vocab) - 1)


def context_codes(tokens: np.ndarray, order: int, vocab: int, start: np.ndarray | None = None) -> np.ndarray:
    """The context code of every position of blocks ``tokens`` (B, S, L): the N - 1 tokens before
    it, BOS-padded (``start``: (B, S, N - 1) tokens before each block instead, e.g. a prompt)."""
    B, S, L = tokens.shape
    if order == 1:
        return np.zeros((B, S, L), dtype=np.int64)
    pad = np.full((B, S, order - 1), vocab, dtype=np.int64) if start is None else start.astype(np.int64)
    padded = np.concatenate([pad, tokens.astype(np.int64)], axis=2)
    codes = np.zeros((B, S, L), dtype=np.int64)
    for i in range(order - 1):  # oldest token first: the most significant digit
        codes = codes * (vocab + 1) + padded[:, :, i : i + L]
    return codes


@dataclass
class NGramCounts:
    """The ML n-gram models of B chains (see the module docstring)."""

    order: int
    vocab: int
    batch: int
    keys: np.ndarray  # (K,) int64, sorted, unique
    counts: np.ndarray  # (K,) int64
    cum: np.ndarray = field(init=False, repr=False)  # (K + 1,) int64: cum[i] = counts[:i].sum()

    def __post_init__(self) -> None:
        self.cum = np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def contexts(self) -> int:
        return (self.vocab + 1) ** (self.order - 1)

    def __getstate__(self) -> dict:  # the cumulative sum is derived: do not pickle it
        return {k: v for k, v in self.__dict__.items() if k != "cum"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @classmethod
    def fit(cls, tokens: np.ndarray, order: int, vocab: int) -> NGramCounts:
        """Count the n-grams of blocks ``tokens`` (B, S, L)."""
        B = tokens.shape[0]
        codes = context_codes(tokens, order, vocab)
        chain = np.arange(B, dtype=np.int64)[:, None, None]
        keys = ((chain * ((vocab + 1) ** (order - 1)) + codes) * vocab + tokens).ravel()
        unique, counts = np.unique(keys, return_counts=True)
        return cls(order, vocab, B, unique, counts.astype(np.int64))

    def runs(self, chain: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi): the keys of each (chain, context) pair's continuations (empty if unseen)."""
        base = (chain * self.contexts + codes) * self.vocab
        return np.searchsorted(self.keys, base), np.searchsorted(self.keys, base + self.vocab)

    def lookup(self, chain: np.ndarray, codes: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(count of the n-gram, count of its context) for arrays that broadcast together."""
        keys = (chain * self.contexts + codes) * self.vocab + tokens
        where = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        count = np.where(self.keys[where] == keys, self.counts[where], 0)
        lo, hi = self.runs(chain, codes)
        return count, self.cum[hi] - self.cum[lo]

    def log_probs(
        self, tokens: np.ndarray, *, add: float = 1.0, chains: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log-probabilities of blocks ``tokens`` (B', S, L) under the add-``add`` smoothed models
        of ``chains`` (default: all B, in order), and where the unsmoothed model gives probability 0."""
        chains = np.arange(tokens.shape[0], dtype=np.int64) if chains is None else np.asarray(chains, dtype=np.int64)
        codes = context_codes(tokens, self.order, self.vocab)
        chain = np.broadcast_to(chains[:, None, None], tokens.shape)
        count, total = self.lookup(chain, codes, tokens.astype(np.int64))
        logp = np.log(count + add) - np.log(total + add * self.vocab)
        return logp, count == 0

    def unigram(self) -> np.ndarray:
        """Each chain's token counts as continuations, (B, V)."""
        chain = self.keys // key_space(self.order, self.vocab)
        token = self.keys % self.vocab
        flat = np.bincount(chain * self.vocab + token, weights=self.counts, minlength=self.batch * self.vocab)
        return flat.reshape(self.batch, self.vocab).astype(np.int64)


def decoding_cum(model: NGramCounts, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Cumulative integer sampling weights (K + 1,) of each key within its context: the counts
    themselves when nothing is changed, else p^(1/temperature) restricted to the top_k most
    frequent continuations (ties: lower id first) and to the smallest most-probable set of
    continuations whose tempered mass reaches top_p (the order Hugging Face's samplers use)."""
    if temperature == 1.0 and top_k == 0 and top_p >= 1.0:
        return model.cum
    counts = model.counts
    group = model.keys // model.vocab
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    sizes = np.diff(np.append(starts, counts.size))
    largest = np.repeat(np.maximum.reduceat(counts, starts), sizes)
    weights = np.floor(np.exp((np.log(counts) - np.log(largest)) / temperature) * WEIGHT_UNIT).astype(np.int64)
    if top_k > 0 or top_p < 1.0:
        # each context's continuations from most to least frequent (stable: lower id first on ties)
        order = np.lexsort((-counts, group))
        rank = np.arange(counts.size) - np.repeat(starts, sizes)
        keep = np.ones(counts.size, dtype=bool)
        if top_k > 0:
            keep[order] = rank < top_k
        if top_p < 1.0:
            sorted_weights = weights[order]
            before = np.cumsum(sorted_weights) - sorted_weights
            before -= np.repeat(before[starts], sizes)
            total = np.repeat(np.add.reduceat(sorted_weights, starts), sizes)
            keep[order] &= before < top_p * total
        weights = np.where(keep, weights, 0)
    return np.concatenate([[0], np.cumsum(weights)])


def generate(
    model: NGramCounts, cum: np.ndarray, uniforms: np.ndarray, start: np.ndarray | None = None, add: float = 0.0
) -> np.ndarray:
    """Blocks of tokens (B, S, L) drawn from each chain's model, one uniform per token.

    ``cum``: :func:`decoding_cum`; ``start``: (B, S, N - 1) tokens before each block (a prompt),
    default BOS. A context the model never saw continued (it ended a training block) restarts
    from BOS, as a sentence end would. ``add`` > 0 draws from the add-``add`` smoothed model
    instead (``uniforms`` (B, S, L, 2): the first chooses between the counts, with probability
    c / (c + add V), and a uniform token, which the second then draws).
    """
    B, S, L = uniforms.shape[:3]
    pick = uniforms if add == 0 else uniforms[..., 1]
    order, vocab = model.order, model.vocab
    history = np.full((B, S, order - 1), vocab, dtype=np.int64) if start is None else start.astype(np.int64).copy()
    chain = np.broadcast_to(np.arange(B, dtype=np.int64)[:, None], (B, S))
    bos = context_codes(np.zeros((1, 1, 1), dtype=np.int64), order, vocab)[0, 0, 0]
    out = np.empty((B, S, L), dtype=np.int32)
    for j in range(L):
        codes = np.zeros((B, S), dtype=np.int64)
        for i in range(order - 1):
            codes = codes * (vocab + 1) + history[:, :, i]
        lo, hi = model.runs(chain, codes)
        if add == 0:
            dead = cum[hi] == cum[lo]
            if dead.any():
                lo[dead], hi[dead] = model.runs(chain[dead], np.full(int(dead.sum()), bos))
        total = cum[hi] - cum[lo]
        target = cum[lo] + np.floor(pick[:, :, j] * total).astype(np.int64)
        index = np.searchsorted(cum, target, side="right") - 1
        token = model.keys[np.clip(index, lo, np.maximum(hi - 1, lo))] % vocab
        if add > 0:
            uniform = uniforms[:, :, j, 0] * (total + add * vocab) >= total
            token = np.where(uniform, np.minimum(np.floor(pick[:, :, j] * vocab).astype(np.int64), vocab - 1), token)
        out[:, :, j] = token
        if order > 1:
            history = np.concatenate([history[:, :, 1:], token[:, :, None]], axis=2)
    return out
