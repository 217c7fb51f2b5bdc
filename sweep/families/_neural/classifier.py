"""The fixed digit classifier behind the feature-space metrics: trained once on the real
training pool, on the CPU, from a fixed seed, in seconds; cached by content hash.

The cache is a file next to the results (``<results>/classifier/<hash>.pt``), so every task of a
sweep, on any node, and every later replay use the same weights; a task that finds none trains
it and writes it atomically, then reads back whichever copy won. Code that runs a block without a
results folder (tests, the benchmark) trains it once per process.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass

import numpy as np
import torch

from sweep.families._neural.data import Dataset

#: Bump when the architecture or training changes: it is part of the cache key.
VERSION = 1
HIDDEN = (128, 64)
EPOCHS_PER_10K = 3  # about the same number of steps for digits (1.4k images: 21 epochs) and MNIST (60k: 3)
BATCH = 128
SEED = 20240724
LR = 3e-3

_CACHE: dict[str, Classifier] = {}


@dataclass(eq=False)
class Classifier:
    """A plain (unbatched) MLP D -> 128 -> 64 -> classes; ``features`` are the 64 penultimate
    ReLU units."""

    layers: list[torch.nn.Linear]
    accuracy: float  # on the held-out set

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (..., 64) and logits (..., classes) of images x (..., D)."""
        device = x.device
        h = x
        for layer in self.layers[:-1]:
            h = torch.relu(torch.nn.functional.linear(h, layer.weight.to(device), layer.bias.to(device)))
        last = self.layers[-1]
        return h, torch.nn.functional.linear(h, last.weight.to(device), last.bias.to(device))


def key(data: Dataset) -> str:
    text = f"v{VERSION}-{HIDDEN}-{EPOCHS_PER_10K}-{BATCH}-{LR}-{SEED}-{torch.__version__}-{data.digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def train(data: Dataset) -> Classifier:
    """Train the classifier on the pool (deterministic: CPU, fixed seed, one thread's order)."""
    if data.pool_labels is None:
        raise ValueError("the data set has no labels: no classifier (give family.data.labels)")
    generator = torch.Generator().manual_seed(SEED)
    sizes = (data.dim,) + HIDDEN + (data.classes,)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layer = torch.nn.Linear(fan_in, fan_out)
        bound = 1.0 / fan_in**0.5
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        layers.append(layer)
    x = torch.from_numpy(np.array(data.pool))
    y = torch.from_numpy(np.array(data.pool_labels))
    optimiser = torch.optim.Adam([p for layer in layers for p in layer.parameters()], lr=LR, weight_decay=1e-4)
    epochs = max(2, int(round(EPOCHS_PER_10K * 10_000 / len(x))))
    model = Classifier(layers, float("nan"))
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH):
            index = order[start : start + BATCH]
            # light pixel noise: generated images are smoother and noisier than real ones
            noisy = (x[index] + 0.05 * torch.randn(x[index].shape, generator=generator)).clamp(0, 1)
            with torch.enable_grad():
                h = noisy
                for layer in layers[:-1]:
                    h = torch.relu(layer(h))
                loss = torch.nn.functional.cross_entropy(layers[-1](h), y[index])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    model.accuracy = accuracy(model, data)
    return model


def accuracy(model: Classifier, data: Dataset) -> float:
    _, logits = model.features_and_logits(torch.from_numpy(np.array(data.heldout)))
    return float((logits.argmax(-1).numpy() == data.heldout_labels).mean())


def to_bytes(model: Classifier) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state": [layer.state_dict() for layer in model.layers], "accuracy": model.accuracy}, buffer)
    return buffer.getvalue()


def from_bytes(payload: bytes) -> Classifier:
    saved = torch.load(io.BytesIO(payload), weights_only=True)
    layers = []
    for state in saved["state"]:
        layer = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        layer.load_state_dict(state)
        layers.append(layer)
    return Classifier(layers, float(saved["accuracy"]))


def get(data: Dataset) -> Classifier:
    """The classifier of ``data``: the one :func:`prepare` loaded, else trained in this process."""
    name = key(data)
    if name not in _CACHE:
        _CACHE[name] = train(data)
    return _CACHE[name]


def prepare(data: Dataset, location: str, *, write: bool = True) -> Classifier:
    """Load the classifier cached next to the results at ``location`` (a path or URI), training
    and writing it first if it is missing and ``write`` is true."""
    from sweep.store import Store

    store = Store(location)
    name = key(data)
    path = f"{store.root}/classifier/{name}.pt"
    payload = _read(store, path)
    if payload is None:
        model = get(data)
        if not write:
            return model
        folder = path.rsplit("/", 1)[0]
        temporary = f"{folder}/.{name}.tmp-{uuid.uuid4().hex}"
        store.fs.create_dir(folder, recursive=True)
        with store.fs.open_output_stream(temporary) as stream:
            stream.write(to_bytes(model))
        store.fs.move(temporary, path)
        payload = _read(store, path)  # another task may have won the race: use its copy
    _CACHE[name] = from_bytes(payload)
    return _CACHE[name]


def _read(store, path: str) -> bytes | None:
    import pyarrow as pa

    try:
        with store.fs.open_input_stream(path) as stream:
            return stream.read()
    except (OSError, pa.ArrowException):
        return None
