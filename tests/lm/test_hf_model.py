"""A pretrained Hugging Face causal LM from a local folder (the optional .[lm] extra), on a tiny
randomly initialised GPT-2 and a byte-level BPE tokenizer that the test builds and saves itself:
no hub access. Chains fine-tune it, decode with it and score with it, deterministically."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from sweep.engine import BlockRun  # noqa: E402
from sweep.grid import block_rng, cells  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by a log. " * 60


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A 1-layer GPT-2 of width 32 with its tokenizer, saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT)
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train([str(corpus)], vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(folder)
    special = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=special,
        eos_token_id=special,
    )
    torch.manual_seed(0)  # the test's own model: its random weights play the pretrained ones
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def _spec(folder, **family):
    return parse_spec(
        {
            "name": "hf",
            "seed": 5,
            "generations": 2,
            "replicates": 2,
            "record": {"every": 1},
            "events": {"perplexity_above": [2.0]},
            "family": {
                "name": "transformer",
                "model": {"path": str(folder)},
                "corpus": {"path": str(folder / "corpus.txt")},
                "sequence_length": 16,
                "prompt": 4,
                "epochs": 8,
                "batch_size": 4,
                "learning_rate": 0.01,
                "tracked_words": 20,
                **family,
            },
            "grid": {"n": [256], "policy": ["replace"]},
        }
    )


def _run(spec, stop=2):
    cell = cells(spec)[0]
    run = BlockRun(cell.family, cell, 0, rng=block_rng(spec.seed, cell, 0), events_spec=spec.events)
    run.start(2)
    run.advance(stop, 2, np.ones(3, dtype=bool))
    return cell, run


@pytest.mark.parametrize(
    "decoding",
    [{}, pytest.param({"num_beams": 3, "repetition_penalty": 3.0}, marks=pytest.mark.slow)],
    ids=["sampling", "beams"],
)
def test_pretrained_model_fine_tunes_decodes_and_replays(model_folder, decoding):
    """The corpus is tokenised by the model's tokenizer; each generation fine-tunes the pretrained
    weights (training loss below the pretrained model's loss on the same data: the loop is real),
    the metrics are finite, and a second run, or one resumed from a pickled state, is bit-identical."""
    spec = _spec(model_folder, **decoding)
    cell, run = _run(spec)
    family = cell.family
    assert family.corpus.size == len(transformers.AutoTokenizer.from_pretrained(model_folder))
    traj, events = run.result(np.arange(3))
    late = traj["generation"] > 0
    for name in ("perplexity", "generated_perplexity", "entropy", "distinct_2", "train_loss"):
        assert np.isfinite(traj[name][late]).all(), name
    pretrained = family.hf.pretrained
    untrained = type(run.state.params.model)([pretrained] * 2, np.zeros(2))
    before = -family.log_probs(untrained, run.state.params.text).mean(axis=(1, 2))
    assert (run.state.params.model.loss < before - 1.0).all(), (run.state.params.model.loss, before)

    again = _run(spec)[1].result(np.arange(3))[0]
    cell, half = _run(spec, stop=1)
    resumed = BlockRun(cell.family, cell, 0, rng=block_rng(spec.seed, cell, 0), events_spec=spec.events)
    resumed.restore(pickle.loads(pickle.dumps(half.state)), 2)
    resumed.advance(2, 2, np.ones(3, dtype=bool))
    for other in (again, resumed.result(np.arange(3))[0]):
        for name in ("perplexity", "train_loss", "vocabulary"):
            np.testing.assert_array_equal(other[name], traj[name], err_msg=name)


def test_model_spec_checks(model_folder, write_spec, cli, tmp_path):
    """With a model folder the tokenizer is the model's own: another is refused; context + prompt
    must fit the model's positions. One line, exit 2, nothing written."""
    base = {"name": "bad", "seed": 1, "generations": 2, "replicates": 2, "grid": {"n": [64], "policy": ["replace"]}}
    for family, message in [
        ({"tokenizer": "word"}, "spec field 'family.tokenizer': expected one of model, got 'word'"),
        (
            {"sequence_length": 64, "prompt": 8},
            "spec field 'family.context': expected context + prompt within the model's 64 positions, got 72",
        ),
    ]:
        raw = {**base, "family": {"name": "transformer", "model": {"path": str(model_folder)}, **family}}
        status, _, err = cli("run", write_spec(raw), "--out", tmp_path / "results")
        assert status == 2 and err == f"error: {message}\n", err
        assert not (tmp_path / "results").exists()
