"""What language-model families share: real text as the truth, token blocks as training sets,
text metrics, per-sequence perplexities and the events of forgetting and drift.

A training set is an int32 array (B, m) of m tokens per chain, m a multiple of the block length
L: m / L blocks side by side. ``n`` counts tokens, and every policy share of n must be whole blocks
(checked per cell), so subsamples take whole blocks, never single tokens. The truth (generation 0)
is the real text: drawing m real tokens takes a contiguous span of the training split starting at
a uniform position (wrapping around its end). A subclass fits a model to blocks
(:meth:`TextFamily.fit_model`), generates blocks from it (:meth:`TextFamily.generate`) and scores
text under it (:meth:`TextFamily.log_probs`, :meth:`TextFamily.heldout_perplexity`).

Every text metric is of the generation's training text (at generation t: what model t - 1
generated, plus any real share), computed once in :meth:`TextFamily.fit`; perplexities are
computed when first asked for (a recorded generation, or an event check) and kept in the params.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families._text import stats
from sweep.families._text.corpus import Corpus, load_corpus
from sweep.families._text.spec import TextSpec, tokenizer_key
from sweep.families.base import EventKind, Family

TEXT_EVENTS = (
    EventKind(
        "words",
        "a tracked word no longer occurs in the generation's training text (for an unsmoothed "
        "model: it is never generated again), one event per word, with its count in the first training "
        "set",
        thresholds=False,
        default=True,
        per_symbol=True,
        collapse=False,
        row_name="word_lost",
    ),
    EventKind(
        "perplexity_above",
        "held-out perplexity above the threshold times the chain's generation-1 perplexity",
        default=(1.5, 2.0),
    ),
)
TEXT_METRICS = {
    "perplexity": "perplexity of the held-out real text under the fit (NaN at generation 0)",
    "generated_perplexity": "perplexity of the generation's training text under the chain's generation-1 model "
    "(per-sequence values: the sequences table)",
    "vocabulary": "word types in the generation's training text (generation 0: in the training split)",
    "entropy": "unigram entropy of the generation's training text, nats",
    "distinct_2": "distinct bigrams over bigrams in the generation's training text (within blocks)",
    "tail_mass": "share of the training text's tokens among the rarest words of the real training split "
    "(those making up the family's tail share of it; real text: about that share)",
}
SEQUENCE_METRIC = "sequence_perplexity"


@dataclass
class RealText:
    """The truth: B chains' real text (generation 0)."""

    batch: int


@dataclass
class TextParams:
    """B chains' fits with what the metrics and events need of their training text.

    ``model`` and ``reference`` (the generation-1 fit) are family-specific; ``text`` (the training
    blocks, for per-sequence perplexities) is not pickled: metrics are taken right after a fit.
    """

    model: Any
    reference: Any
    counts: np.ndarray  # (B, V) word counts of the training text
    distinct2: np.ndarray  # (B,)
    initial_counts: np.ndarray  # (B, V) word counts of the first training set
    text: np.ndarray | None = None  # (B, S, L)
    reference_perplexity: np.ndarray | None = None
    perplexity: np.ndarray | None = None
    zero_fraction: np.ndarray | None = None
    finite: np.ndarray | None = None  # (B,) False where the fit diverged
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # family-specific metrics

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "text": None}


