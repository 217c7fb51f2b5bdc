"""bernoulli and poisson: bad specs, streams, events through real sweeps, and the exact path against the sample path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

import analysis
from sweep.engine import simulate_block
from sweep.errors import SpecError
from sweep.families._counts import Totals
from sweep.families.bernoulli import BernoulliFamily
from sweep.families.poisson import PoissonFamily
from sweep.grid import block_rng, cells
from sweep.runner import run_sweep
from sweep.spec import parse_spec

EVERY_POLICY = [
    "replace",
    "accumulate",
    "accumulate_subsample",
    {"fresh_real": 0.2},
    {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}},
]


def _checked(report):
    """A run's report, after checking that every task succeeded (final states included: they are
    pickled for extensions, so an unpicklable tracker fails the task after its parts are written)."""
    assert not report.failures, report.failures
    return report


def spec_with(family: dict, **top) -> dict:
    raw = {
        "name": "counts",
        "seed": 5,
        "generations": 10,
        "replicates": 8,
        "family": family,
        "grid": {"n": [20], "policy": ["replace"]},
    }
    raw.update(top)
    return raw


BAD = [
    ({"name": "bernoulli", "p": 0.0}, {}, "spec field 'family.p': expected a number in (0.0, 1.0), got 0.0"),
    ({"name": "bernoulli", "p": 1}, {}, "spec field 'family.p': expected a number in (0.0, 1.0), got 1"),
    ({"name": "bernoulli", "p": 1.5}, {}, "spec field 'family.p': expected a number in (0.0, 1.0), got 1.5"),
    (
        {"name": "bernoulli", "p": "half"},
        {},
        "spec field 'family.p': expected a finite number in (0.0, 1.0), got 'half'",
    ),
    ({"name": "bernoulli"}, {}, "spec field 'family.p': expected a value (the field is required), got nothing"),
    (
        {"name": "bernoulli", "p": 0.3, "lambda": 2},
        {},
        "spec field 'family.lambda': expected one of the known fields (name, p, path), got unknown field 'lambda'",
    ),
    (
        {"name": "bernoulli", "p": 0.3, "path": "auto"},
        {},
        "spec field 'family.path': expected one of exact, sample, got 'auto'",
    ),
    (
        {"name": "bernoulli", "p": 0.3},
        {"grid": {"n": [20], "family.p": [0.5, -0.2], "policy": ["replace"]}},
        "spec field 'grid.family.p[1]': expected a number in (0.0, 1.0), got -0.2",
    ),
    (
        {"name": "bernoulli", "p": 0.3},
        {"events": {"spread_below": [0.5]}},
        "spec field 'events.spread_below': expected an event the bernoulli family declares (collapse, distance_above, diverged), got 'spread_below', which it does not declare",
    ),
    (
        {"name": "poisson", "lambda": 0},
        {},
        "spec field 'family.lambda': expected a number in (0.0, 1000000000.0], got 0",
    ),
    (
        {"name": "poisson", "lambda": -2.5},
        {},
        "spec field 'family.lambda': expected a number in (0.0, 1000000000.0], got -2.5",
    ),
    (
        {"name": "poisson", "lambda": float("nan")},
        {},
        "spec field 'family.lambda': expected a finite number in (0.0, 1000000000.0], got nan",
    ),
    ({"name": "poisson"}, {}, "spec field 'family.lambda': expected a value (the field is required), got nothing"),
    (
        {"name": "poisson", "lambda": 2.0},
        {"temperature": 0.5},
        "spec field 'temperature': expected 1 (a tempered Poisson pmf p^(1/T) is a Conway-Maxwell-Poisson law, not a Poisson: the poisson family does not temper), got 0.5",
    ),
    (
        {"name": "poisson", "lambda": 2.0},
        {"grid": {"n": [20], "policy": ["replace"], "temperature": [1.0, 0.7]}},
        "spec field 'grid.temperature[1]': expected 1 (a tempered Poisson pmf",
    ),
    (
        {"name": "poisson", "lambda": 2.0},
        {"grid": {"n": [20], "policy": ["accumulate_subsample"]}},
        "spec field 'grid.policy[0]': expected a policy the exact path can simulate (accumulate_subsample and mix with 0 < keep < 1 subsample stored samples",
    ),
    (
        {"name": "poisson", "lambda": 1e6},
        {"grid": {"n": [10**7], "policy": ["replace"]}},
        "spec field 'grid.n[0]': expected n * lambda <= 1e+12 (lambda = 1e+06; the sums must stay far below numpy's Poisson limit), got 10000000",
    ),
    (
        {"name": "bernoulli", "p": 0.5},
        {"generations": 2000, "grid": {"n": [10**6], "policy": ["accumulate_subsample"]}},
        "spec field 'grid.n[0]': expected n * (generations + 1) < 1e+09 for accumulate_subsample",
    ),
]


@pytest.mark.parametrize(
    "family, top, message", BAD, ids=[m.split(":")[0] + f"[{i}]" for i, (_, _, m) in enumerate(BAD)]
)
def test_bad_specs(family, top, message):
    """Bad p, lambda, path, temperature and policies are one-line SpecErrors naming the field."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(family, **top))
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_valid_specs_resolve():
    """Defaults are filled in, and the Poisson's auto path accepts subsampling policies."""
    spec = parse_spec(spec_with({"name": "bernoulli", "p": 0.25}))
    assert spec.to_raw()["family"] == {"name": "bernoulli", "p": 0.25, "path": "exact"}
    spec = parse_spec(
        spec_with({"name": "poisson", "lambda": 3, "path": "auto"}, grid={"n": [20], "policy": EVERY_POLICY})
    )
    assert spec.to_raw()["family"] == {"name": "poisson", "lambda": 3.0, "path": "auto"}


