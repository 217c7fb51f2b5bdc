"""The gmm1d metric kernels: the compiled W2 against the numpy one and a fine reference, and the
sized KL quadrature against the fixed 1024-point one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sweep.families._gmm1d import _kl_on_grid, kl_true_fitted, tail_mass, w2_to_mixture
from sweep.families._quantiles1d import w2_mixtures

TRUTH = (np.array([[0.5, 0.5]]), np.array([[-2.0, 2.0]]), np.array([[1.0, 1.0]]))


def hard_mixtures(rows: int = 120, seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Mixtures that stress the quantile pieces: sds from 1e-4 to 3, modes far apart, weights
    down to 1e-6, three very unequal components; and fits near the truth."""
    rng = np.random.default_rng(seed)
    out = {}
    w = rng.dirichlet([1.0, 1.0], rows)
    out["near truth"] = (
        np.full((rows, 2), 0.5) + [-1, 1] * rng.normal(0.0, 0.01, (rows, 1)),
        [-2.0, 2.0] + rng.normal(0.0, 0.02, (rows, 2)),
        1.0 + rng.normal(0.0, 0.02, (rows, 2)),
    )
    out["collapsed and wide"] = (
        w,
        np.sort(rng.normal(0.0, 2.5, (rows, 2)), axis=1),
        np.exp(rng.uniform(np.log(1e-8), np.log(9.0), (rows, 2))),
    )
    out["far apart"] = (
        rng.dirichlet([1.0, 1.0], rows),
        np.sort(rng.normal(0.0, 30.0, (rows, 2)), axis=1),
        np.exp(rng.uniform(np.log(1e-4), np.log(4.0), (rows, 2))),
    )
    light = rng.uniform(1e-6, 1e-4, rows)
    out["tiny weights"] = (
        np.column_stack([light, 1.0 - light]),
        np.sort(rng.normal(0.0, 3.0, (rows, 2)), axis=1),
        np.exp(rng.uniform(-6.0, 2.0, (rows, 2))),
    )
    out["three unequal"] = (
        rng.dirichlet([1.0, 1.0, 1.0], rows),
        np.sort(rng.normal(0.0, 3.0, (rows, 3)), axis=1),
        np.exp(rng.uniform(np.log(1e-6), np.log(25.0), (rows, 3))),
    )
    return out


@pytest.fixture(scope="module")
def numba_kernel():
    pytest.importorskip("numba")
    return "numba"