class TextFamily(Family):
    """Base of the language-model families (see the module docstring)."""

    sufficient = False
    event_kinds = TEXT_EVENTS
    metric_columns = dict(TEXT_METRICS)
    side_metrics = {SEQUENCE_METRIC: ("sequences", "sequence", "perplexity")}
    distance_metric = None
    spread_metric = None

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.text: TextSpec = spec.text
        self.length = self.text.sequence_length

    def __getstate__(self) -> dict[str, Any]:  # the corpus is reloaded (cached per process), not shipped
        state = dict(self.__dict__)
        for derived in ("corpus", "tracked", "tail", "heldout_grams"):
            state.pop(derived, None)
        return state

    @property
    def model_folder(self) -> str | None:
        """The folder of a pretrained model whose tokenizer the corpus uses (None: word or char)."""
        return None

    @cached_property
    def corpus(self) -> Corpus:
        return load_corpus(self.text.corpus, tokenizer_key(self.text, self.model_folder), self.text.heldout)

    @cached_property
    def tracked(self) -> np.ndarray:
        """Ids of the words ``word_lost`` follows: the most frequent of the training split (ties:
        lower id first), in id order."""
        counts = self.corpus.train_counts
        order = np.argsort(-counts, kind="stable")[: min(self.text.tracked_words, int(np.count_nonzero(counts)))]
        return np.sort(order)

    @cached_property
    def tail(self) -> np.ndarray:
        return stats.tail_words(self.corpus.train_counts, self.text.tail)

    # -- the hooks a subclass implements ----------------------------------------------------
    def fit_model(self, blocks: np.ndarray, previous: Any, rng: Any) -> tuple[Any, np.ndarray]:
        """(model, finite) for training blocks (B, S, L); ``previous``: the last model or None."""
        raise NotImplementedError

    def generate(
        self, model: Any, blocks: int, *, rng: np.random.Generator, temperature: float, prompts: np.ndarray | None
    ) -> np.ndarray:
        """``blocks`` new blocks per chain, (B, blocks, L), continuing ``prompts`` (B, blocks, P) if given."""
        raise NotImplementedError

    def log_probs(self, model: Any, blocks: np.ndarray) -> np.ndarray:
        """Log-probability of every token of blocks (B, S, L) under each chain's model."""
        raise NotImplementedError

    def heldout_perplexity(self, model: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """(perplexity of the held-out split, share of its tokens of probability 0 or None), (B,) each."""
        raise NotImplementedError

    # -- checks -----------------------------------------------------------------------------
    def check_cell(self, point: Any) -> None:
        L, n = self.length, point.n
        shares = (
            [("n", n)]
            if point.policy.grows
            else [(name, value) for name, value in zip(("kept", "synthetic", "real"), point.policy.counts(n)) if value]
        )
        bad = [(name, value) for name, value in shares if value % L]
        if bad:
            detail = ", ".join(f"{name} {value} = {value / L:g} blocks" for name, value in bad)
            raise SpecError(
                point.where("n"),
                f"a number of tokens whose {point.policy.label} shares are whole "
                f"blocks of sequence_length = {L} tokens",
                f"{n} ({detail})",
                raw=True,
            )

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> RealText:
        return RealText(batch)

    def blocks(self, data: np.ndarray) -> np.ndarray:
        return data.reshape(data.shape[0], -1, self.length)

    def real(self, batch: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """m tokens of real text per chain: a contiguous span of the training split."""
        train = self.corpus.train
        starts = rng.integers(0, train.size, size=batch)
        return train[(starts[:, None] + np.arange(m)) % train.size]

    def sample(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m tokens per chain (B, m): real text from the truth, else m / L generated blocks
        (tempered: the next-token distribution p^(1/temperature), renormalised, then top-k/top-p)."""
        if isinstance(params, RealText):
            return self.real(params.batch, m, rng)
        batch = params.counts.shape[0]
        prompts = None
        if self.text.prompt:
            train, P = self.corpus.train, self.text.prompt
            starts = rng.integers(0, train.size, size=(batch, m // self.length))
            prompts = train[(starts[:, :, None] + np.arange(P)) % train.size]
        out = self.generate(params.model, m // self.length, rng=rng, temperature=temperature, prompts=prompts)
        return out.reshape(batch, -1).astype(np.int32)

    def subsample_data(self, data: Any, m: int, *, rng: np.random.Generator) -> np.ndarray:
        """m / L whole blocks of each chain's training set, uniformly without replacement."""
        from sweep.engine import _subsample_rows

        blocks = self.blocks(np.asarray(data))
        picked = _subsample_rows(blocks, m // self.length, rng=rng)
        return picked.reshape(picked.shape[0], -1)

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> TextParams:
        blocks = self.blocks(np.asarray(data))
        first = isinstance(previous, RealText) or previous is None
        model, finite = self.fit_model(blocks, None if first else previous.model, rng)
        counts = stats.word_counts(blocks, self.corpus.size)
        params = TextParams(
            model=model,
            reference=model if first else previous.reference,
            counts=counts,
            distinct2=stats.distinct_2(blocks, self.corpus.size),
            initial_counts=counts if first else previous.initial_counts,
            text=blocks,
            finite=finite,
        )
        if first:
            self._perplexity(params)
            params.reference_perplexity = params.perplexity
        else:
            params.reference_perplexity = previous.reference_perplexity
        return params

    def _perplexity(self, params: TextParams) -> np.ndarray:
        if params.perplexity is None:
            params.perplexity, params.zero_fraction = self.heldout_perplexity(params.model)
            params.perplexity = np.where(params.finite, params.perplexity, np.nan)
        return params.perplexity

    # -- observation ------------------------------------------------------------------------
    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        if isinstance(params, RealText):
            return self._real_metrics(params.batch)
        B = params.counts.shape[0]
        out = {
            "perplexity": self._perplexity(params),
            "generated_perplexity": np.full(B, np.nan),
            "vocabulary": np.count_nonzero(params.counts, axis=1).astype(np.int32),
            "entropy": stats.entropy(params.counts),
            "distinct_2": params.distinct2,
            "tail_mass": stats.tail_mass(params.counts, self.tail),
        }
        sequences = np.full((B, 0), np.nan)
        if params.text is not None:
            nll = -self.log_probs(params.reference, params.text).mean(axis=2)  # (B, S)
            sequences = np.exp(nll)
            out["generated_perplexity"] = np.exp(nll.mean(axis=1))
        out[SEQUENCE_METRIC] = sequences
        if "heldout_zero_prob_fraction" in self.metric_columns:
            out["heldout_zero_prob_fraction"] = params.zero_fraction
        out.update(params.extra)
        return out

    def _real_metrics(self, batch: int) -> dict[str, np.ndarray]:
        train = self.corpus.train
        counts = self.corpus.train_counts[None, :]
        values = {
            "perplexity": np.nan,
            "generated_perplexity": np.nan,
            "vocabulary": np.int32(np.count_nonzero(counts)),
            "entropy": stats.entropy(counts)[0],
            "distinct_2": stats.distinct_2(train[None, None, :], self.corpus.size)[0],
            "tail_mass": stats.tail_mass(counts, self.tail)[0],
        }
        if "heldout_zero_prob_fraction" in self.metric_columns:
            values["heldout_zero_prob_fraction"] = np.nan
        out = {
            name: np.full(batch, value, dtype=np.int32 if name == "vocabulary" else float)
            for name, value in values.items()
        }
        for name in self.metric_columns:
            out.setdefault(name, np.full(batch, np.nan))
        out[SEQUENCE_METRIC] = np.full((batch, 0), np.nan)
        return out

    def events(self, batch: int, horizon: int, spec: Any) -> TextEvents:
        return TextEvents(self, batch, horizon, spec)

    def block_width(self, n: int, policy: Any) -> float:
        return float(n)


class TextEvents:
    """word_lost per tracked word, perplexity_above (relative to generation 1), diverged."""

    def __init__(self, family: TextFamily, batch: int, horizon: int, spec: Any):
        self.set = EventSet(batch, horizon)
        self.family = family
        self.tracked = family.tracked if spec.words else None
        self.above = [(self.set.add("perplexity_above", t), t) for t in spec.perplexity_above]
        self.diverged = self.set.add("diverged") if spec.diverged else None
        if self.tracked is not None:
            self.set.add_symbols(self.tracked, "word_lost")
        self.initial = False

    def update(self, generation: int, params: TextParams, training: Any) -> None:
        if self.tracked is not None:
            if not self.initial:
                self.set.set_initial_counts(params.initial_counts[:, self.tracked])
                self.initial = True
            self.set.mark_symbols(generation, params.counts[:, self.tracked] == 0)
        if self.above:
            ratio = self.family._perplexity(params) / params.reference_perplexity
            for slot, threshold in self.above:
                self.set.mark(slot, generation, ratio > threshold)
        if self.diverged is not None:
            self.set.mark(self.diverged, generation, ~params.finite)
