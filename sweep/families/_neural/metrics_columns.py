"""The image metrics' column names and meanings (importable without torch; see :mod:`.metrics`)."""

from __future__ import annotations

COLUMNS = {
    "frechet_distance": "Frechet distance between generated and held-out real images in the digit classifier's "
    "penultimate features (NaN without labels)",
    "frechet_distance_pixels": "the same in pixel space",
    "class_entropy": "entropy (nats) of the classifier's labels of the generated images (ln 10 = 2.30: balanced)",
    "classes_covered": "classes with >= 1% of the generated images under the classifier",
    "precision": "share of generated images inside the held-out images' 3-NN balls (Kynkaanniemi et al. 2019)",
    "recall": "share of held-out images inside the generated images' 3-NN balls",
    "pixel_std": "per-pixel standard deviation across generated images, mean over pixels (diversity)",
    "nearest_real_distance": "median distance from a generated image to its nearest training image (memorisation)",
}
