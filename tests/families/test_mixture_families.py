"""gmm1d and kde families through real sweeps: validation, closed forms, events and metrics."""

from __future__ import annotations

import numpy as np
import pytest

import analysis
from sweep.errors import SpecError
from sweep.families._gmm1d import w2_to_mixture
from sweep.runner import run_sweep
from sweep.spec import parse_spec

BLOG = {"name": "gmm1d", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0]}


def spec_with(family: dict, **top):
    raw = {
        "name": "mix",
        "seed": 5,
        "generations": 10,
        "replicates": 8,
        "family": family,
        "grid": {"n": [50], "policy": ["replace"]},
    }
    raw.update(top)
    return raw


BAD = [
    (dict(BLOG, k=0), "spec field 'family.k': expected an integer in [1, 100], got 0"),
    (dict(BLOG, k=3), None),  # valid: fitting more components than the truth has
    (dict(BLOG, sigmas=[1.0, -1.0]), "spec field 'family.sigmas[1]': expected a number in (0.0, inf], got -1.0"),
    (dict(BLOG, sigmas=[1.0, 0.0]), "spec field 'family.sigmas[1]': expected a number in (0.0, inf], got 0.0"),
    (dict(BLOG, weights=[0.5, 0.6]), "spec field 'family.weights': expected weights summing to 1, got a sum of 1.1"),
    (
        dict(BLOG, weights=[1.0]),
        "spec field 'family.weights': expected a list of 2 values (one per entry of means), got [1.0]",
    ),
    (
        dict(BLOG, init="spectral"),
        "spec field 'family.init': expected one of kmeans, random_from_data, previous, got 'spectral'",
    ),
    ({"name": "kde", "bandwidth": 0}, "spec field 'family.bandwidth': expected a number in (0.0, inf], got 0"),
    ({"name": "kde", "bandwidth": -0.5}, "spec field 'family.bandwidth': expected a number in (0.0, inf], got -0.5"),
    (
        {"name": "kde", "bandwidth": "wide"},
        "spec field 'family.bandwidth': expected scott, silverman or a number in (0, inf), got 'wide'",
    ),
]


@pytest.mark.parametrize("family, message", BAD)
def test_bad_mixture_specs(family, message):
    """Bad true mixtures, k and bandwidths are one-line SpecErrors naming the field."""
    if message is None:
        assert parse_spec(spec_with(family)).family_spec.k == 3
        return
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(family))
    assert str(info.value) == message


def test_k_larger_than_n_refused(cli, write_spec, tmp_path):
    """k > n is refused naming the grid entry; through the CLI: exit 2 and nothing written."""
    raw = spec_with(dict(BLOG, k=5), grid={"n": [50, 4], "policy": ["replace"]})
    status, _, err = cli("run", write_spec(raw), "--out", tmp_path / "out")
    assert status == 2
    assert (
        err
        == "error: spec field 'grid.n[1]': expected an integer >= k = 5 and >= 2 (EM fits k components to n samples), got 4\n"
    )
    assert not (tmp_path / "out").exists()


def test_w2_finite_with_a_collapsed_component():
    """W2 stays finite when one fitted component is very narrow (regression: 0 * inf = NaN)."""
    truth = np.array([0.5, 0.5]), np.array([-2.0, 2.0]), np.array([1.0, 1.0])
    value = w2_to_mixture(
        np.array([[0.31, 0.69]]), np.array([[-1.622, 2.491]]), np.array([[0.0638, 0.336]]) ** 2, *truth
    )
    assert np.isfinite(value).all() and 0.0 < value[0] < 3.0


@pytest.mark.parametrize("init", ["kmeans", "previous"])
def test_gmm_sweep(init, ray_session, tmp_path):
    """A gmm1d sweep runs every kind of policy; components are sorted by mean and metrics are sane."""
    raw = spec_with(
        dict(BLOG, init=init),
        generations=15,
        replicates=40,
        grid={
            "n": [200],
            "policy": [
                "replace",
                "accumulate",
                "accumulate_subsample",
                {"fresh_real": 0.1},
                {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}},
            ],
        },
        events={"distance_above": [1.0]},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    frame = analysis.load(report.location)
    means = np.stack(frame["means"].to_numpy())
    assert (np.diff(means, axis=1) >= 0).all()
    assert np.isfinite(frame[["w2", "kl", "tail_mass", "spread_ratio"]].to_numpy()).all()
    first = frame[frame["generation"] == 0]
    assert np.allclose(first["w2"], 0.0, atol=1e-3) and np.allclose(first["tail_mass"], 0.02)
    events = analysis.load_events(report.location)
    assert set(events["event"]) == {"spread_below", "weight_below", "modes_closer", "distance_above", "diverged"}
    assert len(events) == 5 * 40 * (2 + 1 + 1 + 1 + 1)


def test_kde_variance_closed_form(ray_session, tmp_path):
    """With a fixed bandwidth h under replace, E[V_t] = (n-1)/n E[V_{t-1}] + h^2 (V_0 = true variance)."""
    n, h, generations, replicates = 20, 0.4, 12, 6000
    raw = spec_with(
        {"name": "kde", "means": [0.0], "sigmas": [1.5], "bandwidth": h},
        generations=generations,
        replicates=replicates,
        grid={"n": [n], "policy": ["replace"]},
        record={"every": 4},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    frame = analysis.load(report.location)
    expected = 1.5**2
    for t in range(1, generations + 1):
        expected = (n - 1) / n * expected + h * h
        if t % 4 == 0:
            var = frame.loc[frame["generation"] == t, "var"].to_numpy()
            se = var.std(ddof=1) / np.sqrt(var.size)
            assert abs(var.mean() - expected) < 5 * se, (t, var.mean(), expected, se)


@pytest.mark.parametrize("bandwidth", ["scott", 0.3])
def test_kde_sweep_every_policy(bandwidth, ray_session, tmp_path):
    """A kde sweep runs every kind of policy with finite metrics; at generation 0 it is the
    truth (W2 0, tail mass 0.02, no bandwidth), and its events are the spread, distance and
    divergence ones."""
    raw = spec_with(
        {"name": "kde", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0], "bandwidth": bandwidth},
        generations=8,
        replicates=12,
        grid={
            "n": [50],
            "policy": [
                "replace",
                "accumulate",
                "accumulate_subsample",
                {"fresh_real": 0.2},
                {"mix": {"keep": 0.5, "synthetic": 0.3, "real": 0.2}},
            ],
        },
        events={"distance_above": [1.0], "spread_below": [0.5]},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    frame = analysis.load(report.location)
    assert len(frame) == 5 * 12 * 9
    first, later = frame[frame["generation"] == 0], frame[frame["generation"] > 0]
    assert np.isfinite(later[["w2", "tail_mass", "spread_ratio", "var", "bandwidth"]].to_numpy()).all()
    assert np.allclose(first["w2"], 0.0, atol=1e-3) and np.allclose(first["tail_mass"], 0.02)
    assert first["bandwidth"].isna().all()  # generation 0 is the truth, not a KDE
    assert (later["w2"] > 0).all() and (later["bandwidth"] > 0).all()
    if bandwidth == 0.3:
        assert np.allclose(later["bandwidth"], 0.3)
    events = analysis.load_events(report.location)
    assert set(events["event"]) == {"spread_below", "distance_above", "diverged"}
