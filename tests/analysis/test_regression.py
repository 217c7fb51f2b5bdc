"""Censored regression of collapse times: known answers from the exact law of the Gaussian chain.

The chains are exact 1-D Gaussian chains under ``replace`` (``ln var`` is a random walk of
``ln(chi2_{n-1}/(n-1))`` steps), so the law of the collapse time is known exactly
(``theory.collapse_time_cdf``). The value an AFT fit converges to on that law (its pseudo-true
parameters) is the maximiser of the expected log-likelihood: the same lifelines fit, on one row
per generation weighted by the exact probability of collapsing then (and one censored row
weighted by the probability of lasting past T). Estimates must sit within 4 standard errors of
it, and of the slope through the exact medians.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import LogNormalAFTFitter

import analysis
from analysis import theory
from analysis._regression import chain_table
from tests.analysis.synthetic import gaussian_frames

NS = (10, 20, 40, 80, 160)
RATIO = 0.3
HORIZON = 250  # the exact median at n = 160 is 283: that cell's KM median is beyond T
Z = 4.0
GAUSSIAN = {
    "name": "gaussian",
    "events": [
        {"name": "spread_below", "event": "spread_below", "collapse": True, "per_symbol": False},
        {"name": "distance_above", "event": "distance_above", "collapse": False, "per_symbol": False},
        {"name": "diverged", "event": "diverged", "collapse": False, "per_symbol": False},
    ],
}


@pytest.fixture(scope="module")
def events():
    """1000 exact replace chains per n, events only, censored at T = 250."""
    return gaussian_frames(
        ns=NS, replicates=1000, generations=HORIZON, ratios=(RATIO,), eps=(), seed=31, trajectories=False
    )[1]


@pytest.fixture(scope="module")
def fit(events):
    return analysis.collapse_regression(
        events, event="spread_below", covariates=["log(n)"], model="lognormal_aft", family=GAUSSIAN, compare=False
    )


def _pseudo_true(ns, ratio, horizon, every=1, *, beyond=None):
    """Pseudo-true log-normal AFT parameters of the exact law, with events checked every k
    generations (interval-censored as collapse_regression fits them), and the exact medians
    (the law run to ``beyond`` when a median lies past the horizon)."""
    rows, medians = [], []
    last = horizon - horizon % every
    for n in ns:
        # A coarse lattice (1e-2 in ln var) moves these medians by at most a generation and the
        # pseudo-true exponent by ~1e-3, against tolerances of ~0.05: cheap enough for every run.
        cdf = theory.collapse_time_cdf(n, ratio, beyond or horizon, step=1e-2)
        medians.append(float(np.searchsorted(cdf, 0.5)))
        checks = np.arange(every, last + 1, every)
        seen = np.diff(cdf[np.append(0, checks)])
        rows.append(
            pd.DataFrame(
                {
                    "log(n)": np.log(n),
                    "lower": np.maximum(checks - (every if every > 1 else 0), 1e-9),
                    "upper": checks.astype(float),
                    "w": seen,
                }
            )
        )
        rows.append(
            pd.DataFrame({"log(n)": [np.log(n)], "lower": [float(last)], "upper": [np.inf], "w": [1 - cdf[last]]})
        )
    law = pd.concat(rows, ignore_index=True)
    law = law[law["w"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines warns that the weights are not integers
        fitter = LogNormalAFTFitter()
        if every > 1:
            fitter.fit_interval_censoring(law, "lower", "upper", weights_col="w")
        else:
            fitter.fit(
                law.assign(seen=np.isfinite(law["upper"]))[["log(n)", "lower", "seen", "w"]],
                "lower",
                "seen",
                weights_col="w",
            )
    return {
        "params": fitter.params_,
        "medians": np.array(medians),
        "slope": np.polyfit(np.log(ns), np.log(medians), 1)[0],
    }


@pytest.fixture(scope="module")
def exact():
    """The exact law of the fixture's chains (run to 320 for the n = 160 median, beyond T)."""
    return _pseudo_true(NS, RATIO, HORIZON, beyond=320)


