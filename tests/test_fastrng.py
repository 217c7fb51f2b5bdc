"""Compiled draws (sweep._fastrng) against closed forms, with tolerances of 5 standard errors, and
the stream contract: one draw of a block, chains laid out in order, each draw taking exactly the
words its values use, from numpy's own PCG64 stream (stepped in compiled code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import polygamma, psi

from sweep import _fastrng
from sweep.families._gmm1d import sample_gmm
from sweep.streams import BlockGenerator

pytest.importorskip("numba")

SIGMAS = 5.0
N = 4_000_000  # normals: P(|z| > 4) = 6.3e-5, about 250 of them, so the tail's shape is seen


def _close(value: float, expected: float, se: float, what: str) -> None:
    assert abs(value - expected) < SIGMAS * se, f"{what}: {value} against {expected} (se {se:.3g})"


@pytest.fixture(scope="module")
def normals() -> np.ndarray:
    return _fastrng.standard_normal(np.random.default_rng(2024), N)


def test_tables_close_the_ziggurat():
    """The bisection finds Marsaglia & Tsang's r, every layer has the base's area v, and the top
    layer ends at f = 1: an off-by-one layer or an unclosed top fails here first."""
    assert _fastrng.R == pytest.approx(3.6541528853610088, rel=1e-14)
    x, f = _fastrng.X, _fastrng.F
    v = x[0] * f[1]  # the base: pseudo-width x_0 at height f(r)
    areas = x[1:256] * (f[2:257] - f[1:256])
    np.testing.assert_allclose(areas, v, rtol=1e-9)
    assert f[256] == 1.0 and x[256] == 0.0
    assert v == pytest.approx(_fastrng.R * f[1] + math.sqrt(math.pi / 2) * math.erfc(_fastrng.R / math.sqrt(2)))


def test_normal_moments_and_log_moments(normals):
    """Mean 0, variance 1, fourth moment 3, E ln|z| = -(gamma + ln 2) / 2, Var ln|z| = pi^2 / 8."""
    z = normals
    _close(z.mean(), 0.0, 1 / math.sqrt(N), "mean")
    _close(z.var(), 1.0, math.sqrt(2 / N), "variance")
    _close(np.mean(z**4), 3.0, math.sqrt(96 / N), "fourth moment")
    log_abs = np.log(np.abs(z))
    _close(log_abs.mean(), -(np.euler_gamma + math.log(2)) / 2, math.sqrt(math.pi**2 / 8 / N), "E ln|z|")
    # Var ln|z| has fourth cumulant psi'''(1/2) / 16 = pi^4 / 16 (of ln chi2_1 / 2)
    kappa4 = float(polygamma(3, 0.5)) / 16
    var = math.pi**2 / 8
    _close(log_abs.var(), var, math.sqrt((kappa4 + 2 * var**2) / N), "Var ln|z|")
    # symmetric: as many negative values as positive ones
    _close(np.mean(z < 0), 0.5, math.sqrt(0.25 / N), "P(z < 0)")


@pytest.mark.parametrize("level", [3.5, float(_fastrng.R), 4.0, 4.5])
def test_normal_tails(normals, level):
    """P(|z| > t) at 3.5 (in the layers), at the base's edge r and beyond it (the tail algorithm)."""
    p = math.erfc(level / math.sqrt(2))
    _close(np.mean(np.abs(normals) > level), p, math.sqrt(p * (1 - p) / N), f"P(|z| > {level})")


def test_normal_tail_shape(normals):
    """Beyond r, the excess |z| - r has the truncated normal's mean: a tail of the wrong shape
    (exponential, or uniform) with the right mass fails here."""
    r = _fastrng.R
    excess = np.abs(normals[np.abs(normals) > r]) - r
    tail = stats.truncnorm(r, np.inf)
    _close(excess.mean(), tail.mean() - r, tail.std() / math.sqrt(excess.size), "E(|z| - r | |z| > r)")


def test_normal_ks(normals):
    """The Kolmogorov-Smirnov statistic of 1e6 values: p > 1e-6 (sqrt(n) D below about 2.7)."""
    assert stats.kstest(normals[:1_000_000], "norm").pvalue > 1e-6


