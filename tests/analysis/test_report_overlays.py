"""analysis._report_overlays and analysis._snapshots: the declared closed forms of the count and
regression families drawn against real sweeps (values equal to analysis.theory_collapse's, the
simulation within 5 standard errors, wrong laws rejected), only where they hold; 2-D density
snapshots of gmm (from the tables) and kde_nd (replayed) fits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import analysis
from analysis import theory, theory_collapse
from analysis._declarations import for_folder
from analysis._report_context import FamilyRows, Report
from analysis._report_overlays import cell_parameters, curve_table, overlay_sections
from analysis._snapshots import replay_fits, snapshot_generations
from analysis.figures.overlays import mixture_density_2d
from analysis.io import read_metadata

SIGMAS = 5.0

SPECS = {
    "bernoulli": {
        "generations": 30,
        "replicates": 400,
        "family": {"name": "bernoulli", "p": 0.3},
        "grid": {
            "n": [10],
            "policy": ["replace", "accumulate", {"fresh_real": 0.2}, "accumulate_subsample"],
            "temperature": [1.0, 0.8],
        },
        "events": {"collapse": True},
    },
    "poisson": {
        "generations": 30,
        "replicates": 400,
        "family": {"name": "poisson", "lambda": 0.5},
        "grid": {"n": [4], "policy": ["replace", "accumulate"]},
        "events": {"collapse": True},
    },
    "linear_regression": {
        "generations": 15,
        "replicates": 400,
        "family": {"name": "linear_regression", "dim": 2, "noise_sd": 1.0},
        "grid": {"n": [12], "policy": ["replace", "accumulate", {"fresh_real": 0.25}], "temperature": [1.0, 0.5]},
        "events": {"test_error_above": [3.0]},
    },
    "gmm": {
        "generations": 4,
        "replicates": 3,
        "family": {"name": "gmm", "means": [[0.0, 0.0], [3.0, 0.0]], "covs": [1.0, 0.5], "weights": [0.5, 0.5]},
        "grid": {"n": [40], "policy": ["replace"]},
        "events": {"spread_below": [0.5]},
    },
    "kde_nd": {
        "generations": 4,
        "replicates": 2,
        "family": {"name": "kde_nd", "generator": {"name": "moons", "noise": 0.1}},
        "grid": {"n": [40], "policy": ["replace"]},
        "events": {"spread_below": [0.5]},
    },
}


@pytest.fixture(scope="module")
def folders(ray_session, tmp_path_factory):
    """Each tiny spec run through ``sweep run``; family name -> results folder."""
    from sweep.cli import main

    root = tmp_path_factory.mktemp("overlays")
    out = {}
    for name, body in SPECS.items():
        spec = root / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({"name": f"ov_{name}", "seed": 7, **body}, sort_keys=False))
        assert main(["run", str(spec), "--out", str(root / "results")]) == 0
        out[name] = root / "results" / f"ov_{name}"
    return out


def _family(folder: Path) -> FamilyRows:
    """One folder's rows and declarations, as the report builds them."""
    meta = read_metadata(str(folder))
    traj, events = analysis.load(str(folder)), analysis.load_events(str(folder))
    name = str(traj["family"].iloc[0])
    info = for_folder(meta, name, only=True, event_names=events["event"].unique())
    return FamilyRows(info, traj, events, int(meta["spec"]["generations"]), "unbiased")


def _table(folder: Path, simulated: str) -> pd.DataFrame:
    fam = _family(folder)
    curves = [c for c in theory.overlay_curves(fam.info.theory_overlays) if c.simulated.name == simulated]
    assert curves, simulated
    return curve_table(fam, curves[0].simulated, curves, read_metadata(str(folder))["spec"]["family"])


def _cells(folder: Path) -> pd.DataFrame:
    return _family(folder).cells