@pytest.mark.parametrize("case", list(hard_mixtures()))
def test_compiled_w2_is_the_numpy_w2_to_rounding(case, numba_kernel):
    """The compiled W2 computes what the numpy kernel does (same grid, pieces and exact
    integral) to 1e-13 relative, on mixtures of every hard kind, against a truth of either side."""
    w, m, v = hard_mixtures()[case]
    numpy_w2 = w2_mixtures(w, m, v, *TRUTH)
    compiled = w2_mixtures(w, m, v, *TRUTH, kernel=numba_kernel)
    np.testing.assert_allclose(compiled, numpy_w2, rtol=1e-13, atol=1e-15)
    swapped = w2_mixtures(*TRUTH, w, m, v, kernel=numba_kernel)
    np.testing.assert_allclose(swapped, numpy_w2, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", list(hard_mixtures()))
def test_compiled_w2_accuracy_against_a_fine_reference(case, numba_kernel):
    """Against the method on a 64x finer grid (error ~1e-11), the compiled W2 is within 2e-5
    near the truth and 2e-4 on the hard mixtures (the numpy kernel's bound: measured 1.9e-4)."""
    w, m, v = hard_mixtures()[case]
    compiled = w2_mixtures(w, m, v, *TRUTH, kernel=numba_kernel)
    error = np.abs(compiled - w2_mixtures(w, m, v, *TRUTH, per_component=4097))
    assert error.max() < (2e-5 if case == "near truth" else 2e-4)


def test_compiled_w2_two_gaussians_closed_form(numba_kernel):
    """For two Gaussians W2 = sqrt(dm**2 + ds**2): within 1e-4, from sd 1e-3 to 3, and scaled
    truths (the power-of-two unit of w2_to_mixture) give the scaled distance."""
    m = np.array([[0.0], [1.0], [0.2], [-3.0], [0.0]])
    sd = np.array([[1.0], [2.0], [0.1], [3.0], [1e-3]])
    got = w2_to_mixture(np.ones_like(m), m, sd**2, [1.0], [0.0], [2.25], kernel=numba_kernel)
    np.testing.assert_allclose(got, np.hypot(m - 0.0, sd - 1.5)[:, 0], rtol=0, atol=1e-4)
    scale = 1e6
    big = w2_to_mixture(
        np.ones_like(m), m * scale, (sd * scale) ** 2, [1.0], [0.0], [2.25 * scale**2], kernel=numba_kernel
    )
    np.testing.assert_allclose(big, got * scale, rtol=1e-12)


def test_compiled_w2_of_a_chain_does_not_depend_on_its_block(numba_kernel):
    """A chain's compiled W2 is bit for bit the same alone and inside blocks of other chains."""
    w, m, v = hard_mixtures()["three unequal"]
    block = w2_mixtures(w, m, v, *TRUTH, kernel=numba_kernel)
    for row in (0, 17, len(w) - 1):
        alone = w2_mixtures(w[row : row + 1], m[row : row + 1], v[row : row + 1], *TRUTH, kernel=numba_kernel)
        # one row against one row: the numpy path; as the first row of a pair: the compiled one
        pair = w2_mixtures(w[[row, 0]], m[[row, 0]], v[[row, 0]], *TRUTH, kernel=numba_kernel)
        assert pair[0] == block[row]
        np.testing.assert_allclose(alone[0], block[row], rtol=1e-13)
    assert np.array_equal(w2_mixtures(w[::-1], m[::-1], v[::-1], *TRUTH, kernel=numba_kernel), block[::-1])


def test_family_metrics_follow_the_kernel(numba_kernel):
    """The gmm1d family's w2 (events) and metrics use the compiled W2 when its kernel is numba,
    with the same values to rounding, NaN for a diverged chain in both."""
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "k",
            "seed": 1,
            "generations": 2,
            "replicates": 4,
            "family": {"name": "gmm1d", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0]},
            "grid": {"n": [50]},
        }
    )
    family = spec.family
    rng = np.random.default_rng(0)
    params = family.fit(family.sample(family.truth(6), 50, rng=rng), previous=family.truth(6), rng=rng)
    params.means[3] = np.nan
    family.kernel = "numpy"
    numpy_metrics, numpy_w2 = family.metrics(params), family.w2(params)
    family.kernel = numba_kernel
    compiled_metrics, compiled_w2 = family.metrics(params), family.w2(params)
    np.testing.assert_allclose(compiled_w2, numpy_w2, rtol=1e-13)
    np.testing.assert_allclose(compiled_metrics["w2"], numpy_metrics["w2"], rtol=1e-13)
    assert np.isnan(compiled_w2[3]) and np.isfinite(np.delete(compiled_w2, 3)).all()


def wide_three_component_fits(rows: int = 600, seed: int = 5):
    """Three components of sds 0.35 to 4 spread around the truth: most pass the sized KL's width
    rule, and some have near-kinks in log q that the 129/257 agreement check must catch."""
    rng = np.random.default_rng(seed)
    return (
        rng.dirichlet([1.0, 1.0, 1.0], rows),
        np.sort(rng.normal(0.0, 4.0, (rows, 3)), axis=1),
        np.exp(rng.uniform(np.log(0.12), np.log(16.0), (rows, 3))),
    )


@pytest.mark.parametrize("case", list(hard_mixtures()) + ["wide three"])
def test_sized_kl_is_as_accurate_as_the_fixed_grid(case):
    """Against a 32768-point reference, the sized KL is never more than 1e-8 (relative) less
    accurate than the fixed 1024-point rule, chain by chain, on mixtures of every hard kind."""
    w, m, v = wide_three_component_fits() if case == "wide three" else hard_mixtures()[case]
    reference = kl_true_fitted(w, m, v, *TRUTH, n_grid=32768)
    fixed = np.abs(kl_true_fitted(w, m, v, *TRUTH) - reference)
    sized = np.abs(kl_true_fitted(w, m, v, *TRUTH, sized=True) - reference)
    assert (sized <= fixed + 1e-8 * np.abs(reference)).all()


