"""Image metrics: levels on real, noisy and collapsed image sets, and the Frechet distance
against a direct scipy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from sweep.families._neural import metrics


@pytest.fixture(scope="module")
def ref(digits, digit_classifier):
    return metrics.reference(digits, len(digits.heldout), torch.device("cpu"), digit_classifier)


def run(images: np.ndarray, ref) -> dict[str, np.ndarray]:
    return metrics.evaluate(torch.from_numpy(np.array(images, dtype=np.float32)), ref)


def test_frechet_matches_scipy():
    """frechet() equals |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2) computed with scipy's sqrtm."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(1.0, 2.0, size=(500, 6))
    stats = metrics._gaussian(torch.from_numpy(b))
    got = metrics.frechet(torch.from_numpy(a), stats).numpy()
    for chain in range(2):
        c1, c2 = np.cov(a[chain].T), np.cov(b.T)
        expected = np.sum((a[chain].mean(0) - b.mean(0)) ** 2) + np.trace(
            c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real
        )
        assert got[chain] == pytest.approx(expected, rel=1e-8)


def test_real_images_score_as_real(digits, ref):
    """Training images against held-out ones: Frechet distances near zero next to noise's, all
    10 classes at about equal shares, precision and recall high."""
    real = run(digits.pool[None, : len(digits.heldout)], ref)
    noise = run(np.random.default_rng(0).random((1, len(digits.heldout), 64)), ref)
    assert real["frechet_distance"][0] < 0.02 * noise["frechet_distance"][0]
    assert real["frechet_distance_pixels"][0] < 0.02 * noise["frechet_distance_pixels"][0]
    assert real["classes_covered"][0] == 10 and noise["precision"][0] < 0.2
    assert real["class_entropy"][0] == pytest.approx(math.log(10), abs=0.02)
    assert real["precision"][0] > 0.8 and real["recall"][0] > 0.8


def test_mode_collapse_is_visible(digits, ref):
    """Held-out images of one digit: one class covered, entropy near 0, recall low, precision
    high, and a Frechet distance far above real data's."""
    threes = digits.heldout[digits.heldout_labels == 3]
    out = run(threes[None], ref)
    real = run(digits.pool[None, : len(digits.heldout)], ref)
    assert out["classes_covered"][0] <= 2 and out["class_entropy"][0] < 0.2
    assert out["recall"][0] < 0.2 < 0.8 < out["precision"][0]
    assert out["frechet_distance"][0] > 10 * real["frechet_distance"][0]


def test_diversity_and_memorisation(digits, ref):
    """pixel_std is the mean per-pixel sd; training images shifted by 0.05 per pixel lie
    0.05 * sqrt(64) = 0.4 from their nearest training image; a non-finite chain gets NaN
    without touching the others."""
    images = np.stack([digits.pool[:300], np.clip(digits.pool[:300] + 0.05, None, None), digits.pool[:300]])
    images[2, 5, 7] = np.nan
    out = run(images, ref)
    assert out["pixel_std"][0] == pytest.approx(digits.pool[:300].std(0, ddof=1).mean(), rel=1e-5)
    assert out["nearest_real_distance"][0] == 0.0
    assert out["nearest_real_distance"][1] == pytest.approx(0.4, rel=1e-5)
    assert np.isnan(out["frechet_distance"][2]) and out["classes_covered"][2] == 0
    assert np.isfinite(out["frechet_distance"][:2]).all()