# -- values drawn: the theory functions' ----------------------------------------------------------
def test_bernoulli_curves_are_theory_collapse_values_where_they_hold(folders):
    """The collapse-probability and MSE curves drawn for each cell equal analysis.theory_collapse
    evaluated at the cell's p, n, policy and real count; tempered and accumulate_subsample cells
    get none (no closed form holds there), and the Markov bound only replace."""
    cells = _cells(folders["bernoulli"])
    collapse = _table(folders["bernoulli"], "collapse_probability")
    mse = _table(folders["bernoulli"], "mse")
    held = cells[cells["temperature"].eq(1.0) & cells["policy_kind"].isin(["replace", "accumulate", "fresh_real"])]
    assert set(collapse["cell"]) == set(mse["cell"]) == set(held["cell"])
    for cell in held.to_dict("records"):
        policy, real = cell["policy_kind"], (2 if cell["policy_kind"] == "fresh_real" else 0)  # round(0.2 * 10)
        rows = collapse[(collapse["cell"] == cell["cell"]) & (collapse["bound"] == "")]
        t = rows["generation"].to_numpy()
        expected = theory_collapse.bernoulli_collapse_probability(0.3, 10, t, policy=policy, real=real)
        np.testing.assert_allclose(rows["theory"], expected, rtol=1e-12, atol=1e-15)
        rows = mse[mse["cell"] == cell["cell"]]
        expected = theory_collapse.bernoulli_mse(0.3, 10, rows["generation"].to_numpy(), policy=policy, real=real)
        np.testing.assert_allclose(rows["theory"], expected, rtol=1e-12, atol=1e-15)
    bounds = collapse[collapse["bound"] == "lower"]
    assert set(bounds["cell"]) == set(held.loc[held["policy_kind"] == "replace", "cell"])
    np.testing.assert_allclose(
        bounds["theory"], 1 - theory_collapse.bernoulli_survival_bound(0.3, 10, bounds["generation"].to_numpy())
    )


def test_regression_curve_is_the_tempered_closed_form_per_cell(folders):
    """The test-error curve is linear_regression_test_error at each cell's n, d, sigma, policy and
    temperature (it is exact for tempered labels too); fresh_real cells get none."""
    cells = _cells(folders["linear_regression"])
    table = _table(folders["linear_regression"], "test_error")
    held = cells[cells["policy_kind"].isin(["replace", "accumulate"])]
    assert set(table["cell"]) == set(held["cell"]) and len(held) == 4
    for cell in held.to_dict("records"):
        rows = table[table["cell"] == cell["cell"]]
        expected = theory_collapse.linear_regression_test_error(
            12, 2, 1.0, rows["generation"].to_numpy(), policy=cell["policy_kind"], temperature=cell["temperature"]
        )
        np.testing.assert_allclose(rows["theory"], expected, rtol=1e-12)


def test_cell_parameters_read_grid_axes_over_the_spec():
    """A family field swept by the grid (family_p) overrides the spec's, and fresh_real's share
    becomes the count of real samples, rounded half up as sweep.policies does."""
    cell = {"cell": 0, "n": 10, "policy_kind": "fresh_real", "real": 0.25, "temperature": 1.0, "family_p": 0.4}
    params = cell_parameters(cell, {"name": "bernoulli", "p": 0.3, "path": "exact"})
    assert params["p"] == 0.4 and params["real"] == 3 and params["policy"] == "fresh_real" and params["n"] == 10


# -- the simulation against them, with negative controls -------------------------------------------
def _worst(table: pd.DataFrame) -> float:
    return float(np.nanmax(np.abs(table.loc[table["bound"] == "", "z"])))


def test_simulation_agrees_with_every_drawn_closed_form(folders):
    """Every drawn expectation or probability is within 5 standard errors of the simulation at
    every recorded generation, and the lower bound is never exceeded by more than 5 se."""
    for name, simulated in [
        ("bernoulli", "collapse_probability"),
        ("bernoulli", "mse"),
        ("bernoulli", "absorbed_at_one"),
        ("poisson", "collapse_probability"),
        ("poisson", "mse"),
        ("linear_regression", "test_error"),
    ]:
        table = _table(folders[name], simulated)
        assert not table.empty and _worst(table) < SIGMAS, (name, simulated, _worst(table))
        bound = table[table["bound"] == "lower"]
        assert not (bound["z"] < -SIGMAS).any()


def _wrong(folder: Path, simulated: str, law, policies: tuple[str, ...], tempered: bool = False) -> float:
    """The largest deviation of the simulation from a wrong law drawn on ``policies`` cells."""
    fam = _family(folder)
    sim = next(c.simulated for c in theory.overlay_curves(fam.info.theory_overlays) if c.simulated.name == simulated)
    curve = theory.Curve("wrong", sim, law, policies, tempered=tempered)
    return _worst(curve_table(fam, sim, [curve], read_metadata(str(folder))["spec"]["family"]))