def test_sized_kl_paths():
    """Fits near the truth all take the 257-point sum (within 1e-9 of the reference); a chain with
    a component narrower than 4 steps, or whose 129- and 257-point sums disagree, gets the
    1024-point sum bit for bit (the wide three-component fits hold some of the latter)."""
    w, m, v = hard_mixtures()["near truth"]
    sized = kl_true_fitted(w, m, v, *TRUTH, sized=True)
    assert np.array_equal(sized, _kl_on_grid(w, m, v, *TRUTH, 257))
    reference = kl_true_fitted(w, m, v, *TRUTH, n_grid=32768)
    np.testing.assert_allclose(sized, reference, rtol=1e-9)
    w, m, v = wide_three_component_fits()
    sized, fixed = kl_true_fitted(w, m, v, *TRUTH, sized=True), kl_true_fitted(w, m, v, *TRUTH)
    fine, coarse = _kl_on_grid(w, m, v, *TRUTH, 257, coarse=True)
    assert np.array_equal(fine, _kl_on_grid(w, m, v, *TRUTH, 257))
    np.testing.assert_allclose(coarse, _kl_on_grid(w, m, v, *TRUTH, 129), rtol=1e-12)  # nested grids
    wide = np.sqrt(v).min(axis=1) >= 4.0 * 28.0 / 256
    disagree = wide & (np.abs(fine - coarse) > 1e-7 * np.abs(fine) + 1e-13)
    assert 0.5 * len(w) < (wide & ~disagree).sum() and 10 < disagree.sum() and 10 < (~wide).sum()
    assert np.array_equal(sized[wide & ~disagree], fine[wide & ~disagree])
    assert np.array_equal(sized[~wide | disagree], fixed[~wide | disagree])


def test_sized_kl_of_a_chain_does_not_depend_on_its_block():
    """A chain's sized KL is bit for bit the same alone, in its block, and in the block reversed;
    a truth given per row gives the same as a truth given once."""
    w, m, v = wide_three_component_fits(200)
    block = kl_true_fitted(w, m, v, *TRUTH, sized=True)
    for row in range(0, 200, 23):
        assert kl_true_fitted(w[row : row + 1], m[row : row + 1], v[row : row + 1], *TRUTH, sized=True)[0] == block[row]
    assert np.array_equal(kl_true_fitted(w[::-1], m[::-1], v[::-1], *TRUTH, sized=True), block[::-1])
    per_row = tuple(np.repeat(a, 200, axis=0) for a in TRUTH)
    np.testing.assert_allclose(kl_true_fitted(w, m, v, *per_row, sized=True), block, rtol=1e-12)


def test_the_metric_kernels_import_without_numba():
    """Importing the gmm1d family and the compiled W2's module imports no numba (the kernel is
    compiled at its first call), so the numpy path works where numba is not installed."""
    code = (
        "import sys, sweep.families.gmm1d, sweep.families._quantiles1d_numba; "
        "assert 'numba' not in sys.modules, 'numba imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tail_mass_of_a_truth_seen_before_is_unchanged():
    """The true tail quantiles kept between calls give bit for bit the tail mass computed afresh,
    for truths given once or per row, and another truth gets its own quantiles."""
    from sweep.families import _gmm1d

    w, m, v = hard_mixtures()["collapsed and wide"]
    first = tail_mass(w, m, v, *TRUTH)
    _gmm1d._TRUTH_QUANTILES.clear()
    assert np.array_equal(tail_mass(w, m, v, *TRUTH), first)
    assert np.array_equal(tail_mass(w, m, v, *TRUTH), first)
    per_row = tuple(np.repeat(a, len(w), axis=0) for a in TRUTH)
    np.testing.assert_allclose(tail_mass(w, m, v, *per_row), first, rtol=1e-12)
    wide = tail_mass(w, m, v, TRUTH[0], TRUTH[1], 4.0 * TRUTH[2])
    assert not np.allclose(wide, first)
    np.testing.assert_allclose(tail_mass(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), [1.0], [0.0], [1.0]), 0.02)
