"""linear_regression: bad specs, the batched least-squares kernels, exact statistics, streams, and the exact path against the sample path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.stats import ks_2samp

import analysis
from sweep.engine import simulate_block
from sweep.errors import SpecError
from sweep.families import _ols
from sweep.families.linear_regression import LinearRegressionFamily, Params
from sweep.grid import block_rng, cells
from sweep.runner import run_sweep
from sweep.spec import parse_spec

POLICIES = ["replace", "accumulate", {"fresh_real": 0.25}]
EVERY_POLICY = POLICIES + ["accumulate_subsample", {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}}]


def _checked(report):
    """A run's report, after checking that every task succeeded (final states included: they are
    pickled for extensions, so an unpicklable tracker fails the task after its parts are written)."""
    assert not report.failures, report.failures
    return report


def spec_with(family: dict, **top) -> dict:
    raw = {
        "name": "ols",
        "seed": 5,
        "generations": 10,
        "replicates": 8,
        "family": {"name": "linear_regression", **family},
        "grid": {"n": [20], "policy": ["replace"]},
    }
    raw.update(top)
    return raw


BAD = [
    ({"dim": 0}, {}, "spec field 'family.dim': expected an integer in [1, 1000], got 0"),
    ({"dim": 2.5}, {}, "spec field 'family.dim': expected an integer in [1, 1000], got 2.5"),
    ({"noise_sd": 0}, {}, "spec field 'family.noise_sd': expected a number in (0.0, inf], got 0"),
    ({"noise_sd": -1.0}, {}, "spec field 'family.noise_sd': expected a number in (0.0, inf], got -1.0"),
    ({"noise_sd": float("inf")}, {}, "spec field 'family.noise_sd': expected a finite number in (0.0, inf], got inf"),
    (
        {"dim": 3, "w": [1.0, 2.0]},
        {},
        "spec field 'family.w': expected a list of dim = 3 numbers, one number (every coefficient), or {seed: s} (w ~ N(0, I/dim)), got a list of 2 values",
    ),
    ({"dim": 2, "w": [1.0, "x"]}, {}, "spec field 'family.w[1]': expected a finite number in [-inf, inf], got 'x'"),
    ({"w": {"seed": -1}}, {}, "spec field 'family.w.seed': expected an integer >= 0, got -1"),
    ({"w": {"normal": 1}}, {}, "spec field 'family.w': expected a list of dim = 10 numbers"),
    (
        {"dim": 5},
        {"grid": {"n": [20, 4], "policy": ["replace"]}},
        "spec field 'grid.n[1]': expected an integer >= dim = 5 (OLS needs at least dim pairs: X^T X is singular below), got 4",
    ),
    (
        {"dim": 5},
        {"grid": {"n": [20], "policy": ["replace"], "family.dim": [2, 30]}},
        "spec field 'grid.n[0]': expected an integer >= dim = 30",
    ),
    (
        {},
        {"grid": {"n": [20], "policy": [{"mix": {"keep": 0.5, "synthetic": 0.5, "real": 0.0}}]}},
        "spec field 'grid.policy[0]': expected a policy the exact path can simulate (accumulate_subsample and mix with 0 < keep < 1 subsample stored pairs",
    ),
    (
        {"noise_sd": 2.0},
        {"events": {"test_error_above": [3.0]}},
        "spec field 'events.test_error_above[0]': expected a threshold > noise_sd^2 = 4 (family.noise_sd; the truth's own test error: every fit is above it), got 3.0",
    ),
    (
        {"noise_sd": 1.0},
        {
            "events": {"test_error_above": [3.0]},
            "grid": {"n": [20], "policy": ["replace"], "family.noise_sd": [1.0, 2.0]},
        },
        "spec field 'events.test_error_above[0]': expected a threshold > noise_sd^2 = 4 (grid.family.noise_sd[1]",
    ),
]


@pytest.mark.parametrize("family, top, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_specs(family, top, message):
    """Bad dims, noise levels, coefficients, sample sizes, policies and thresholds are one-line SpecErrors."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(family, **top))
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_coefficients_resolve():
    """w given as a list, a number (every coefficient) or {seed: s} (N(0, I/dim), stable)."""
    spec = parse_spec(spec_with({"dim": 3, "w": 0.5}))
    assert spec.family_spec.w == (0.5, 0.5, 0.5) and spec.to_raw()["family"]["w"] == [0.5, 0.5, 0.5]
    drawn = parse_spec(spec_with({"dim": 4, "w": {"seed": 7}})).family_spec
    again = parse_spec(spec_with({"dim": 4})).family_spec
    assert drawn.w_raw == {"seed": 7} and again.w_raw == {"seed": 0}
    np.testing.assert_array_equal(drawn.w, np.random.default_rng(7).standard_normal(4) / 2.0)


