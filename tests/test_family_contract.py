"""The open family contract: every family (built-in, or written outside the package like
examples/custom_family) declares consistently, keeps the stream rules and checkpoints exactly; the
example exponential family matches its theory; families load by entry point; bad families and
bad requests are one-line errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import digamma, polygamma

import analysis
from examples.custom_family.exponential import ExponentialFamily, ExponentialSpec
from sweep.engine import BlockRun
from sweep.families import REGISTRY, Family, FamilyLoadError, resolve_family
from sweep.grid import block_rng, cells
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from tests.raynodes import ROOT, env, sweep

EXAMPLE = "examples.custom_family.exponential:ExponentialFamily"
SPEC_YAML = ROOT / "examples" / "custom_family" / "spec.yaml"
#: A small spec section for every family the contract test covers.
FAMILIES = {
    "gaussian": {"name": "gaussian", "path": "sample"},
    "categorical": {"name": "categorical", "k": 5},
    "gmm1d": {"name": "gmm1d", "means": [-1.0, 1.0]},
    "gmm1d-float32": {"name": "gmm1d", "means": [-1.0, 1.0], "precision": "float32"},
    "kde": {"name": "kde", "means": [0.0, 2.0]},
    "gmm": {"name": "gmm", "means": [[-1.0, 0.0], [1.0, 0.5]]},
    "kde_nd": {"name": "kde_nd", "generator": "moons"},
    "exponential": {"name": EXAMPLE, "path": "sample"},
    "bernoulli": {"name": "bernoulli", "p": 0.3},
    "poisson": {"name": "poisson", "lambda": 2.0, "path": "sample"},
    "linear_regression": {"name": "linear_regression", "dim": 2, "path": "sample"},
    "ngram": {"name": "ngram", "order": 3, "sequence_length": 4, "top_p": 0.9, "tracked_words": 50},
    "transformer": {
        "name": "transformer",
        "tokenizer": "char",
        "heldout": 0.005,
        "sequence_length": 4,
        "width": 8,
        "heads": 2,
        "layers": 1,
        "epochs": 1,
        "batch_size": 2,
        "prompt": 2,
    },
}


#: Families whose own tests cover the contract's stream and checkpoint rules (a chain's values
#: independent of its block's width, resume from a checkpoint): tests/neural. Their smallest
#: useful configuration trains networks, too slow for the loops below.
COVERED_ELSEWHERE = {"vae": "tests/neural", "wgan": "tests/neural"}


def test_every_registered_family_is_covered():
    assert set(REGISTRY) <= set(FAMILIES) | set(COVERED_ELSEWHERE)


def _spec(family: dict, **changes):
    raw = {
        "name": "contract",
        "seed": 4,
        "generations": 6,
        "replicates": 5,
        "block_size": 8,
        "family": family,
        "grid": {"n": [12], "policy": ["replace", "accumulate_subsample"]},
    }
    return parse_spec({**raw, **changes})


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES)
def test_declarations_match_what_the_family_writes(family):
    """Metrics written are declared columns; the distance and spread metrics are among them; every
    event has a description and parses from the spec with its default."""
    spec = _spec(family)
    cls = spec.family_class
    assert issubclass(cls, Family) and isinstance(cls.name, str)
    written = set(spec.family.metrics(spec.family.truth(3)))
    declared = set(cls.metric_columns) | set(cls.side_metrics)  # side metrics go to tables of their own
    assert written <= declared, written - declared
    for metric in (cls.distance_metric, cls.spread_metric):
        assert metric is None or metric in cls.metric_columns
    for kind in cls.declared_events():
        assert kind.description and kind.name in dict(spec.events.items())


#: Metrics known to depend on the block's width in the last bits (their vectorised quadrature is
#: summed in another order): the fits are bit-identical, these agree to 1e-12.
WIDTH_DEPENDENT = {("kde", "w2")}


def same(actual: np.ndarray, desired: np.ndarray, family: dict, column: str) -> None:
    if (family["name"], column) in WIDTH_DEPENDENT:
        np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=0, err_msg=column)
    else:
        np.testing.assert_array_equal(actual, desired, err_msg=column)


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES)
def test_stream_rules_and_checkpoints_hold(family):
    """The stream rules (chain-leading draws, a data-independent number of draws): a block of 2
    chains gives the first 2 chains of a block of 5 bit for bit. Checkpoints: a state pickled at
    generation 3 and restored in a fresh block continues exactly as the uninterrupted block."""
    for cell_index in range(2):  # replace (statistics where the family has them) and a pool of samples
        wide, narrow = cells(_spec(family))[cell_index], cells(_spec(family, replicates=2))[cell_index]
        spec = _spec(family)
        results = []
        for cell in (wide, narrow):
            run = BlockRun(cell.family, cell, 0, rng=block_rng(9, cell, 0), events_spec=spec.events)
            run.start(6)
            run.advance(6, 6, np.ones(7, dtype=bool))
            results.append(run.result(np.arange(7)))
        (traj5, ev5), (traj2, ev2) = results
        first = np.isin(traj5["replicate"], [0, 1])
        for name in traj2:
            if isinstance(traj2[name], list):  # one array per recorded generation, of several widths
                for wide_rows, narrow_rows in zip(traj5[name], traj2[name], strict=True):
                    same(np.asarray(wide_rows)[:2], np.asarray(narrow_rows), family, name)
                continue
            same(np.asarray(traj5[name])[first], np.asarray(traj2[name]), family, name)
        np.testing.assert_array_equal(ev5["generation"][np.isin(ev5["replicate"], [0, 1])], ev2["generation"])

        run = BlockRun(wide.family, wide, 0, rng=block_rng(9, wide, 0), events_spec=spec.events)
        run.start(6)
        run.advance(3, 6, np.ones(7, dtype=bool))
        resumed = BlockRun(wide.family, wide, 0, rng=block_rng(9, wide, 0), events_spec=spec.events)
        resumed.restore(pickle.loads(pickle.dumps(run.state, protocol=5)), 6)
        resumed.advance(6, 6, np.ones(7, dtype=bool))
        traj, ev = resumed.result(np.arange(7))
        for name in traj:
            if isinstance(traj[name], list):
                for got, expected in zip(traj[name], traj5[name], strict=True):
                    same(np.asarray(got), np.asarray(expected), family, name)
                continue
            same(np.asarray(traj[name]), np.asarray(traj5[name]), family, name)
        np.testing.assert_array_equal(ev["generation"], ev5["generation"])


# -- the example family's maths ------------------------------------------------------------
def _family(path: str = "exact", rate: float = 2.0) -> ExponentialFamily:
    return ExponentialFamily(ExponentialSpec(rate=rate, path=path))


@pytest.mark.parametrize("path", ["exact", "sample"])
def test_exponential_draws_have_the_gamma_law_of_the_sum(path):
    """The statistics of m samples at temperature T: E[ln S] = digamma(m) - ln(rate / T) and Var =
    trigamma(m), at 5 standard errors, on both paths; the untempered level is rejected."""
    family, m, temperature, chains = _family(path), 7, 0.5, 40_000
    stats = family.draw(family.truth(chains), m, rng=np.random.default_rng(3), temperature=temperature)
    assert stats.m == m
    logs = np.log(stats.total)
    expected, variance = digamma(m) - np.log(2.0 / temperature), polygamma(1, m)
    se = np.sqrt(variance / chains)
    assert abs(logs.mean() - expected) < 5 * se
    assert abs(logs.mean() - (expected + np.log(temperature))) > 20 * se  # tempering ignored
    fourth = np.mean((logs - logs.mean()) ** 4)
    assert abs(logs.var(ddof=1) - variance) < 5 * np.sqrt((fourth - variance**2) / chains)


def test_exponential_fit_and_metrics():
    """The fit is m / sum; combining adds; W2 matches a quadrature of the quantile functions; the
    tail mass and spread ratio are those of the fitted exponential."""
    family = _family()
    data = np.random.default_rng(1).exponential(0.25, size=(3, 50))
    fit = family.fit(data)
    np.testing.assert_allclose(fit.rate, 50 / data.sum(axis=1))
    both = family.fit_stats(family.combine(family.summarize(data[:, :20]), family.summarize(data[:, 20:])))
    np.testing.assert_allclose(both.rate, fit.rate)
    u = (np.arange(200_000) + 0.5) / 200_000
    for rate in fit.rate:
        quadrature = np.sqrt(np.mean((-np.log1p(-u) / rate + np.log1p(-u) / 2.0) ** 2))
        params = type(fit)(np.array([rate]))
        assert abs(family.metrics(params)["w2"][0] - quadrature) < 1e-3 * quadrature
        metrics = family.metrics(params)
        assert np.isclose(metrics["tail_mass"][0], np.exp(-rate * np.log(100) / 2.0))
        assert np.isclose(metrics["spread_ratio"][0], 2.0 / rate)
    truth = family.metrics(family.truth(1))
    assert truth["w2"][0] == 0 and np.isclose(truth["tail_mass"][0], 0.01) and truth["spread_ratio"][0] == 1


def _theory(n: int, t: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ln(rate_t / rate_0) under replace: generation 1 is fitted to real
    data (never tempered), each later one to the model tempered by T (rate / T)."""
    return t * (np.log(n) - digamma(n)) - (t - 1) * np.log(temperature), t * polygamma(1, n)


