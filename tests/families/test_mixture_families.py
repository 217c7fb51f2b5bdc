"""gmm1d and kde families through real sweeps: validation, closed forms, events and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    (
        dict(BLOG, precision="float16"),
        "spec field 'family.precision': expected one of float64, float32, got 'float16'",
    ),
    ({"name": "kde", "bandwidth": 0}, "spec field 'family.bandwidth': expected a number in (0.0, inf], got 0"),
    ({"name": "kde", "bandwidth": -0.5}, "spec field 'family.bandwidth': expected a number in (0.0, inf], got -0.5"),
    (
        {"name": "kde", "bandwidth": "wide"},
        "spec field 'family.bandwidth': expected scott, silverman or a number in (0, inf), got 'wide'",
    ),
]


def test_precision_is_in_the_stored_spec_only_when_float32():
    """precision: float32 reaches the fit and the stored spec; the default float64 is left out of
    the stored spec, so that folders written before the option existed still resume."""
    assert "precision" not in parse_spec(spec_with(BLOG)).to_raw()["family"]
    spec = parse_spec(spec_with(dict(BLOG, precision="float32")))
    assert spec.family_spec.precision == "float32"
    assert spec.to_raw()["family"]["precision"] == "float32"


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
    assert (first["w2"].abs() < 1e-4).all() and np.allclose(first["tail_mass"], 0.02, rtol=0, atol=1e-9)
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
    truth, measured like any model (W2 ~0 within the W2's stated 1e-4, tail mass 0.02 within
    1e-9, no bandwidth), and its events are the spread, distance and divergence ones."""
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
    assert (first["w2"].abs() < 1e-4).all() and np.allclose(first["tail_mass"], 0.02, rtol=0, atol=1e-9)
    assert np.allclose(first["var"], 5.0, rtol=1e-12)  # 1 + 2**2
    assert first["bandwidth"].isna().all()  # generation 0 is the truth, not a KDE
    assert (later["w2"] > 0).all() and (later["bandwidth"] > 0).all()
    if bandwidth == 0.3:
        assert np.allclose(later["bandwidth"], 0.3)
    events = analysis.load_events(report.location)
    assert set(events["event"]) == {"spread_below", "distance_above", "diverged"}


def family_of(family: dict):
    return parse_spec(spec_with(family)).family


def test_gmm_fit_keeps_diverged_chains_nan():
    """The gmm1d fit leaves a chain NaN when its data or its previous fit is non-finite, makes a
    fit with a zero variance NaN (a component on identical points, reg_covar 0), and fits the
    other chains as alone, warm start included."""
    # kernel numpy: chain 3's variance is exactly 0 by its rounding (the numba kernel's rounds to
    # 4e-16 there; tests/families/test_em1d_numba.py checks its diverged chains)
    family = family_of(dict(BLOG, init="previous", reg_covar=0.0, max_iter=1, kernel="numpy"))
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4, 20)) + np.where(np.arange(20) < 10, -2.0, 2.0)
    data[1, 4] = np.nan
    data[3, :10] = 0.0  # identical points: the first component's variance becomes exactly 0
    previous = family.truth(4)
    previous.means[3, 0], previous.variances[3, 0] = 0.0, 1e-4  # its warm start sits on them
    previous.weights[2] = np.nan
    fit = family.fit(data, previous=previous, rng=rng)
    assert np.isnan(fit.weights[1:]).all() and np.isnan(fit.means[1:]).all() and np.isnan(fit.variances[1:]).all()
    assert not fit.converged[1:].any()
    alone = family.fit(data[:1], previous=family.truth(1), rng=rng)
    np.testing.assert_array_equal(fit.means[0], alone.means[0])
    np.testing.assert_array_equal(fit.variances[0], alone.variances[0])


@pytest.mark.parametrize("name", ["gmm1d", "kde"])
def test_metrics_of_diverged_chains_are_nan_and_the_others_unchanged(name):
    """A diverged chain's metrics are NaN; every other chain's are those it has alone."""
    truth = {k: BLOG[k] for k in ("weights", "means", "sigmas")}
    family = family_of({"name": "kde", **truth} if name == "kde" else BLOG)
    data = np.random.default_rng(2).normal(size=(3, 40)) * 2.0
    fit = family.fit(data, previous=family.truth(3), rng=np.random.default_rng(0))
    if name == "kde":
        fit.h[1] = np.nan
    else:
        for a in (fit.weights, fit.means, fit.variances):
            a[1] = np.nan
    metrics = family.metrics(fit)
    live = family.metrics(family.fit(data[[0, 2]], previous=family.truth(2), rng=np.random.default_rng(0)))
    for key, value in metrics.items():
        value = np.asarray(value, dtype=float)
        if key not in ("em_iterations", "converged"):
            assert np.isnan(value[1]).all(), key
        np.testing.assert_allclose(value[[0, 2]], np.asarray(live[key], dtype=float), rtol=1e-12, err_msg=key)
    assert np.isnan(family.spread(fit)[1]) and np.isnan(family.w2(fit)[1])
    assert np.isfinite(family.spread(fit)[[0, 2]]).all() and np.isfinite(family.w2(fit)[[0, 2]]).all()


