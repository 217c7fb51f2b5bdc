"""A small rate-of-collapse study run inside the test: the engine's collapse times follow the exact law.

Under ``replace`` the 1-D Gaussian's ``ln(var_t / var_0)`` is a random walk with i.i.d. steps
``ln(chi2_{n-1} / c)`` (c = n - 1 unbiased, n ML), so the collapse time (spread ratio below r) is
its first passage below ``2 ln r``. ``theory.collapse_time_cdf`` computes that discrete law by
lattice convolution; ``tests/analysis/test_theory.py`` checks it against a direct Monte Carlo of
the chi2 walk. Here the reference is compared with real sweeps (Ray, Parquet, KM medians).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import analysis
from analysis import theory
from sweep.runner import run_sweep
from sweep.spec import parse_spec

NS = [3, 4, 8, 16, 32, 64]
RATIO = 0.1
REPLICATES = 4000
# Long enough that every median's CI closes (unbiased n = 64: median 245; ML collapses ~1.8x sooner).
HORIZON = {"unbiased": 400, "ml": 220}
# Six cells per estimator: 4-sigma intervals keep a false alarm among them below 1e-3.
LEVEL = 1 - 2 * stats.norm.sf(4.0)


@pytest.fixture(scope="module")
def collapse(ray_session, tmp_path_factory):
    """Collapse times (spread ratio below 0.1) of 4000 replace chains per n, for each estimator."""
    times = {}
    for estimator, horizon in HORIZON.items():
        spec = parse_spec(
            {
                "name": f"rate-{estimator}",
                "seed": 2024,
                "generations": horizon,
                "replicates": REPLICATES,
                "family": {"name": "gaussian", "estimator": estimator},
                "grid": {"n": NS, "policy": ["replace"]},
                "events": {"spread_below": [RATIO]},
                "record": {"every": horizon},
            }
        )
        report = run_sweep(spec, str(tmp_path_factory.mktemp(estimator)), progress=False)
        times[estimator] = analysis.collapse_times(
            analysis.load_events(report.location), "spread_below", threshold=RATIO
        )
    return times


@pytest.mark.parametrize("estimator", ["unbiased", "ml"])
def test_median_collapse_time_of_each_cell_matches_the_exact_first_passage_law(collapse, estimator):
    """Each cell's Kaplan-Meier median has the exact first-passage median of its estimator inside its
    4-sigma CI; the other estimator's median (ML collapses ~1.8x sooner) is outside every CI, and so are
    the medians for n - 1 and n + 1 (an off-by-one in n) wherever the data resolve them (n <= 8)."""
    summary = analysis.survival(collapse[estimator], confidence=LEVEL)
    other = "ml" if estimator == "unbiased" else "unbiased"
    assert sorted(summary["n"]) == NS and (summary["chains"] == REPLICATES).all()
    for row in summary.itertuples():
        inside = lambda t: row.median_lower <= t <= row.median_upper  # noqa: E731
        expected = theory.exact_median_collapse_time(row.n, RATIO, estimator)
        assert inside(expected), (row.n, row.median, row.median_lower, row.median_upper, expected)
        assert not inside(theory.exact_median_collapse_time(row.n, RATIO, other)), row.n
        if row.n <= 8:
            for wrong in (row.n - 1, row.n + 1):
                assert not inside(theory.exact_median_collapse_time(wrong, RATIO, estimator)), (row.n, wrong)


def test_collapse_time_slope_matches_the_exact_law(collapse):
    """The log-log slope of median collapse time versus n (unbiased) has the slope of the exact medians
    inside its bootstrap CI, and a wrong slope (1.2) outside it."""
    fit = analysis.rates(collapse["unbiased"], n_boot=300, seed=1).set_index("policy").loc["replace"]
    exact = theory.exact_median_collapse_time(NS, RATIO, "unbiased")
    implied = np.polyfit(np.log(NS), np.log(exact), 1)[0]
    assert fit["cells_used"] == len(NS)
    assert fit["slope_lower"] <= implied <= fit["slope_upper"], (
        fit["slope"],
        fit["slope_lower"],
        fit["slope_upper"],
        implied,
    )
    assert not fit["slope_lower"] <= 1.2 <= fit["slope_upper"]