def _row(result, parameter, term):
    table = result.table
    return table[(table["parameter"] == parameter) & (table["term"] == term)].iloc[0]


def _checked_every(events: pd.DataFrame, k: int, horizon: int) -> pd.DataFrame:
    """The events as the engine writes them when it checks every k generations: an event at g is
    seen at the next multiple of k, and chains are censored at the last check <= T."""
    last = horizon - horizon % k
    seen = k * np.ceil(events["generation"] / k)
    observed = events["observed"] & (seen <= last)
    return events.assign(
        generation=np.where(observed, seen, last).astype(np.int32), observed=observed, checked_every=np.int32(k)
    )


def test_exponent_recovers_the_exact_law_with_a_censored_cell(fit, exact, events):
    """The log-normal AFT exponent of log(n), fitted to every chain (57% of the n = 160 cell censored
    at T), lies within 4 s.e. of the pseudo-true exponent and of the slope of the exact medians; the
    intercept and sigma (levels) within 4 s.e. of theirs; each cell's model median has the exact
    median inside its 4-sigma interval."""
    assert fit.cells.set_index("n").loc[160, "censored_share"] > 0.5
    e, truth = fit.exponent, exact["params"]
    assert 0.005 < e["se"] < 0.02
    assert abs(e["estimate"] - truth[("mu_", "log(n)")]) < Z * e["se"], (e, truth)
    assert abs(e["estimate"] - exact["slope"]) < Z * e["se"], (e, exact["slope"])
    assert _row(fit, "mu_", "log(n)")["rate_exponent"]
    for parameter in ("mu_", "sigma_"):
        row = _row(fit, parameter, "Intercept")
        assert abs(row["coef"] - truth[(parameter, "Intercept")]) < Z * row["se"], (row, truth)
    log_median = np.log(fit.cells["model_median"].to_numpy())
    se = (np.log(fit.cells["model_median_upper"]) - np.log(fit.cells["model_median_lower"])).to_numpy() / (2 * 1.96)
    assert (np.abs(np.log(exact["medians"]) - log_median) < Z * se).all(), (fit.cells, exact["medians"])


@pytest.mark.parametrize("bug", ["censored_as_collapsed", "censored_dropped"])
def test_the_tolerance_rejects_a_fit_that_mishandles_censoring(events, exact, bug):
    """Negative controls: treating the censored chains as collapsed at T, or dropping them, moves the
    exponent more than 4 s.e. away from the exact law's (the test above would catch either bug)."""
    rows = events.assign(observed=True) if bug == "censored_as_collapsed" else events[events["observed"]]
    wrong = analysis.collapse_regression(rows, event="spread_below", compare=False).exponent
    assert abs(wrong["estimate"] - exact["params"][("mu_", "log(n)")]) > Z * wrong["se"], wrong


def test_median_slope_drops_the_censored_cell_and_the_regression_does_not(fit, events):
    """analysis.rates leaves out n = 160 (median > T); the regression fits all 5000 chains of the five
    cells, and its exponent is more precise with the censored cell than without it."""
    line = analysis.rates(analysis.collapse_times(events), n_boot=50, seed=0).iloc[0]
    assert (line["cells_used"], line["excluded_n"]) == (4, "160")
    assert list(fit.cells["n"]) == list(NS) and fit.cells["chains"].sum() == 5000
    assert np.isinf(fit.cells.set_index("n").loc[160, "km_median"])
    without = analysis.collapse_regression(events[events["n"] < 160], event="spread_below", compare=False)
    assert fit.exponent["se"] < 0.8 * without.exponent["se"]