@pytest.mark.parametrize(
    "family, message",
    [
        ({"dim": -3}, "error: spec field 'family.dim': expected an integer in [1, 1000], got -3\n"),
        ({"noise_sd": 0.0}, "error: spec field 'family.noise_sd': expected a number in (0.0, inf], got 0.0\n"),
    ],
)
def test_bad_spec_through_cli(family, message, cli, write_spec, tmp_path):
    """Through `sweep run`: one line on stderr, exit 2, nothing written."""
    status, _, err = cli("run", write_spec(spec_with(family)), "--out", tmp_path / "out")
    assert status == 2 and err == message
    assert not (tmp_path / "out").exists()


def test_batched_cholesky_and_solves_match_lapack():
    """The column-by-column kernels agree with numpy's LAPACK to round-off, and a matrix that is not
    positive definite spoils only its own chain (NaN), not the batch."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 9, 6))
    gram = np.swapaxes(z, 1, 2) @ z
    gram[7] = -np.eye(6)
    low = _ols.cholesky(gram)
    good = np.arange(50) != 7
    np.testing.assert_allclose(low[good], np.linalg.cholesky(gram[good]), atol=1e-12)
    assert np.isnan(low[7]).any()
    b = rng.standard_normal((50, 6))
    np.testing.assert_allclose(
        _ols.solve_lower(low, b)[good], np.linalg.solve(low[good], b[good, :, None])[..., 0], atol=1e-10
    )
    upper = np.swapaxes(low[good], 1, 2)
    np.testing.assert_allclose(
        _ols.solve_lower_transposed(low, b)[good], np.linalg.solve(upper, b[good, :, None])[..., 0], atol=1e-10
    )


def test_exact_statistics_moments():
    """The drawn statistics have the moments of m pairs: E X^T X = m I, E X^T y = m w,
    E y^T y = m (|w|^2 + sigma^2), Var (X^T X)_00 = 2 m, and E RSS = (m - d) sigma^2 (within 5 s.e.)."""
    rng = np.random.default_rng(1)
    batch, d, m, sigma = 40000, 3, 7, 0.6
    w = np.broadcast_to(np.array([0.5, -1.0, 2.0]), (batch, d))
    factor, white, rss = _ols.draw_statistics(w, m, sigma, rng=rng)
    gram = factor @ np.swapaxes(factor, 1, 2)
    xty = np.einsum("bij,bj->bi", factor, white)
    yty = np.einsum("bi,bi->b", white, white) + rss
    checks = [
        (gram[:, 0, 0], m),
        (gram[:, 1, 2], 0.0),
        (xty[:, 2], 2.0 * m),
        (yty, m * (5.25 + sigma**2)),
        (rss, (m - d) * sigma**2),
        ((gram[:, 0, 0] - m) ** 2, 2 * m),
    ]
    for values, expected in checks:
        assert abs(values.mean() - expected) < 5 * values.std() / np.sqrt(batch), (values.mean(), expected)


def test_exact_fit_of_replace_is_truth_plus_noise():
    """Under replace with sigma -> 0 the OLS refit returns the previous w exactly (to round-off)."""
    family = LinearRegressionFamily(parse_spec(spec_with({"dim": 4, "noise_sd": 1e-9})).family_spec)
    params = Params(np.random.default_rng(2).standard_normal((16, 4)), np.zeros(16))
    fitted = family.fit_stats(family.draw(params, 12, rng=np.random.default_rng(3)))
    np.testing.assert_allclose(fitted.w, params.w, atol=1e-7)


def _block(family: dict, policy, replicates: int, generations: int = 8):
    spec = parse_spec(
        spec_with(
            family, replicates=replicates, block_size=8, generations=generations, grid={"n": [6], "policy": [policy]}
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


@pytest.mark.parametrize("policy", EVERY_POLICY, ids=["replace", "accumulate", "fresh", "subsample", "mix"])
def test_partial_block_gives_chains_the_values_of_a_full_block(policy):
    """Chains 0-2 of a block of 8 and of a partial block of 3 are bit-identical (streams contract)."""
    full, _ = _block({"dim": 3, "path": "auto"}, policy, 8)
    part, _ = _block({"dim": 3, "path": "auto"}, policy, 3)
    np.testing.assert_array_equal(full["test_error"].reshape(-1, 8)[:, :3], part["test_error"].reshape(-1, 3))


def test_regression_sweep(ray_session, tmp_path):
    """Every policy runs on the auto path; generation 0 is the truth (test error sigma^2); the
    test_error_above events are the first generation the recorded test error exceeds the threshold."""
    raw = spec_with(
        {"dim": 3, "noise_sd": 0.5, "path": "auto"},
        generations=12,
        replicates=64,
        grid={"n": [8], "policy": EVERY_POLICY},
        events={"test_error_above": [0.6]},
        record={"every": 1},
    )
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    frame = analysis.load(report.location)
    first = frame[frame["generation"] == 0]
    assert np.allclose(first["test_error"], 0.25) and (first["w_distance"] == 0).all()
    assert np.isfinite(frame[["test_error", "w_norm", "noise_var"]].to_numpy()).all()
    events = analysis.load_events(report.location)
    assert (
        set(events["event"]) == {"test_error_above", "diverged"}
        and not events["observed"][events["event"] == "diverged"].any()
    )
    crossing = frame[frame["test_error"] > 0.6].groupby(["policy", "replicate"])["generation"].min()
    seen = events[(events["event"] == "test_error_above") & events["observed"]].set_index(["policy", "replicate"])[
        "generation"
    ]
    assert len(seen) > 100 and seen.sort_index().equals(crossing.sort_index().astype(seen.dtype))


def _final(raw: dict, tmp_path, name: str):
    raw = copy.deepcopy(raw)
    raw["name"] = name
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    return analysis.load(report.location, filters=[("generation", "=", raw["generations"])])


@pytest.mark.slow
@pytest.mark.parametrize("dim", [1, 4])
def test_exact_matches_sample(dim, ray_session, tmp_path):
    """The whitened Wishart statistics and the sampled pairs give the same law of the test error and
    of the residual variance at T = 12 under replace, accumulate and fresh_real (KS, 4000 chains)."""
    generations, replicates = 12, 4000
    frames = {}
    for seed, path in ((1, "exact"), (2, "sample")):
        raw = spec_with(
            {"dim": dim, "noise_sd": 0.7, "path": path},
            seed=seed,
            generations=generations,
            replicates=replicates,
            grid={"n": [dim + 6], "policy": POLICIES},
            record={"every": generations},
        )
        frames[path] = _final(raw, tmp_path, f"ols-{path}-{dim}")
    for policy in ("replace", "accumulate", "fresh_real(0.25)"):
        for column in ("test_error", "noise_var"):
            a = frames["exact"].query("policy == @policy")[column]
            b = frames["sample"].query("policy == @policy")[column]
            assert len(a) == len(b) == replicates
            assert ks_2samp(a, b).pvalue > 1e-3, (policy, column)


@pytest.mark.slow
def test_exact_comparison_has_power(ray_session, tmp_path):
    """The KS comparison above rejects the exact path run with one pair more per generation
    (n = 11 against 10, d = 4: the expected excess error differs by 20%)."""
    generations, replicates = 12, 4000
    errors = {}
    for n, path in ((10, "sample"), (11, "exact")):
        raw = spec_with(
            {"dim": 4, "noise_sd": 0.7, "path": path},
            seed=n,
            generations=generations,
            replicates=replicates,
            grid={"n": [n], "policy": ["replace"]},
            record={"every": generations},
        )
        errors[n] = _final(raw, tmp_path, f"ols-power-{n}")["test_error"]
    assert ks_2samp(errors[10], errors[11]).pvalue < 1e-6


def test_small_experiment(ray_session, tmp_path):
    """The shipped small experiment runs; at T = 30 the mean test error agrees with the exact forms
    within 5 s.e. under replace and accumulate, and fresh_real stays between them."""
    from pathlib import Path

    from analysis import theory_collapse as theory
    from sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "experiments" / "linear_regression_small.yaml")
    final = analysis.load(
        _checked(run_sweep(spec, str(tmp_path), progress=False)).location,
        filters=[("generation", "=", spec.generations)],
    )
    means = final.groupby(["n", "policy"])["test_error"].agg(["mean", "std", "size"])
    for (n, policy), row in means.iterrows():
        if policy in ("replace", "accumulate"):
            expected = theory.linear_regression_test_error(int(n), 5, 1.0, spec.generations, policy=policy)[()]
            assert abs(row["mean"] - expected) < 5 * row["std"] / np.sqrt(row["size"]), (
                n,
                policy,
                row["mean"],
                expected,
            )
        else:
            assert means.loc[(n, "accumulate"), "mean"] < row["mean"] < means.loc[(n, "replace"), "mean"]


def test_folder_grows_to_a_longer_horizon(ray_session, tmp_path):
    """A finished folder rerun with more generations continues every chain from its stored final
    state and equals a fresh run to the longer horizon, row for row."""
    import pandas as pd

    raw = spec_with(
        {"dim": 3, "path": "auto"},
        generations=6,
        replicates=12,
        grid={"n": [6], "policy": EVERY_POLICY},
        events={"test_error_above": [3.0]},
    )
    _checked(run_sweep(parse_spec(raw), str(tmp_path / "grown"), progress=False))
    grown = _checked(run_sweep(parse_spec(dict(raw, generations=11)), str(tmp_path / "grown"), progress=False))
    fresh = _checked(run_sweep(parse_spec(dict(raw, generations=11)), str(tmp_path / "fresh"), progress=False))
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
