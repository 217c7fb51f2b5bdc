"""The spec fields every language-model family shares: corpus, tokeniser, blocks, decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweep import fields
from sweep.errors import SpecError
from sweep.families._text.corpus import TOKENIZERS, CorpusSource, load_corpus, parse_corpus

#: Fields of :class:`TextSpec`, in the order a family's ``spec_fields`` lists them.
TEXT_FIELDS = ("corpus", "tokenizer", "heldout", "sequence_length", "tracked_words", "tail", "top_k", "top_p", "prompt")


@dataclass(frozen=True)
class TextSpec:
    """What the chains read and how they decode.

    corpus, tokenizer, heldout : where the real text comes from, how it is cut into tokens, and the
        share of it (its end) held out for perplexity.
    sequence_length : L, the tokens of one training block (the unit that policies subsample).
    tracked_words : the most frequent words of the training split that ``word_lost`` follows.
    tail : the rarest words of the training split up to this share of its tokens make ``tail_mass``.
    top_k, top_p : decoding (0 and 1: off); the sampling temperature is a grid axis.
    prompt : real tokens each generated block continues (0: blocks start from BOS).
    """

    corpus: CorpusSource
    tokenizer: str = "word"
    heldout: float = 0.1
    sequence_length: int = 32
    tracked_words: int = 500
    tail: float = 0.1
    top_k: int = 0
    top_p: float = 1.0
    prompt: int = 0

    def to_raw(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus.to_raw(),
            "tokenizer": self.tokenizer,
            "heldout": self.heldout,
            "sequence_length": self.sequence_length,
            "tracked_words": self.tracked_words,
            "tail": self.tail,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "prompt": self.prompt,
        }


def parse_text(
    section: fields.Section, *, tokenizer: str = "word", sequence_length: int = 32, model: str | None = None
) -> TextSpec:
    """Read the shared fields (``tokenizer`` and ``sequence_length``: the family's defaults;
    ``model``: the folder of a Hugging Face model, whose own tokenizer is then the only choice)."""
    choices = ("model",) if model else TOKENIZERS
    spec = TextSpec(
        corpus=section.take("corpus", parse_corpus, None) or parse_corpus("pydoc", section.sub("corpus")),
        tokenizer=section.take("tokenizer", fields.choice(*choices), "model" if model else tokenizer),
        heldout=section.take("heldout", fields.number(0.0, 0.5, low_open=True), 0.1),
        sequence_length=section.take("sequence_length", fields.integer(1, 100_000), sequence_length),
        tracked_words=section.take("tracked_words", fields.integer(0, 10_000_000), 500),
        tail=section.take("tail", fields.number(0.0, 1.0, low_open=True), 0.1),
        top_k=section.take("top_k", fields.integer(0, 10_000_000), 0),
        top_p=section.take("top_p", fields.number(0.0, 1.0, low_open=True), 1.0),
        prompt=section.take("prompt", fields.integer(0, 100_000), 0),
    )
    corpus = load_corpus(spec.corpus, tokenizer_key(spec, model), spec.heldout)
    need = spec.sequence_length + spec.prompt
    for split, tokens in (("training", corpus.train), ("held-out", corpus.heldout)):
        if tokens.size < need:
            raise SpecError(
                section.sub("corpus"),
                f"a corpus whose {split} split has at least sequence_length + prompt = {need} {spec.tokenizer} tokens",
                f"{tokens.size} tokens",
                raw=True,
            )
    return spec


def tokenizer_key(text: TextSpec, model: str | None = None) -> str:
    """The tokeniser as :func:`~sweep.families._text.corpus.load_corpus` names it."""
    return f"hf:{model}" if text.tokenizer == "model" and model else text.tokenizer