def test_wrong_laws_are_rejected_by_the_same_comparison(folders):
    """Negative controls: the replace law drawn on fresh_real or accumulate cells, and the
    untempered regression law on tempered cells, deviate from the simulation by more than 5 se,
    so the agreement above is not for want of power."""
    replace_collapse = lambda t, c: theory_collapse.bernoulli_collapse_probability(c["p"], c["n"], t)  # noqa: E731
    assert _wrong(folders["bernoulli"], "collapse_probability", replace_collapse, ("fresh_real",)) > SIGMAS
    replace_mse = lambda t, c: theory_collapse.bernoulli_mse(c["p"], c["n"], t)  # noqa: E731
    assert _wrong(folders["bernoulli"], "mse", replace_mse, ("accumulate",)) > SIGMAS
    untempered = lambda t, c: theory_collapse.linear_regression_test_error(c["n"], c["dim"], c["noise_sd"], t)  # noqa: E731
    deviation = _wrong(folders["linear_regression"], "test_error", untempered, ("replace",), tempered=True)
    assert deviation > SIGMAS


def test_poisson_median_is_the_exact_median_collapse_time(folders, tmp_path):
    """The overlay section's table gives, for the replace cell, the theory's median equal to
    poisson_median_collapse_time and the simulated first crossing of one half within a few
    generations of it; the CSV next to the figure holds the drawn values."""
    fam = _family(folders["poisson"])
    rep = Report(tmp_path, 10, 0)
    rep.spec = read_metadata(str(folders["poisson"]))["spec"]
    overlay_sections(rep, fam)
    exact = theory_collapse.poisson_median_collapse_time(0.5, 4)
    assert 1 <= exact <= 30
    text = "\n".join(rep.lines)
    row = next(line for line in text.splitlines() if line.startswith("| 0 | n=4, replace | exact P(collapsed by t)"))
    simulated, expected = [c.strip() for c in row.strip("|").split("|")][-2:]
    assert expected == str(exact) and abs(int(simulated) - exact) <= 2
    csv = pd.read_csv(tmp_path / "figures" / "theory_collapse_probability_poisson.csv")
    rows = csv[csv["cell"] == 0]
    np.testing.assert_allclose(rows["theory"], theory_collapse.poisson_collapse_probability(0.5, 4, rows["generation"]))
    assert (tmp_path / "figures" / "theory_collapse_probability_poisson.png").exists()
    assert "(figures/theory_collapse_probability_poisson.png)" in text and "(figures/theory_mse_poisson.png)" in text


# -- 2-D density snapshots ---------------------------------------------------------------------------
def test_mixture_density_2d_is_the_mixture_pdf():
    """Per-component covariances: the scipy mixture pdf to rounding; a shared kernel (a KDE):
    exact below the binning size, within 2% of the peak when binned."""
    x, y = np.linspace(-3, 4, 71), np.linspace(-3, 3, 61)
    grid = np.dstack(np.meshgrid(x, y))
    covs = [[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]]]
    got = mixture_density_2d([0.3, 0.7], [0, 0, 1, 0.5], np.ravel(covs), x, y)
    want = 0.3 * stats.multivariate_normal([0, 0], covs[0]).pdf(grid)
    want += 0.7 * stats.multivariate_normal([1, 0.5], covs[1]).pdf(grid)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    kernel = np.array([[0.09, 0.02], [0.02, 0.16]])
    inverse = np.linalg.inv(kernel)
    for size, tolerance in ((50, 1e-10), (1000, 0.02)):
        points = np.random.default_rng(size).normal(size=(size, 2))
        got = mixture_density_2d(np.full(size, 1 / size), points.ravel(), kernel.ravel(), x, y)
        offsets = grid[:, :, None, :] - points[None, None, :, :]
        quad = np.einsum("...i,ij,...j->...", offsets, inverse, offsets)
        want = np.exp(-0.5 * quad).mean(axis=-1) / (2 * np.pi * np.sqrt(np.linalg.det(kernel)))
        assert np.abs(got - want).max() <= tolerance * want.max(), size
    assert size > 64  # the binned path (more than _EXACT_KERNELS points) was the one checked last


