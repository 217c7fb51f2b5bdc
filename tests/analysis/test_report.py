from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import pytest

import analysis
from tests.analysis.synthetic import categorical_frames, gaussian_frames, write_results


@pytest.fixture(scope="module")
def gaussian_folder(tmp_path_factory):
    """A results folder written with pyarrow as sweep run would: 2 n x 2 fresh-real fractions, T = 40;
    in cell 3 two chains' spread ratio at T is 0 (variance underflowed) and one's is NaN."""
    traj, events = gaussian_frames(ns=(10, 40), reals=(0.0, 0.2), replicates=30, generations=40, seed=41)
    last = traj.index[(traj["generation"] == 40) & (traj["cell"] == 3)]
    traj.loc[last[:2], "spread_ratio"] = 0.0
    traj.loc[last[2:3], "spread_ratio"] = float("nan")
    return write_results(
        tmp_path_factory.mktemp("results") / "gauss", traj, events, extra_spec={"grid": {"n": [10, 40]}}
    )


def test_report_on_gaussian_folder_writes_figures_and_summary(gaussian_folder):
    """The report writes the Gaussian figures as PNG + SVG and a markdown table per cell with every estimate,
    the chains left out of each drift and the bootstrap resamples dropped from each slope."""
    paths = analysis.write_report(gaussian_folder, n_boot=50)
    assert paths[-1] == gaussian_folder / "report" / "report.md"
    assert all(p.exists() for p in paths)
    stems = {p.stem for p in paths[:-1]}
    assert stems == {
        "survival_gaussian_spread_below_0.5",
        "collapse_time_gaussian_spread_below_0.5",
        "heatmap_gaussian_spread_below_0.5",
        "fan_gaussian",
        "density_gaussian",
        "fan_w2_gaussian",
        "regression_spread_below_0.5_gaussian",
        "metrics_gaussian",  # the declared metrics the figures above do not draw (mean, var, tail_mass)
    }
    assert sorted(p.suffix for p in paths[:-1]) == [".png"] * 8 + [".svg"] * 8
    assert matplotlib.image.imread(next(p for p in paths if p.name == "fan_gaussian.png")).shape[2] == 4
    text = paths[-1].read_text()
    header = (
        "| cell | cell coordinates | chains | censored at T | median collapse time [95% CI] | "
        "mean time up to T (RMST ± se) | P(W2 > 0.5 at T) | log-variance drift / gen | "
        "chains left out of the rate (non-finite at T) |"
    )
    assert header in text
    assert "| 0 | n=10, replace | 30 |" in text and "(theory -0.115) | 0 |" in text
    # The three damaged chains are counted as left out of cell 3's drift, not silently averaged away.
    assert re.search(r"^\| 3 \| n=40, fresh_real\(0\.2\) \|.* \| 3 \|$", text, re.M)
    assert "| resamples dropped (a median > T) |" in text
    # n=40 under replace has a median near T: some resamples lose it, and the report says how many.
    assert re.search(r"\| replace \| 2 of 2 \| none \| [^|]+ \| [^|]+ \| [1-9][0-9.]*% \|", text)
    assert "> 40" in text  # some fresh_real cells never reach one half by T, shown as such
    assert "horizon T = 40" in text and "root entropy: 12345" in text
    assert "figures/fan_gaussian.png" in text


def test_report_on_categorical_folder_covers_collapse_and_forgetting(tmp_path):
    """A categorical folder gets KM curves of collapse, the forgetting figure and a forgetting-slope table."""
    traj, events = categorical_frames(ns=(40,), replicates=30, generations=50, seed=42)
    folder = write_results(tmp_path / "cat", traj, events, family="categorical")
    paths = analysis.write_report(folder, tmp_path / "out", n_boot=50)
    assert {p.name for p in paths} == {
        "survival_categorical_collapse.png",
        "survival_categorical_collapse.svg",
        "forgetting_categorical.png",
        "forgetting_categorical.svg",
        "fan_tv_categorical.png",
        "fan_tv_categorical.svg",
        "metrics_categorical.png",
        "metrics_categorical.svg",
        "report.md",
    }
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### Collapse: one symbol left" in text and "### Forgetting" in text
    assert "P(TV > 0.3 at T)" in text and "log-heterozygosity rate / gen" in text
    assert "| theory slope | resamples dropped (a median > T) |" in text