@pytest.mark.parametrize("shape", [0.3, 1.0, 49.5])
def test_gamma_moments(shape):
    """Mean a, variance a, E ln X = psi(a), Var ln X = psi'(a)."""
    size = 1_000_000
    x = _fastrng.standard_gamma(np.random.default_rng(int(shape * 10)), shape, size)
    assert x.min() > 0
    _close(x.mean(), shape, math.sqrt(shape / size), "mean")
    _close(x.var(), shape, math.sqrt((2 * shape**2 + 6 * shape) / size), "variance")
    log_x = np.log(x)
    _close(log_x.mean(), psi(shape), math.sqrt(polygamma(1, shape) / size), "E ln X")
    var, kappa4 = float(polygamma(1, shape)), float(polygamma(3, shape))
    _close(log_x.var(), var, math.sqrt((kappa4 + 2 * var**2) / size), "Var ln X")


def test_gamma_shape_zero_is_zero():
    """Shape 0 gives zeros, as numpy's does (chi2 with 0 degrees of freedom: n = 1)."""
    np.testing.assert_array_equal(_fastrng.standard_gamma(np.random.default_rng(0), 0.0, 5), np.zeros(5))
    with pytest.raises(ValueError, match="shape >= 0"):
        _fastrng.standard_gamma(np.random.default_rng(0), -1.0, 5)


def test_uniforms():
    """53-bit multiples in [0, 1), mean 1/2 and variance 1/12."""
    size = 1_000_000
    u = _fastrng.random(np.random.default_rng(5), size)
    assert u.min() >= 0 and u.max() < 1
    scaled = u * 2.0**53
    np.testing.assert_array_equal(scaled, np.floor(scaled))
    _close(u.mean(), 0.5, math.sqrt(1 / 12 / size), "mean")
    _close(u.var(), 1 / 12, math.sqrt(1 / 180 / size), "variance")


def _draws(rng: BlockGenerator, width: int) -> list[np.ndarray]:
    weights = np.tile([0.2, 0.5, 0.3], (width, 1))
    means = np.tile([-4.0, 0.0, 5.0], (width, 1))
    return [
        _fastrng.standard_normal(rng, (width, 50)),
        _fastrng.standard_gamma(rng, 2.5, width),
        _fastrng.standard_gamma(rng, 0.4, (width, 3)),
        _fastrng.random(rng, (width, 5)),
        sample_gmm(weights, means, np.ones((width, 3)), 40, rng=rng, kernel="numba"),
    ]


def test_chain_prefix_and_block_width():
    """The first 3 chains of each draw for 8 chains equal a draw for 3 chains, through a
    BlockGenerator, for every compiled draw."""
    sequence = np.random.SeedSequence(3, spawn_key=(1, 2))
    wide, narrow = _draws(BlockGenerator(sequence), 8), _draws(BlockGenerator(sequence), 3)
    for a, b in zip(wide, narrow):
        np.testing.assert_array_equal(a[:3], b)


def test_one_draw_of_the_block():
    """A compiled draw counts as one draw and starts where a numpy draw would: the draws after it
    are the same as after a numpy draw, and so is the draw count."""
    sequence = np.random.SeedSequence(9)
    fast, plain = BlockGenerator(sequence), BlockGenerator(sequence)
    first = _fastrng.standard_normal(fast, 4)
    plain.standard_normal(4)
    np.testing.assert_array_equal(fast.standard_normal(6), plain.standard_normal(6))
    assert fast.draws == plain.draws == 2
    # repositioned: drawing again at draw 0 gives the same values, whatever was drawn since
    again = BlockGenerator(sequence)
    np.testing.assert_array_equal(_fastrng.standard_normal(again, 4), first)


def test_compiled_pcg64_is_numpys():
    """The PCG64 step compiled into the kernels (and its Python statement) is numpy's: a draw of
    uniforms is the top 53 bits of ``random_raw``'s words, and leaves the generator in the state
    numpy's would be in after as many words (the whole 128-bit LCG state, so a wrong multiplier,
    increment or carry fails here even where the top bits happened to agree)."""
    for seed in (0, 1, 2**63 + 5, 123456789):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        u = _fastrng.random(rng, 1000)
        words = ref.bit_generator.random_raw(1000)
        np.testing.assert_array_equal(u * 2.0**53, (words >> np.uint64(11)).astype(np.float64))
        assert rng.bit_generator.state == ref.bit_generator.state
        state = _fastrng._read_state(np.random.default_rng(seed))
        hi, lo, inc_hi, inc_lo = (int(w) for w in state)
        for expected in np.random.default_rng(seed).bit_generator.random_raw(5):
            hi, lo, word = _fastrng._pcg_step(hi, lo, inc_hi, inc_lo)
            assert word == int(expected)
    with pytest.raises(TypeError, match="PCG64"):
        _fastrng.standard_normal(np.random.Generator(np.random.MT19937(0)), 3)