@pytest.mark.parametrize("k", [10, pytest.param(15, marks=pytest.mark.slow)])
def test_interval_censoring_agrees_with_the_every_generation_fit(events, fit, k):
    """Events seen every k generations (checked_every = k; with k = 15 the last check is 240 < T) are
    fitted interval-censored, and every coefficient lies inside the every-generation fit's 95% CI;
    fitting the same rows as exact times (the check generation taken as the collapse time) moves the
    exponent more than 4 s.e. (the control that the comparison has power)."""
    coarse = _checked_every(events, k, HORIZON)
    interval = analysis.collapse_regression(coarse, event="spread_below", compare=False)
    assert interval.censoring == f"interval (checked every {k})"
    merged = interval.table.merge(fit.table, on=["parameter", "term"], suffixes=("", "_exact"))
    assert len(merged) == 3
    assert ((merged["lower_exact"] < merged["coef"]) & (merged["coef"] < merged["upper_exact"])).all(), merged
    naive = analysis.collapse_regression(coarse.drop(columns="checked_every"), event="spread_below", compare=False)
    assert naive.censoring == "right"
    assert abs(naive.exponent["estimate"] - fit.exponent["estimate"]) > Z * fit.exponent["se"]


def test_chain_table_bounds():
    """Every-k rows become (t - k, t] (the first check's lower bound just above 0), exact rows [t, t],
    censored rows (t, inf); folders without checked_every are read as every generation."""
    events = pd.DataFrame(
        {
            "cell": 0,
            "n": 10,
            "policy": "replace",
            "replicate": [0, 1, 2, 3],
            "event": "spread_below",
            "threshold": 0.5,
            "generation": [5, 10, 20, 20],
            "observed": [True, True, True, False],
            "checked_every": 5,
        }
    )
    rows = chain_table(events, "spread_below")
    assert np.allclose(rows["lower"], [1e-9, 5, 15, 20]) and list(rows["upper"][:3]) == [5, 10, 20]
    assert np.isinf(rows["upper"].iloc[3])
    exact = chain_table(events.drop(columns="checked_every"), "spread_below")
    assert list(exact["lower"]) == [5, 10, 20, 20] and list(exact["every"]) == [1, 1, 1, 1]


def _aft_cells(seed=5, chains=200):
    """Chains from a known Weibull AFT over a grid of n x policy x temperature: ln T = a + b ln n +
    c real + d ln(temperature) + e ln(n) real + ln W, W ~ Weibull(shape rho), censored at 400."""
    rng = np.random.default_rng(seed)
    a, b, c, d, e, rho = 0.5, 1.0, 6.0, 3.0, 1.5, 2.0
    frames = []
    cell = 0
    for n in (10, 30, 90):
        for real in (0.0, 0.1, 0.2):
            for temperature in (0.9, 1.0):
                location = a + b * np.log(n) + c * real + d * np.log(temperature) + e * np.log(n) * real
                t = np.exp(location) * rng.weibull(rho, chains)
                frames.append(
                    pd.DataFrame(
                        {
                            "family": "gaussian",
                            "cell": cell,
                            "n": n,
                            "policy": "replace" if real == 0 else f"fresh_real({real:g})",
                            "policy_kind": "replace" if real == 0 else "fresh_real",
                            "keep": 0.0,
                            "synthetic": 1 - real,
                            "real": real,
                            "temperature": temperature,
                            "replicate": np.arange(chains),
                            "event": "spread_below",
                            "threshold": 0.5,
                            "generation": np.minimum(np.ceil(t), 400).astype(np.int32),
                            "observed": t <= 400,
                        }
                    )
                )
                cell += 1
    return pd.concat(frames, ignore_index=True), {
        "Intercept": a,
        "log(n)": b,
        "real": c,
        "log(temperature)": d,
        "log(n):real": e,
        "rho": rho,
    }


