from __future__ import annotations

import json
import re

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
    return write_results(tmp_path_factory.mktemp("results") / "gauss", traj, events,
                         extra_spec={"grid": {"n": [10, 40]}})


def test_report_on_gaussian_folder_writes_figures_and_summary(gaussian_folder):
    """The report writes the Gaussian figures as PNG + SVG and a markdown table per cell with every estimate,
    the chains left out of each drift and the bootstrap resamples dropped from each slope."""
    paths = analysis.write_report(gaussian_folder, n_boot=50)
    assert paths[-1] == gaussian_folder / "report" / "report.md"
    assert all(p.exists() for p in paths)
    stems = {p.stem for p in paths[:-1]}
    assert stems == {"survival_gaussian_spread_below_0.5", "collapse_time_gaussian_spread_below_0.5",
                     "heatmap_gaussian_spread_below_0.5", "fan_gaussian", "density_gaussian"}
    assert sorted(p.suffix for p in paths[:-1]) == [".png"] * 5 + [".svg"] * 5
    assert matplotlib.image.imread(next(p for p in paths if p.name == "fan_gaussian.png")).shape[2] == 4
    text = paths[-1].read_text()
    header = ("| cell | cell coordinates | chains | censored at T | median collapse time [95% CI] | "
              "mean time up to T (RMST ± se) | P(W2 > 0.5 at T) | log-variance drift / gen | "
              "chains left out of the rate (non-finite at T) |")
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
    assert {p.name for p in paths} == {"survival_categorical_collapse.png", "survival_categorical_collapse.svg",
                                       "forgetting_categorical.png", "forgetting_categorical.svg", "report.md"}
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
    (unfinished / "sweep.json").write_text(json.dumps({"spec": {"name": "u", "generations": 5,
                                                                "family": {"name": "gaussian"}}, "root_entropy": 1}))
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

    spec = parse_spec({
        "name": "mixture-report", "seed": 5, "generations": 30, "replicates": 24,
        "family": {"name": "gmm1d", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0]},
        "grid": {"n": [30, 60], "policy": ["replace", {"fresh_real": 0.2}]},
        "events": {"spread_below": [0.8], "weight_below": [0.2], "modes_closer": [2.0], "distance_above": [1.0]},
    })
    report = run_sweep(spec, str(tmp_path), progress=False)
    paths = analysis.write_report(report.location, n_boot=50)
    stems = {p.stem for p in paths[:-1]}
    assert {"fan_gmm1d", "fan_w2_gmm1d", "density_gmm1d", "survival_gmm1d_weight_below_0.2",
            "survival_gmm1d_modes_closer_2"} <= stems
    text = paths[-1].read_text()
    assert "### Collapse: a mode lost (a component's weight < 0.2)" in text
    assert "### Collapse: modes merged (two component means < 2 true σ apart)" in text
    assert "P(W2 > 1 at T)" in text and "(theory" not in text

    fig = analysis.figures.density_figure(analysis.load(report.location), cells=[0])
    truth = fig.axes[0].collections[0].get_paths()[0].vertices  # the shaded true density
    x, y = truth[:, 0], truth[:, 1]
    at = lambda value: y[np.abs(x - value).argmin()]  # noqa: E731
    assert at(-2.0) > 3 * at(0.0) and at(2.0) > 3 * at(0.0)  # two modes, a valley between