def test_snapshot_generations_are_first_middle_last():
    """The first fitted, the middle and the last recorded generation, without generation 0."""
    assert snapshot_generations([0, 1, 2, 3, 4, 5, 10, 20, 50, 100]) == [1, 50, 100]
    assert snapshot_generations([0, 1]) == [1] and snapshot_generations([0]) == []


def test_gmm_and_kde_reports_draw_density_snapshots(folders, tmp_path):
    """A 2-D gmm folder gets the snapshot figure from its columns, a kde_nd folder from a replay;
    both are written and referenced; the gmm truth drawn is generation 0's mixture."""
    for name in ("gmm", "kde_nd"):
        fam = _family(folders[name])
        rep = Report(tmp_path / name, 10, 0)
        rep.spec, rep.results = read_metadata(str(folders[name]))["spec"], str(folders[name])
        overlay_sections(rep, fam)
        assert (tmp_path / name / "figures" / f"density_2d_{name}.png").exists(), name
        assert f"(figures/density_2d_{name}.png)" in "\n".join(rep.lines)


def test_replayed_kde_fits_are_the_stored_chains(folders):
    """The fits the replay recovers are the stored chains': the KDE's mean (the mean of its
    points) equals the stored ``mean`` column of the same chain and generation."""
    folder = folders["kde_nd"]
    fits, truth = replay_fits(str(folder), 0, [1, 4], chains=2)
    assert isinstance(truth, np.ndarray) and truth.shape[1] == 2  # moons: drawn as samples
    stored = analysis.load(str(folder))
    for fit in fits.itertuples():
        row = stored[
            (stored["cell"] == 0) & (stored["generation"] == fit.generation) & (stored["replicate"] == fit.replicate)
        ]
        mean = np.asarray(fit.means).reshape(-1, 2).mean(axis=0)
        np.testing.assert_allclose(mean, np.asarray(row["mean"].iloc[0]), rtol=1e-10)
    assert math.isclose(float(np.sum(fits["weights"].iloc[0])), 1.0)


# -- end to end ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_report_draws_every_overlay_figure(folders):
    """``sweep report`` on each folder writes the overlay figures and CSVs and references them in
    report.md; the CSVs read back hold analysis.theory_collapse's values."""
    from sweep.cli import main

    expected = {
        "bernoulli": ["theory_collapse_probability", "theory_absorbed_at_one", "theory_mse"],
        "poisson": ["theory_collapse_probability", "theory_mse"],
        "linear_regression": ["theory_test_error"],
        "gmm": ["density_2d"],
        "kde_nd": ["density_2d"],
    }
    for name, stems in expected.items():
        assert main(["report", str(folders[name]), "--bootstrap", "20", "--no-regression"]) == 0
        text = (folders[name] / "report" / "report.md").read_text()
        for stem in stems:
            assert (folders[name] / "report" / "figures" / f"{stem}_{name}.png").exists()
            assert f"(figures/{stem}_{name}.png)" in text, (name, stem)
    csv = pd.read_csv(folders["linear_regression"] / "report" / "figures" / "theory_test_error_linear_regression.csv")
    cells = _cells(folders["linear_regression"]).set_index("cell")
    for cell, rows in csv.groupby("cell"):
        want = theory_collapse.linear_regression_test_error(
            12,
            2,
            1.0,
            rows["generation"],
            policy=cells.loc[cell, "policy_kind"],
            temperature=cells.loc[cell, "temperature"],
        )
        np.testing.assert_allclose(rows["theory"], want, rtol=1e-12)


def test_exact_bernoulli_law_is_skipped_past_its_budget_not_drawn_wrong():
    """Past the exact law's size (an (n + 1)^2 matrix per generation) the curve gives no value, so
    the report names the cell instead of drawing an approximation; accumulate's closed form has
    no such limit."""
    curve = theory.overlay_curves(["bernoulli_collapse_probability"])[0]
    cell = {"n": 5000, "policy": "replace", "p": 0.3, "real": 0, "temperature": 1.0}
    assert curve.theory(np.arange(10), cell) is None
    assert curve.theory(np.arange(1000), {**cell, "n": 1000, "policy": "fresh_real", "real": 100}) is None
    values = curve.theory(np.arange(10), {**cell, "policy": "accumulate"})
    np.testing.assert_allclose(values[1:], 0.7**5000 + 0.3**5000)