def test_bernoulli_temperature():
    """Tempering samples from p^(1/T) / (p^(1/T) + (1 - p)^(1/T)): T = 1 leaves p alone, 0 and 1 stay
    put, and a tiny T neither overflows nor gives NaN (the sharper side wins)."""
    from sweep.families.bernoulli import tempered

    p = np.array([0.0, 0.3, 0.5, 0.8, 1.0])
    np.testing.assert_array_equal(tempered(p, 1.0), p)
    np.testing.assert_allclose(
        tempered(p, 0.5), [0.0, 0.09 / (0.09 + 0.49), 0.5, 0.64 / (0.64 + 0.04), 1.0], rtol=1e-12
    )
    np.testing.assert_allclose(
        tempered(p, 2.0),
        [0.0, 0.3**0.5 / (0.3**0.5 + 0.7**0.5), 0.5, 0.8**0.5 / (0.8**0.5 + 0.2**0.5), 1.0],
        rtol=1e-12,
    )
    np.testing.assert_array_equal(tempered(p, 1e-4), [0.0, 0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize(
    "family, message",
    [
        ({"name": "bernoulli", "p": 2.0}, "error: spec field 'family.p': expected a number in (0.0, 1.0), got 2.0\n"),
        (
            {"name": "poisson", "lambda": 0.0},
            "error: spec field 'family.lambda': expected a number in (0.0, 1000000000.0], got 0.0\n",
        ),
        ({"name": "bernouli", "p": 0.3}, "error: spec field 'family.name': expected one of "),
    ],
)
def test_bad_spec_through_cli(family, message, cli, write_spec, tmp_path):
    """Through `sweep run`: one line on stderr, exit 2, nothing written."""
    status, _, err = cli("run", write_spec(spec_with(family)), "--out", tmp_path / "out")
    assert status == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def _block(family: dict, policy, replicates: int, generations: int = 12):
    spec = parse_spec(
        spec_with(
            family, replicates=replicates, block_size=8, generations=generations, grid={"n": [10], "policy": [policy]}
        )
    )
    cell = cells(spec)[0]
    return simulate_block(
        cell.family,
        cell,
        0,
        generations=generations,
        recorded=np.arange(generations + 1),
        events_spec=spec.events,
        rng=block_rng(9, cell, 0),
    )


@pytest.mark.parametrize(
    "family",
    [
        {"name": "bernoulli", "p": 0.3},
        {"name": "bernoulli", "p": 0.3, "path": "sample"},
        {"name": "poisson", "lambda": 0.4, "path": "auto"},
    ],
)
@pytest.mark.parametrize("policy", EVERY_POLICY, ids=["replace", "accumulate", "subsample", "fresh", "mix"])
def test_partial_block_gives_chains_the_values_of_a_full_block(family, policy):
    """Chains 0-2 of a block of 8 and of a partial block of 3 are bit-identical (streams contract)."""
    full, _ = _block(family, policy, 8)
    part, _ = _block(family, policy, 3)
    metric = "p" if family["name"] == "bernoulli" else "lambda"
    np.testing.assert_array_equal(full[metric].reshape(-1, 8)[:, :3], part[metric].reshape(-1, 3))


def test_bernoulli_sweep(ray_session, tmp_path):
    """Every policy runs; generation 0 is the truth; collapse is absorbing under replace and only
    possible at generation 1 under accumulate; distance_above is |p_t - p| > eps."""
    raw = spec_with(
        {"name": "bernoulli", "p": 0.2},
        generations=40,
        replicates=200,
        grid={"n": [8], "policy": EVERY_POLICY},
        events={"distance_above": [0.15]},
        record={"every": 1},
    )
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    frame = analysis.load(report.location)
    events = analysis.load_events(report.location)
    first = frame[frame["generation"] == 0]
    assert (first["p"] == 0.2).all() and (first["abs_error"] == 0).all() and (first["spread_ratio"] == 1).all()
    assert len(events) == 5 * 200 * 3 and set(events["event"]) == {"collapse", "distance_above", "diverged"}
    assert not events.loc[events["event"] == "diverged", "observed"].any()
    collapse = events[(events["event"] == "collapse") & events["observed"]].set_index(["policy", "replicate"])[
        "generation"
    ]
    replace = frame[frame["policy"] == "replace"].join(collapse.loc["replace"].rename("at"), on="replicate")
    after = replace[replace["generation"] >= replace["at"]]
    assert len(after) > 100 and after["p"].isin([0.0, 1.0]).all()
    assert (collapse.loc["accumulate"] == 1).all()
    distance = events[(events["event"] == "distance_above") & events["observed"]]
    hits = frame.merge(distance[["policy", "replicate", "generation"]], on=["policy", "replicate", "generation"])
    assert len(hits) == len(distance) and (hits["abs_error"] > 0.15).all()


def test_poisson_sweep(ray_session, tmp_path):
    """The auto path runs every policy; collapse (lambda_t = 0) is absorbing under replace."""
    raw = spec_with(
        {"name": "poisson", "lambda": 0.3, "path": "auto"},
        generations=30,
        replicates=200,
        grid={"n": [6], "policy": EVERY_POLICY},
        record={"every": 1},
    )
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    frame = analysis.load(report.location)
    first = frame[frame["generation"] == 0]
    assert (first["lambda"] == 0.3).all() and (first["spread_ratio"] == 1).all()
    events = analysis.load_events(report.location)
    collapse = events[(events["event"] == "collapse") & events["observed"] & (events["policy"] == "replace")]
    replace = frame[frame["policy"] == "replace"].merge(
        collapse[["replicate", "generation"]].rename(columns={"generation": "at"})
    )
    after = replace[replace["generation"] >= replace["at"]]
    assert collapse.shape[0] > 50 and (after["lambda"] == 0).all()


class WithReplacementSubsample(BernoulliFamily):
    """A plausible bug: subsampling the stored counts with replacement (binomial) instead of without."""

    def subsample_stats(self, stats: Totals, m: int, *, rng: np.random.Generator) -> Totals:
        return Totals(m, rng.binomial(m, stats.total / stats.m))


def homogeneity_pvalue(a: np.ndarray, b: np.ndarray, *, minimum: int = 20) -> float:
    """Chi-square test that two samples of a discrete variable have the same law (values with
    fewer than ``minimum`` observations in total are pooled with their neighbours)."""
    values = np.union1d(a, b)
    counts = np.stack([np.bincount(np.searchsorted(values, x), minlength=values.size) for x in (a, b)])
    columns, current = [], np.zeros(2, dtype=np.int64)
    for column in counts.T:
        current = current + column
        if current.sum() >= minimum:
            columns.append(current)
            current = np.zeros(2, dtype=np.int64)
    if current.sum():
        columns[-1] = columns[-1] + current
    table = np.array(columns).T
    return 1.0 if table.shape[1] < 2 else stats.chi2_contingency(table)[1]


def _final(raw: dict, tmp_path, name: str) -> analysis.pd.DataFrame:
    raw = copy.deepcopy(raw)
    raw["name"] = name
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    return analysis.load(report.location, filters=[("generation", "=", raw["generations"])])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, family, metric",
    [("bernoulli", {"name": "bernoulli", "p": 0.3}, "p"), ("poisson", {"name": "poisson", "lambda": 0.8}, "lambda")],
)
def test_exact_matches_sample(name, family, metric, ray_session, tmp_path):
    """The exact path (binomial/Poisson sums, hypergeometric subsamples) and the sample path give the same
    law of the estimate at T = 15 under every policy: chi-square homogeneity tests on 6000 chains each."""
    generations, replicates = 15, 6000
    frames = {}
    for seed, path in ((1, "exact"), (2, "sample")):
        fam = dict(family, path=path if name == "bernoulli" or path == "sample" else "auto")
        raw = spec_with(
            fam,
            seed=seed,
            generations=generations,
            replicates=replicates,
            grid={"n": [10], "policy": EVERY_POLICY},
            record={"every": generations},
        )
        frames[path] = _final(raw, tmp_path, f"{name}-{path}")
    for policy, exact in frames["exact"].groupby("policy"):
        sample = frames["sample"].query("policy == @policy")[metric].to_numpy()
        assert exact[metric].size == sample.size == replicates
        assert homogeneity_pvalue(exact[metric].to_numpy(), sample) > 1e-3, policy


class FencePostSum(PoissonFamily):
    """A plausible bug: the sum of m + 1 samples drawn for a training set of m."""

    def draw(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Totals:
        return Totals(m, rng.poisson(params * float(m + 1)))


def _wrong_final(cls: type, family: dict, policy, generations: int, replicates: int) -> np.ndarray:
    """The estimate at the horizon of a block run by a deliberately wrong family (engine only)."""
    spec = parse_spec(
        spec_with(
            family,
            seed=1,
            generations=generations,
            replicates=replicates,
            grid={"n": [10], "policy": [policy]},
            block_size=replicates,
        )
    )
    cell = cells(spec)[0]
    trajectories, _ = simulate_block(
        cls(spec.family_spec),
        cell,
        0,
        generations=generations,
        recorded=np.array([0, generations]),
        events_spec=spec.events,
        rng=block_rng(1, cell, 0),
    )
    final = trajectories["generation"] == generations
    return {name: values[final] for name, values in trajectories.items()}


@pytest.mark.slow
def test_exact_comparison_has_power(ray_session, tmp_path):
    """The homogeneity test above, at its size, rejects plausible bugs of an exact path: a
    with-replacement subsample of the Bernoulli counts (mix keeping half of the previous data: the
    variances differ by about 10%), and a Poisson sum of one sample too many."""
    generations, replicates = 15, 6000
    mix = {"mix": {"keep": 0.5, "synthetic": 0.5, "real": 0.0}}
    for family, metric, policy, wrong in (
        ({"name": "bernoulli", "p": 0.3}, "p", mix, WithReplacementSubsample),
        ({"name": "poisson", "lambda": 0.8}, "lambda", "replace", FencePostSum),
    ):
        raw = spec_with(
            dict(family, path="sample"),
            seed=2,
            generations=generations,
            replicates=replicates,
            grid={"n": [10], "policy": [policy]},
            record={"every": generations},
        )
        sample = _final(raw, tmp_path, f"power-{family['name']}")[metric].to_numpy()
        bad = _wrong_final(wrong, family, policy, generations, replicates)[metric]
        assert bad.size == sample.size == replicates
        assert homogeneity_pvalue(bad, sample) < 1e-6, family


@pytest.mark.parametrize("name", ["bernoulli_small", "poisson_small"])
def test_small_experiment(name, ray_session, tmp_path):
    """The shipped small experiments run; their collapse shares at T = 300 agree with the exact laws
    within 5 s.e. (replace and accumulate at n = 10 and 32)."""
    from pathlib import Path

    from analysis import theory_collapse as theory
    from sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "experiments" / f"{name}.yaml")
    events = analysis.load_events(_checked(run_sweep(spec, str(tmp_path), progress=False)).location)
    collapse = events[events["event"] == "collapse"]
    for (n, policy), rows in collapse.groupby(["n", "policy"]):
        if policy not in ("replace", "accumulate") or n > 32:
            continue
        if name == "bernoulli_small":
            expected = theory.bernoulli_collapse_probability(0.1, int(n), spec.generations, policy=policy)[()]
        else:
            expected = theory.poisson_collapse_probability(1.0, int(n), spec.generations, policy=policy)[()]
        share = rows["observed"].mean()
        assert abs(share - expected) <= 5 * np.sqrt(expected * (1 - expected) / len(rows)) + 1e-9, (
            n,
            policy,
            share,
            expected,
        )


@pytest.mark.parametrize(
    "family", [{"name": "bernoulli", "p": 0.3}, {"name": "poisson", "lambda": 0.5, "path": "auto"}]
)
def test_folder_grows_to_a_longer_horizon(family, ray_session, tmp_path):
    """A finished folder rerun with more generations continues every chain from its stored final
    state (events included) and equals a fresh run to the longer horizon, row for row."""
    import pandas as pd

    raw = spec_with(family, generations=12, replicates=20, grid={"n": [6], "policy": EVERY_POLICY}, record={"every": 3})
    short = _checked(run_sweep(parse_spec(raw), str(tmp_path / "grown"), progress=False))
    grown = _checked(run_sweep(parse_spec(dict(raw, generations=24)), str(tmp_path / "grown"), progress=False))
    fresh = _checked(run_sweep(parse_spec(dict(raw, generations=24)), str(tmp_path / "fresh"), progress=False))
    assert grown.chains_run == short.chains_run == 5 * 20
    order = ["cell", "replicate", "generation"]
    pd.testing.assert_frame_equal(
        analysis.load(grown.location).sort_values(order).reset_index(drop=True),
        analysis.load(fresh.location).sort_values(order).reset_index(drop=True),
    )
    keys = ["cell", "replicate", "event", "threshold"]
    pd.testing.assert_frame_equal(
        analysis.load_events(grown.location).sort_values(keys).reset_index(drop=True),
        analysis.load_events(fresh.location).sort_values(keys).reset_index(drop=True),
    )