def test_kde_generation_zero_is_the_truth_through_the_mixture_kernels():
    """The kde family's generation 0 (the true mixture) has the metrics the gmm1d family computes
    for the same truth, bit for bit: W2 ~0 and tail mass ~0.02 within the kernels' accuracy
    (W2 error < 1e-4, quantiles to 1e-12), and no bandwidth."""
    truth = {k: BLOG[k] for k in ("weights", "means", "sigmas")}
    # the kde family's metrics run numpy's kernels: compare with gmm1d's numpy kernel
    kde, gmm = family_of({"name": "kde", **truth}), family_of(dict(BLOG, kernel="numpy"))
    first, reference = kde.metrics(kde.truth(5)), gmm.metrics(gmm.truth(5))
    for key in ("mean", "var", "spread_ratio", "w2", "tail_mass"):
        np.testing.assert_array_equal(first[key], reference[key], err_msg=key)
    assert (np.abs(first["w2"]) < 1e-4).all() and np.allclose(first["tail_mass"], 0.02, rtol=0, atol=1e-9)
    np.testing.assert_allclose(first["var"], 5.0, rtol=1e-12)  # 1 + 2**2
    assert np.isnan(first["bandwidth"]).all()


def first_crossings(frame, events: dict, unit: float) -> dict:
    """First generation >= 1 at which each event's condition holds in dense trajectories, per
    (cell, replicate) and (event, threshold); T + 1 when it never does."""
    conditions = {
        "spread_below": lambda f, r: f["spread_ratio"] < r,
        "distance_above": lambda f, eps: f["w2"] > eps,
        "weight_below": lambda f, w: np.stack(f["weights"].to_numpy()).min(axis=1) < w,
        "modes_closer": lambda f, c: np.diff(np.stack(f["means"].to_numpy()), axis=1).min(axis=1) / unit < c,
    }
    later = frame[frame["generation"] > 0]
    out = {}
    for name, thresholds in events.items():
        for threshold in thresholds:
            holds = conditions[name](later, threshold)
            first = later["generation"].where(holds).groupby([later["cell"], later["replicate"]]).min()
            out[name, threshold] = first.fillna(frame["generation"].max() + 1).astype(int)
    return out


DIVERGING = [
    # EM without a variance floor: a component left with a single point has variance 0 and
    # the next E-step is NaN
    pytest.param(
        dict(BLOG, reg_covar=0.0),
        15,
        25,
        {"spread_below": [0.7], "weight_below": [0.2], "modes_closer": [2.0], "distance_above": [1.0]},
        id="gmm1d-reg_covar-0",
    ),
    # components of sd 1e-3 fitted to 5 points with a warm start: they collapse onto points
    pytest.param(
        {
            "name": "gmm1d",
            "weights": [0.5, 0.5],
            "means": [0.0, 1.0],
            "sigmas": [1e-3, 1e-3],
            "reg_covar": 0.0,
            "init": "previous",
        },
        5,
        12,
        {"spread_below": [0.5], "weight_below": [0.05], "modes_closer": [0.5], "distance_above": [0.3]},
        id="gmm1d-collapsing-components",
    ),
    # a Scott-bandwidth KDE at n = 5 multiplies its expected variance by ~1.3 a generation, but
    # its log-variance is a random walk of small drift: from sd 3e153 some chains overflow
    # (x**2 > 1e308), others shrink
    pytest.param(
        {"name": "kde", "sigmas": [3e153]}, 5, 40, {"spread_below": [0.1], "distance_above": [1e154]}, id="kde-overflow"
    ),
]


@pytest.mark.parametrize("family, n, generations, events", DIVERGING)
def test_a_diverged_chain_is_an_event_and_its_block_goes_on(family, n, generations, events, ray_session, tmp_path):
    """A chain whose fit turns non-finite records an observed 'diverged' event and has NaN
    metrics from that generation on, finite ones before; the task succeeds, and every other
    chain has finite metrics and events exactly where its own trajectory crosses."""
    raw = spec_with(
        family,
        generations=generations,
        replicates=32,
        events=events,
        record={"every": 1},
        grid={"n": [n], "policy": ["replace", {"mix": {"keep": 0.4, "synthetic": 0.4, "real": 0.2}}]},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    assert report.failures == []
    frame = analysis.load(report.location).sort_values(["cell", "replicate", "generation"])
    table = analysis.load_events(report.location).set_index(["cell", "replicate"])
    diverged = table[table["event"] == "diverged"]
    for cell in (0, 1):  # in every cell, some chains diverge and some do not
        assert 0 < diverged.loc[cell, "observed"].sum() < 32, cell
    when = diverged["generation"].where(diverged["observed"], generations + 1)
    dead = (
        frame["generation"].to_numpy()
        >= when.reindex(pd.MultiIndex.from_frame(frame[["cell", "replicate"]])).to_numpy()
    )
    metrics = ["mean", "var", "spread_ratio", "w2", "tail_mass"] + (
        ["kl"] if family["name"] == "gmm1d" else ["bandwidth"]
    )
    values = frame[metrics].to_numpy(dtype=float)
    assert np.isnan(values[dead]).all()
    fitted = (frame["generation"] > 0).to_numpy()  # kde: generation 0, the truth, has no bandwidth
    assert np.isfinite(values[~dead & fitted]).all() and np.isfinite(values[~fitted, :-1]).all()
    # Every other event is where the chain's own dense trajectory first crosses (NaN never does)
    unit = min(family["sigmas"])
    for (name, threshold), first in first_crossings(frame, events, unit).items():
        rows = table[(table["event"] == name) & np.isclose(table["threshold"], threshold)]
        expected = first.reindex(rows.index)
        np.testing.assert_array_equal(rows["observed"], expected <= generations, err_msg=name)
        np.testing.assert_array_equal(rows["generation"], np.minimum(expected, generations), err_msg=name)
