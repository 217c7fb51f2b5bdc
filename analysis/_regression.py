"""Censored regression of collapse times over grid axes (lifelines' AFT and Cox fitters).

A rate from medians (:func:`analysis.rates`) uses a cell only through its Kaplan-Meier median
and drops a cell whose median is beyond the horizon. A regression model of the censored times
uses every chain: ``ln T = b0 + b1 ln n + ... + sigma * e`` (accelerated failure time, AFT), so a
cell where only a third of the chains collapsed by T still says how far out the rest lie. The
coefficient of ``log(n)`` is the **rate exponent**: collapse time grows like ``n^b1``; the other
coefficients are time ratios ``exp(b)`` (how much later collapse comes for one unit more of the
covariate, at the same n). ``model="cox"`` fits a proportional-hazards model instead (hazard
ratios, no exponent) and tests its assumption.

Censoring: a chain that has not collapsed by the last checked generation is right-censored
there. Events checked every k generations (``checked_every`` = k; folders without the column
checked every generation) are interval-censored: an event recorded at t happened in (t - k, t],
fitted with lifelines' interval-censored likelihood. Chains of a cell share their covariates,
so identical (cell, time, censoring) rows are fitted once with a frequency weight (the same
likelihood and standard errors as one row per chain, in a fraction of the time).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._cells import require_columns
from analysis._covariates import axis_columns, design_matrix
from analysis._survival import _select_threshold, fit_km

__all__ = ["collapse_regression", "CollapseRegression", "MODELS", "chain_table"]

#: model name -> (lifelines fitter, location parameter of ln T (None for Cox), ancillary parameter)
MODELS = {
    "weibull_aft": ("WeibullAFTFitter", "lambda_", "rho_"),
    "lognormal_aft": ("LogNormalAFTFitter", "mu_", "sigma_"),
    "loglogistic_aft": ("LogLogisticAFTFitter", "alpha_", "beta_"),
    "cox": ("CoxPHFitter", None, None),
}
AFT_MODELS = tuple(m for m in MODELS if m != "cox")
EXPONENT_TERM = "log(n)"
# A lower bound of 0 (an event at the first check, t = k) makes lifelines' log-normal likelihood
# NaN (log 0); any value far below one generation gives the same likelihood to 1e-9.
_NEAR_ZERO = 1e-9
_EVENT_COLUMNS = ("cell", "replicate", "event", "threshold", "generation", "observed")


@dataclass(frozen=True)
class CollapseRegression:
    """A fitted regression of collapse times.

    Attributes
    ----------
    model, event, threshold, covariates, censoring
        What was fitted: ``censoring`` is ``"right"`` or ``"interval (checked every k)"``.
    table : pandas.DataFrame
        One row per coefficient: ``parameter`` (lifelines' name: ``mu_``, ``lambda_``, ... for
        AFT models, ``beta`` for Cox), ``term``, ``coef``, ``se``, ``lower``, ``upper``, ``z``,
        ``p``, ``ratio`` = exp(coef) with ``ratio_lower`` / ``ratio_upper`` and ``ratio_kind``
        (``time ratio`` for the AFT location terms, ``hazard ratio`` for Cox, empty otherwise),
        and ``rate_exponent`` (True on the ``log(n)`` row of an AFT model).
    exponent : dict or None
        ``estimate``, ``se``, ``lower``, ``upper``, ``p`` of the rate exponent (AFT with
        ``log(n)``), with ``note`` when ``log(n)`` interacts with another covariate (the
        exponent is then the one at the reference level / zero of the others).
    aic : pandas.DataFrame
        The AFT candidates fitted to the same data: ``model``, ``log_likelihood``,
        ``parameters``, ``aic``, ``delta_aic`` (from the smallest), ``chosen``.
    ph_test : pandas.DataFrame or None
        Cox only: lifelines' ``proportional_hazard_test`` (rank time transform) per term:
        ``term``, ``statistic``, ``p``.
    cells : pandas.DataFrame
        One row per cell: its axis columns, ``chains``, ``events``, ``censored_share``, the
        Kaplan-Meier ``km_median`` and the model's ``model_median`` (AFT: with a delta-method
        ``model_median_lower`` / ``model_median_upper``).
    notes : tuple of str
        What a reader must know (Cox with interval-censored data, interactions with log n).
    fitter : lifelines fitter
        The fitted lifelines object (``summary``, ``print_summary()``, ``predict_*``).
    design : pandas.DataFrame
        The covariate columns, one row per cell (index ``cell``).
    """

    model: str
    event: str
    threshold: float | None
    covariates: tuple[str, ...]
    censoring: str
    table: pd.DataFrame
    exponent: dict | None
    aic: pd.DataFrame
    ph_test: pd.DataFrame | None
    cells: pd.DataFrame
    notes: tuple[str, ...]
    fitter: Any = field(repr=False)
    design: pd.DataFrame = field(repr=False)

    def survival_function(self, times) -> pd.DataFrame:
        """The fitted survival curve of every cell at ``times``: index ``times``, one column per cell."""
        curves = self.fitter.predict_survival_function(self.design, times=np.asarray(times, dtype=float))
        curves.columns = self.design.index
        return curves


def _declared_event(event: str, family: dict | None, events: pd.DataFrame) -> str:
    """The ``event`` column value of ``event``, checked against the family's declarations."""
    present = sorted(events["event"].dropna().astype(str).unique().tolist())
    if family is not None:
        declared = family.get("events") if isinstance(family, dict) else None
        if not isinstance(declared, list):
            raise ValueError(f"family: expected sweep.json's 'family' entry with its 'events' list, got {family!r:.80}")
        match = [d for d in declared if event in (d.get("event"), d.get("name"))]
        if not match:
            names = ", ".join(str(d.get("event")) for d in declared)
            raise ValueError(
                f"event: expected an event the {family.get('name', '?')} family declares ({names}), got {event!r}"
            )
        if match[0].get("per_symbol"):
            raise ValueError(
                f"event: expected an event with one row per chain, got {event!r} (one row per symbol); "
                "use analysis.forgetting_rates"
            )
        event = str(match[0].get("event") or event)
    if event not in present:
        raise ValueError(
            f"event: expected an event with rows in the events table ({', '.join(present)}), "
            f"got {event!r}" + (" (declared, but the sweep did not ask for it)" if family else "")
        )
    return event


