"""The n-gram family: counts, sampling with decoding, the add-one evaluation, real draws, and the
word-forgetting law of an order-1 model (Wright-Fisher drift of each word's count)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.theory import symbol_loss_cdf
from sweep.engine import simulate_block
from sweep.families._text.ngram_counts import NGramCounts, decoding_cum, generate
from sweep.grid import block_rng, cells
from sweep.spec import parse_spec


def reference_counts(blocks: np.ndarray, order: int, vocab: int) -> Counter:
    """(chain, context tuple, token) counts by a plain loop, BOS = vocab before each block."""
    counts: Counter = Counter()
    for b, chain in enumerate(blocks):
        for block in chain:
            padded = [vocab] * (order - 1) + list(block)
            for j, token in enumerate(block):
                counts[(b, tuple(padded[j : j + order - 1]), int(token))] += 1
    return counts


@pytest.mark.parametrize("order", [1, 2, 3])
def test_counts_and_smoothed_probabilities_match_a_plain_count(order):
    """Every n-gram count, context total and add-one log-probability equals a plain loop's, for
    orders 1 to 3, with blocks starting from BOS; unseen n-grams have count 0."""
    rng = np.random.default_rng(order)
    vocab, blocks = 5, rng.integers(0, 5, size=(3, 4, 6))
    model = NGramCounts.fit(blocks, order, vocab)
    reference = reference_counts(blocks, order, vocab)
    assert model.counts.sum() == blocks.size and len(model.keys) == len(reference)
    probe = rng.integers(0, 5, size=(3, 2, 6))
    logp, unseen = model.log_probs(probe)
    for b in range(3):
        for s in range(2):
            padded = [vocab] * (order - 1) + list(probe[b, s])
            for j, token in enumerate(probe[b, s]):
                context = tuple(padded[j : j + order - 1])
                count = reference[(b, context, int(token))]
                total = sum(v for (c, ctx, _), v in reference.items() if c == b and ctx == context)
                assert np.isclose(logp[b, s, j], np.log((count + 1) / (total + vocab)))
                assert unseen[b, s, j] == (count == 0)


def reference_decoding(counts: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """Hugging Face's order on one distribution: p^(1/T), top-k, then the smallest most-probable
    set of mass >= top_p."""
    p = counts.astype(float) ** (1.0 / temperature)
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    keep = np.zeros(p.size, dtype=bool)
    keep[order[: top_k or p.size]] = True
    mass_before = np.cumsum(p[order]) - p[order]
    keep[order[mass_before >= top_p]] = False
    q = np.where(keep, p, 0.0)
    return q / q.sum()


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0), (1.0, 3, 1.0), (2.0, 0, 0.7), (0.8, 4, 0.9)]
)
def test_sampling_follows_the_counts_with_temperature_top_k_top_p(temperature, top_k, top_p):
    """The first token of 60,000 blocks from BOS follows the reference decoding of the counts within
    5 standard errors per token; the undecoded counts are rejected whenever decoding changes them."""
    counts = np.array([40, 25, 15, 10, 6, 3, 1])
    vocab = counts.size
    blocks = np.repeat(np.arange(vocab), counts).reshape(1, -1, 1)  # one-token blocks: counts of p(. | BOS)
    model = NGramCounts.fit(blocks, 2, vocab)
    cum = decoding_cum(model, temperature, top_k, top_p)
    draws = 60_000
    tokens = generate(model, cum, np.random.default_rng(0).random((1, draws, 1)))
    freq = np.bincount(tokens.ravel(), minlength=vocab) / draws
    expected = reference_decoding(counts, temperature, top_k, top_p)
    se = np.sqrt(np.maximum(expected * (1 - expected), 1e-12) / draws)
    np.testing.assert_array_less(np.abs(freq - expected), 5 * se + 1e-9)
    plain = counts / counts.sum()
    if not np.allclose(expected, plain, atol=0.01):
        assert np.max(np.abs(freq - plain) / np.sqrt(plain * (1 - plain) / draws)) > 10


def _spec(family: dict, **top):
    raw = {
        "name": "lm",
        "seed": 11,
        "generations": 3,
        "replicates": 4,
        "family": {"name": "ngram", **family},
        "grid": {"n": [64], "policy": ["replace"]},
        "events": {"perplexity_above": []},
        "record": {"every": 1},
    }
    return parse_spec({**raw, **top})


def test_real_draws_are_contiguous_spans_and_subsamples_whole_blocks():
    """Generation 1's data is a contiguous span of the training split (wrapping around its end);
    a subsample takes whole blocks of sequence_length tokens."""
    spec = _spec({"sequence_length": 8})
    family = cells(spec)[0].family
    train = family.corpus.train
    data = family.sample(family.truth(6), 64, rng=np.random.default_rng(3))
    assert data.shape == (6, 64) and data.dtype == np.int32
    for row in data:
        starts = np.flatnonzero(train == row[0])
        assert any(np.array_equal(train[(s + np.arange(64)) % train.size], row) for s in starts)
    picked = family.subsample_data(data, 24, rng=np.random.default_rng(4))
    assert picked.shape == (6, 24)
    for row, whole in zip(picked.reshape(6, 3, 8), data.reshape(6, 8, 8)):
        assert all(any(np.array_equal(block, w) for w in whole) for block in row)


def test_heldout_perplexity_is_the_add_one_perplexity_of_the_split():
    """perplexity = exp(mean add-one NLL) of the held-out split cut into blocks, and
    heldout_zero_prob_fraction the unsmoothed model's share of zero-probability tokens."""
    spec = _spec({"order": 2, "sequence_length": 8})
    family = cells(spec)[0].family
    data = family.sample(family.truth(2), 64, rng=np.random.default_rng(5))
    params = family.fit(data)
    metrics = family.metrics(params)
    held = family.corpus.heldout
    blocks = held[: held.size // 8 * 8].reshape(1, -1, 8)
    for b in range(2):
        logp, unseen = params.model.log_probs(blocks, chains=np.array([b]))
        assert np.isclose(metrics["perplexity"][b], np.exp(-logp.mean()))
        assert np.isclose(metrics["heldout_zero_prob_fraction"][b], unseen.mean())
    assert metrics["sequence_perplexity"].shape == (2, 8)
    assert np.allclose(metrics["generated_perplexity"], np.exp(np.log(metrics["sequence_perplexity"]).mean(axis=1)))


def _forgetting(family: dict | None, categorical: dict | None, n: int, chains: int, horizon: int):
    """{initial count: (chain, forgetting time) arrays} of word_lost / symbol_lost events."""
    raw = {
        "name": "forget",
        "seed": 17,
        "generations": horizon,
        "replicates": chains,
        "record": {"every": horizon},
        "grid": {"n": [n], "policy": ["replace"]},
    }
    if family is not None:
        raw.update(family={"name": "ngram", **family}, events={"perplexity_above": []})
    else:
        raw.update(family={"name": "categorical", **categorical}, events={"distance_above": []})
    spec = parse_spec(raw)
    cell = cells(spec)[0]
    _, events = simulate_block(
        cell.family,
        cell,
        0,
        generations=horizon,
        recorded=spec.record.generations(horizon),
        events_spec=spec.events,
        rng=block_rng(spec.seed, cell, 0),
    )
    lost = np.isin(events["event"], ["word_lost", "symbol_lost"])
    return {
        c: (
            events["replicate"][lost & (events["initial_count"] == c)],
            np.where(events["observed"], events["generation"], horizon + 1)[lost & (events["initial_count"] == c)],
        )
        for c in (1, 2, 3)
    }


def _lost_by(chain: np.ndarray, time: np.ndarray, t: int) -> tuple[float, float]:
    """Share lost by generation t, and its standard error clustered by chain (words of one chain
    are dependent: their counts sum to n)."""
    chains = np.unique(chain)
    a = np.array([np.sum(time[chain == c] <= t) for c in chains], dtype=float)
    b = np.array([np.sum(chain == c) for c in chains], dtype=float)
    p = a.sum() / b.sum()
    var = np.sum((a - p * b) ** 2) / b.sum() ** 2 * chains.size / (chains.size - 1)
    return p, np.sqrt(var)


def test_order_one_forgets_words_as_wright_fisher_and_as_the_categorical_family():
    """Order 1 under replace: a word's count is a Wright-Fisher chain, so its forgetting time given
    its count c in the first training set has the exact law of analysis.theory.symbol_loss_cdf
    (levels at 5 clustered standard errors, c = 1, 2, 3) and the categorical family's law for the
    same counts (two-sample KS, p > 1e-3). Negative control: the law one generation late (an event
    read from the next generation's data, an off-by-one) is rejected by both tests. (For c << n the
    law hardly depends on n, so a wrong sample size would not show here.)"""
    n, horizon = 128, 40
    lm = _forgetting({"order": 1, "sequence_length": 16, "tracked_words": 400}, None, n, 512, horizon)
    cat = _forgetting(None, {"k": 64}, n, 256, horizon)
    for c in (1, 2, 3):
        chain, time = lm[c]
        assert time.size > 500, (c, time.size)
        exact = symbol_loss_cdf(c, n, horizon)
        worst_late = 0.0
        for t in (1, 2, 4, 8, 16, 40):
            p, se = _lost_by(chain, time, t)
            assert abs(p - exact[t]) < 5 * se + 1e-12, (c, t, p, exact[t], se)
            worst_late = max(worst_late, abs(p - exact[t - 1]) / max(se, 1e-12))
        assert worst_late > 5, (c, worst_late)
        assert scipy_stats.ks_2samp(time, cat[c][1]).pvalue > 1e-3, c
        assert scipy_stats.ks_2samp(time + 1, cat[c][1]).pvalue < 1e-6, c
