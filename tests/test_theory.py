"""Simulated sweeps (real Ray, real Parquet) against closed-form theory, tolerances from standard errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import polygamma, psi

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec

SIGMAS = 5.0


def log_variance_theory(n: int, generations: int, estimator: str):
    """Mean, variance and fourth cumulant of ln(var_T / var_0) for the 1-D Gaussian under replace."""
    a = (n - 1) / 2.0
    scale = np.log(a) if estimator == "unbiased" else np.log(n / 2.0)
    return generations * (psi(a) - scale), generations * polygamma(1, a), generations * polygamma(3, a)


@pytest.mark.parametrize("kernel", ["numpy", "numba"])
@pytest.mark.parametrize("estimator", ["unbiased", "ml"])
def test_gaussian_log_variance_drift(estimator, kernel, ray_session, tmp_path):
    """Mean and variance over chains of ln(var_T/var_0) match T(psi((n-1)/2) - ln(c)) and T psi'((n-1)/2),
    with numpy's draws and with the compiled ones (sweep._fastrng)."""
    if kernel == "numba":
        pytest.importorskip("numba")
    generations, replicates = 40, 20000
    spec = parse_spec(
        {
            "name": f"theory-{estimator}-{kernel}",
            "seed": 7,
            "generations": generations,
            "replicates": replicates,
            "family": {"name": "gaussian", "cov": 2.0, "estimator": estimator, "kernel": kernel},
            "grid": {"n": [5, 50], "policy": ["replace"]},
            "record": {"every": 20},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    frame = analysis.load(report.location, filters=[("generation", "=", generations)])
    for n, group in frame.groupby("n"):
        log_ratio = np.log(group["var"].to_numpy() / 2.0)
        assert log_ratio.size == replicates
        mean, var, kappa4 = log_variance_theory(n, generations, estimator)
        se_mean = np.sqrt(var / replicates)
        se_var = np.sqrt((kappa4 + 2 * var**2) / replicates)
        assert abs(log_ratio.mean() - mean) < SIGMAS * se_mean, (n, log_ratio.mean(), mean, se_mean)
        assert abs(log_ratio.var(ddof=1) - var) < SIGMAS * se_var, (n, log_ratio.var(ddof=1), var, se_var)


def test_categorical_heterozygosity_decay(ray_session, tmp_path):
    """Under replace, the mean over chains of 1 - sum p_t^2 is (1 - sum p_0^2)(1 - 1/n)^t."""
    generations, replicates, n = 30, 4000, 50
    spec = parse_spec(
        {
            "name": "wright-fisher",
            "seed": 11,
            "generations": generations,
            "replicates": replicates,
            "family": {"name": "categorical", "k": 20, "probs": {"zipf": 1.2}},
            "grid": {"n": [n], "policy": ["replace"]},
            "record": {"every": 5},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    frame = analysis.load(report.location, columns=["generation", "heterozygosity"])
    h0 = 1.0 - np.sum(np.array(spec.family_spec.probs) ** 2)
    for t, group in frame.groupby("generation"):
        h = group["heterozygosity"].to_numpy()
        expected = h0 * (1 - 1 / n) ** t
        se = max(h.std(ddof=1), 1e-12) / np.sqrt(h.size)
        assert abs(h.mean() - expected) < SIGMAS * se + 1e-12, (t, h.mean(), expected, se)