def chain_table(
    events: pd.DataFrame, event: str, threshold: float | None = None, *, family: dict | None = None
) -> pd.DataFrame:
    """One row per chain: its cell's axis columns, the time bounds of its event and whether it happened.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table (``analysis.load_events``).
    event : str
        The event (a name the family declares when ``family`` is given).
    threshold : float, optional
        The event's threshold; required when the events hold several for ``event``.
    family : dict, optional
        sweep.json's ``family`` entry (``analysis.read_metadata(path)["family"]``): the event
        must be one it declares.

    Returns
    -------
    pandas.DataFrame
        ``cell``, the axis columns, ``replicate``, ``generation``, ``observed``, ``every`` (the
        check interval k), ``lower`` and ``upper``: the event happened in (lower, upper]
        (``lower == upper`` for an exact time, ``upper = inf`` when censored at ``lower``).
    """
    require_columns(events, _EVENT_COLUMNS, "events")
    event = _declared_event(event, family, events)
    rows = _select_threshold(events[events["event"] == event], event, threshold)
    if rows.duplicated(["cell", "replicate"]).any():
        raise ValueError(
            f"events: expected one '{event}' row per chain, got several for some cell/replicate; "
            "a results folder must not mix sweeps, and symbol_lost has one row per symbol"
        )
    every = rows["checked_every"].fillna(1) if "checked_every" in rows else pd.Series(1, index=rows.index)
    every = every.to_numpy(dtype=np.int64)
    if np.any(every < 1):
        raise ValueError(f"events: expected checked_every >= 1, got {sorted(set(every[every < 1].tolist()))}")
    generation = rows["generation"].to_numpy(dtype=float)
    observed = rows["observed"].astype(bool).to_numpy()
    out = rows[["cell"] + axis_columns(rows) + ["replicate"]].copy()
    out["generation"], out["observed"], out["every"] = generation, observed, every
    out["lower"] = np.where(observed, np.maximum(generation - np.where(every > 1, every, 0), _NEAR_ZERO), generation)
    out["upper"] = np.where(observed, generation, np.inf)
    return out.sort_values(["cell", "replicate"], kind="stable").reset_index(drop=True)


