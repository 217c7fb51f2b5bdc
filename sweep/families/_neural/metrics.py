"""Image metrics of B chains' generated images against held-out real images, batched.

- ``frechet_distance``: Frechet distance between Gaussians fitted to the digit classifier's
  penultimate features of generated and held-out images (FID with a digit classifier instead of
  Inception); ``frechet_distance_pixels``: the same in pixel space.
- ``class_entropy`` (nats) and ``classes_covered`` (classes with >= 1% of the generated images)
  of the classifier's labels of the generated images.
- ``precision`` and ``recall``: the k-nearest-neighbour manifold estimates of Kynkaanniemi et
  al. (2019), k = 3, in the classifier's feature space.
- ``pixel_std``: per-pixel standard deviation across generated images, averaged over pixels.
- ``nearest_real_distance``: median Euclidean distance (pixels) from a generated image to its
  nearest image of the training pool (at most :data:`POOL_LIMIT` of them): memorisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from sweep.families._neural import classifier as _classifier
from sweep.families._neural.data import Dataset
from sweep.families._neural.metrics_columns import COLUMNS

K_NEAREST = 3
COVERED_SHARE = 0.01
POOL_LIMIT = 5000


@dataclass
class Reference:
    """What every evaluation compares with: held-out images, their features and statistics."""

    images: torch.Tensor  # (M, D)
    features: torch.Tensor | None  # (M, F)
    radii: torch.Tensor | None  # (M,) k-NN radii of the held-out features
    feature_stats: tuple | None  # (mean, sqrt(cov), trace) in float64
    pixel_stats: tuple
    pool: torch.Tensor  # training images for nearest_real_distance
    model: _classifier.Classifier | None
    classes: int


def _gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    return mean, root, torch.trace(cov)


def _radii(x: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(x, x)
    return distances.kthvalue(K_NEAREST + 1, dim=-1).values  # the 0th neighbour is the point itself


@lru_cache(maxsize=8)
def reference(data: Dataset, size: int, device: torch.device, model: _classifier.Classifier | None) -> Reference:
    """The reference of ``size`` held-out images on ``device``, with the classifier ``model``
    (None: the data have no labels), cached per process."""
    images = torch.from_numpy(np.array(data.heldout[:size])).to(device)
    pool = torch.from_numpy(np.array(data.pool[:POOL_LIMIT])).to(device)
    features = radii = stats = None
    if model is not None:
        features, _ = model.features_and_logits(images)
        radii = _radii(features)
        stats = _gaussian(features)
    return Reference(images, features, radii, stats, _gaussian(images), pool, model, data.classes)


def frechet(x: torch.Tensor, stats: tuple) -> torch.Tensor:
    """Frechet distance between Gaussians fitted to each chain's rows x (B, M, F) and the
    reference (mean, sqrt(cov), trace(cov)): |mu - mu_r|^2 + tr C + tr C_r - 2 tr (C_r^1/2 C C_r^1/2)^1/2."""
    mean_r, root_r, trace_r = stats
    x = x.double()
    mean = x.mean(1)
    centred = x - mean[:, None, :]
    cov = centred.transpose(1, 2) @ centred / (x.shape[1] - 1)
    inner = root_r @ cov @ root_r
    inner = 0.5 * (inner + inner.transpose(1, 2))
    cross = torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum(-1)
    trace = torch.diagonal(cov, dim1=1, dim2=2).sum(-1)
    return ((mean - mean_r) ** 2).sum(-1) + trace + trace_r - 2 * cross


def evaluate(images: torch.Tensor, ref: Reference) -> dict[str, np.ndarray]:
    """Every metric of :data:`COLUMNS` for generated images (B, M, D); chains with non-finite
    images get NaN (classes_covered: 0)."""
    batch = images.shape[0]
    finite = torch.isfinite(images.reshape(batch, -1)).all(1)
    safe = torch.where(finite[:, None, None], images, torch.zeros((), device=images.device))
    out = {
        "frechet_distance_pixels": frechet(safe, ref.pixel_stats),
        "pixel_std": safe.std(dim=1).mean(-1),
    }
    nearest = torch.empty(batch, device=images.device)
    for b in range(batch):  # one chain at a time: M x P distances, not B x M x P
        nearest[b] = torch.cdist(safe[b], ref.pool).min(-1).values.median()
    out["nearest_real_distance"] = nearest
    if ref.model is not None:
        features, logits = ref.model.features_and_logits(safe)
        out["frechet_distance"] = frechet(features, ref.feature_stats)
        labels = logits.argmax(-1)
        share = torch.nn.functional.one_hot(labels, ref.classes).double().mean(1)
        plogp = torch.where(share > 0, share * share.log(), torch.zeros_like(share))
        out["class_entropy"] = (-plogp.sum(-1)).clamp(min=0.0)  # one class: 0, not -0
        out["classes_covered"] = (share >= COVERED_SHARE).sum(-1)
        precision = torch.empty(batch, device=images.device)
        recall = torch.empty_like(precision)
        for b in range(batch):
            between = torch.cdist(features[b], ref.features)  # (M_generated, M_real)
            precision[b] = (between <= ref.radii[None, :]).any(1).double().mean()
            recall[b] = (between <= _radii(features[b])[:, None]).any(0).double().mean()
        out["precision"], out["recall"] = precision, recall
    else:
        for name in ("frechet_distance", "class_entropy", "precision", "recall"):
            out[name] = torch.full((batch,), float("nan"), device=images.device)
        out["classes_covered"] = torch.zeros(batch, dtype=torch.long)
    result = {}
    bad = ~finite.cpu().numpy()
    for name in COLUMNS:
        value = out[name].detach().cpu().numpy()
        if name == "classes_covered":
            result[name] = np.where(bad, 0, value).astype(np.int32)
        else:
            result[name] = np.where(bad, np.nan, value.astype(np.float64))
    return result
