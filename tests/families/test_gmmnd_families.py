"""gmm and kde_nd families: spec validation, chain-level closed forms, and real sweeps."""

from __future__ import annotations

import numpy as np
import pytest

import analysis
from sweep.errors import SpecError
from sweep.families.gmm import GMMNDFamily
from sweep.families.kde_nd import KDENDFamily
from sweep.fields import Section
from sweep.runner import run_sweep
from sweep.spec import parse_spec

SHUMAILOV = {"name": "gmm", "means": [[0.0, 0.0]], "covs": [1.0], "k": 2}


def spec_with(family: dict, **top):
    raw = {
        "name": "nd",
        "seed": 5,
        "generations": 6,
        "replicates": 8,
        "family": family,
        "grid": {"n": [50], "policy": ["replace"]},
    }
    raw.update(top)
    return raw


BAD = [
    ({"name": "gmm", "dim": 0}, "spec field 'family.dim': expected an integer in [1, 16], got 0"),
    (
        {"name": "gmm", "dim": 3, "means": [[0.0, 0.0]]},
        "spec field 'family.means[0]': expected a point: a list of 3 numbers (dim = 3), got [0.0, 0.0]",
    ),
    (
        {"name": "gmm", "covariance_type": "tied"},
        "spec field 'family.covariance_type': expected one of full, diag, spherical, got 'tied'",
    ),
    (
        {"name": "gmm", "means": [[0, 0], [1, 1]], "covs": [1.0]},
        "spec field 'family.covs': expected a list of 2 covariances (one per entry of means) or one positive number "
        "for all, got [1.0]",
    ),
    (
        {"name": "gmm", "covs": [[[1.0, 2.0], [2.0, 1.0]]]},
        "spec field 'family.covs[0]': expected a positive number (variance times the identity), a list of 2 positive "
        "numbers (a diagonal) or a symmetric positive definite 2x2 matrix (it is not positive definite), "
        "got [[1.0, 2.0], [2.0, 1.0]]",
    ),
    ({"name": "gmm", "reg_covar": 0}, "spec field 'family.reg_covar': expected a number in (0.0, inf], got 0"),
    (
        {"name": "gmm", "weights": [0.5, 0.6], "means": [[0, 0], [1, 1]]},
        "spec field 'family.weights': expected weights summing to 1, got a sum of 1.1",
    ),
    (
        {"name": "kde_nd", "generator": "spiral"},
        "spec field 'family.generator': expected one of moons, circles, blobs, swiss_roll, or a mapping "
        "{name: <one of them>, <its settings>}, got 'spiral'",
    ),
    (
        {"name": "kde_nd", "generator": {"name": "moons", "factor": 0.5}},
        "spec field 'family.generator.factor': expected one of the known fields (name, noise), got unknown field 'factor'",
    ),
    (
        {"name": "kde_nd", "generator": {"name": "moons", "noise": 0}},
        "spec field 'family.generator.noise': expected a number in (0.0, inf], got 0",
    ),
    (
        {"name": "kde_nd", "generator": "swiss_roll", "dim": 2},
        "spec field 'family.dim': expected 3 (the dimension of the swiss_roll generator's samples), got 2",
    ),
    (
        {"name": "kde_nd", "generator": "moons", "means": [[0, 0]]},
        "spec field 'family.means': expected no mixture field with a generator (the truth is the generator's law), "
        "got [[0, 0]]",
    ),
    (
        {"name": "kde_nd", "generator": "blobs"},
        "spec field 'family.generator.centers': expected a value (the field is required), got nothing",
    ),
    (
        {"name": "kde_nd", "generator": {"name": "blobs", "centers": [[0, 0], [1, 1]], "cluster_std": [1, 2, 3]}},
        "spec field 'family.generator.cluster_std': expected one number, or a list of 2 (one per centre), got [1.0, 2.0, 3.0]",
    ),
    ({"name": "kde_nd", "bandwidth": -1}, "spec field 'family.bandwidth': expected a number in (0.0, inf], got -1"),
]


