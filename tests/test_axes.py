"""Grid axes: any family field, and the sampling temperature, swept like n and policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import digamma, polygamma

import analysis
from sweep.grid import cells
from sweep.runner import run_sweep
from sweep.spec import parse_spec

BASE = {
    "name": "axes",
    "seed": 3,
    "generations": 20,
    "replicates": 16,
    "family": {"name": "gmm1d", "means": [-2.0, 2.0]},
    "grid": {"n": [40], "family.k": [1, 2, 3]},
}


def test_family_field_axis_cells_and_keys():
    """family.k becomes a coordinate of every cell; adding a value leaves the other cells' keys alone,
    and listing an axis at the spec's own value keeps that cell's key."""
    spec = parse_spec(BASE)
    grid = cells(spec)
    assert [dict(c.point.family)["k"] for c in grid] == [1, 2, 3]
    assert [c.family.spec.k for c in grid] == [1, 2, 3]
    fewer = cells(parse_spec({**BASE, "grid": {"n": [40], "family.k": [1, 3]}}))
    assert {c.key for c in fewer} <= {c.key for c in grid}
    plain = cells(parse_spec({**BASE, "grid": {"n": [40]}}))  # k defaults to 2, the number of means
    assert plain[0].key == grid[1].key
    nested = parse_spec({**BASE, "grid": {"n": [40], "family": {"k": [1, 2, 3]}}})
    assert [c.key for c in cells(nested)] == [c.key for c in grid]


BAD = [
    ({"n": [40], "family.kk": [1]}, "spec field 'grid.family.kk': expected a field of the gmm1d family"),
    ({"n": [40], "family.k": [0]}, "spec field 'grid.family.k[0]': expected an integer in [1, 100], got 0"),
    ({"n": [40], "family.init": ["kmeans", "magic"]}, "spec field 'grid.family.init[1]': expected one of kmeans"),
    (
        {"n": [40], "temperature": [1.0, 0.0]},
        "spec field 'grid.temperature[1]': expected a number in (0.0, inf], got 0.0",
    ),
    ({"n": [40], "temperature": [-1]}, "spec field 'grid.temperature[0]': expected a number in (0.0, inf], got -1"),
    ({"n": [40], "family.k": [1, 1]}, "spec field 'grid.family.k': expected distinct values"),
    ({"n": [40], "speed": [1]}, "spec field 'grid.speed': expected an axis: n, policy, temperature or family.<field>"),
    ({"n": [2], "family.k": [1, 3]}, "spec field 'grid.n[0]': expected an integer >= k = 3"),
]


@pytest.mark.parametrize("grid, message", BAD, ids=[m.split("'")[1] for _, m in BAD])
def test_bad_axis_is_one_line_exit_2_nothing_written(tmp_path, cli, write_spec, grid, message):
    """An unknown field, an invalid value or a bad temperature is one line naming the grid path,
    exit 2, and no results folder."""
    status, _, err = cli("run", write_spec({**BASE, "grid": grid}), "--out", tmp_path / "out", "--no-progress")
    assert status == 2
    assert err.startswith(f"error: {message}"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_top_level_temperature(tmp_path, cli, write_spec):
    status, _, err = cli("validate", write_spec({**BASE, "temperature": 0}))
    assert status == 2 and err.startswith("error: spec field 'temperature': expected a number in (0.0, inf], got 0")


def test_axes_are_columns_and_analysis_groups_by_them(ray_session, tmp_path):
    """Each axis is a column of both tables (family_k, temperature, family_bandwidth with mixed
    values as text), and every cell's chains are there."""
    spec = parse_spec(
        {
            "name": "kdeaxes",
            "seed": 1,
            "generations": 5,
            "replicates": 6,
            "family": {"name": "kde", "means": [0.0]},
            "grid": [{"n": [20], "family.bandwidth": ["scott", 0.2], "temperature": [1.0, 0.5]}],
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    traj, events = analysis.load(report.location), analysis.load_events(report.location)
    for frame in (traj, events):
        assert {"temperature", "family_bandwidth"} <= set(frame.columns)
        assert set(frame["family_bandwidth"]) == {"scott", "0.2"}
        assert set(frame["temperature"]) == {1.0, 0.5}
    assert traj.groupby(["family_bandwidth", "temperature"])["replicate"].nunique().eq(6).all()
    meta = json.loads((tmp_path / "kdeaxes" / "sweep.json").read_text())
    assert meta["family"]["axes"]["family.bandwidth"] == "family_bandwidth"
    # bandwidth 0.2 really was used: generation 1's KDE has h = 0.2 there
    fixed = traj[(traj["family_bandwidth"] == "0.2") & (traj["generation"] == 1)]
    assert np.allclose(fixed["bandwidth"], 0.2)


def test_gaussian_temperature_scales_the_variance_drift(ray_session, tmp_path):
    """Tempered sampling from N(mu, T sigma^2): under replace, E[ln var_t / var_0] = (t - 1) ln T +
    t (psi(k) - ln k) with k = (n - 1)/2 and variance t psi'(k), exactly: generation 1 is fitted to
    real data, which is never tempered. Checked at 5 standard errors for T = 0.8, where tempering
    every generation (t ln T) and not tempering (T = 1) are both far outside."""
    n, t, temperature = 20, 10, 0.8
    spec = parse_spec(
        {
            "name": "temp",
            "seed": 9,
            "generations": t,
            "replicates": 4000,
            "family": {"name": "gaussian"},
            "grid": {"n": [n], "temperature": [temperature]},
            "record": {"every": t},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    final = analysis.load(report.location, filters=[("generation", "=", t)])
    logs = np.log(final["var"].to_numpy())
    k = (n - 1) / 2
    expected = (t - 1) * np.log(temperature) + t * (digamma(k) - np.log(k))
    se = np.sqrt(t * polygamma(1, k) / logs.size)
    assert abs(logs.mean() - expected) < 5 * se, (logs.mean(), expected, se)
    assert abs(logs.mean() - t * (digamma(k) - np.log(k))) > 20 * se  # the untempered drift is rejected
    assert abs(logs.mean() - expected - np.log(temperature)) > 10 * se  # so is tempering the real data


def test_categorical_temperature_sharpens_probabilities():
    """Categorical sampling at temperature T draws from p^(1/T) renormalised: the frequencies of a
    large draw match it within 5 standard errors."""
    from sweep.families.categorical import CategoricalFamily, CategoricalSpec

    p = np.array([0.5, 0.3, 0.2, 0.0])
    family = CategoricalFamily(CategoricalSpec(k=4, probs=tuple(p), probs_raw=list(p)))
    counts = family.sample(np.tile(p, (4, 1)), 200_000, rng=np.random.default_rng(1), temperature=0.5).counts
    tempered = p**2 / (p**2).sum()
    freq = counts.sum(axis=0) / counts.sum()
    se = np.sqrt(tempered * (1 - tempered) / counts.sum())
    assert np.all(np.abs(freq - tempered) <= 5 * se + 1e-12)
    assert counts[:, 3].sum() == 0


def test_gmm_k_axis_runs_with_a_truth_of_other_k(ray_session, tmp_path):
    """A gmm1d sweep over family.k with a two-component truth runs every cell: per-component columns
    hold the truth's 2 values at generation 0 and k values after, in one schema across cells."""
    spec = parse_spec({**BASE, "generations": 3, "replicates": 4})
    report = run_sweep(spec, str(tmp_path), progress=False)
    traj = analysis.load(report.location)
    widths = traj.assign(width=traj["weights"].map(len)).groupby(["family_k", traj["generation"] > 0])["width"].unique()
    assert {k: list(v) for k, v in widths.items()} == {
        (1, False): [2],
        (1, True): [1],
        (2, False): [2],
        (2, True): [2],
        (3, False): [2],
        (3, True): [3],
    }
