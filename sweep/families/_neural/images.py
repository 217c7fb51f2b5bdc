"""Sample grids: 64 images tiled 8 x 8 into one greyscale PNG, written next to the results.

Layout, for ``sweep report`` and for people::

    <results>/samples/cell=<c>/real.png                                  64 training-pool images
    <results>/samples/cell=<c>/replicate=<r>/generation-<g>.png          64 samples of chain r at generation g

The generations kept are 1, 2, 5, 10, 20, 50, ... (1-2-5 steps, :func:`gallery_generation`) and
the chain's last one. The PNG writer is a few lines of zlib, so no imaging library is needed.
"""

from __future__ import annotations

import struct
import uuid
import zlib

import numpy as np

GRID = 8  # images per side: 64 per grid
PAD = 1


def gallery_generation(generation: int) -> bool:
    """1, 2, 5, 10, 20, 50, 100, ...: a few log-spaced generations that do not depend on the horizon."""
    if generation < 1:
        return False
    while generation % 10 == 0:
        generation //= 10
    return generation in (1, 2, 5)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (NaN: black) to bytes."""
    return (np.nan_to_num(np.clip(images, 0.0, 1.0), nan=0.0) * 255.0 + 0.5).astype(np.uint8)


def tile(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Up to 64 flattened uint8 images (N, H*W) as one (8 (H+1) + 1, 8 (W+1) + 1) grid."""
    h, w = shape
    grid = np.full((GRID * (h + PAD) + PAD, GRID * (w + PAD) + PAD), 128, dtype=np.uint8)
    for i, image in enumerate(images[: GRID * GRID]):
        r, c = divmod(i, GRID)
        top, left = PAD + r * (h + PAD), PAD + c * (w + PAD)
        grid[top : top + h, left : left + w] = image.reshape(h, w)
    return grid


def png(gray: np.ndarray, scale: int = 1) -> bytes:
    """A greyscale 8-bit PNG of a 2-D uint8 array (``scale``: pixel repetition)."""
    if scale > 1:
        gray = np.repeat(np.repeat(gray, scale, axis=0), scale, axis=1)
    height, width = gray.shape
    raw = b"".join(b"\x00" + gray[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def scale_for(shape: tuple[int, int]) -> int:
    """Pixel repetition that makes a grid about 300 pixels wide (8x8 digits: 4; MNIST: 1)."""
    return max(1, 300 // (GRID * (shape[1] + PAD)))


def write(location: str, files: dict[str, bytes]) -> None:
    """Write files (paths relative to the results folder) atomically through pyarrow's
    filesystem, so a results folder on object storage works too."""
    from sweep.store import Store

    store = Store(location)
    for relative, payload in files.items():
        path = f"{store.root}/{relative}"
        folder = path.rsplit("/", 1)[0]
        store.fs.create_dir(folder, recursive=True)
        temporary = f"{folder}/.{path.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex}"
        with store.fs.open_output_stream(temporary) as stream:
            stream.write(payload)
        store.fs.move(temporary, path)