def _fitter(model: str, confidence: float):
    import lifelines

    return getattr(lifelines, MODELS[model][0])(alpha=1 - confidence)


def _fit(model: str, data: pd.DataFrame, terms: Sequence[str], interval: bool, confidence: float):
    """Fit one lifelines model to the weighted rows ``data``; a failure is one line."""
    fitter = _fitter(model, confidence)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lifelines' advice on convergence goes into the error instead
            if model == "cox":
                fitter.fit(
                    data[list(terms) + ["upper_or_T", "observed", "weight"]],
                    "upper_or_T",
                    "observed",
                    weights_col="weight",
                )
            elif interval:
                fitter.fit_interval_censoring(
                    data[list(terms) + ["lower", "upper", "weight"]], "lower", "upper", weights_col="weight"
                )
            else:
                fitter.fit(
                    data[list(terms) + ["upper_or_T", "observed", "weight"]],
                    "upper_or_T",
                    "observed",
                    weights_col="weight",
                )
    except Exception as exc:  # lifelines raises ConvergenceError, ValueError, LinAlgError...
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ValueError(
            f"model: the {model} fit of {list(terms)} did not converge ({first}); "
            "check that every level of a covariate has collapsed chains"
        ) from exc
    return fitter


def _tidy(model: str, fitter, confidence: float) -> pd.DataFrame:
    summary = fitter.summary
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    location = MODELS[model][1]
    if model == "cox":
        parameter = pd.Series("beta", index=summary.index)
        term = summary.index.to_series()
    else:
        parameter = summary.index.get_level_values(0).to_series(index=summary.index)
        term = summary.index.get_level_values(1).to_series(index=summary.index)
    coef, se = summary["coef"].to_numpy(), summary["se(coef)"].to_numpy()
    table = pd.DataFrame(
        {
            "parameter": parameter.to_numpy(),
            "term": term.to_numpy(),
            "coef": coef,
            "se": se,
            "lower": coef - z * se,
            "upper": coef + z * se,
            "z": summary["z"].to_numpy(),
            "p": summary["p"].to_numpy(),
        }
    )
    kind = np.where(
        model == "cox",
        "hazard ratio",
        np.where((table["parameter"] == location) & (table["term"] != "Intercept"), "time ratio", ""),
    )
    table["ratio"], table["ratio_lower"], table["ratio_upper"] = (np.exp(table[c]) for c in ("coef", "lower", "upper"))
    table["ratio_kind"] = kind
    table["rate_exponent"] = (table["parameter"] == location) & (table["term"] == EXPONENT_TERM)
    return table


