"""Mixing policies: labels, counts per source and which ones subsample stored data."""

from __future__ import annotations

import pytest

from sweep.errors import SpecError
from sweep.policies import parse_policy


def test_labels_and_counts():
    """Named presets read into the three-way mix with counts that add up to n."""
    mix = parse_policy({"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}}, "p")
    assert mix.label == "mix(0.5,0.4,0.1)" and mix.counts(10) == (5, 4, 1) and mix.subsamples
    fresh = parse_policy({"fresh_real": 0.25}, "p")
    assert fresh.label == "fresh_real(0.25)" and fresh.counts(10) == (0, 7, 3) and not fresh.subsamples
    assert parse_policy("accumulate_subsample", "p").subsamples
    assert not parse_policy("accumulate", "p").subsamples
    assert not parse_policy({"mix": {"keep": 1.0}}, "p").subsamples


@pytest.mark.parametrize("raw", ["shuffle", {"fresh": 0.1}, {"fresh_real": 0.1, "mix": {}}, 3])
def test_unknown_policy(raw):
    """Anything else is refused naming the field and the accepted forms."""
    with pytest.raises(SpecError, match=r"spec field 'grid.policy\[0\]': expected a policy: replace, accumulate"):
        parse_policy(raw, "grid.policy[0]")
