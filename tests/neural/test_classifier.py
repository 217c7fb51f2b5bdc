"""The digit classifier: >= 95% held-out accuracy, deterministic, cached next to the results."""

from __future__ import annotations

import numpy as np
import torch

from sweep.families._neural import classifier


def test_accuracy_on_held_out_digits(digit_classifier, digits):
    """Trained on the pool only, it labels >= 95% of the 359 held-out digits correctly."""
    assert digit_classifier.accuracy >= 0.95
    assert classifier.accuracy(digit_classifier, digits) == digit_classifier.accuracy


def test_cached_next_to_the_results(tmp_path, digits, digit_classifier, monkeypatch):
    """prepare writes <results>/classifier/<hash>.pt; later calls read it instead of training,
    and the copy gives the same logits; a read-only prepare of an empty folder writes nothing."""
    classifier.prepare(digits, str(tmp_path / "empty"), write=False)
    assert not (tmp_path / "empty").exists()
    first = classifier.prepare(digits, str(tmp_path))
    files = list((tmp_path / "classifier").iterdir())
    assert [f.name for f in files] == [f"{classifier.key(digits)}.pt"]

    def refuse(data):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(classifier, "train", refuse)
    monkeypatch.setattr(classifier, "_CACHE", {})
    again = classifier.prepare(digits, str(tmp_path))
    x = torch.from_numpy(np.array(digits.heldout[:50]))
    for a, b in zip(first.features_and_logits(x), again.features_and_logits(x)):
        assert torch.equal(a, b)
    assert again.accuracy == digit_classifier.accuracy