def _log_median(model: str, fitter, design: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """ln median of each cell under an AFT model, and its delta-method standard error."""
    location, ancillary = MODELS[model][1], MODELS[model][2]
    params, cov = fitter.params_, fitter.variance_matrix_
    x = design.assign(Intercept=1.0)
    gradient = pd.DataFrame(0.0, index=design.index, columns=params.index)
    for term in params[location].index:
        gradient[(location, term)] = x[term].to_numpy()
    value = gradient.to_numpy() @ params.to_numpy()
    if model == "weibull_aft":  # median = lambda (ln 2)^(1/rho), rho = exp(c): one shape for all cells
        c = float(params[(ancillary, "Intercept")])
        value = value + np.log(np.log(2)) * np.exp(-c)
        gradient[(ancillary, "Intercept")] = -np.log(np.log(2)) * np.exp(-c)
    g = gradient.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", g, cov.loc[params.index, params.index].to_numpy(), g))
    return value, se


def _cell_summary(model, fitter, design, chains, confidence) -> pd.DataFrame:
    cells = chains.drop_duplicates("cell").set_index("cell")[axis_columns(chains)]
    # Kaplan-Meier on the generation each event was seen (the upper end of its interval).
    km = {
        cell: fit_km(rows["upper_or_T"], rows["observed"]).median_survival_time_
        for cell, rows in chains.groupby("cell")
    }
    out = cells.assign(
        chains=chains.groupby("cell").size(),
        events=chains.groupby("cell")["observed"].sum().astype(int),
        censored_share=1 - chains.groupby("cell")["observed"].mean(),
        km_median=pd.Series(km, dtype=float),
    )
    if model == "cox":
        out["model_median"] = fitter.predict_median(design).to_numpy().ravel()
        return out.reset_index()
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    value, se = _log_median(model, fitter, design)
    out["model_median"], out["model_median_lower"], out["model_median_upper"] = (
        np.exp(value),
        np.exp(value - z * se),
        np.exp(value + z * se),
    )
    return out.reset_index()


def _ph_test(fitter, data: pd.DataFrame, terms) -> pd.DataFrame:
    from lifelines.statistics import proportional_hazard_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = proportional_hazard_test(
            fitter, data[list(terms) + ["upper_or_T", "observed", "weight"]], time_transform="rank"
        )
    summary = result.summary
    return pd.DataFrame(
        {
            "term": summary.index.astype(str),
            "statistic": summary["test_statistic"].to_numpy(),
            "p": summary["p"].to_numpy(),
        }
    )


def _aic_table(fits: dict[str, Any], chosen: str) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "model": list(fits),
            "log_likelihood": [f.log_likelihood_ for f in fits.values()],
            "parameters": [len(f.params_) for f in fits.values()],
            "aic": [f.AIC_ for f in fits.values()],
        }
    )
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table["chosen"] = table["model"] == chosen
    return table.sort_values("aic").reset_index(drop=True)


def _eventless_levels(chains: pd.DataFrame, design) -> list[str]:
    """Levels of categorical covariates whose chains never had the event: a coefficient would be infinite."""
    seen = chains.groupby("cell")["observed"].any()
    return [
        f"{factor} = {level}"
        for factor, levels in design.levels.items()
        for level, cells in levels.items()
        if not seen.loc[cells].any()
    ]


