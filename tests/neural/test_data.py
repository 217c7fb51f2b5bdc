"""Real data sources: the digits split, MNIST IDX files (gzipped or not), a user's .npy array,
and one-line errors naming the file for anything missing or malformed."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from sweep.errors import SpecError
from sweep.families._neural.data import DataSpec, load, parse_data


def idx_bytes(array: np.ndarray) -> bytes:
    return (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def write_mnist(folder, *, train=30, test=12, gz=True, side=28, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, side, side)),
        "train-labels-idx1-ubyte": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, side, side)),
        "t10k-labels-idx1-ubyte": np.arange(test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return arrays


def test_digits_split_is_fixed_disjoint_and_scaled():
    """load_digits splits into 1438 pool and 359 held-out images in [0, 1], the same every time."""
    data = load(DataSpec())
    assert data.pool.shape == (1438, 64) and data.heldout.shape == (359, 64) and data.shape == (8, 8)
    assert data.pool.min() == 0.0 and data.pool.max() == 1.0 and data.classes == 10
    from sklearn.datasets import load_digits

    raw = load_digits().data / 16.0
    # every image lands in exactly one of the two sets
    both = np.concatenate([data.pool, data.heldout])
    assert sorted(map(bytes, both.astype(np.float32))) == sorted(map(bytes, raw.astype(np.float32)))
    other = load(DataSpec(split_seed=1))
    assert other.digest != data.digest and load(DataSpec()).digest == data.digest


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path, gz):
    """MNIST IDX files, gzipped or not: the train file is the pool, t10k the held-out set, /255."""
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    spec = parse_data({"name": "mnist", "path": str(tmp_path / "mnist")}, "family.data")
    data = load(spec)
    assert data.shape == (28, 28) and data.pool.shape == (30, 784) and data.heldout.shape == (12, 784)
    np.testing.assert_array_equal(data.pool, arrays["train-images-idx3-ubyte"].reshape(30, -1).astype(np.float32) / 255)
    np.testing.assert_array_equal(data.heldout_labels, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("shape", [(40, 16), (40, 4, 4), (40, 12)])
def test_npy_arrays(tmp_path, shape):
    """A .npy array (N, D) or (N, H, W), uint8 or floats in [0, 1], with optional labels."""
    images = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", np.arange(40) % 3)
    data = load(parse_data({"name": "npy", "path": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy")}, "d"))
    assert data.pool.shape[1] == int(np.prod(shape[1:])) and len(data.pool) + len(data.heldout) == 40
    assert data.shape == {(40, 16): (4, 4), (40, 4, 4): (4, 4), (40, 12): (1, 12)}[shape] and data.classes == 3
    unlabelled = load(parse_data({"name": "npy", "path": str(tmp_path / "x.npy")}, "d"))
    assert unlabelled.pool_labels is None and unlabelled.classes == 0


def bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "badmagic").mkdir()
    (tmp_path / "badmagic" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    (tmp_path / "badmagic" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3)))
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4, 4)))[:-5]))
    (tmp_path / "short" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3))))
    np.save(tmp_path / "big.npy", np.full((20, 4), 3.0))
    (tmp_path / "text.npy").write_text("not numpy")
    return {
        "missing folder": ({"name": "mnist", "path": str(tmp_path / "nowhere")}, "family.data.path", "nowhere"),
        "no idx files": ({"name": "mnist", "path": str(tmp_path / "empty")}, "family.data.path", "empty"),
        "bad magic": (
            {"name": "mnist", "path": str(tmp_path / "badmagic")},
            "family.data.path",
            "train-images-idx3-ubyte",
        ),
        "truncated": (
            {"name": "mnist", "path": str(tmp_path / "short")},
            "family.data.path",
            "train-images-idx3-ubyte.gz",
        ),
        "missing npy": ({"name": "npy", "path": str(tmp_path / "none.npy")}, "family.data.path", "none.npy"),
        "not npy": ({"name": "npy", "path": str(tmp_path / "text.npy")}, "family.data.path", "text.npy"),
        "out of range": ({"name": "npy", "path": str(tmp_path / "big.npy")}, "family.data.path", "big.npy"),
        "no path": ({"name": "mnist"}, "family.data.path", "nothing"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing folder", "no idx files", "bad magic", "truncated", "missing npy", "not npy", "out of range", "no path"],
)
def test_bad_data_is_one_line_naming_the_file(tmp_path, cli, write_spec, case):
    """A missing or malformed data file: `sweep run` says which on one line, exit 2, writes nothing."""
    data, field, named = bad_inputs(tmp_path)[case]
    spec = write_spec(
        {
            "name": "bad",
            "generations": 2,
            "replicates": 2,
            "family": {"name": "vae", "data": data},
            "grid": {"n": [10], "policy": ["replace"]},
        }
    )
    status, out, err = cli("run", spec, "--out", tmp_path / "out", "--no-progress")
    assert status == 2 and err.count("\n") == 1 and out == ""
    assert err.startswith(f"error: spec field '{field}'") and named in err
    assert not (tmp_path / "out").exists()


def test_parse_errors_name_the_field():
    """Unknown sources and stray fields are spec errors naming the field."""
    with pytest.raises(SpecError, match="'family.data.name': expected one of digits, mnist, npy"):
        parse_data({"name": "cifar"}, "family.data")
    with pytest.raises(SpecError, match="'family.data.labels'"):
        parse_data({"name": "digits", "labels": "y.npy"}, "family.data")