def test_a_draw_continues_where_the_last_ended():
    """A plain generator: two draws give the values of one draw of both sizes (the words a draw
    uses, rejections and tails included, are exactly the ones it takes), for every draw."""
    cases = [
        lambda rng, k: _fastrng.standard_normal(rng, k),
        lambda rng, k: _fastrng.standard_gamma(rng, 2.5, k),
        lambda rng, k: _fastrng.standard_gamma(rng, 0.4, k),
        lambda rng, k: _fastrng.random(rng, k),
    ]
    for draw in cases:
        whole = draw(np.random.default_rng(17), 200_000)  # about 50 normals from the tail
        rng = np.random.default_rng(17)
        np.testing.assert_array_equal(np.concatenate([draw(rng, 123_457), draw(rng, 76_543)]), whole)


def test_values_pinned():
    """The compiled draws' values for one block stream, written down (those of 0.5.0, which
    pulled the same words through numpy): a change to a kernel that moves any chain's values
    shows here, as a change that a CHANGELOG entry must announce."""
    rng = BlockGenerator(np.random.SeedSequence(7, spawn_key=(3, 1)))
    expected = [
        [-0.6860639902489433, -1.3833300110018774, -0.013377420840352063],
        [48.54499175631656, 59.823433630557716],
        [0.27097284146619627, 3.833280166485842e-06],
        [-3.5366503268685516, -6.270410839487039, -3.5389918419026767],
    ]
    cum, sd, mean = np.array([[0.3, 0.8]]), np.array([[1.0, 2.0, 0.5]]), np.array([[-5.0, 0.0, 5.0]])
    got = [
        _fastrng.standard_normal(rng, 3),
        _fastrng.standard_gamma(rng, 49.5, 2),
        _fastrng.standard_gamma(rng, 0.3, 2),
        _fastrng.mixture(rng, 3, cum, sd, mean)[0],
    ]
    for values, pinned in zip(got, expected):
        assert values.tolist() == pinned


@pytest.mark.parametrize("m", [1, 2, 100])
@pytest.mark.parametrize("block", [True, False])
def test_exact_gaussian_1d_is_the_two_draws(m, block):
    """The fused exact step equals a normal draw and a gamma draw with numpy's arithmetic, bit for
    bit, through a BlockGenerator (two positioned draws) and a plain generator (one after the
    other); m = 1 (no scatter) and m = 2 (a gamma of shape 1/2, boosted) included."""

    def make():
        return BlockGenerator(np.random.SeedSequence(4)) if block else np.random.default_rng(4)

    rng, ref = make(), make()
    previous, var = np.linspace(-1.0, 1.0, 5000), np.linspace(0.5, 2.0, 5000)
    mean, scatter = _fastrng.exact_gaussian_1d(rng, previous, var, m)
    expected_mean = _fastrng.standard_normal(ref, 5000)
    expected_mean *= np.sqrt(var * (1.0 / m))
    expected_mean += previous
    expected_scatter = _fastrng.standard_gamma(ref, (m - 1) / 2.0, 5000) * (2.0 * var)
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(scatter, expected_scatter)
    np.testing.assert_array_equal(_fastrng.random(rng, 4), _fastrng.random(ref, 4))  # and goes on alike
    if block:
        assert rng.draws == ref.draws == 3


def test_mixture_sampling():
    """kernel numba: component frequencies are the weights, each component's values have its mean
    and variance (the components are far apart), and a diverged chain gives NaN only in its row."""
    b, n = 4, 250_000
    weights = np.tile([0.2, 0.5, 0.3], (b, 1))
    means = np.tile([-40.0, 0.0, 50.0], (b, 1))
    variances = np.tile([1.0, 4.0, 0.25], (b, 1))
    variances[3, 1] = np.inf
    x = sample_gmm(weights, means, variances, n, rng=np.random.default_rng(8), kernel="numba")
    assert np.isnan(x[3]).all() and np.isfinite(x[:3]).all()
    values = x[:3].ravel()
    labels = np.digitize(values, [-20.0, 25.0])
    for j in range(3):
        p, count = weights[0, j], values.size
        _close(np.mean(labels == j), p, math.sqrt(p * (1 - p) / count), f"weight {j}")
        part = values[labels == j]
        _close(part.mean(), means[0, j], math.sqrt(variances[0, j] / part.size), f"mean {j}")
        _close(part.var(), variances[0, j], variances[0, j] * math.sqrt(2 / part.size), f"variance {j}")
    with pytest.raises(ValueError, match="'kernel' parameter of sample_gmm"):
        sample_gmm(weights, means, variances, 3, rng=np.random.default_rng(0), kernel="torch")