def collapse_regression(
    events: pd.DataFrame,
    *,
    event: str,
    threshold: float | None = None,
    covariates: Sequence[str] = (EXPONENT_TERM,),
    model: str = "lognormal_aft",
    family: dict | None = None,
    confidence: float = 0.95,
    compare: bool = True,
) -> CollapseRegression:
    """Regress the collapse times of every chain, censored ones included, on grid axes.

    Parameters
    ----------
    events : pandas.DataFrame
        The events table (``analysis.load_events``); select cells beforehand with pandas.
    event : str
        The collapse event (``spread_below``, ``collapse``, ...).
    threshold : float, optional
        The event's threshold; required when the events hold several for ``event``.
    covariates : sequence of str
        Grid axes, transformed: ``log(n)``, ``real``, ``log(temperature)``, ``policy`` (one
        indicator per level but ``replace``), ``C(family_k)``, interactions ``log(n):real`` or
        ``log(n)*real`` (see :mod:`analysis._covariates`).
    model : {"lognormal_aft", "weibull_aft", "loglogistic_aft", "cox"}
        lifelines' ``LogNormalAFTFitter``, ``WeibullAFTFitter``, ``LogLogisticAFTFitter`` or
        ``CoxPHFitter``. Compare the AFT models' AIC (``result.aic``) before trusting one.
    family : dict, optional
        sweep.json's ``family`` entry (``analysis.read_metadata(path)["family"]``); the event
        must be one the family declares.
    confidence : float
        Level of every interval.
    compare : bool
        Also fit the other AFT models to the same data for ``result.aic``.

    Returns
    -------
    CollapseRegression
        ``table`` (tidy coefficients), ``exponent`` (the coefficient of ``log(n)``: collapse
        time grows like n^exponent), ``aic``, ``ph_test`` (Cox), ``cells`` (KM and model
        medians per cell) and the lifelines ``fitter``.

    Raises
    ------
    ValueError
        One line naming the argument, what was expected and what was given: an unknown model,
        an event the family does not declare, a covariate that is not a grid axis, a level of
        a covariate whose chains never had the event.
    """
    if model not in MODELS:
        raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {model!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    if isinstance(covariates, str) or not len(covariates):
        raise ValueError(
            f"covariates: expected a non-empty list of covariates such as ['log(n)', 'real'], got {covariates!r}"
        )
    require_columns(events, _EVENT_COLUMNS, "events")
    event = _declared_event(event, family, events)
    chains = chain_table(events, event, threshold)
    if not chains["observed"].any():
        raise ValueError(
            f"events: expected some chain with the event '{event}' by its horizon, got none in "
            f"{len(chains)} chains; raise the horizon or relax the threshold"
        )
    cells = chains.drop_duplicates("cell").reset_index(drop=True)
    design = design_matrix(cells, list(covariates))
    eventless = _eventless_levels(chains, design)
    if eventless:
        raise ValueError(
            f"covariates: expected every level to have chains with the event, got none for {eventless} "
            "(its coefficient would be infinite); leave those cells out of the events first"
        )
    interval = bool((chains["every"] > 1).any())
    chains = chains.assign(upper_or_T=np.where(chains["observed"], chains["upper"], chains["lower"]))
    # Chains with the same cell and the same time are the same row of the likelihood: fit each once.
    data = (
        chains.groupby(["cell", "lower", "upper", "upper_or_T", "observed"], sort=True)
        .size()
        .rename("weight")
        .reset_index()
    )
    data = data.join(design.columns, on="cell")
    terms = design.terms
    if model == "cox":  # Cox and its residual test get one row per chain: Schoenfeld residuals are per subject
        data = data.loc[data.index.repeat(data["weight"])].assign(weight=1).reset_index(drop=True)
    fitter = _fit(model, data, terms, interval, confidence)
    others = [m for m in AFT_MODELS if m != model] if compare else []
    fits = ({model: fitter} if model != "cox" else {}) | {m: _fit(m, data, terms, interval, confidence) for m in others}
    notes = []
    if model == "cox" and interval:
        notes.append(
            "Cox: lifelines' Cox model has no interval censoring; fitted on the generation each event "
            "was seen (ties by Efron's method)"
        )
    table = _tidy(model, fitter, confidence)
    exponent = None
    if table["rate_exponent"].any():
        row = table[table["rate_exponent"]].iloc[0]
        exponent = {k: float(row[k]) for k in ("coef", "se", "lower", "upper", "p")}
        exponent["estimate"] = exponent.pop("coef")
        interacting = [t for t in terms if ":" in t and EXPONENT_TERM in t.split(":")]
        exponent["note"] = f"at the reference of {', '.join(interacting)}" if interacting else ""
        if interacting:
            notes.append(
                f"log(n) interacts with other terms ({', '.join(interacting)}): the exponent shown is "
                "the one at their reference level / zero"
            )
    return CollapseRegression(
        model=model,
        event=event,
        threshold=None if threshold is None else float(threshold),
        covariates=tuple(covariates),
        censoring=(
            "interval (checked every " + "/".join(map(str, sorted(chains["every"].unique()))) + ")"
            if interval
            else "right"
        ),
        table=table,
        exponent=exponent,
        aic=_aic_table(fits, model)
        if fits
        else pd.DataFrame(columns=["model", "log_likelihood", "parameters", "aic", "delta_aic", "chosen"]),
        ph_test=_ph_test(fitter, data, terms) if model == "cox" else None,
        cells=_cell_summary(model, fitter, design.columns, chains, confidence),
        notes=tuple(notes),
        fitter=fitter,
        design=design.columns,
    )
