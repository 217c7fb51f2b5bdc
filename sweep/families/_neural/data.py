"""Real image data for the neural families: scikit-learn's digits, MNIST IDX files, a .npy array.

Every source is split once, with a fixed seed, into a *training pool* (the real data that
generation 1 and the ``fresh_real``/``mix`` policies draw from, and that the digit classifier is
trained on) and a *held-out* set (what generated images are compared with). Pixels are floats in
[0, 1], flattened to D = H * W. Nothing is downloaded: a missing or malformed file is a
:class:`~sweep.errors.SpecError` naming its path.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError

SOURCES = ("digits", "mnist", "npy")


@dataclass(frozen=True)
class DataSpec:
    """Where the real images come from and how they are split."""

    name: str = "digits"
    path: str | None = None
    labels: str | None = None
    holdout: float = 0.2
    split_seed: int = 0

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"name": self.name, "holdout": self.holdout, "split_seed": self.split_seed}
        if self.path is not None:
            raw["path"] = self.path
        if self.labels is not None:
            raw["labels"] = self.labels
        return raw


@dataclass(frozen=True, eq=False)
class Dataset:
    """A split data set (arrays are read-only; one copy per process, see :func:`load`)."""

    pool: np.ndarray  # (P, D) float32 in [0, 1]
    pool_labels: np.ndarray | None  # (P,) int64, or None without labels
    heldout: np.ndarray  # (Q, D) float32
    heldout_labels: np.ndarray | None
    shape: tuple[int, int]  # (H, W) of one image
    classes: int  # number of label values (0 without labels)
    digest: str  # content hash of the split (names the cached classifier)

    @property
    def dim(self) -> int:
        return self.pool.shape[1]


def parse_data(value: Any, path: str) -> DataSpec:
    """Read ``family.data`` (a name, or a mapping with ``name`` and its fields) and check that
    the data loads, so a bad file is reported before anything runs."""
    if isinstance(value, str):
        value = {"name": value}
    section = fields.Section(value, path, ("name", "path", "labels", "holdout", "split_seed"))
    name = section.take("name", fields.choice(*SOURCES), "digits")
    file_path = section.take("path", fields.text("a file or folder path", lambda s: bool(s)), None)
    labels = section.take("labels", fields.text("a .npy file path", lambda s: bool(s)), None)
    if name in ("mnist", "npy") and file_path is None:
        what = "a folder of MNIST IDX files" if name == "mnist" else "a .npy file of shape (N, D) or (N, H, W)"
        raise SpecError(f"{path}.path", f"{what} (needed with name: {name})", "nothing", raw=True)
    if name != "npy" and labels is not None:
        raise SpecError(f"{path}.labels", "no labels file (only name: npy takes one)", labels)
    if name == "digits" and file_path is not None:
        raise SpecError(f"{path}.path", "no path (digits ship with scikit-learn)", file_path)
    spec = DataSpec(
        name=name,
        path=None if file_path is None else os.path.abspath(os.path.expanduser(file_path)),
        labels=None if labels is None else os.path.abspath(os.path.expanduser(labels)),
        holdout=section.take("holdout", fields.number(0.0, 0.9, low_open=True), 0.2),
        split_seed=section.take("split_seed", fields.integer(0, 2**63 - 1), 0),
    )
    try:
        load(spec)
    except DataError as error:
        raise SpecError(f"{path}.{error.field}", error.expected, error.got, raw=True) from None
    return spec


class DataError(ValueError):
    """A data file that is missing or malformed (``field``: path or labels)."""

    def __init__(self, field: str, expected: str, got: str):
        self.field, self.expected, self.got = field, expected, got
        super().__init__(f"{field}: expected {expected}, got {got}")


@lru_cache(maxsize=8)
def load(spec: DataSpec) -> Dataset:
    """The split data set of a :class:`DataSpec` (cached per process).

    Raises
    ------
    DataError
        A file that is missing, unreadable or not of the expected format.
    """
    if spec.name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.float32) / 16.0
        return _split(images.reshape(len(images), -1), digits.target.astype(np.int64), (8, 8), spec)
    if spec.name == "mnist":
        return _mnist(spec)
    return _npy(spec)


def _split(
    images: np.ndarray,
    labels: np.ndarray | None,
    shape: tuple[int, int],
    spec: DataSpec,
    heldout: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Dataset:
    if heldout is None:
        order = np.random.default_rng(spec.split_seed).permutation(len(images))
        cut = len(images) - max(1, int(round(spec.holdout * len(images))))
        train, test = order[:cut], order[cut:]
        heldout = (images[test], None if labels is None else labels[test])
        images, labels = images[train], None if labels is None else labels[train]
    pool = np.ascontiguousarray(images, dtype=np.float32)
    held = np.ascontiguousarray(heldout[0], dtype=np.float32)
    classes = 0 if labels is None else int(max(labels.max(), heldout[1].max())) + 1
    digest = hashlib.sha256()
    for array in (pool, held, labels, heldout[1]):
        if array is not None:
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    for array in (pool, held, labels, heldout[1]):
        if array is not None:
            array.setflags(write=False)
    return Dataset(pool, labels, held, heldout[1], shape, classes, digest.hexdigest()[:16])


# -- MNIST IDX -------------------------------------------------------------------------------
_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find(folder: Path, key: str) -> Path | None:
    for stem in _IDX_NAMES[key]:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as a uint8 array; DataError if it is not one."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError("path", "a readable IDX file", f"'{path}' ({' '.join(str(error).split())})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 3:
        raise DataError("path", "an IDX file of unsigned bytes (magic 0x0000080N)", f"'{path}' (bad magic number)")
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    body = raw[4 + 4 * dims :]
    if len(body) != math.prod(shape):
        raise DataError(
            "path",
            f"an IDX file of {math.prod(shape)} values (shape {shape})",
            f"'{path}' with {len(body)} bytes of data",
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _mnist(spec: DataSpec) -> Dataset:
    folder = Path(spec.path)
    if not folder.is_dir():
        raise DataError(
            "path",
            "a folder of MNIST IDX files (train-images-idx3-ubyte[.gz], ...)",
            f"'{folder}' ({'a file' if folder.exists() else 'no such folder'})",
        )
    found = {key: _find(folder, key) for key in _IDX_NAMES}
    for key in ("train_images", "train_labels"):
        if found[key] is None:
            raise DataError("path", f"a folder with {_IDX_NAMES[key][0]}[.gz]", f"'{folder}' without it")
    images, labels = read_idx(found["train_images"]), read_idx(found["train_labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            "path",
            "IDX images (N, H, W) with N labels",
            f"'{folder}' with images {images.shape} and labels {labels.shape}",
        )
    shape = images.shape[1:]
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    heldout = None
    if found["test_images"] is not None and found["test_labels"] is not None:
        test, test_labels = read_idx(found["test_images"]), read_idx(found["test_labels"])
        if test.shape[1:] != shape or len(test) != len(test_labels):
            raise DataError(
                "path",
                f"t10k images of shape (N, {shape[0]}, {shape[1]}) with N labels",
                f"'{folder}' with {test.shape} and {test_labels.shape}",
            )
        heldout = (test.reshape(len(test), -1).astype(np.float32) / 255.0, test_labels.astype(np.int64))
    return _split(flat, labels.astype(np.int64), shape, spec, heldout)


# -- a user's .npy array -----------------------------------------------------------------------
def _npy(spec: DataSpec) -> Dataset:
    images = _read_npy(spec.path, "path")
    if images.ndim not in (2, 3) or len(images) < 10 or images.shape[1] < 1:
        raise DataError(
            "path", "a .npy array of shape (N, D) or (N, H, W) with N >= 10", f"'{spec.path}' of shape {images.shape}"
        )
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    elif images.dtype.kind in "fiu":
        images = images.astype(np.float32)
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise DataError(
                "path",
                "pixel values in [0, 1] (or a uint8 array)",
                f"'{spec.path}' with values in [{images.min():g}, {images.max():g}]",
            )
    else:
        raise DataError("path", "a numeric .npy array", f"'{spec.path}' of dtype {images.dtype}")
    if images.ndim == 3:
        shape = images.shape[1:]
    else:
        side = math.isqrt(images.shape[1])
        shape = (side, side) if side * side == images.shape[1] else (1, images.shape[1])
    labels = None
    if spec.labels is not None:
        labels = _read_npy(spec.labels, "labels")
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu" or labels.min() < 0:
            raise DataError(
                "labels",
                f"a .npy array of {len(images)} non-negative integer labels",
                f"'{spec.labels}' of shape {labels.shape} and dtype {labels.dtype}",
            )
        labels = labels.astype(np.int64)
    return _split(images.reshape(len(images), -1), labels, tuple(int(s) for s in shape), spec)


def _read_npy(path: str, field: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise DataError(
            field, "an existing .npy file", f"'{path}' ({'a folder' if os.path.isdir(path) else 'no such file'})"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(
            field, "a .npy file (numpy.save, no pickled objects)", f"'{path}' ({' '.join(str(error).split())[:120]})"
        ) from None