@pytest.mark.parametrize("family, message", BAD, ids=[m.split("'")[1] for _, m in BAD])
def test_bad_specs_are_one_line_errors_naming_the_field(family, message):
    """Bad dims, covariance types, generators and truths are one-line SpecErrors naming the field."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(family))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "family, grid",
    [
        ({"name": "gmm", "dim": 0}, None),
        ({"name": "kde_nd", "generator": "spiral"}, None),
        ({"name": "gmm", "covariance_type": "tied"}, None),
        (SHUMAILOV, {"n": [50], "policy": ["replace"], "family.covariance_type": ["full", "tied"]}),
        (
            {"name": "kde_nd", "generator": "moons"},
            {"n": [50], "policy": ["replace"], "family.generator": ["moons", "spiral"]},
        ),
    ],
)
def test_bad_input_through_the_cli_exits_2_and_writes_nothing(family, grid, cli, write_spec, tmp_path):
    """Through `sweep run`, a bad dim, generator name or covariance type (also as a grid value) is one
    line on stderr naming the field, exit 2, and no results folder."""
    raw = spec_with(family) if grid is None else spec_with(family, grid=grid)
    status, _, err = cli("run", write_spec(raw), "--out", tmp_path / "out")
    assert status == 2 and err.startswith("error: spec field ") and err.count("\n") == 1
    assert any(word in err for word in ("dim", "generator", "covariance_type"))
    assert not (tmp_path / "out").exists()


def test_every_cell_round_trips_through_the_raw_form():
    """Replay re-parses sweep.json's resolved spec: every cell must get back its own family spec,
    also where a default depends on another field the grid sweeps (the number of directions of the
    sliced metrics depends on the dimension, which the generator sets)."""
    raw = spec_with(
        {"name": "kde_nd", "generator": "moons"},
        grid={"n": [50], "policy": ["replace"], "family.generator": ["moons", "swiss_roll"]},
    )
    spec = parse_spec(raw)
    again = parse_spec(spec.to_raw())
    assert [p.family_spec for p in again.grid.points] == [p.family_spec for p in spec.grid.points]
    assert [KDENDFamily(p.family_spec).directions for p in again.grid.points] == [16, 64]


def test_specs_round_trip_through_their_raw_form():
    """A parsed spec's raw form parses to the same spec (sweep.json and replay rely on it), for
    mixture truths given briefly and generator truths given by name or with settings."""
    for family in (
        SHUMAILOV,
        {"name": "gmm", "means": [[0, 0, 0], [1, 1, 1]], "covs": [[1, 2, 3], 0.5], "k": 3},
        {"name": "kde_nd", "generator": {"name": "circles", "factor": 0.5}},
        {"name": "kde_nd", "generator": {"name": "blobs", "centers": [[0, 0], [2, 2]], "cluster_std": 0.3}},
        {"name": "kde_nd", "means": [[0, 0], [3, 0]], "bandwidth": 0.2},
    ):
        spec = parse_spec(spec_with(family))
        again = parse_spec(spec.to_raw())
        assert again.family_spec == spec.family_spec


def _family(cls, raw):
    return cls(cls.parse_spec(Section(raw, "family", cls.spec_fields)))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_gmm_chain_covariance_follows_its_closed_form(covariance_type):
    """Under replace, a fit's total covariance is the ML covariance of the previous fit's n samples
    plus reg_covar (exactly, after every M-step), so E[C_t] = a^t C_0 + r (1 - a^t) / (1 - a) I with
    a = (n - 1) / n. Over 3000 chains of n = 12, every entry the covariance type pins (full: all;
    diag: the diagonal; spherical: the trace) is within 5 standard errors at t = 1..5, and the level
    without the factor a (a sampler that drew from the fit's covariance squared, or an M-step off
    by n / (n - 1)) is rejected."""
    reg, n, chains = 0.05, 12, 3000
    fam = _family(
        GMMNDFamily,
        {
            "means": [[0.0, 0.0], [2.0, 1.0]],
            "covs": [[[1.0, 0.3], [0.3, 0.5]], 0.4],
            "k": 2,
            "covariance_type": covariance_type,
            "reg_covar": reg,
        },
    )
    rng = np.random.default_rng(7)
    params = fam.truth(chains)
    level = fam.cov0.copy()
    a = (n - 1) / n
    for t in range(1, 6):
        params = fam.fit(fam.sample(params, n, rng=rng), rng=rng)
        level = a * level + reg * np.eye(2)
        cov = fam.moments(params)[1]
        pick = {
            "full": lambda c: c.reshape(len(c), -1),
            "diag": lambda c: np.diagonal(c, axis1=1, axis2=2),
            "spherical": lambda c: np.trace(c, axis1=1, axis2=2)[:, None],
        }[covariance_type]
        got, expect = pick(cov), pick(level[None])[0]
        se = got.std(axis=0, ddof=1) / np.sqrt(chains)
        assert (np.abs(got.mean(axis=0) - expect) <= 5 * se).all(), (t, got.mean(axis=0), expect)
    wrong = pick((fam.cov0 + 5 * reg * np.eye(2))[None])[0]  # a = 1: no shrinkage
    assert (np.abs(got.mean(axis=0) - wrong) > 5 * se).any()


def test_gmm_tempered_chain_covariance():
    """At temperature T every generation samples covariances times T (one component: exactly p^(1/T)),
    so one step of a single-component fit has E[C_1] = a T C_0 + r I, within 5 standard errors; the
    untempered level is rejected."""
    fam = _family(GMMNDFamily, {"means": [[0.0, 0.0]], "covs": [[[1.0, 0.3], [0.3, 0.5]]], "k": 1, "reg_covar": 1e-3})
    rng = np.random.default_rng(8)
    fit = fam.fit(fam.sample(fam.truth(4000), 10, rng=rng, temperature=0.5), rng=rng)
    cov = fam.moments(fit)[1].reshape(4000, -1)
    se = cov.std(axis=0, ddof=1) / np.sqrt(4000)
    expect = (0.9 * 0.5 * fam.cov0 + 1e-3 * np.eye(2)).ravel()
    assert (np.abs(cov.mean(axis=0) - expect) <= 5 * se).all()
    assert (np.abs(cov.mean(axis=0) - (0.9 * fam.cov0 + 1e-3 * np.eye(2)).ravel()) > 5 * se).any()


@pytest.mark.parametrize("init", ["kmeans", "previous"])
def test_gmm_sweep_every_policy(init, ray_session, tmp_path):
    """A gmm sweep runs every kind of policy and writes finite metrics; components are sorted by
    their means' first coordinate; at generation 0 (the truth) w2, w2_gaussian and kl are ~0, the
    tail mass 0.02 and the spread ratio 1; every declared event has its rows."""
    raw = spec_with(
        dict(SHUMAILOV, init=init),
        generations=8,
        replicates=12,
        record={"every": 4},
        grid={
            "n": [60],
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
    assert len(frame) == 5 * 12 * 3
    columns = ["w2", "w2_gaussian", "kl", "tail_mass", "spread_ratio", "trace", "logdet"]
    assert np.isfinite(frame[columns].to_numpy()).all()
    later = frame[frame["generation"] > 0]
    means = np.stack(later["means"].to_numpy()).reshape(-1, 2, 2)
    assert (np.diff(means[..., 0], axis=1) >= 0).all()
    first = frame[frame["generation"] == 0]
    assert np.allclose(first[["w2", "w2_gaussian", "kl"]], 0.0, atol=1e-4)
    assert np.allclose(first["tail_mass"], 0.02) and np.allclose(first["spread_ratio"], 1.0)
    events = analysis.load_events(report.location)
    assert set(events["event"]) == {"spread_below", "weight_below", "modes_closer", "distance_above", "diverged"}
    assert len(events) == 5 * 12 * 5


def test_kde_nd_sweep_over_generators(ray_session, tmp_path):
    """A kde_nd sweep over the generators (a grid axis of names and mappings, 2-D and 3-D) and
    policies writes finite metrics; generation 0 is the truth (w2 0, tail mass 0.02, no bandwidth);
    later generations have a bandwidth and w2 > 0."""
    raw = spec_with(
        {"name": "kde_nd", "generator": "moons"},
        generations=4,
        replicates=6,
        grid={
            "n": [40],
            "policy": ["replace", "accumulate_subsample", {"fresh_real": 0.25}],
            "family.generator": [
                "moons",
                {"name": "circles", "factor": 0.5},
                "swiss_roll",
                {"name": "blobs", "centers": [[0, 0], [3, 1]], "cluster_std": 0.5},
            ],
        },
        events={"distance_above": [0.5]},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    frame = analysis.load(report.location)
    assert len(frame) == 3 * 4 * 6 * 5 and frame["family_generator"].nunique() == 4
    first, later = frame[frame["generation"] == 0], frame[frame["generation"] > 0]
    assert np.allclose(first["w2"], 0.0) and np.allclose(first["tail_mass"], 0.02) and first["bandwidth"].isna().all()
    assert np.isfinite(later[["w2", "w2_gaussian", "tail_mass", "spread_ratio", "bandwidth"]].to_numpy()).all()
    assert (later["w2"] > 0).all() and (later["bandwidth"] > 0).all()
    dims = later.groupby("family_generator")["mean"].first().map(len)
    assert sorted(dims) == [2, 2, 2, 3]
    assert set(analysis.load_events(report.location)["event"]) == {"spread_below", "distance_above", "diverged"}


def test_kde_nd_covariance_closed_form(ray_session, tmp_path):
    """With a fixed bandwidth h under replace, E[C_t] = a E[C_t-1] + h^2 I (a = (n - 1) / n; the
    KDE's covariance is the data's, ddof 0, plus h^2 I), on the trace of 3000 chains of the moons
    truth through a real sweep: within 5 standard errors at t = 2, 4, 6; a sampler that forgot the
    kernel noise (E[C_t] = a (E[C_t-1] - h^2 I) + h^2 I) is rejected. (Two directions for the sliced
    metrics, which this test does not read, keep it fast.)"""
    n, h, generations, replicates = 15, 0.3, 6, 3000
    raw = spec_with(
        {"name": "kde_nd", "generator": {"name": "moons", "noise": 0.2}, "bandwidth": h, "directions": 2},
        generations=generations,
        replicates=replicates,
        grid={"n": [n], "policy": ["replace"]},
        record={"every": 2},
    )
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    frame = analysis.load(report.location)
    fam = _family(KDENDFamily, {"generator": {"name": "moons", "noise": 0.2}, "bandwidth": h})
    a, expected, forgot = (n - 1) / n, float(np.trace(fam.cov0)), float(np.trace(fam.cov0))
    for t in range(1, generations + 1):
        expected = a * expected + 2 * h * h
        forgot = a * (forgot - (2 * h * h if t > 1 else 0.0)) + 2 * h * h
        if t % 2 == 0:
            trace = frame.loc[frame["generation"] == t, "trace"].to_numpy()
            se = trace.std(ddof=1) / np.sqrt(trace.size)
            assert abs(trace.mean() - expected) < 5 * se, (t, trace.mean(), expected, se)
            assert abs(trace.mean() - forgot) > 5 * se


def test_replay_is_bit_for_bit_with_threaded_blas(ray_session, tmp_path):
    """`sweep replay` recomputes a gmm chain bit for bit even where the caller's BLAS runs two
    threads (the tasks run one; the KL's matrix products rounded differently with two)."""
    from threadpoolctl import threadpool_limits

    from sweep.replay import compare_with_stored, replay_chain

    raw = spec_with(SHUMAILOV, generations=3, replicates=4, grid={"n": [60], "policy": ["replace"]})
    report = run_sweep(parse_spec(raw), str(tmp_path), progress=False)
    with threadpool_limits(2):
        replayed = replay_chain(report.location, 0, 2)
    assert compare_with_stored(report.location, 0, 2, replayed) == []
