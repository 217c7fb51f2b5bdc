"""Bad language-model specs: one line naming the field, exit status 2, nothing written."""

from __future__ import annotations

import pytest

BASE = {"name": "bad", "seed": 1, "generations": 2, "replicates": 2, "grid": {"n": [64], "policy": ["replace"]}}


def _files(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "nomodel").mkdir()
    (tmp_path / "nomodel" / "weights.bin").write_bytes(b"\0")


CASES = [
    ({"name": "ngram", "tokenizer": "bpe"}, "spec field 'family.tokenizer': expected one of word, char, got 'bpe'"),
    ({"name": "ngram", "order": 0}, "spec field 'family.order': expected an integer in [1, 6], got 0"),
    (
        {"name": "transformer", "sequence_length": 32, "context": 64},
        "spec field 'family.context': expected a context length that divides the training blocks' sequence_length = 32 "
        "(at most 32), got 64",
    ),
    (
        {"name": "transformer", "model": {"path": "{tmp}/nomodel"}},
        "spec field 'family.model.path': expected a Hugging Face model folder with a config.json, got '{tmp}/nomodel' "
        "(no config.json)",
    ),
    (
        {"name": "ngram", "corpus": {"path": "{tmp}/missing.txt"}},
        "spec field 'family.corpus.path': expected an existing UTF-8 text file, got '{tmp}/missing.txt' (no such file)",
    ),
    (
        {"name": "ngram", "corpus": {"path": "{tmp}/empty.txt"}},
        "spec field 'family.corpus.path': expected a text file with some text, got '{tmp}/empty.txt' (empty)",
    ),
    (
        {"name": "ngram", "corpus": {"path": "{tmp}/latin1.txt"}},
        "spec field 'family.corpus.path': expected a UTF-8 text file, got '{tmp}/latin1.txt' (not UTF-8: byte 3)",
    ),
    (
        {"name": "ngram", "sequence_length": 48},
        "spec field 'grid.n[0]': expected a number of tokens whose replace shares are whole blocks of sequence_length "
        "= 48 tokens, got 64 (synthetic 64 = 1.33333 blocks)",
    ),
    (
        {"name": "transformer", "num_beams": 5, "top_k": 10},
        "spec field 'family.num_beams': expected 1 when the cell samples with a temperature, top_k or top_p (beam "
        "search is deterministic), got 5",
    ),
]


@pytest.mark.parametrize("family, message", CASES, ids=[c[1].split("'")[1] + f"-{i}" for i, c in enumerate(CASES)])
def test_bad_language_model_specs_are_one_line_and_write_nothing(family, message, cli, write_spec, tmp_path):
    """An unknown tokeniser, an order below 1, a context longer than the training blocks, a model
    folder without config.json, a missing, empty or non-UTF-8 corpus, n that is not whole blocks,
    beam search with sampling: exit 2, one line naming the field, no results folder."""
    _files(tmp_path)
    family = {k: ({"path": v["path"].format(tmp=tmp_path)} if isinstance(v, dict) else v) for k, v in family.items()}
    status, _, err = cli("run", write_spec({**BASE, "family": family}), "--out", tmp_path / "results")
    assert status == 2
    assert err == f"error: {message.format(tmp=tmp_path)}\n"
    assert not (tmp_path / "results").exists()
