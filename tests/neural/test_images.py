"""Sample grids: which generations keep one, and PNGs that decode to the tiled images."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np

from sweep.families._neural import images


def test_gallery_generations():
    """Sample grids are kept at 1, 2, 5, 10, 20, 50, ... whatever the horizon."""
    assert [g for g in range(0, 201) if images.gallery_generation(g)] == [1, 2, 5, 10, 20, 50, 100, 200]


def test_png_round_trip():
    """A tiled grid written by the zlib PNG writer decodes (matplotlib) to the same bytes, scaled."""
    rng = np.random.default_rng(0)
    pictures = images.to_uint8(rng.random((64, 12)))
    grid = images.tile(pictures, (3, 4))
    assert grid.shape == (8 * 4 + 1, 8 * 5 + 1)
    assert np.array_equal(grid[1:4, 1:5], pictures[0].reshape(3, 4))
    decoded = matplotlib.image.imread(io.BytesIO(images.png(grid, scale=2)), format="png")
    assert decoded.shape == (2 * grid.shape[0], 2 * grid.shape[1])
    assert np.array_equal(np.round(decoded[::2, ::2] * 255).astype(np.uint8), grid)
