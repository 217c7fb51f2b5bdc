"""Spec validation: every malformed spec gets one line naming the field, exit 2, nothing written."""

from __future__ import annotations

import pytest

from sweep.families import REGISTRY
from sweep.spec import parse_spec

BASE = {
    "name": "t",
    "seed": 1,
    "generations": 5,
    "replicates": 4,
    "family": {"name": "gaussian"},
    "grid": {"n": [10], "policy": ["replace"]},
}


def with_(path: str, value):
    import copy

    raw = copy.deepcopy(BASE)
    node = raw
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return raw


DELETE = object()

BAD = [
    (
        "family.name",
        "weibull",
        f"spec field 'family.name': expected one of {', '.join(REGISTRY)}, an installed family or 'package.module:ClassName', got 'weibull'",
    ),
    ("grid.policy", ["replace", "shuffle"], "spec field 'grid.policy[1]': expected a policy"),
    ("grid.n", [1], "spec field 'grid.n[0]': expected an integer >= 2 (the unbiased estimator"),
    ("grid.n", [10, 2.5], "spec field 'grid.n[1]': expected an integer in [1, 1000000000], got 2.5"),
    ("grid.n", [-3], "spec field 'grid.n[0]': expected an integer in [1, 1000000000], got -3"),
    ("grid.n", [], "spec field 'grid.n': expected a non-empty list, got []"),
    (
        "grid.policy",
        [{"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.2}}],
        "spec field 'grid.policy[0].mix': expected ratios keep + synthetic + real summing to 1, got 0.5 + 0.4 + 0.2 = 1.1",
    ),
    (
        "grid.policy",
        [{"fresh_real": 1.5}],
        "spec field 'grid.policy[0].fresh_real': expected a number in [0.0, 1.0], got 1.5",
    ),
    (
        "grid.policy",
        [{"fresh_real": -0.1}],
        "spec field 'grid.policy[0].fresh_real': expected a number in [0.0, 1.0], got -0.1",
    ),
    (
        "family.cov",
        [[1.0, 2.0], [2.0, 1.0]],
        "spec field 'family.cov': expected a symmetric positive definite 1x1 matrix",
    ),
    ("replicates", -2, "spec field 'replicates': expected an integer in [1, 1000000000], got -2"),
    ("replicates", 2.5, "spec field 'replicates': expected an integer in [1, 1000000000], got 2.5"),
    ("generations", DELETE, "spec field 'generations': expected a value (the field is required), got nothing"),
    ("generatoins", 5, "spec field 'generatoins': expected one of the known fields (name, seed, generations"),
    (
        "family.estimater",
        "ml",
        "spec field 'family.estimater': expected one of the known fields (name, dim, mean, cov, estimator, path, kernel), got unknown field 'estimater'",
    ),
    ("grid", {"n": [10], "policy": []}, "spec field 'grid.policy': expected a non-empty list, got []"),
    ("grid", {}, "spec field 'grid.n': expected a value (the field is required), got nothing"),
    ("family.path", "fast", "spec field 'family.path': expected one of exact, sample, auto, got 'fast'"),
    (
        "grid.policy",
        ["accumulate_subsample"],
        "spec field 'grid.policy[0]': expected a policy the exact path can simulate",
    ),
    ("name", "../escape", "spec field 'name': expected a name of letters, digits"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_field_message(path, value, message):
    """Each malformed field raises a SpecError whose one-line message names field, expectation and value."""
    from sweep.errors import SpecError

    with pytest.raises(SpecError) as info:
        parse_spec(with_(path, value))
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_bad_cov_3d():
    """A 3x3 covariance that is not symmetric is refused with the reason."""
    from sweep.errors import SpecError

    raw = with_("family", {"name": "gaussian", "dim": 3, "cov": [[1, 0, 0], [0.5, 1, 0], [0, 0, 1]]})
    with pytest.raises(
        SpecError,
        match=r"spec field 'family.cov': expected a symmetric positive definite 3x3 matrix .*\(it is not symmetric\)",
    ):
        parse_spec(raw)


CATEGORICAL_BAD = [
    (
        {"name": "categorical", "probs": [0.5, -0.1, 0.6]},
        "spec field 'family.probs[1]': expected a number in [0.0, 1.0], got -0.1",
    ),
    (
        {"name": "categorical", "probs": [0.5, 0.4]},
        "spec field 'family.probs': expected probabilities summing to 1, got a sum of 0.9",
    ),
    (
        {"name": "categorical", "k": 3, "probs": [0.5, 0.5]},
        "spec field 'family.probs': expected a list of k = 3 probabilities, got 2 values",
    ),
    (
        {"name": "categorical", "probs": "uniform"},
        "spec field 'family.k': expected an integer >= 2 (needed with probs: uniform), got nothing",
    ),
    (
        {"name": "categorical", "k": 10, "probs": {"zipf": -1}},
        "spec field 'family.probs.zipf': expected a number in (0.0, inf], got -1",
    ),
    ({"name": "categorical", "k": 1.5}, "spec field 'family.k': expected an integer in [2, 10000000], got 1.5"),
]


@pytest.mark.parametrize("family, message", CATEGORICAL_BAD)
def test_bad_categorical(family, message):
    """Categorical probabilities that are negative, do not sum to 1, or mismatch k are refused."""
    from sweep.errors import SpecError

    with pytest.raises(SpecError) as info:
        parse_spec(with_("family", family))
    assert str(info.value).startswith(message), str(info.value)


def test_defaults_resolved():
    """A minimal spec resolves to documented defaults, and to_raw round-trips through parse_spec."""
    spec = parse_spec(BASE)
    assert spec.family_spec.estimator == "unbiased" and spec.family_spec.path == "exact"
    assert spec.events.spread_below == (0.5, 0.1, 0.01)
    assert parse_spec(spec.to_raw()) == spec


def test_record_generations():
    """Recorded generations are dense then log-spaced, sorted, and always include 0 and T."""
    from sweep.spec import Record

    kept = Record(dense_until=10, log_points=5).generations(1000)
    assert kept[0] == 0 and kept[-1] == 1000 and list(kept[:11]) == list(range(11))
    assert (kept.diff() if hasattr(kept, "diff") else kept[1:] - kept[:-1]).min() > 0
    assert list(Record(every=7).generations(20)) == [0, 7, 14, 20]
    # per decade, and the same schedule whatever the horizon (only the horizon itself is added)
    record = Record(dense_until=100, log_points=50)
    assert abs(len(record.generations(1000)) - 151) <= 2
    short, long = record.generations(200), record.generations(4000)
    assert set(short[:-1]) <= set(long) and set(long[long <= 200]) <= set(short)


def test_overrides():
    """--set applies dotted keys with YAML values."""
    from sweep.spec import apply_overrides

    raw = apply_overrides(BASE, ["generations=500", "grid.n=[10,100]", "family.path=sample"])
    assert raw["generations"] == 500 and raw["grid"]["n"] == [10, 100] and raw["family"]["path"] == "sample"
    assert BASE["generations"] == 5


def test_grid_union():
    """A list of grids is the union of their cartesian products, errors name the part, duplicates refused."""
    from sweep.errors import SpecError

    raw = with_("grid", [{"n": [10, 20], "policy": ["replace"]}, {"n": [10], "policy": ["accumulate"]}])
    spec = parse_spec(raw)
    assert [(p.n, p.policy.label) for p in spec.grid.points] == [(10, "replace"), (20, "replace"), (10, "accumulate")]
    assert parse_spec(spec.to_raw()) == spec
    with pytest.raises(SpecError, match=r"spec field 'grid\[1\].n\[0\]': expected an integer >= 2"):
        parse_spec(with_("grid", [{"n": [10]}, {"n": [1]}]))
    with pytest.raises(
        SpecError, match=r"spec field 'grid': expected each cell at most once, got n=10, policy=replace twice"
    ):
        parse_spec(with_("grid", [{"n": [10]}, {"n": [10, 20]}]))


def test_auto_path_accepts_subsampling():
    """path: auto accepts subsampling policies (sampled there) where path: exact refuses them."""
    spec = parse_spec(
        with_("family", {"name": "gaussian", "path": "auto"})
        | {"grid": {"n": [10], "policy": ["replace", "accumulate_subsample"]}}
    )
    assert spec.family.exact_draw