def test_transformed_covariates_and_interactions_recover_known_coefficients():
    """On chains from a known Weibull AFT, log(n)*real + log(temperature) recovers every coefficient
    and the shape within 4 s.e.; a categorical policy gets one indicator per level but replace, and
    C(temperature) one for 0.9 against 1, whose time ratio is 0.9^d."""
    events, truth = _aft_cells()
    result = analysis.collapse_regression(
        events, event="spread_below", covariates=["log(n)*real", "log(temperature)"], model="weibull_aft", compare=False
    )
    for term in ("Intercept", "log(n)", "real", "log(temperature)", "log(n):real"):
        row = _row(result, "lambda_", term)
        assert abs(row["coef"] - truth[term]) < Z * row["se"], (term, row)
    shape = _row(result, "rho_", "Intercept")
    assert abs(shape["coef"] - np.log(truth["rho"])) < Z * shape["se"]
    assert result.exponent["note"] == "at the reference of log(n):real"
    coded = analysis.collapse_regression(
        events,
        event="spread_below",
        covariates=["log(n)", "policy", "C(temperature)"],
        model="weibull_aft",
        compare=False,
    )
    assert set(coded.table["term"]) == {
        "Intercept",
        "log(n)",
        "policy[fresh_real(0.1)]",
        "policy[fresh_real(0.2)]",
        "C(temperature)[0.9]",
    }
    ratio = _row(coded, "lambda_", "C(temperature)[0.9]")
    assert abs(ratio["coef"] - truth["log(temperature)"] * np.log(0.9)) < Z * ratio["se"]


@pytest.mark.slow
def test_cox_hazard_ratios_proportional_hazards_test_and_aic(events):
    """Cox on Weibull AFT chains (which are also proportional hazards, log hazard ratio -rho * b per
    unit of ln n) recovers -rho * b within 4 s.e. and its PH test does not reject, and AIC prefers
    the Weibull AFT there; on the Gaussian chains (log-normal-like, not PH) the PH test rejects at
    p < 1e-6 and AIC prefers the log-normal AFT over the Weibull by more than 10."""
    weibull, truth = _aft_cells(seed=6, chains=400)
    plain = weibull[(weibull["real"] == 0) & (weibull["temperature"] == 1.0)]
    aft = analysis.collapse_regression(plain, event="spread_below", model="weibull_aft")
    assert aft.aic.iloc[0]["model"] == "weibull_aft" and aft.aic["chosen"].iloc[0]
    cox = analysis.collapse_regression(plain, event="spread_below", model="cox", compare=False)
    row = _row(cox, "beta", "log(n)")
    assert row["ratio_kind"] == "hazard ratio" and cox.exponent is None
    assert abs(row["coef"] + truth["rho"] * truth["log(n)"]) < Z * row["se"], row
    assert cox.ph_test["p"].iloc[0] > 1e-3
    gaussian = analysis.collapse_regression(events, event="spread_below", model="cox")
    assert gaussian.ph_test["p"].iloc[0] < 1e-6
    aic = gaussian.aic.set_index("model")["aic"]
    assert aic["weibull_aft"] - aic["lognormal_aft"] > 10 and not gaussian.aic["chosen"].any()


BAD = [
    ({"covariates": ["speed"]}, "covariates[0] = 'speed': expected a grid axis"),
    ({"covariates": ["log(n)", "replicate"]}, "covariates[1] = 'replicate': expected a grid axis"),
    ({"covariates": ["log(policy)"]}, "covariates[0] = 'log(policy)': expected log() of a numeric axis"),
    ({"covariates": ["real"]}, "covariates[0] = 'real': expected a term that varies across the cells"),
    ({"covariates": ["keep"], "accumulate": True}, "covariates[0] = 'keep': expected a value in every cell"),
    ({"covariates": "log(n)"}, "covariates: expected a non-empty list"),
    ({"event": "weight_below"}, "event: expected an event the gaussian family declares"),
    ({"event": "collapse", "family": None}, "event: expected an event with rows in the events table"),
    (
        {"model": "gamma_aft"},
        "model: expected one of weibull_aft, lognormal_aft, loglogistic_aft, cox, got 'gamma_aft'",
    ),
    ({"threshold": 0.7}, "events have no rows with event='spread_below' and threshold=0.7"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0][:40] for _, m in BAD])
def test_bad_input_is_one_line_naming_the_argument(change, message):
    """A covariate that is not a grid axis, an event the family does not declare, an unknown model:
    one line that names the argument, what was expected and what was given."""
    _, events = gaussian_frames(
        ns=(10, 20), replicates=20, generations=30, ratios=(0.5,), eps=(), seed=1, trajectories=False
    )
    change = dict(change)
    if change.pop("accumulate", False):
        events = events.assign(keep=np.where(events["n"] == 10, np.nan, 0.0))
    arguments = {"event": "spread_below", "covariates": ["log(n)"], "family": GAUSSIAN, **change}
    with pytest.raises(ValueError) as error:
        analysis.collapse_regression(events, **arguments)
    text = str(error.value)
    assert message in text and len(text.splitlines()) == 1, text


