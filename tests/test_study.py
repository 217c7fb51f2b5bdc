"""A small rate-of-collapse study run inside the test: the measured rate matches the digamma drift."""
from __future__ import annotations

import analysis
from analysis import theory
from sweep.runner import run_sweep
from sweep.spec import parse_spec


def test_collapse_time_slope_matches_digamma_drift(ray_session, tmp_path):
    """The log-log slope of median collapse time versus n (unbiased Gaussian, replace) has the
    digamma-drift slope inside its bootstrap CI, and a wrong slope (1.2) outside it."""
    ns = [8, 16, 32, 64]
    spec = parse_spec({
        "name": "rate", "seed": 2024, "generations": 1500, "replicates": 800,
        "family": {"name": "gaussian", "estimator": "unbiased"},
        "grid": {"n": ns, "policy": ["replace"]},
        "events": {"spread_below": [0.1]}, "record": {"every": 500},
    })
    report = run_sweep(spec, str(tmp_path), progress=False)
    times = analysis.collapse_times(analysis.load_events(report.location), "spread_below", threshold=0.1)
    fit = analysis.rates(times, n_boot=400, seed=1).set_index("policy").loc["replace"]
    implied = theory.collapse_time_slope(ns, 0.1, "unbiased", method="drift")
    assert fit["cells_used"] == len(ns)
    assert fit["slope_lower"] <= implied <= fit["slope_upper"], (fit["slope"], fit["slope_lower"], fit["slope_upper"], implied)
    assert not fit["slope_lower"] <= 1.2 <= fit["slope_upper"]
