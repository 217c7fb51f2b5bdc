"""The real text of language-model chains: a corpus, its tokenisation and its fixed split.

The default corpus is the Python documentation that CPython ships in ``pydoc_data.topics``
(about 120,000 word and punctuation tokens: available offline, no download); ``corpus: {path:
FILE}`` names any UTF-8 text file instead. Tokenisation is word-level (lower-cased words and
single punctuation characters) or character-level (whitespace runs become one space). The last
``heldout`` share of the tokens is the fixed held-out split that perplexities are measured on;
the rest is the training split, from which every real training set is drawn.

The vocabulary is the training split's token types, most frequent first (ties in code-point
order), plus ``<unk>`` last, which held-out tokens unseen in training map to. It is a pure
function of the text and the tokeniser, so a results folder can be read without the family.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sweep.errors import SpecError

TOKENIZERS = ("word", "char")
UNK = "<unk>"
BUILTIN = "pydoc"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CorpusSource:
    """Where the text comes from: the built-in corpus, or a file (absolute path), with the text's
    SHA-256, so that a results folder is refused when its corpus has changed."""

    path: str | None
    sha256: str

    def to_raw(self) -> dict[str, Any]:
        where = {"builtin": BUILTIN} if self.path is None else {"path": self.path}
        return {**where, "sha256": self.sha256}


def _builtin_text() -> str:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return "\n".join(topics[key] for key in sorted(topics))


def read_text(source: CorpusSource) -> str:
    return _builtin_text() if source.path is None else Path(source.path).read_text(encoding="utf-8")


def parse_corpus(value: Any, path: str) -> CorpusSource:
    """Read ``corpus``: ``pydoc`` (the default), ``{path: FILE}`` or the resolved form
    ``{builtin: pydoc | path: FILE, sha256: HEX}`` that sweep.json records (the text must match)."""
    expected = "pydoc, or {path: FILE} naming a UTF-8 text file"
    if value == BUILTIN:
        value = {"builtin": BUILTIN}
    if (
        not isinstance(value, dict)
        or not value
        or set(value) - {"path", "builtin", "sha256"}
        or ("path" in value) == ("builtin" in value)
    ):
        raise SpecError(path, expected, value)
    if "builtin" in value:
        if value["builtin"] != BUILTIN:
            raise SpecError(f"{path}.builtin", BUILTIN, value["builtin"])
        text, where = _builtin_text(), None
    else:
        file = value["path"]
        if not isinstance(file, str) or not file:
            raise SpecError(f"{path}.path", "a path to a UTF-8 text file", file)
        resolved = Path(file).expanduser().resolve()
        if not resolved.is_file():
            raise SpecError(
                f"{path}.path",
                "an existing UTF-8 text file",
                f"'{file}' ({'a folder' if resolved.is_dir() else 'no such file'})",
                raw=True,
            )
        try:
            text = resolved.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise SpecError(
                f"{path}.path", "a UTF-8 text file", f"'{file}' (not UTF-8: byte {error.start})", raw=True
            ) from None
        except OSError as error:
            raise SpecError(
                f"{path}.path", "a readable UTF-8 text file", f"'{file}' ({' '.join(str(error).split())})", raw=True
            ) from None
        if not text.strip():
            raise SpecError(f"{path}.path", "a text file with some text", f"'{file}' (empty)", raw=True)
        where = str(resolved)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if "sha256" in value and value["sha256"] != digest:
        raise SpecError(
            f"{path}.sha256",
            f"the SHA-256 of the corpus text ({digest[:12]}...: the text changed since the results were written?)",
            value["sha256"],
        )
    return CorpusSource(where, digest)


def tokenize(text: str, tokenizer: str) -> list[str]:
    """Word-level (lower-cased words and punctuation characters) or character-level tokens."""
    if tokenizer == "word":
        return _WORD.findall(text.lower())
    return list(_SPACE.sub(" ", text).strip())


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: vocabulary, training split and held-out split as token ids.

    Attributes
    ----------
    vocab : tuple of str
        Token types, most frequent in the training split first, ``<unk>`` last.
    train, heldout : ndarray of int32
        The two splits (held-out tokens unseen in training are ``<unk>``).
    train_counts : ndarray of int64
        Each type's count in the training split (0 for ``<unk>``).
    """

    vocab: tuple[str, ...]
    train: np.ndarray
    heldout: np.ndarray
    train_counts: np.ndarray

    @property
    def size(self) -> int:
        return len(self.vocab)

    def decode(self, ids: np.ndarray, tokenizer: str) -> str:
        words = [self.vocab[i] for i in np.asarray(ids).ravel()]
        return ("" if tokenizer == "char" else " ").join(words)


def _model_corpus(text: str, folder: str, heldout: float) -> Corpus:
    """A corpus in the token ids of a Hugging Face model's own tokenizer (its vocabulary, padded to
    the model's ``vocab_size`` with placeholder names; no ``<unk>``: byte-level tokenizers cover all)."""
    import json

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    size = int(json.loads((Path(folder) / "config.json").read_text()).get("vocab_size") or len(tokenizer))
    ids = np.array(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int32)
    names = tokenizer.convert_ids_to_tokens(list(range(min(size, len(tokenizer)))))
    vocab = tuple(str(t) for t in names) + tuple(f"<extra_{i}>" for i in range(len(names), size))
    cut = ids.size - int(round(heldout * ids.size))
    train, held = ids[:cut], ids[cut:]
    counts = np.bincount(train, minlength=size).astype(np.int64)
    for array in (train, held, counts):
        array.setflags(write=False)
    return Corpus(vocab, train, held, counts)


@lru_cache(maxsize=8)
def load_corpus(source: CorpusSource, tokenizer: str, heldout: float) -> Corpus:
    """Tokenise and split a corpus (cached per process: families of every cell share it);
    ``tokenizer``: word, char, or ``hf:FOLDER`` (a Hugging Face model's tokenizer)."""
    if tokenizer.startswith("hf:"):
        return _model_corpus(read_text(source), tokenizer[3:], heldout)
    tokens = tokenize(read_text(source), tokenizer)
    cut = len(tokens) - int(round(heldout * len(tokens)))
    train_tokens, heldout_tokens = tokens[:cut], tokens[cut:]
    types, counts = np.unique(np.array(train_tokens, dtype=object), return_counts=True) if train_tokens else ([], [])
    order = sorted(range(len(types)), key=lambda i: (-counts[i], types[i]))
    vocab = tuple(str(types[i]) for i in order) + (UNK,)
    index = {word: i for i, word in enumerate(vocab)}
    unk = len(vocab) - 1
    train = np.array([index[t] for t in train_tokens], dtype=np.int32)
    held = np.array([index.get(t, unk) for t in heldout_tokens], dtype=np.int32)
    train_counts = np.bincount(train, minlength=len(vocab)).astype(np.int64)
    for array in (train, held, train_counts):
        array.setflags(write=False)
    return Corpus(vocab, train, held, train_counts)