@pytest.mark.slow
def test_report_section_per_event():
    """regression_section returns the AIC table of the three AFT models (one chosen), the chosen
    model's coefficients, each policy's exponent next to the median slope of analysis.rates and the
    theory slope (replace only), names a policy left out because none of its chains collapsed, and
    one figure with a panel per remaining policy."""
    from analysis._regression_report import regression_section

    _, events = gaussian_frames(
        ns=(10, 20, 40),
        reals=(0.0, 0.2),
        replicates=150,
        generations=120,
        ratios=(0.5,),
        eps=(),
        seed=7,
        trajectories=False,
    )
    never = events[events["real"] == 0.2].assign(
        policy="fresh_real(0.5)", real=0.5, cell=events["cell"] + 10, observed=False, generation=np.int32(120)
    )
    section = regression_section(
        pd.concat([events, never], ignore_index=True),
        event="spread_below",
        threshold=0.5,
        family=GAUSSIAN,
        theory_ratio=0.5,
        n_boot=50,
        seed=0,
    )
    text = "\n".join(section.lines)
    assert "left out (no chain had the event by T): policy = fresh_real(0.5)" in text
    assert sum(line.endswith("| yes |") for line in text.splitlines()) == 1
    assert all(f"| {m} |" in text for m in ("weibull_aft", "lognormal_aft", "loglogistic_aft"))
    assert (
        "| mu_ | policy[fresh_real(0.2)] |" in text
        or "| lambda_ | policy[fresh_real(0.2)] |" in text
        or "| alpha_ | policy[fresh_real(0.2)] |" in text
    )
    rows = [
        line for line in text.splitlines() if line.startswith("| replace |") or line.startswith("| fresh_real(0.2) |")
    ]
    assert len(rows) == 2
    median = analysis.rates(analysis.collapse_times(events), n_boot=50, seed=0).set_index("policy")
    replace = next(r for r in rows if r.startswith("| replace |")).split(" | ")
    assert replace[3].startswith(f"{median.loc['replace', 'slope']:.4g} [")
    assert (
        replace[5].rstrip(" |") == f"{theory.collapse_time_slope([10, 20, 40], 0.5, 'unbiased', 'first_passage'):.4g}"
    )
    assert next(r for r in rows if r.startswith("| fresh_real(0.2) |")).endswith("| – |")
    (figure,) = section.figures
    assert figure.name == "regression_spread_below_0.5" and len(figure.figure.axes) == 2


@pytest.mark.slow
def test_a_real_folder_with_events_every_k(ray_session, tmp_path):
    """End to end through the engine, Ray and Parquet: a sweep that checks events every 4th generation
    writes checked_every = 4, the folder's sweep.json declares the event, and the interval-censored
    fit lands within 4 s.e. of the pseudo-true parameters of the exact law checked every 4th
    generation (and of the exact medians' slope)."""
    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "regress",
            "seed": 11,
            "generations": 122,
            "replicates": 400,
            "family": {"name": "gaussian"},
            "grid": {"n": [16, 32]},
            "events": {"spread_below": [RATIO], "every": 4},
            "record": {"every": 122},
        }
    )
    location = run_sweep(spec, str(tmp_path), progress=False).location
    events = analysis.load_events(location)
    assert set(events["checked_every"]) == {4}
    result = analysis.collapse_regression(
        events, event="spread_below", threshold=RATIO, family=analysis.read_metadata(location)["family"], compare=False
    )
    assert result.censoring == "interval (checked every 4)"
    truth = _pseudo_true((16, 32), RATIO, 122, every=4)
    for (parameter, term), value in truth["params"].items():
        row = _row(result, parameter, term)
        assert abs(row["coef"] - value) < Z * row["se"], (parameter, term, row, value)
    assert abs(result.exponent["estimate"] - truth["slope"]) < Z * result.exponent["se"]
