from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

import analysis
from analysis import figures
from tests.analysis.synthetic import categorical_frames, gaussian_frames

DPI = 150


@pytest.fixture(scope="module")
def gaussian():
    """Two n by two fresh-real fractions, 30 chains, T = 40: small but with collapse and censoring."""
    return gaussian_frames(ns=(10, 40), reals=(0.0, 0.2), replicates=30, generations=40, seed=31)


@pytest.fixture(scope="module")
def categorical():
    return categorical_frames(ns=(40, 120), replicates=30, generations=60, seed=32)


def _labelled_lines(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def _legend(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def _png_shape(fig, tmp_path, name):
    paths = figures.save_figure(fig, tmp_path / name)
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)
    assert paths[1].read_text().lstrip().startswith("<?xml")
    return matplotlib.image.imread(paths[0]).shape[:2]


def test_fan_chart_has_a_panel_per_cell_with_median_bands_and_theory(gaussian, tmp_path):
    """Two cells give two panels of 690x510 px; the first names median, truth, theory and both bands."""
    fig = figures.fan_chart(gaussian[0], cells=[0, 1])
    assert len(fig.axes) == 2
    assert _png_shape(fig, tmp_path, "fan") == (510, 2 * 690)
    first = fig.axes[0]
    assert _labelled_lines(first) == ["median", "truth", "theory median exp(drift·t/2)"]
    assert {"50% of chains", "90% of chains"} <= set(_legend(first))
    assert (first.get_title(), first.get_xlabel(), first.get_ylabel()) == (
        "n=10, replace",
        "generation",
        "σ_t / σ_true",
    )
    assert first.get_yscale() == "log"


def test_fan_chart_leaves_out_theory_off_replace(gaussian):
    """A fresh_real cell has median and truth lines but no theory median (no closed form there)."""
    fig = figures.fan_chart(gaussian[0], cells=[2])
    assert _labelled_lines(fig.axes[0]) == ["median", "truth"]
    assert fig.axes[0].get_title() == "n=10, fresh_real(0.2)"


def test_density_figure_draws_chains_over_the_truth(gaussian, tmp_path):
    """Two cells by three generations give six 600x450 px panels, each with five fitted densities and the truth."""
    fig = figures.density_figure(gaussian[0], cells=[0, 2])
    assert len(fig.axes) == 6
    assert _png_shape(fig, tmp_path, "density") == (2 * 450, 3 * 600)
    for ax in fig.axes:
        assert len(ax.get_lines()) == 5 and _labelled_lines(ax) == ["fitted, 5 chains"]
    assert "truth (generation 0)" in _legend(fig.axes[0])
    assert [ax.get_title().split("; ")[1] for ax in fig.axes[:3]] == ["generation 1", "generation 10", "generation 40"]


def test_survival_figure_has_a_panel_per_policy_and_a_curve_per_n(gaussian, tmp_path):
    """KM curves: one panel per policy, each with a labelled step line per n plus the horizon."""
    times = analysis.collapse_times(gaussian[1])
    fig = figures.survival_figure(times)
    assert len(fig.axes) == 2
    assert _png_shape(fig, tmp_path, "survival") == (510, 2 * 690)
    assert _labelled_lines(fig.axes[1]) == ["n=10, replace", "n=40, replace", "horizon T=40"]
    assert fig.axes[1].get_xlabel() == "generation" and fig.axes[1].get_ylabel() == "P(not yet collapsed)"


def test_collapse_time_figure_shows_policies_fits_and_theory(gaussian, tmp_path):
    """Median time versus n: one log-log axes; the figure legend names each policy, the theory lines and the horizon."""
    times = analysis.collapse_times(gaussian[1])
    summary = analysis.survival(times)
    fits = analysis.rates(times, n_boot=50)
    fig = figures.collapse_time_figure(summary, fits=fits, ratio=0.5, path=tmp_path / "time")
    (ax,) = fig.axes
    assert matplotlib.image.imread(tmp_path / "time.png").shape[:2] == (round(5.2 * DPI), round(6.4 * DPI))
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert any(t.startswith("replace: slope") for t in legend) and any(t.startswith("fresh_real(0.2)") for t in legend)
    assert {"theory, replace: first-passage median", "horizon T=40"} <= set(legend)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "n (samples per generation)"


def test_probability_heatmap_annotates_every_cell(gaussian, tmp_path):
    """A 2x2 (n, real) grid gives the heatmap and its colour bar, with four annotated probabilities."""
    table = analysis.collapsed_by(gaussian[1], generations=[40])
    fig = figures.probability_heatmap(table, title="P(collapsed by T)")
    assert len(fig.axes) == 2
    assert _png_shape(fig, tmp_path, "heat")[1] == round((1.2 + 1.15 * 2) * DPI)
    assert len(fig.axes[0].texts) == 4 and fig.axes[0].get_ylabel() == "fresh real fraction (real)"
    with pytest.raises(ValueError, match="one row per \\(n, real\\)"):
        figures.probability_heatmap(analysis.collapsed_by(gaussian[1], generations=[20, 40]))


def test_forgetting_figure_has_count_and_surviving_panels(categorical, tmp_path):
    """Forgetting: a log-log panel with one series per cell plus theory, and a surviving-symbols panel per cell."""
    table = analysis.forgetting_times(categorical[1])
    fits = analysis.forgetting_rates(categorical[1], n_boot=50)
    fig = figures.forgetting_figure(table, fits=fits, trajectories=categorical[0])
    assert len(fig.axes) == 2
    assert _png_shape(fig, tmp_path, "forgetting") == (round(4.0 * DPI), round(2 * 5.2 * DPI))
    legend = _legend(fig.axes[0])
    assert "theory 2c / ln 2 (c << n)" in legend and sum(t.startswith("n=") for t in legend) == 2
    assert _labelled_lines(fig.axes[1]) == ["n=40, replace (median, 50% band)", "n=120, replace (median, 50% band)"]
    assert fig.axes[1].get_ylabel() == "surviving symbols"


def test_figures_refuse_frames_they_cannot_draw(categorical, gaussian):
    """Asking for a density of categorical chains or too many panels raises a ValueError that says what to pass."""
    with pytest.raises(ValueError, match="lacks column"):
        figures.density_figure(categorical[0])
    with pytest.raises(ValueError, match=r"cells \[99\] are not in the trajectories"):
        figures.fan_chart(gaussian[0], cells=[99])
    assert np.isfinite(analysis.survival(analysis.collapse_times(gaussian[1]))["rmst"]).all()