def test_report_refuses_an_empty_folder(tmp_path):
    """An empty folder raises ResultsError with a one-line message that names sweep.json."""
    with pytest.raises(analysis.ResultsError, match="sweep.json") as info:
        analysis.write_report(tmp_path)
    assert "\n" not in str(info.value)


def test_report_refuses_foreign_or_unfinished_folders(tmp_path):
    """A sweep.json without a spec, or a sweep with no Parquet rows yet, raises ResultsError, not a traceback."""
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "sweep.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(analysis.ResultsError, match="no 'spec' object"):
        analysis.write_report(tmp_path / "foreign")
    unfinished = tmp_path / "unfinished"
    for kind in ("trajectories", "events"):
        (unfinished / kind).mkdir(parents=True)
    (unfinished / "sweep.json").write_text(
        json.dumps({"spec": {"name": "u", "generations": 5, "family": {"name": "gaussian"}}, "root_entropy": 1})
    )
    with pytest.raises(analysis.ResultsError, match="no trajectories or events rows yet"):
        analysis.write_report(unfinished)


def test_report_on_a_gmm1d_sweep_draws_mixtures_and_mode_events(ray_session, tmp_path):
    """A real gmm1d sweep: the report has survival sections for mode loss and mode merging, a
    distance column from the W2 events, a W2 fan chart, and densities drawn as whole mixtures
    (the truth is bimodal in the figure, not one Gaussian); the Gaussian closed forms are left
    out (they do not describe a mixture refitted by EM)."""
    import numpy as np

    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "mixture-report",
            "seed": 5,
            "generations": 30,
            "replicates": 24,
            "family": {"name": "gmm1d", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0]},
            "grid": {"n": [30, 60], "policy": ["replace", {"fresh_real": 0.2}]},
            "events": {"spread_below": [0.8], "weight_below": [0.2], "modes_closer": [2.0], "distance_above": [1.0]},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    paths = analysis.write_report(report.location, n_boot=50)
    stems = {p.stem for p in paths[:-1]}
    assert {
        "fan_gmm1d",
        "fan_w2_gmm1d",
        "density_gmm1d",
        "survival_gmm1d_weight_below_0.2",
        "survival_gmm1d_modes_closer_2",
    } <= stems
    text = paths[-1].read_text()
    assert "### Collapse: a mode lost (a component's weight < 0.2)" in text
    assert "### Collapse: modes merged (two component means < 2 true σ apart)" in text
    assert "P(W2 > 1 at T)" in text and "(theory" not in text

    fig = analysis.figures.density_figure(analysis.load(report.location), cells=[0])
    truth = fig.axes[0].collections[0].get_paths()[0].vertices  # the shaded true density
    x, y = truth[:, 0], truth[:, 1]
    at = lambda value: y[np.abs(x - value).argmin()]  # noqa: E731
    assert at(-2.0) > 3 * at(0.0) and at(2.0) > 3 * at(0.0)  # two modes, a valley between


@pytest.fixture(scope="module")
def axes_folder(ray_session, tmp_path_factory):
    """A real categorical sweep over n x family.k x temperature (8 cells, replace): the columns and
    the sweep.json family entry are those sweep run writes. (gmm1d cannot sweep family.k yet: a fit
    with another number of components than the truth fails on the sweep side.)"""
    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "axes-report",
            "seed": 7,
            "generations": 60,
            "replicates": 24,
            "family": {"name": "categorical", "k": 4, "probs": "uniform"},
            "grid": {"n": [10, 20], "family": {"k": [3, 6]}, "temperature": [1.0, 0.7]},
            "events": {"symbols": False, "collapse": True, "distance_above": [0.5]},
        }
    )
    return run_sweep(spec, str(tmp_path_factory.mktemp("axes")), progress=False).location


