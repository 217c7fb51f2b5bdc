"""The exact sufficient-statistic path agrees in distribution with drawing and fitting the samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec


@pytest.mark.parametrize("dim, sample_kernel", [(1, "auto"), (3, "auto"), (1, "numpy")])
def test_exact_matches_sample(dim, sample_kernel, ray_session, tmp_path):
    """Two-sample KS tests on the spread ratio and W2 after T generations, for replace and accumulate;
    also the exact path with the default kernel (numba where installed) against numpy's sampling."""
    generations, replicates = 25, 3000
    cov = 1.5 if dim == 1 else [[1.0, 0.3, 0.0], [0.3, 2.0, 0.2], [0.0, 0.2, 0.5]]
    frames = {}
    for seed, path in ((1, "exact"), (2, "sample")):
        spec = parse_spec(
            {
                "name": f"paths-{path}",
                "seed": seed,
                "generations": generations,
                "replicates": replicates,
                "family": {
                    "name": "gaussian",
                    "dim": dim,
                    "cov": cov,
                    "path": path,
                    "kernel": sample_kernel if path == "sample" else "auto",
                },
                "grid": {"n": [12], "policy": ["replace", "accumulate", {"fresh_real": 0.25}]},
                "record": {"every": generations},
            }
        )
        report = run_sweep(spec, str(tmp_path), progress=False)
        frames[path] = analysis.load(report.location, filters=[("generation", "=", generations)])
    for policy in ("replace", "accumulate", "fresh_real(0.25)"):
        for column in ("spread_ratio", "w2"):
            a = frames["exact"].query("policy == @policy")[column]
            b = frames["sample"].query("policy == @policy")[column]
            assert len(a) == len(b) == replicates
            result = ks_2samp(a, b)
            assert result.pvalue > 1e-3, (policy, column, result)


def test_exact_path_differs_from_a_wrong_model(ray_session, tmp_path):
    """The KS comparison above has power: ML and unbiased fits are told apart at the same size."""
    frames = {}
    for estimator in ("unbiased", "ml"):
        spec = parse_spec(
            {
                "name": f"power-{estimator}",
                "seed": 3,
                "generations": 25,
                "replicates": 3000,
                "family": {"name": "gaussian", "estimator": estimator},
                "grid": {"n": [12], "policy": ["replace"]},
                "record": {"every": 25},
            }
        )
        report = run_sweep(spec, str(tmp_path), progress=False)
        frames[estimator] = analysis.load(report.location, filters=[("generation", "=", 25)])["spread_ratio"]
    assert ks_2samp(frames["unbiased"], frames["ml"]).pvalue < 1e-6


def test_subsample_policies_run_on_sample_path(ray_session, tmp_path):
    """accumulate_subsample and mix with 0 < keep < 1 run on the sample path, and slow collapse down.

    Keeping half the previous data slows collapse only a little (mean ln spread ratio about 0.06
    higher at T = 40, within 3 standard errors of 0 at 400 chains: a coin flip); keeping 80%
    halves it (-1.15 against -2.25, standard errors about 0.02-0.035 at 2000 chains)."""
    spec = parse_spec(
        {
            "name": "subsample",
            "seed": 5,
            "generations": 40,
            "replicates": 2000,
            "family": {"name": "gaussian", "path": "sample"},
            "grid": {
                "n": [10],
                "policy": ["replace", "accumulate_subsample", {"mix": {"keep": 0.8, "synthetic": 0.2, "real": 0.0}}],
            },
            "record": {"every": 40},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    final = analysis.load(report.location, filters=[("generation", "=", 40)])
    medians = final.groupby("policy")["spread_ratio"].median()
    assert medians["accumulate_subsample"] > 5 * medians["replace"]
    logs = np.log(final["spread_ratio"]).groupby(final["policy"])
    difference = logs.mean()["mix(0.8,0.2,0)"] - logs.mean()["replace"]
    se = np.sqrt((logs.var() / logs.size())[["mix(0.8,0.2,0)", "replace"]].sum())
    assert difference > 5 * se, (difference, se)
