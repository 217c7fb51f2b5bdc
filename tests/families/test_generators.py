"""scikit-learn's generators as truths: their laws (against scikit-learn's own samples) and moments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import datasets

from sweep.families._generators import Shape, blobs_mixture
from sweep.families._gmmnd import sample_mixture
from sweep.streams import BlockGenerator

N = 20000
#: Directions the laws are compared along (every projection of a law must agree).
DIRECTIONS = {
    2: np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]),
    3: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.48, 0.6, 0.64]]),
}


def _sklearn(shape: Shape, n: int) -> np.ndarray:
    if shape.name == "moons":
        return datasets.make_moons(n, noise=shape.noise, random_state=0)[0]
    if shape.name == "circles":
        return datasets.make_circles(n, noise=shape.noise, factor=shape.factor, random_state=0)[0]
    return datasets.make_swiss_roll(n, noise=shape.noise, random_state=0)[0]


@pytest.mark.parametrize(
    "shape",
    [Shape("moons", 0.1), Shape("circles", 0.05, 0.5), Shape("swiss_roll", 0.5)],
    ids=["moons", "circles", "swiss_roll"],
)
def test_samples_follow_sklearns_generator(shape):
    """20000 samples have the law of scikit-learn's generator at the same settings: KS along several
    directions, p > 1e-3 (its evenly spaced points approach the uniform positions sampled here)."""
    ours = shape.sample(1, N, rng=np.random.default_rng(1))[0]
    theirs = _sklearn(shape, N)
    for u in DIRECTIONS[shape.dim]:
        assert stats.ks_2samp(ours @ u, theirs @ u).pvalue > 1e-3, u


def test_a_wrong_shape_is_rejected_by_the_law_test():
    """Negative control: circles with another inner radius fail the KS comparison."""
    ours = Shape("circles", 0.05, 0.6).sample(1, N, rng=np.random.default_rng(2))[0]
    theirs = _sklearn(Shape("circles", 0.05, 0.5), N)
    assert min(stats.ks_2samp(ours @ u, theirs @ u).pvalue for u in DIRECTIONS[2]) < 1e-6


@pytest.mark.parametrize(
    "shape",
    [Shape("moons", 0.1), Shape("circles", 0.2, 0.3), Shape("swiss_roll", 0.3)],
    ids=["moons", "circles", "swiss_roll"],
)
def test_moments_are_exact(shape):
    """The closed moments equal the sample mean and covariance of 4 x 20000 samples within 5
    standard errors (every entry)."""
    x = shape.sample(4, N, rng=np.random.default_rng(3)).reshape(-1, shape.dim)
    mean, cov = shape.moments()
    assert (np.abs(x.mean(axis=0) - mean) <= 5 * np.sqrt(np.diag(cov) / len(x))).all()
    centred = x - x.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]
    assert (np.abs(products.mean(axis=0) - cov) <= 5 * products.std(axis=0) / np.sqrt(len(x)) + 1e-12).all()


def test_blobs_are_sklearns_blobs():
    """make_blobs' law is the equal-weight isotropic mixture at its centres (KS along 3 directions)."""
    centers, std = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 2.0]]), np.array([0.5, 1.0, 0.3])
    w, m, c = blobs_mixture(centers, std)
    ours = sample_mixture(w, m, c, N, rng=np.random.default_rng(4))[0]
    theirs = datasets.make_blobs(N, centers=centers, cluster_std=std, random_state=0)[0]
    for u in DIRECTIONS[2]:
        assert stats.ks_2samp(ours @ u, theirs @ u).pvalue > 1e-3


def test_draws_are_chain_leading():
    """With a block's generator, the first 2 chains of 5 get the samples a block of 2 chains gets
    (the stream rule: chain-leading draws, a fixed number of them)."""
    for shape in (Shape("moons", 0.1), Shape("swiss_roll", 0.2)):
        five = shape.sample(5, 30, rng=BlockGenerator(np.random.SeedSequence(5)))
        two = shape.sample(2, 30, rng=BlockGenerator(np.random.SeedSequence(5)))
        np.testing.assert_array_equal(five[:2], two)
