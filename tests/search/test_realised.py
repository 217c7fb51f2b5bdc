"""A searched fraction is what the cells realise: each generation takes whole samples, so the
real_fraction cost and the boundary's regressor are the rounded shares (``Policy.counts``), not
the drawn fractions."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import analysis
from analysis._boundary import fit_boundary
from sweep.policies import parse_policy
from sweep.search import parse_search_spec, run_search
from sweep.search.measures import realised_real_fraction
from sweep.search.summary import boundary

MIX = {
    "name": "realised",
    "seed": 5,
    "generations": 10,
    "family": {"name": "gaussian", "estimator": "unbiased", "path": "auto"},
    "grid": {"n": [20], "policy": ["replace"]},
    "events": {"spread_below": [0.5]},
    "record": {"every": 10},
    "search": {
        "parameters": {"policy.mix.keep": {"low": 0.0, "high": 0.5}, "policy.mix.real": {"low": 0.0, "high": 0.1}},
        "objectives": {
            "real_fraction": "minimize",
            "collapse_probability": {"event": "spread_below", "threshold": 0.5},
        },
        "sampler": "random",
        "trials": 4,
        "replicates": 4,
        "parallel": 2,
    },
}


@pytest.mark.parametrize(
    ("policy", "n", "share"),
    [
        ({"fresh_real": 0.0496}, 1000, 0.05),  # 49.6 -> 50 real samples
        ({"fresh_real": 0.004}, 100, 0.0),  # 0.4 -> none at all
        ({"fresh_real": 0.025}, 100, 0.03),  # 2.5 -> 3 (half up)
        ({"mix": {"keep": 0.5, "synthetic": 0.245, "real": 0.255}}, 10, 0.3),  # 5 kept, 2.55 -> 3 real
        ({"mix": {"keep": 0.96, "synthetic": 0.0, "real": 0.04}}, 10, 0.0),  # 9.6 -> 10 kept leave no room
        ("accumulate", 100, 0.0),
    ],
)
def test_real_fraction_is_the_rounded_share(policy, n, share):
    """The cost is real samples / n as the engine draws them."""
    assert realised_real_fraction(parse_policy(policy, "policy"), n) == pytest.approx(share, abs=1e-15)


def test_the_boundary_regresses_on_the_realised_fraction():
    """Trials drawn 0.4 of a sample above what their cells realise: the fit is the one on the
    realised shares, not the one on the draws (0.0004 higher)."""
    raw = copy.deepcopy(MIX)
    raw["grid"] = {"n": [1000], "policy": ["replace"]}
    raw["search"] = {
        "parameters": {"policy.fresh_real": {"low": 0.0, "high": 0.3}},
        "objectives": {"collapse_probability": {"event": "spread_below", "threshold": 0.5, "target": 0.05}},
    }
    setup = parse_search_spec(raw)
    realised_x = np.arange(0.030, 0.0651, 0.005)
    drawn = realised_x + 0.0004  # each 0.4 of a sample above what its cell draws
    k, m = np.array([60, 45, 33, 20, 14, 8, 5, 3]), np.full(drawn.size, 400)
    cells = [
        {
            "coordinates": {"policy.fresh_real": float(x)},
            "counts": {"collapse_probability": {"count": c, "chains": 400}},
        }
        for x, c in zip(drawn, k)
    ]
    found = boundary(setup, cells)
    realised = fit_boundary(realised_x, k, m, 0.05, bounds=(0.0, 0.3))
    nominal = fit_boundary(drawn, k, m, 0.05, bounds=(0.0, 0.3))
    assert found["estimate"] == pytest.approx(realised.estimate, rel=1e-9)
    assert nominal.estimate - found["estimate"] == pytest.approx(0.0004, abs=1e-9)  # the draws would move it
    assert setup.realised({"policy.fresh_real": 0.0496}) == {"policy.fresh_real": 0.05}


@pytest.mark.slow  # about 10 s on two loaded cores, most of it the trials' bookkeeping
def test_a_search_reports_the_real_share_its_chains_saw(ray_session, tmp_path):
    """End to end (real Ray, Parquet): every trial's real_fraction is round(real n) / n of its
    cell at n = 20, where the drawn fraction is almost never a multiple of 1/20."""
    report = run_search(parse_search_spec(MIX), str(tmp_path), progress=False)
    trials = [t for t in report.summary["trials"] if t["state"] == "COMPLETE"]
    assert len(trials) == 4
    events = analysis.load_events(report.location)
    for trial in trials:
        drawn = trial["coordinates"]["policy.mix.real"]
        keep = trial["coordinates"]["policy.mix.keep"]
        kept = int(np.floor(keep * 20 + 0.5))
        expected = min(20 - kept, int(np.floor(drawn * 20 + 0.5))) / 20
        assert trial["values"]["real_fraction"] == pytest.approx(expected, abs=1e-15)
        assert trial["realised"]["policy.mix.real"] == pytest.approx(expected, abs=1e-15)  # search.json's entry
        assert drawn != pytest.approx(expected, abs=1e-6)
        assert np.allclose(events.loc[events["cell"] == trial["cell"], "real"], drawn, rtol=1e-12)


def test_the_boundary_figure_draws_each_cell_at_its_realised_share():
    """search.json's trials carry the realised share; the figure puts each cell there (where the
    curve is fitted), not at the drawn fraction 1 / 2n away."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.figures.search import boundary_figure

    fit = fit_boundary([0.0, 0.05, 0.1, 0.15], [40, 12, 3, 0], [50, 50, 50, 50], 0.05)
    trials = [
        {
            "state": "COMPLETE",
            "cell": c,
            "coordinates": {"policy.fresh_real": drawn},
            "realised": {"policy.fresh_real": share},
            "counts": {"collapse_probability": {"count": k, "chains": 50, "lower": 0.0, "upper": 1.0}},
        }
        for c, (drawn, share, k) in enumerate([(0.004, 0.0, 40), (0.0496, 0.05, 12), (0.1, 0.1, 3), (0.1504, 0.15, 0)])
    ]
    summary = {
        "boundary": fit.to_dict("policy.fresh_real"),
        "objectives": {"collapse_probability": {"event": "spread_below", "threshold": 0.1, "target": 0.05}},
        "name": "figure",
        "parameters": {"policy.fresh_real": {"low": 0.0, "high": 0.2}},
        "trials": trials,
    }
    fig = boundary_figure(summary)
    points = [c for c in fig.axes[0].collections if c.get_offsets().shape[0] == 4]
    assert points, "no 4-point scatter drawn"
    assert np.allclose(np.sort(points[-1].get_offsets()[:, 0]), [0.0, 0.05, 0.1, 0.15])
