"""Fixtures of the neural tests: the digits split and its classifier, built once per session."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the neural families need the 'neural' extra (pip install torch==2.13.0)")
# One thread, as in a Ray task (OMP_NUM_THREADS=1): on 2 shared cores a second thread makes small
# models about 10x slower (measured: 3 s against 32 s for the classifier at load 10).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from sweep.families._neural.data import DataSpec, load

    return load(DataSpec())


@pytest.fixture(scope="session")
def digit_classifier(digits):
    from sweep.families._neural import classifier

    return classifier.get(digits)


def tiny_spec(
    family: dict,
    *,
    generations: int = 2,
    replicates: int = 3,
    n: int = 200,
    policy=("replace",),
    block_size: int | None = None,
    **top,
) -> dict:
    """A raw spec of a few tiny chains (seconds on one core)."""
    raw = {
        "name": "tiny",
        "seed": 7,
        "generations": generations,
        "replicates": replicates,
        "family": family,
        "grid": {"n": [n], "policy": list(policy)},
        **top,
    }
    if block_size is not None:
        raw["block_size"] = block_size
    return raw


TINY_VAE = {"name": "vae", "epochs": 2, "hidden": [32], "latent_dim": 4, "eval_samples": 100}
TINY_WGAN = {"name": "wgan", "steps": 4, "hidden": [32], "latent_dim": 4, "eval_samples": 100, "n_critic": 2}