def test_report_on_a_grid_of_family_k_and_temperature_fits_rates_per_combination(axes_folder):
    """A grid over n, family.k and temperature: every cell's label names k and the temperature, the rate
    table has one line per (temperature, k) over both n, and the tempered lines (p^(1/0.7) sharpens the
    leading symbol every generation) reach one symbol sooner than the untempered ones at the same n and
    k: a report that grouped by policy alone would fit one line over all eight cells."""
    paths = analysis.write_report(axes_folder, n_boot=30)
    text = paths[-1].read_text()
    assert "- grid axes: n, policy, temperature, family.k; varied: n, temperature, family.k" in text
    for n in (10, 20):
        for t in ("1", "0.7"):
            for k in (3, 6):
                assert f"| n={n}, replace, temperature={t}, k={k} |" in text
    fit_table = text.split("| policy | temperature | k | cells fitted |")[1].split("\n\n")[0]
    lines = [line for line in fit_table.splitlines()[2:] if line.startswith("| replace |")]
    assert sorted(line.split(" | ")[1:3] for line in lines) == [["0.7", "3"], ["0.7", "6"], ["1", "3"], ["1", "6"]]
    assert "P(TV > 0.5 at T)" in text and "fan_tv_categorical.png" in text
    assert "interval-censored" not in text and "interval's start" not in text  # events checked every generation

    times = analysis.collapse_times(analysis.load_events(axes_folder), "collapse")
    fits = analysis.rates(times, n_boot=30)
    assert len(fits) == 4 and (fits["cells"] == 2).all()
    assert {"temperature", "family_k"} <= set(fits.columns)
    median = analysis.survival(times).set_index(["n", "family_k", "temperature"])["median"]
    for n in (10, 20):
        for k in (3, 6):
            assert median[(n, k, 0.7)] < median[(n, k, 1.0)]


def test_report_of_a_family_known_only_by_its_declarations(ray_session, tmp_path):
    """A folder whose sweep.json names a family from user code (mypkg.models:Exotic) and declares,
    unlike the gaussian family whose rows it holds, tail_mass as its distance, distance_above as its
    one collapse event, no spread metric and an overlay no analysis knows: the report follows the
    declarations alone (a report that went by the family's name would find nothing, and one that went
    by the rows' 'gaussian' would show spread sections, W2 and the Gaussian theory)."""
    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "exotic",
            "seed": 3,
            "generations": 30,
            "replicates": 20,
            "family": {"name": "gaussian"},
            "grid": {"n": [10, 40]},
            "events": {"spread_below": [0.5], "distance_above": [0.5]},
        }
    )
    folder = run_sweep(spec, str(tmp_path), progress=False).location
    meta = json.loads((Path(folder) / "sweep.json").read_text())
    meta["family"] = {
        "name": "mypkg.models:Exotic",
        "events": [
            {
                "name": "spread_below",
                "event": "spread_below",
                "description": "exotic spread shrank",
                "thresholds": True,
                "per_symbol": False,
                "collapse": False,
                "descending": True,
            },
            {
                "name": "distance_above",
                "event": "distance_above",
                "description": "exotic tails drifted away",
                "thresholds": True,
                "per_symbol": False,
                "collapse": True,
                "descending": False,
            },
            {
                "name": "diverged",
                "event": "diverged",
                "description": "non-finite",
                "thresholds": False,
                "per_symbol": False,
                "collapse": True,
                "descending": False,
            },
        ],
        "metrics": {"tail_mass": "mass beyond the true 1% and 99% quantiles"},
        "distance_metric": "tail_mass",
        "spread_metric": None,
        "theory_overlays": ["exotic_closed_form"],
        "axes": {"n": "n", "policy": "policy", "temperature": "temperature"},
        "events_every": 1,
    }
    (Path(folder) / "sweep.json").write_text(json.dumps(meta))
    paths = analysis.write_report(folder, n_boot=30, regression=False)
    assert {p.stem for p in paths[:-1]} == {
        "survival_mypkg.models_Exotic_distance_above_0.5",
        "collapse_time_mypkg.models_Exotic_distance_above_0.5",
        "fan_tail_mass_mypkg.models_Exotic",
    }
    text = paths[-1].read_text()
    assert "## Family: mypkg.models:Exotic" in text and "- families: mypkg.models:Exotic;" in text
    assert "### Collapse: tail_mass > 0.5" in text and "`distance_above`: exotic tails drifted away." in text
    assert "P(tail_mass > 0.5 at T)" in text
    assert "σ_t" not in text and "W2" not in text and "(theory" not in text and "non-finite" not in text
    assert "log-variance drift" not in text  # spread_ratio is a column here, but not the declared spread
    assert (
        "theory overlays `exotic_closed_form` (not known to this analysis, nothing drawn: exotic_closed_form)" in text
    )
