"""Closed forms for the Bernoulli, Poisson and linear-regression families (issue 15), with sources.

Conventions follow ``docs/schema.md``: generation 0 is the truth, generation t the t-th fit, and
generation 1 is fitted to n samples of the truth whatever the policy. Each function is named as the
family's ``theory_overlays`` name it (see :data:`OVERLAYS`).

Sources. Suresh, Thangaraj and Khandavally (2024), "Rate of model collapse in recursive training"
(arXiv:2412.17646, AISTATS 2025), study these two families under maximum-likelihood refits; only
their abstract and a third-party summary could be read here, so every formula below is derived in
its docstring (Wright-Fisher and Galton-Watson arguments, exact for the chains simulated) and
checked against simulation in ``tests/analysis/test_theory_collapse.py``. The one statement taken
from the summary, the survival bound Pr(estimate != 0 at t) >= 1 - exp(-count / t), is labelled as
such. The linear-regression forms extend Gerstgrasser et al. (2024), "Is model collapse
inevitable?" (arXiv:2404.01413; their linear-model section: a fixed design, with the replace
result from Dohmatob, Feng and Kempe 2024, "Model collapse demystified: the case of regression")
to the fresh Gaussian design simulated here, derived below; Dey and Donoho (2024), "Universality of the pi^2/6 pathway in
avoiding model collapse" (arXiv:2410.22812), bound the accumulate error by pi^2/6 times the first
generation's, which the exact form satisfies.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = [
    "bernoulli_collapse_probability",
    "bernoulli_absorption",
    "bernoulli_fixation_probability",
    "bernoulli_mse",
    "bernoulli_survival_bound",
    "bernoulli_mean_collapse_time",
    "poisson_collapse_probability",
    "poisson_median_collapse_time",
    "poisson_mse",
    "suresh_survival_lower_bound",
    "linear_regression_test_error",
    "linear_regression_test_error_fixed_design",
    "OVERLAYS",
]

#: Largest n for the exact Bernoulli laws, which iterate an (n + 1) x (n + 1) transition matrix.
MAX_EXACT_N = 2000
_POLICIES = ("replace", "accumulate", "fresh_real")


def _generations(t) -> np.ndarray:
    t = np.asarray(t)
    if t.size and (np.any(t < 0) or np.any(t != np.floor(t))):
        raise ValueError(f"t (generations) must be integers >= 0, got {t.tolist()}")
    return t.astype(np.int64)


def _policy(policy: str, n: int, real: int) -> int:
    """The synthetic samples per generation after the first (checks the arguments)."""
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {_POLICIES}, got {policy!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if policy == "fresh_real" and not 0 <= real <= n:
        raise ValueError(f"real (true samples per generation) must be in [0, n = {n}], got {real!r}")
    return n - (real if policy == "fresh_real" else 0)


# -- Bernoulli --------------------------------------------------------------------------------------
def bernoulli_absorption(p: float, n: int, t_max: int, *, real: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(first collapse at 0 by t) and P(first collapse at 1 by t), t = 0..t_max.

    The count of ones X_t = n p_t is a Markov chain on {0..n}: X_1 ~ Bin(n, p) and
    X_{t+1} | X_t ~ Bin(n - r, X_t / n) + Bin(r, p) with r = ``real`` true samples per generation
    (``replace``: r = 0, the Wright-Fisher chain; ``fresh_real``: r = round(f n)). Making 0 and n
    absorbing and iterating the (n + 1)-state transition matrix gives the first-passage law
    exactly (O(n^2) per generation; the iteration stops once the chain's mass off {0, n} is below
    1e-15). Under replace 0 and n are absorbing anyway.

    Returns
    -------
    (at_zero, at_one) : two arrays of length t_max + 1
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    synthetic = _policy("fresh_real" if real else "replace", n, real)
    if n > MAX_EXACT_N:
        raise ValueError(f"n must be <= {MAX_EXACT_N} for the exact law (an (n+1)^2 matrix), got {n}")
    states = np.arange(n + 1)
    moves = stats.binom.pmf(states[None, : synthetic + 1], synthetic, states[:, None] / n)
    if real:
        fresh = stats.binom.pmf(np.arange(real + 1), real, p)
        spread = np.zeros((synthetic + 1, n + 1))
        for k in range(synthetic + 1):
            spread[k, k : k + real + 1] = fresh
        moves = moves @ spread
    else:
        moves = np.pad(moves, ((0, 0), (0, n - synthetic)))
    moves[0], moves[n] = 0.0, 0.0
    moves[0, 0], moves[n, n] = 1.0, 1.0
    at_zero, at_one = np.zeros(t_max + 1), np.zeros(t_max + 1)
    if t_max == 0:
        return at_zero, at_one
    law = stats.binom.pmf(states, n, p)  # generation 1: n samples of the truth
    for t in range(1, t_max + 1):
        if t > 1:
            law = law @ moves
        at_zero[t], at_one[t] = law[0], law[n]
        if 1.0 - law[0] - law[n] < 1e-15:
            at_zero[t:], at_one[t:] = law[0], law[n]
            break
    return at_zero, at_one


def bernoulli_collapse_probability(p: float, n: int, t, *, policy: str = "replace", real: int = 0) -> np.ndarray:
    """P(the estimate has reached 0 or 1 by generation t): the ``collapse`` event's exact law.

    ``replace`` and ``fresh_real`` (``real`` true samples per generation): the first-passage law of
    :func:`bernoulli_absorption`. ``accumulate``: the pooled data keep generation 1's true samples,
    so the estimate is on {0, 1} at some generation iff generation 1's n samples were all equal:
    (1 - p)^n + p^n for every t >= 1.
    """
    t = _generations(t)
    _policy(policy, n, real)
    if policy == "accumulate":
        return np.where(t >= 1, (1.0 - p) ** n + p**n, 0.0)
    zero, one = bernoulli_absorption(p, n, int(t.max(initial=0)), real=real if policy == "fresh_real" else 0)
    return (zero + one)[t]


def bernoulli_fixation_probability(p: float) -> float:
    """P(absorbed at 1) under replace: p, since p_t is a bounded martingale (E[p_{t+1} | p_t] = p_t)
    absorbed at 0 or 1 (optional stopping)."""
    return float(p)


def bernoulli_mse(p: float, n: int, t, *, policy: str = "replace", real: int = 0) -> np.ndarray:
    """Exact E[(p_t - p)^2] = Var(p_t) (every policy here keeps E[p_t] = p).

    With V_0 = 0 and a = (n - r) / n the synthetic share:

    - replace / fresh_real: p_t = (Bin(n - r, p_{t-1}) + Bin(r, p)) / n gives
      V_t = a^2 V_{t-1} + ((n - r)(p(1 - p) - V_{t-1}) + r p(1 - p)) / n^2, using
      E[p_{t-1}(1 - p_{t-1})] = p(1 - p) - V_{t-1}. Replace (r = 0) solves to
      p(1 - p)(1 - (1 - 1/n)^t), the Wright-Fisher heterozygosity decay.
    - accumulate: p_t = ((t - 1) p_{t-1} + Bin(n, p_{t-1}) / n) / t gives
      V_t = V_{t-1} + (p(1 - p) - V_{t-1}) / (n t^2).
    """
    t = _generations(t)
    synthetic = _policy(policy, n, real)
    h = p * (1.0 - p)
    out = np.zeros(int(t.max(initial=0)) + 1)
    a = synthetic / n
    for k in range(1, out.size):
        v = out[k - 1]
        if policy == "accumulate":
            out[k] = v + (h - v) / (n * k * k)
        else:
            out[k] = a * a * v + (synthetic * (h - v) + (n - synthetic) * h) / (n * n)
    return out[t]


def bernoulli_survival_bound(p: float, n: int, t) -> np.ndarray:
    """Upper bound on P(not collapsed at t) under replace, by Markov's inequality:
    on the interior p_t(1 - p_t) >= (n - 1) / n^2, and E[p_t(1 - p_t)] = p(1 - p)(1 - 1/n)^t, so
    P(0 < p_t < 1) <= min(1, n^2 p(1 - p)(1 - 1/n)^t / (n - 1)). It shows the rate: the
    non-collapsed mass decays like (1 - 1/n)^t, i.e. collapse takes of order n generations."""
    t = _generations(t)
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    return np.minimum(1.0, n * n * p * (1.0 - p) * (1.0 - 1.0 / n) ** t / (n - 1))


def bernoulli_mean_collapse_time(p: float, n: int) -> float:
    """Kimura's diffusion approximation of the mean absorption time under replace:
    -2 n (p ln p + (1 - p) ln(1 - p)) generations (the haploid Wright-Fisher diffusion with
    variance p(1 - p)/n per generation; Ewens, Mathematical Population Genetics, 2004, eq. 4.19).
    Accurate to O(1) generations for n p(1 - p) >> 1; not exact (see bernoulli_absorption)."""
    return float(-2.0 * n * (p * math.log(p) + (1.0 - p) * math.log(1.0 - p)))


# -- Poisson ----------------------------------------------------------------------------------------
def _extinction(t_max: int) -> np.ndarray:
    """q_k = P(a Poisson(1) Galton-Watson process from one individual is extinct by k), k = 0..t_max:
    q_0 = 0, q_k = exp(q_{k-1} - 1) (the offspring generating function exp(s - 1))."""
    q = np.zeros(t_max + 1)
    for k in range(1, t_max + 1):
        q[k] = math.exp(q[k - 1] - 1.0)
    return q


def poisson_collapse_probability(lam: float, n: int, t, *, policy: str = "replace") -> np.ndarray:
    """Exact P(lambda_t = 0 by generation t).

    replace: S_t = n lambda_t satisfies S_1 ~ Poisson(n lambda) and S_{t+1} | S_t ~ Poisson(S_t), a
    sum of S_t independent Poisson(1): a critical Galton-Watson process with Poisson(1) offspring.
    0 is absorbing, and with q_k its one-ancestor extinction probability by k,
    P(S_t = 0) = E[q_{t-1}^{S_1}] = exp(n lambda (q_{t-1} - 1)). Since 1 - q_k ~ 2 / k
    (Kolmogorov), P(collapse by t) ~ exp(-2 n lambda / t): certain, after of order n lambda
    generations (the count n lambda, as the paper's abstract says of forgetting a word).

    accumulate: generation 1's true samples stay in the pool, so the estimate is 0 at some
    generation iff they were all 0: exp(-n lambda) for every t >= 1.
    """
    t = _generations(t)
    if lam <= 0:
        raise ValueError(f"lambda must be > 0, got {lam!r}")
    _policy(policy, n, 0)
    mean = n * lam
    if policy == "accumulate":
        return np.where(t >= 1, math.exp(-mean), 0.0)
    if policy != "replace":
        raise ValueError("poisson_collapse_probability has closed forms for replace and accumulate only")
    q = _extinction(max(int(t.max(initial=0)) - 1, 0))
    return np.where(t >= 1, np.exp(mean * (q[np.maximum(t - 1, 0)] - 1.0)), 0.0)


def poisson_median_collapse_time(lam: float, n: int) -> int:
    """The exact median collapse time under replace: the first t with
    poisson_collapse_probability >= 1/2 (about 2 n lambda / ln 2 + O(log(n lambda)))."""
    mean = n * lam
    # 1 - q_{t-1} must fall to ln 2 / mean; 1 - q_k ~ 2 / k, so t ~ 2 mean / ln 2: search above it
    t_max = int(4 * mean / math.log(2)) + 64
    probability = poisson_collapse_probability(lam, n, np.arange(t_max + 1))
    return int(np.argmax(probability >= 0.5))


def poisson_mse(lam: float, n: int, t, *, policy: str = "replace", real: int = 0) -> np.ndarray:
    """Exact E[(lambda_t - lambda)^2] = Var(lambda_t) (E[lambda_t] = lambda for every policy here).

    With V_0 = 0 and a = (n - r) / n:

    - replace / fresh_real: lambda_t = (Poisson((n - r) lambda_{t-1}) + Poisson(r lambda)) / n gives
      V_t = a^2 V_{t-1} + lambda / n; replace solves to t lambda / n (linear growth), fresh_real
      tends to lambda / (n (1 - a^2)).
    - accumulate: lambda_t = ((t - 1) lambda_{t-1} + Poisson(n lambda_{t-1}) / n) / t gives
      V_t = V_{t-1} + lambda / (n t^2) = (lambda / n) sum_{k <= t} 1 / k^2 -> (pi^2 / 6) lambda / n.
    """
    t = _generations(t)
    synthetic = _policy(policy, n, real)
    out = np.zeros(int(t.max(initial=0)) + 1)
    a = synthetic / n
    for k in range(1, out.size):
        out[k] = out[k - 1] + lam / (n * k * k) if policy == "accumulate" else a * a * out[k - 1] + lam / n
    return out[t]


def suresh_survival_lower_bound(count: float, t) -> np.ndarray:
    """1 - exp(-count / t): the lower bound on P(a symbol's estimate is not 0 at generation t) for a
    symbol of expected initial count ``count`` (n p, or n lambda), as a third-party summary of
    Suresh et al. (2024) states their unigram result (the paper's text was not available here).
    The exact laws above satisfy it: their survival is about 1 - exp(-2 count / t)."""
    t = _generations(t)
    with np.errstate(divide="ignore"):
        return np.where(t >= 1, 1.0 - np.exp(-count / np.maximum(t, 1)), 1.0)


# -- linear regression ------------------------------------------------------------------------------
def linear_regression_test_error(
    n: int, d: int, sigma: float, t, *, policy: str = "replace", temperature: float = 1.0
) -> np.ndarray:
    """Exact E[test error] = sigma^2 + E|w_t - w_0|^2 with fresh x ~ N(0, I_d) each generation.

    Write e_t = w_t - w_0, A_k = X_k^T X_k ~ Wishart(n, I_d) independent across k, and eps_k
    generation k's label noise (variance s_k^2 = sigma^2 at k = 1, T sigma^2 after: synthetic labels
    are tempered). Since y_k = X_k w_{k-1} + eps_k:

    - replace: e_t = e_{t-1} + A_t^{-1} X_t^T eps_t, increments of mean 0 given the past, so
      E|e_t|^2 = sum_k s_k^2 E tr(A_k^{-1}) = sum_{k <= t} s_k^2 d / (n - d - 1)
      (E W^{-1} = I / (n - d - 1) for W ~ Wishart(n, I_d)). This is the fixed-design form of
      Dohmatob et al. and Gerstgrasser et al., which holds unchanged for a fresh design.
    - accumulate: with G_t = A_1 + ... + A_t, the OLS fit on every pair so far satisfies
      G_t e_t = G_{t-1} e_{t-1} + A_t e_{t-1} + X_t^T eps_t, i.e. e_t = e_{t-1} + G_t^{-1} X_t^T eps_t,
      so E|e_t|^2 = sum_k s_k^2 E tr(G_k^{-2} A_k). The A_j are exchangeable, so
      E[G_k^{-2} A_k] = E[G_k^{-2} G_k] / k = E[G_k^{-1}] / k with G_k ~ Wishart(k n, I_d):
      E|e_t|^2 = sum_{k <= t} s_k^2 d / (k (k n - d - 1)). Bounded in t, below
      (pi^2 / 6) s^2 d / (n - d - 1) (Dey and Donoho's pi^2/6), and above Gerstgrasser et al.'s
      fixed-design sum_k d / (k^2 (n - d - 1)) only by the design's freshness.

    Infinite for n <= d + 1 (E tr W^{-1} diverges).
    """
    t = _generations(t)
    _policy(policy, n, 0)
    if policy == "fresh_real":
        raise ValueError("linear_regression_test_error has closed forms for replace and accumulate only")
    k = np.arange(1, int(t.max(initial=0)) + 1, dtype=float)
    scale = np.where(k == 1, 1.0, temperature) * sigma * sigma * d
    with np.errstate(divide="ignore"):
        if policy == "replace":
            terms = scale / (n - d - 1) if n > d + 1 else np.full(k.size, np.inf)
        else:
            denominator = k * (k * n - d - 1)
            terms = np.where(denominator > 0, scale / np.where(denominator > 0, denominator, 1.0), np.inf)
    return sigma * sigma + np.concatenate([[0.0], np.cumsum(terms)])[t]


def linear_regression_test_error_fixed_design(
    n: int, d: int, sigma: float, t, *, policy: str = "replace"
) -> np.ndarray:
    """Gerstgrasser et al. (2024), linear-model section: the same design X reused every generation.
    replace: sigma^2 + sigma^2 d t / (n - d - 1); accumulate: sigma^2 + sigma^2 d / (n - d - 1)
    sum_{k <= t} 1 / k^2. Not this family's law (x is drawn fresh): kept to compare against."""
    t = _generations(t).astype(float)
    base = sigma * sigma * d / (n - d - 1)
    if policy == "replace":
        return sigma * sigma + base * t
    if policy != "accumulate":
        raise ValueError(f"policy must be replace or accumulate, got {policy!r}")
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(t.max(initial=0)) + 1) ** 2)])
    return sigma * sigma + base * harmonic[t.astype(np.int64)]


#: The overlays the families declare (``theory_overlays``), by name.
OVERLAYS = {
    "bernoulli_collapse_probability": bernoulli_collapse_probability,
    "bernoulli_fixation_probability": bernoulli_fixation_probability,
    "bernoulli_mse": bernoulli_mse,
    "bernoulli_survival_bound": bernoulli_survival_bound,
    "poisson_collapse_probability": poisson_collapse_probability,
    "poisson_mse": poisson_mse,
    "poisson_median_collapse_time": poisson_median_collapse_time,
    "linear_regression_test_error": linear_regression_test_error,
}
