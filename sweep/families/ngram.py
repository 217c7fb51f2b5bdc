"""n-gram language models retrained on their own text (Suresh et al. 2024, at laptop scale).

The model of order N is the maximum-likelihood n-gram model of its training text: the counts of
every (N - 1)-token context and its next token, which are sufficient for the fit. All chains of a
block are fitted, sampled and scored together (:mod:`sweep.families._text.ngram_counts`), so a
generation costs a sort of the block's n-grams and L vectorised sampling steps, whatever the
vocabulary. Without smoothing (``add_k: 0``, the default) a word that leaves the training text has
probability 0 and is forgotten for good, as in Suresh et al.; ``add_k > 0`` fits and samples the
add-k smoothed model instead. Perplexities are always measured under the add-one smoothed counts
(so unseen n-grams do not make them infinite), with the unsmoothed model's share of held-out
tokens of probability 0 beside them (``heldout_zero_prob_fraction``).

Temperature, top-k and top-p reshape each context's next-token distribution before sampling
(temperature first, as Hugging Face's samplers do): p^(1/T) renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.families._text.corpus import load_corpus
from sweep.families._text.family import TEXT_METRICS, TextFamily
from sweep.families._text.ngram_counts import NGramCounts, context_codes, decoding_cum, generate, max_chains
from sweep.families._text.spec import TEXT_FIELDS, TextSpec, parse_text
from sweep.families.base import Cost

#: Held-out tokens scored at once (chains x tokens), to bound the memory of an evaluation.
EVAL_CHUNK = 2**20


@dataclass(frozen=True)
class NGramSpec:
    """The text and decoding (:class:`TextSpec`), the order and the fit's add-k smoothing."""

    text: TextSpec
    order: int = 2
    add_k: float = 0.0

    def to_raw(self) -> dict[str, Any]:
        return {"name": "ngram", **self.text.to_raw(), "order": self.order, "add_k": self.add_k}


class NGramFamily(TextFamily):
    """Maximum-likelihood n-gram model of order 1 to 6 (see the module docstring)."""

    name = "ngram"
    spec_fields = TEXT_FIELDS + ("order", "add_k")
    metric_columns = {
        **TEXT_METRICS,
        "heldout_zero_prob_fraction": "share of held-out tokens of probability 0 under the unsmoothed fit",
    }
    theory_overlays = ("forgetting_time",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> NGramSpec:
        spec = NGramSpec(
            text=parse_text(section, sequence_length=32),
            order=section.take("order", fields.integer(1, 6), 2),
            add_k=section.take("add_k", fields.number(0.0, None), 0.0),
        )
        vocab = load_corpus(spec.text.corpus, spec.text.tokenizer, spec.text.heldout).size
        if max_chains(spec.order, vocab) < 1:
            raise SpecError(
                section.sub("order"), f"an order whose n-grams over {vocab} token types fit in 64-bit keys", spec.order
            )
        return spec

    def __init__(self, spec: NGramSpec):
        super().__init__(spec)
        self.order, self.add_k = spec.order, spec.add_k

    def check_cell(self, point: Any) -> None:
        super().check_cell(point)
        decoding = point.temperature != 1.0 or self.text.top_k or self.text.top_p < 1.0
        if self.add_k and decoding:
            raise SpecError(
                point.where("family.add_k"),
                "add_k = 0 when the cell decodes with a temperature, top_k "
                "or top_p (decoding a smoothed model is not implemented)",
                self.add_k,
            )

    def check_sweep(self, sweep: Any) -> None:
        limit = max_chains(self.order, self.corpus.size)
        if sweep.block_size and sweep.block_size > limit:
            raise SpecError(
                "block_size", f"at most {limit} chains (their n-gram keys must fit in 64 bits)", sweep.block_size
            )

    def default_block_size(self, n: int, policy: Any) -> int:
        size = min(super().default_block_size(n, policy), max_chains(self.order, self.corpus.size))
        return 1 << (size.bit_length() - 1)

    # -- the text-family hooks ----------------------------------------------------------------
    def fit_model(self, blocks: np.ndarray, previous: Any, rng: Any) -> tuple[NGramCounts, np.ndarray]:
        return NGramCounts.fit(blocks, self.order, self.corpus.size), np.ones(blocks.shape[0], dtype=bool)

    def generate(
        self,
        model: NGramCounts,
        blocks: int,
        *,
        rng: np.random.Generator,
        temperature: float,
        prompts: np.ndarray | None,
    ) -> np.ndarray:
        shape = (model.batch, blocks, self.length) + ((2,) if self.add_k else ())
        uniforms = rng.random(shape)
        start = prompts[:, :, prompts.shape[2] - (self.order - 1) :] if prompts is not None and self.order > 1 else None
        if start is not None and start.shape[2] < self.order - 1:  # a prompt shorter than the context
            pad = np.full(start.shape[:2] + (self.order - 1 - start.shape[2],), model.vocab, dtype=np.int64)
            start = np.concatenate([pad, start], axis=2)
        cum = decoding_cum(model, temperature, self.text.top_k, self.text.top_p)
        return generate(model, cum, uniforms, start, add=self.add_k)

    def log_probs(self, model: NGramCounts, blocks: np.ndarray) -> np.ndarray:
        return model.log_probs(blocks, add=1.0)[0]

    @cached_property
    def heldout_grams(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The held-out split's distinct (context code, token) pairs, sorted, and their counts: the
        same for every chain, and sorted queries make the binary searches cache-friendly."""
        held = self.corpus.heldout
        blocks = held[: held.size // self.length * self.length].reshape(1, -1, self.length)
        codes = context_codes(blocks, self.order, self.corpus.size).ravel()
        pairs = codes * self.corpus.size + blocks.ravel()
        unique, mult = np.unique(pairs, return_counts=True)
        return unique // self.corpus.size, unique % self.corpus.size, mult

    def heldout_perplexity(self, model: NGramCounts) -> tuple[np.ndarray, np.ndarray]:
        codes, tokens, mult = self.heldout_grams
        weight = mult / mult.sum()
        nll, zero = np.empty(model.batch), np.empty(model.batch)
        step = max(1, EVAL_CHUNK // codes.size)
        for first in range(0, model.batch, step):
            chains = np.arange(first, min(first + step, model.batch), dtype=np.int64)[:, None]
            count, total = model.lookup(chains, codes[None, :], tokens[None, :])
            logp = np.log(count + 1.0) - np.log(total + float(model.vocab))
            # row by row (not a matrix product, whose blocking depends on the rows): a chain's value
            # does not depend on how many chains its block holds
            nll[chains[:, 0]] = -(logp * weight).sum(axis=1)
            zero[chains[:, 0]] = ((count == 0) * weight).sum(axis=1)
        return np.exp(nll), zero

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        # measured on one core: about 1 us per token per generation (count, sample), plus scoring
        tokens = n * (4 if policy.grows else 1)
        return Cost(1e-6 * tokens * self.order + 2e-7 * self.corpus.heldout.size, 8.0 * tokens * 4, width=n)
