"""What the VAE and WGAN families share: real data as the truth, training sets as tensors on the
device, evaluation (metrics and events) of generated images, sample grids next to the results.

A block's B models are trained together as one batched model (:mod:`.layers`); its training sets
are tensors of shape (B, m, D) on the device, kept there between generations through the data
hooks of :class:`~sweep.families.base.Family` (``concat``, ``subsample_data``, ``data_size``,
``new_pool``). Torch is imported only inside methods: the driver parses and validates specs
without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweep.errors import SpecError
from sweep.families._neural import images as _images
from sweep.families._neural.data import load as load_data
from sweep.families._neural.events import NeuralEvents
from sweep.families.base import Cost, EventKind, Family, Resources

GALLERY = _images.GRID * _images.GRID


@dataclass
class Truth:
    """The true distribution: the real training pool (the same for every chain)."""

    batch: int


@dataclass
class Model:
    """B fitted models (parameters stacked on a leading chain axis, CPU tensors so that a state
    pickles anywhere), with what evaluation needs.

    ``eval_seeds`` seed the generated images every metric of this generation is computed on;
    ``diverged`` marks chains whose training loss became non-finite; ``gallery`` keeps uint8
    sample grids of earlier generations (:func:`images.gallery_generation`).
    """

    state: dict[str, Any]
    generation: int
    eval_seeds: np.ndarray
    diverged: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    gallery: dict[int, np.ndarray] = field(default_factory=dict)
    evaluation: dict[str, np.ndarray] | None = None

    @property
    def batch(self) -> int:
        return self.eval_seeds.shape[0]


class NeuralFamily(Family):
    """Base of the neural families; subclasses define the network, its training and sampling."""

    sufficient = False
    max_block_size = 32
    checkpoint_every = 5
    resources = Resources(num_cpus=1.0)
    spread_metric = None
    distance_metric = "frechet_distance"
    common_events = (
        EventKind(
            "classes_below",
            "fewer digit classes than the threshold hold >= 1% of the generated images (mode collapse)",
            default=(),
            descending=True,
        ),
        EventKind(
            "distance_above",
            "Frechet distance (classifier features) to held-out real images above the threshold",
            collapse=False,
        ),
    )
    #: Metric columns the subclass adds to the image metrics (name -> meaning).
    model_columns: dict[str, str] = {}

    # -- spec -------------------------------------------------------------------------------
    def check_cell(self, point: Any) -> None:
        pool = len(load_data(self.spec.data).pool)
        if point.n > pool:
            raise SpecError(
                point.where("n"),
                f"an integer <= {pool} (the real training pool: generation 1 draws n real images without replacement)",
                point.n,
            )
        if point.n < 2:
            raise SpecError(point.where("n"), "an integer >= 2", point.n)

    def check_sweep(self, sweep: Any) -> None:
        data = load_data(self.spec.data)
        if data.pool_labels is None:
            for name in ("classes_below", "distance_above"):
                if sweep.events[name]:
                    raise SpecError(
                        f"events.{name}",
                        "no thresholds: the data have no labels, so there is no classifier (give family.data.labels)",
                        list(sweep.events[name]),
                    )

    # -- shared state -------------------------------------------------------------------------
    @property
    def data(self):
        return load_data(self.spec.data)

    @property
    def device(self):
        from sweep.families._neural.torchkit import device_for

        return device_for(self.spec.device)

    def new_net(self, width: int, hidden: tuple[int, ...], random: Any, *, up: bool) -> Any:
        """A fresh network per chain (``architecture``): images to ``width`` values (``up``
        false: encoder, critic) or ``width`` latent values to image logits (``up``: decoder,
        generator), through ``hidden``."""
        from sweep.families._neural import nets

        if self.spec.architecture == "conv":
            side = self.data.shape[0]
            return nets.ConvNet.init(side, self.spec.channels, hidden, width, random, up=up)
        dim = self.data.dim
        return nets.MLP.init((width,) + tuple(hidden) + (dim,) if up else (dim,) + tuple(hidden) + (width,), random)

    def net(self, state: dict[str, Any], prefix: str, device: Any, *, trainable: bool = True) -> Any:
        """A network back from a model's state (copies on ``device``)."""
        from sweep.families._neural import nets

        return nets.from_state(state, prefix, device, side=self.data.shape[0], trainable=trainable)

    def eval_size(self) -> int:
        return min(self.spec.eval_samples, len(self.data.heldout))

    def reference(self):
        from sweep.families._neural import classifier, metrics

        data = self.data
        model = classifier.get(data) if data.pool_labels is not None else None
        return metrics.reference(data, self.eval_size(), self.device, model)

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> Truth:
        return Truth(batch)

    def sample(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Any:
        """m images per chain, (B, m, D) on the device: real ones drawn without replacement from
        the training pool (the truth), or the model's samples (tempered, see the subclass)."""
        import torch

        if isinstance(params, Truth):
            pool = self.data.pool
            keys = rng.random((params.batch, len(pool)))
            index = np.argpartition(keys, m - 1, axis=1)[:, :m] if m < len(pool) else np.argsort(keys, axis=1)
            return torch.from_numpy(pool[np.sort(index, axis=1)]).to(self.device)
        from sweep.families._neural.torchkit import ChainRandom, chain_seeds, single_thread

        random = ChainRandom(chain_seeds(rng, params.batch), self.device)
        with torch.no_grad(), single_thread():
            return self.generate(params, m, random, temperature)

    def generate(self, params: Model, m: int, random: Any, temperature: float) -> Any:
        """The model's m samples per chain (B, m, D) from the per-chain generators ``random``."""
        raise NotImplementedError

    def fit(self, data: Any, *, previous: Any = None, rng: np.random.Generator | None = None) -> Model:
        from sweep.families._neural.torchkit import chain_seeds

        batch = data.shape[0]
        train_seeds = chain_seeds(rng, batch)
        eval_seeds = chain_seeds(rng, batch)
        warm = previous if isinstance(previous, Model) and self.spec.warm_start else None
        from sweep.families._neural.torchkit import single_thread

        with single_thread():
            model = self.train(data.to(self.device), train_seeds, warm, previous)
        model.generation = previous.generation + 1 if isinstance(previous, Model) else 1
        model.eval_seeds = eval_seeds
        if isinstance(previous, Model):
            model.gallery = dict(previous.gallery)
            model.diverged |= previous.diverged
        if _images.gallery_generation(model.generation):
            model.gallery[model.generation] = self.evaluation(model)["_gallery"]
        return model

    def train(self, data: Any, seeds: np.ndarray, warm: Model | None, previous: Any) -> Model:
        """Train B models on data (B, m, D), each chain from its seed; ``warm``: the previous
        generation's models to continue from (warm_start), else None."""
        raise NotImplementedError

    # -- data representation: tensors on the device -------------------------------------------
    def concat(self, a: Any, b: Any) -> Any:
        import torch

        return torch.cat([a, b.to(a.device)], dim=1)

    def subsample_data(self, data: Any, m: int, *, rng: np.random.Generator) -> Any:
        import torch

        from sweep.engine import _distinct_indices

        batch, total = data.shape[:2]
        if m >= total:
            return data
        if 4 * m > total:
            index = np.argpartition(rng.random((batch, total)), m - 1, axis=1)[:, :m]
        else:
            index = _distinct_indices(batch, total, m, rng)
        from sweep.families._neural.torchkit import gather_rows

        return gather_rows(data, torch.from_numpy(np.ascontiguousarray(index)).to(data.device))

    def data_size(self, data: Any) -> int:
        return int(data.shape[1])

    def new_pool(self, first: Any, capacity: int) -> Any:
        from sweep.families._neural.torchkit import TensorPool

        return TensorPool(first, capacity)

    # -- evaluation --------------------------------------------------------------------------
    def evaluation(self, params: Any) -> dict[str, np.ndarray]:
        """Every metric of ``params`` (computed once per generation and kept on the params),
        plus ``_gallery``: the first 64 evaluation images as uint8 (B, 64, D)."""
        if isinstance(params, Truth):
            return _broadcast(self._truth_evaluation(), params.batch)
        if params.evaluation is None:
            import torch

            from sweep.families._neural import metrics
            from sweep.families._neural.torchkit import ChainRandom, single_thread

            with single_thread():
                ref = self.reference()
                random = ChainRandom(params.eval_seeds, self.device)
                with torch.no_grad():
                    images = self.generate(params, self.eval_size(), random, 1.0)
                out = metrics.evaluate(images, ref)
                out.update(self.model_metrics(params, images, ref, random))
            out["_gallery"] = _images.to_uint8(images[:, :GALLERY].cpu().numpy())
            params.evaluation = out
        return params.evaluation

    def _truth_evaluation(self) -> dict[str, np.ndarray]:
        cache = self.__dict__.get("_truth_cache")
        if cache is None:
            import torch

            from sweep.families._neural import metrics
            from sweep.families._neural.torchkit import single_thread

            with single_thread():
                data, ref = self.data, self.reference()
                real = torch.from_numpy(np.array(data.pool[: self.eval_size()]))[None].to(self.device)
                cache = metrics.evaluate(real, ref)
            cache.update({name: np.full(1, np.nan) for name in self.model_columns})
            cache["_gallery"] = _images.to_uint8(real[:, :GALLERY].cpu().numpy())
            self.__dict__["_truth_cache"] = cache
        return cache

    def model_metrics(self, params: Model, images: Any, ref: Any, random: Any) -> dict[str, np.ndarray]:
        """The subclass's own metrics (``model_columns``) of this generation."""
        return {}

    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.evaluation(params).items() if not k.startswith("_")}

    def events(self, batch: int, horizon: int, spec: Any) -> NeuralEvents:
        return NeuralEvents(self, batch, horizon, spec)

    # -- files next to the results ---------------------------------------------------------------
    def prepare(self, location: str, *, write: bool = True) -> None:
        """Load (or train and save) the digit classifier cached next to the results."""
        data = self.data
        if data.pool_labels is not None:
            from sweep.families._neural import classifier
            from sweep.families._neural.torchkit import single_thread

            with single_thread():
                classifier.prepare(data, location, write=write)

    def block_finished(self, location: str, cell: Any, replicates: np.ndarray, state: Any) -> None:
        """Write the block's sample grids (every kept generation and the last) as PNGs."""
        params = state.params
        if not isinstance(params, Model):
            return
        shape, scale = self.data.shape, _images.scale_for(self.data.shape)
        galleries = dict(params.gallery)
        galleries[params.generation] = self.evaluation(params)["_gallery"]
        folder = f"samples/cell={cell.index}"
        files = {f"{folder}/real.png": _images.png(_images.tile(self._truth_evaluation()["_gallery"][0], shape), scale)}
        for generation, grids in sorted(galleries.items()):
            for row, replicate in enumerate(replicates):
                files[f"{folder}/replicate={int(replicate)}/generation-{generation}.png"] = _images.png(
                    _images.tile(grids[row], shape), scale
                )
        _images.write(location, files)

    # -- sizing -------------------------------------------------------------------------------
    def block_width(self, n: int, policy: Any) -> float:
        # Training cost, not array width, sets a neural block: every cell gets max_block_size
        # chains (a width of 1 keeps even accumulating cells at that size).
        return 1.0

    def bytes_per_chain(self, n: int, policy: Any, generations: int) -> float:
        kept = n * (generations + 1) if policy.grows else 2 * n
        return 4.0 * self.data.dim * kept + 4.0 * 1e5


def _broadcast(values: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    return {k: np.repeat(v, batch, axis=0) for k, v in values.items()}


def cost(family: NeuralFamily, n: int, policy: Any, generations: int, *, steps: float, width: float) -> Cost:
    """A rough cost: ``steps`` training steps per generation of a network of ``width`` hidden
    units per layer, batched (about 2e-4 s per chain and step at width 128 on one core)."""
    per_generation = steps * 2e-4 * max(width, 16.0) / 128.0 + 0.05
    return Cost(per_generation, family.bytes_per_chain(n, policy, generations), width=1.0)


def steps_per_epoch(m: int, batch_size: int) -> int:
    return max(1, math.ceil(m / batch_size))