def test_exponential_log_rate_level_matches_theory(ray_session, tmp_path):
    """Through Ray and Parquet: under replace, ln(rate_t / rate_0) has mean t (ln n - digamma(n))
    - (t - 1) ln T and variance t trigamma(n), at generations 1, 10 and 30, for T = 1 and 0.8, at 5
    standard errors. Rejected: the unbiased fit ((n - 1) / sum), tempering the real data."""
    n, chains = 10, 4000
    spec = parse_spec(
        {
            "name": "theory",
            "seed": 8,
            "generations": 30,
            "replicates": chains,
            "family": {"name": EXAMPLE, "rate": 3.0},
            "grid": {"n": [n], "temperature": [1.0, 0.8]},
            "record": {"dense_until": 10, "log_points": 10},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    traj = analysis.load(report.location, filters=[("generation", "in", [1, 10, 30])])
    for (temperature, t), group in traj.groupby(["temperature", "generation"]):
        logs = np.log(group["rate"].to_numpy() / 3.0)
        assert logs.size == chains
        mean, variance = _theory(n, t, temperature)
        se = np.sqrt(variance / chains)
        assert abs(logs.mean() - mean) < 5 * se, (temperature, t, logs.mean(), mean, se)
        fourth = np.mean((logs - logs.mean()) ** 4)
        assert abs(logs.var(ddof=1) - variance) < 5 * np.sqrt((fourth - variance**2) / chains), (temperature, t)
        if t == 30:
            assert abs(logs.mean() - t * (np.log(n - 1) - digamma(n)) + (t - 1) * np.log(temperature)) > 20 * se
        if t == 10 and temperature != 1.0:  # ln T apart: 14 standard errors at t = 10
            assert abs(logs.mean() - (mean - np.log(temperature))) > 5 * se


@pytest.mark.slow
def test_example_spec_runs_and_reports_through_the_cli(tmp_path):
    """Exactly the README's commands, in processes of their own: PYTHONPATH=examples/custom_family
    sweep run examples/custom_family/spec.yaml, then sweep report. The n = 10 and n = 100 replace
    cells match the theory's level of ln(rate_T / rate_0) at 5 standard errors."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweep",
            "run",
            str(SPEC_YAML.relative_to(ROOT)),
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env(PYTHONPATH=f"{ROOT}{':'}examples/custom_family"),
        start_new_session=True,
    )
    assert run.returncode == 0, run.stderr
    location = tmp_path / "exponential"
    report = sweep("report", location, "--bootstrap", "50")
    assert report.returncode == 0, report.stderr
    assert (location / "report" / "report.md").exists()
    raw = yaml.safe_load(SPEC_YAML.read_text())
    horizon, chains = raw["generations"], raw["replicates"]
    final = analysis.load(str(location), filters=[("generation", "=", horizon), ("policy", "=", "replace")])
    for n, group in final.groupby("n"):
        logs = np.log(group["rate_ratio"].to_numpy())
        mean, variance = _theory(n, horizon)
        assert logs.size == chains and abs(logs.mean() - mean) < 5 * np.sqrt(variance / chains), (n, logs.mean(), mean)


# -- loading families --------------------------------------------------------------------
def _plugin(folder: Path, entry: str) -> Path:
    """A real installed distribution in ``folder``: a module and a dist-info whose entry_points.txt
    registers ``entry`` under collapse_sweep.families."""
    (folder / "cs_plugin_exp.py").write_text("from examples.custom_family.exponential import ExponentialFamily\n")
    info = folder / "cs_plugin_exp-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cs-plugin-exp\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[collapse_sweep.families]\n{entry}\n")
    return folder


@pytest.fixture
def fresh_resolution():
    resolve_family.cache_clear()
    yield
    resolve_family.cache_clear()


def test_entry_point_family_resolves_by_name(tmp_path, monkeypatch, fresh_resolution):
    """A family registered by an installed distribution's entry point loads by its name once the
    distribution is on the path (in this process, and in `sweep validate` in a process of its own);
    a broken entry point is a one-line error naming it."""
    folder = _plugin(tmp_path, "exp-plugin = cs_plugin_exp:ExponentialFamily\nbroken = cs_plugin_missing:X")
    with pytest.raises(FamilyLoadError, match="got 'exp-plugin'"):  # not installed yet
        resolve_family("exp-plugin")
    resolve_family.cache_clear()
    monkeypatch.syspath_prepend(str(folder))
    assert resolve_family("exp-plugin") is ExponentialFamily
    assert (
        parse_spec(
            {
                "name": "ep",
                "generations": 2,
                "replicates": 2,
                "family": {"name": "exp-plugin", "rate": 2.0},
                "grid": {"n": [5]},
            }
        ).family.rate0
        == 2.0
    )
    with pytest.raises(FamilyLoadError, match=r"got 'broken', whose entry point failed to load \(ModuleNotFoundError"):
        resolve_family("broken")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"name": "ep", "generations": 2, "replicates": 2, "family": {"name": "exp-plugin"}, "grid": {"n": [5]}}
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(PYTHONPATH=f"{ROOT}:{folder}"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "family exp-plugin" in result.stdout


BASE = {
    "name": "bad",
    "seed": 1,
    "generations": 3,
    "replicates": 2,
    "family": {"name": "gaussian"},
    "grid": {"n": [10]},
}
BAD = [
    (
        {"events": {"weight_below": [0.1]}},
        "spec field 'events.weight_below': expected an event the gaussian family declares (spread_below, "
        "distance_above, diverged), got 'weight_below', which it does not declare",
    ),
    (
        {"family": {"name": "nosuch.mod:X"}},
        "spec field 'family.name': expected an importable 'package.module:ClassName' (is the module on PYTHONPATH?), "
        "got 'nosuch.mod:X' (ModuleNotFoundError: No module named 'nosuch')",
    ),
    (
        {"family": {"name": "tests.contract_families:NotAFamily"}},
        "spec field 'family.name': expected a subclass of sweep.families.Family (see docs/families.md), "
        "got 'tests.contract_families:NotAFamily'",
    ),
    (
        {"family": {"name": "tests.contract_families:NoSample"}},
        "spec field 'family.name': expected a family class that implements the contract (docs/families.md), "
        "got 'tests.contract_families:NoSample', which lacks sample",
    ),
    (
        {"family": {"name": "tests.contract_families:Nothing"}},
        "spec field 'family.name': expected an importable 'package.module:ClassName', got "
        "'tests.contract_families:Nothing' (module 'tests.contract_families' has no 'Nothing')",
    ),
]


@pytest.mark.parametrize(
    "change, message", BAD, ids=["undeclared-event", "unimportable", "not-a-family", "no-sample", "no-such-class"]
)
def test_bad_family_is_one_line_exit_2_nothing_written(tmp_path, cli, write_spec, change, message):
    """An undeclared event, a module that does not import, a class that is not a Family or lacks a
    method of the contract: one line naming the field, exit 2, no results folder."""
    status, _, err = cli("run", write_spec({**BASE, **change}), "--out", tmp_path / "out", "--no-progress")
    assert status == 2
    assert err.startswith(f"error: {message}"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
