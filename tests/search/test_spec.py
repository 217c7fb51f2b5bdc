"""Bad search specs: one line on stderr naming the field, what was expected and what was given;
exit status 2; nothing written."""

from __future__ import annotations

import copy

import pytest

BASE = {
    "name": "bad",
    "seed": 1,
    "generations": 20,
    "replicates": 10,
    "family": {"name": "gaussian"},
    "grid": {"n": [100], "policy": ["replace"]},
    "search": {
        "parameters": {"policy.fresh_real": {"low": 0.0, "high": 0.3}},
        "objectives": {"collapse_probability": {"event": "spread_below", "threshold": 0.5, "target": 0.05}},
        "trials": 3,
    },
}


def with_search(**changes):
    raw = copy.deepcopy(BASE)
    raw["search"].update(changes)
    return raw


CASES = {
    "not a coordinate": (
        with_search(parameters={"policy.bogus": {"low": 0, "high": 1}}),
        "spec field 'search.parameters.policy.bogus': expected a coordinate of the spec",
    ),
    "not a family field": (
        with_search(parameters={"family.k": {"low": 1, "high": 3}}),
        "spec field 'search.parameters.family.k': expected a coordinate of the spec",
    ),
    "a non-numeric family field": (
        with_search(parameters={"family.estimator": {"low": 0, "high": 1}}),
        "spec field 'search.parameters.family.estimator': expected a numeric family field",
    ),
    "empty range": (
        with_search(parameters={"policy.fresh_real": {"low": 0.2, "high": 0.2}}),
        "spec field 'search.parameters.policy.fresh_real': expected a range with low < high, got low 0.2, high 0.2",
    ),
    "reversed range": (
        with_search(parameters={"n": {"low": 1000, "high": 10, "log": True}}),
        "spec field 'search.parameters.n': expected a range with low < high, got low 1000, high 10",
    ),
    "fraction past 1": (
        with_search(parameters={"policy.fresh_real": {"low": 0.5, "high": 1.5}}),
        "spec field 'search.parameters.policy.fresh_real': expected a range of fractions in [0, 1]",
    ),
    "simplex": (
        with_search(
            parameters={"policy.mix.keep": {"low": 0.7, "high": 0.9}, "policy.mix.real": {"low": 0.5, "high": 0.6}}
        ),
        "spec field 'search.parameters.policy.mix.keep': expected mix fractions that can sum to at most 1 "
        "(the rest is synthetic), got policy.mix.keep low 0.7 + policy.mix.real low 0.5 = 1.2",
    ),
    "target above 1": (
        with_search(objectives={"collapse_probability": {"event": "spread_below", "threshold": 0.5, "target": 1.5}}),
        "spec field 'search.objectives.collapse_probability.target': expected a number in (0.0, 1.0), got 1.5",
    ),
    "target 0": (
        with_search(objectives={"collapse_probability": {"event": "spread_below", "threshold": 0.5, "target": 0}}),
        "spec field 'search.objectives.collapse_probability.target': expected a number in (0.0, 1.0), got 0",
    ),
    "undeclared event": (
        with_search(objectives={"collapse_probability": {"event": "weight_below", "threshold": 0.1}}),
        "spec field 'search.objectives.collapse_probability.event': expected an event the gaussian "
        "family declares (spread_below, distance_above, diverged), got 'weight_below', which it does "
        "not declare",
    ),
    "unknown objective": (
        with_search(objectives={"risk": {}}),
        "spec field 'search.objectives.risk': expected an objective among collapse_probability",
    ),
    "constraint on nothing": (
        with_search(constraints=["median_collapse_time <= 3"]),
        "spec field 'search.constraints[0]': expected 'NAME <= VALUE' or 'NAME >= VALUE'",
    ),
    "a grid of two cells": (
        {**with_search(), "grid": {"n": [100, 200]}},
        "spec field 'grid': expected one cell: the coordinates the search keeps fixed",
    ),
    "a range the family refuses": (
        with_search(parameters={"n": {"low": 1, "high": 100}}),
        "spec field 'search.parameters.n': expected ranges whose every value the spec "
        "accepts (at the low end of n: grid[0].n[0]: expected an integer >= 2",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_search_spec(case, cli, write_spec, tmp_path):
    """Each mistake is one line naming the field; exit 2; no results folder."""
    raw, message = CASES[case]
    status, out, err = cli("search", write_spec(raw), "--out", tmp_path / "out")
    assert status == 2, err
    assert err.startswith(f"error: {message}"), err
    assert err.count("\n") == 1 and out == ""
    assert not (tmp_path / "out").exists()


def test_a_valid_search_spec_resolves(tmp_path):
    """The objectives' thresholds join the tracked events; a simplex box reaching past 1 draws its
    second fraction as a share of what the first leaves."""
    from sweep.search import parse_search_spec

    raw = with_search(
        parameters={"policy.mix.keep": {"low": 0.0, "high": 0.8}, "policy.mix.real": {"low": 0.1, "high": 0.5}},
        objectives={"real_fraction": "minimize", "collapse_probability": {"event": "spread_below", "threshold": 0.3}},
    )
    raw["family"]["path"] = "auto"
    setup = parse_search_spec(raw)
    assert setup.base.events.spread_below == (0.5, 0.3, 0.1, 0.01)  # the defaults stay tracked
    keep, real = setup.search.parameters
    assert (keep.low, keep.high, keep.share) == (0.0, 0.8, False) and real.share
    from sweep.search.space import resolve

    coords = resolve({"policy.mix.keep": 0.8, "policy.mix.real:share": 1.0}, setup.search.parameters)
    assert coords == {"policy.mix.keep": 0.8, "policy.mix.real": pytest.approx(0.2)}
    assert setup.part(coords)["policy"] == [
        {"mix": {"keep": 0.8, "synthetic": pytest.approx(0.0, abs=1e-12), "real": pytest.approx(0.2)}}
    ]
