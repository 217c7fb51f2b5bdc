"""A small causal transformer retrained on its own text (Shumailov et al. 2024, at laptop scale).

Each generation trains a GPT-style transformer (:mod:`sweep.families._text.torch_model`: layers,
heads, width and context in the spec; about 300,000 parameters by default, most of them the
word embedding) on the generation's blocks for ``epochs`` passes with Adam, either from the
chain's fixed initialisation (drawn once, at generation 1) or, with ``warm_start: true``, from the
previous generation's weights, as Shumailov et al. fine-tune one pretrained model generation after
generation. All the chains of a block train at once: every weight has the chain as its leading
dimension (``max_block_size`` bounds how many).

Decoding (:mod:`sweep.families._text.decoding`): sampling with temperature, top-k, top-p and a
repetition penalty, or beam search (``num_beams`` > 1, deterministic, with the repetition
penalty; Shumailov et al. use 5 beams and a penalty of 3.0). Perplexity is the model's own on the
held-out split (windows as in training). torch is imported only when the family first computes.

Randomness: the initial weights and each epoch's minibatch order are numpy draws of the block's
generator, and sampling inverts each token's distribution at one uniform of it, so torch's global
generator is never used. Computation runs on one thread with deterministic algorithms: on CPU a
generation replays bit for bit. On a GPU (when Ray gives the task one and ``device`` is ``auto``)
results are reproducible on the same hardware and software only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.families._text.family import TEXT_METRICS, TextFamily
from sweep.families._text.spec import TEXT_FIELDS, TextSpec, parse_text
from sweep.families.base import Cost

MODEL_FIELDS = (
    "layers",
    "heads",
    "width",
    "context",
    "epochs",
    "batch_size",
    "learning_rate",
    "warm_start",
    "num_beams",
    "repetition_penalty",
    "device",
    "model",
)


@dataclass(frozen=True)
class TransformerSpec:
    """The text and decoding (:class:`TextSpec`), the network and how it trains and decodes."""

    text: TextSpec
    layers: int = 2
    heads: int = 4
    width: int = 64
    context: int = 32
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 3e-3
    warm_start: bool = False
    num_beams: int = 1
    repetition_penalty: float = 1.0
    device: str = "auto"
    model: Any = None  # {path: DIR}: a Hugging Face causal LM (see sweep.families._text.hf)

    def to_raw(self) -> dict[str, Any]:
        raw = {
            **self.text.to_raw(),
            "layers": self.layers,
            "heads": self.heads,
            "width": self.width,
            "context": self.context,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "warm_start": self.warm_start,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
            "device": self.device,
        }
        if self.model is not None:
            raw["model"] = self.model.to_raw()
        return raw


@dataclass
class Weights:
    """B chains' weights (CPU tensors when pickled), their fixed initialisation (None once not
    needed) and each chain's mean training loss over the last epoch."""

    weights: dict
    init: dict | None
    loss: np.ndarray

    def __getstate__(self) -> dict[str, Any]:
        def cpu(tensors):
            return None if tensors is None else {k: v.detach().cpu() for k, v in tensors.items()}

        return {"weights": cpu(self.weights), "init": cpu(self.init), "loss": self.loss}


class TransformerFamily(TextFamily):
    """A batched causal transformer retrained every generation (see the module docstring)."""

    name = "transformer"
    spec_fields = TEXT_FIELDS + MODEL_FIELDS
    metric_columns = {**TEXT_METRICS, "train_loss": "mean training cross-entropy over the last epoch, nats per token"}
    checkpoint_every = 5
    max_block_size = 32

    @classmethod
    def parse_spec(cls, section: fields.Section) -> TransformerSpec:
        model = None
        if section.has("model"):
            from sweep.families._text.hf import parse_model

            model = section.take("model", parse_model)
        text = parse_text(section, sequence_length=32, model=None if model is None else model.path)
        spec = TransformerSpec(
            text=text,
            layers=section.take("layers", fields.integer(1, 64), 2),
            heads=section.take("heads", fields.integer(1, 64), 4),
            width=section.take("width", fields.integer(1, 8192), 64),
            context=section.take("context", fields.integer(1, 100_000), text.sequence_length),
            epochs=section.take("epochs", fields.integer(1, 10_000), 3),
            batch_size=section.take("batch_size", fields.integer(1, 1_000_000), 16),
            learning_rate=section.take("learning_rate", fields.number(0.0, 10.0, low_open=True), 3e-3),
            warm_start=section.take("warm_start", fields.boolean, False),
            num_beams=section.take("num_beams", fields.integer(1, 64), 1),
            repetition_penalty=section.take("repetition_penalty", fields.number(0.0, None, low_open=True), 1.0),
            device=section.take("device", fields.choice("auto", "cpu", "cuda"), "auto"),
            model=model,
        )
        if spec.width % spec.heads:
            raise SpecError(section.sub("heads"), f"a divisor of width = {spec.width}", spec.heads)
        L = text.sequence_length
        if spec.context > L or L % spec.context:
            raise SpecError(
                section.sub("context"),
                f"a context length that divides the training blocks' sequence_length = {L} (at most {L})",
                spec.context,
            )
        if model is not None:
            from sweep.families._text.hf import max_positions

            longest = max_positions(model.path)
            if longest is not None and spec.context + text.prompt > longest:
                raise SpecError(
                    section.sub("context"),
                    f"context + prompt within the model's {longest} positions",
                    spec.context + text.prompt,
                )
        return spec

    def __init__(self, spec: TransformerSpec):
        super().__init__(spec)
        self.settings = spec

    @property
    def model_folder(self) -> str | None:
        return None if self.settings.model is None else self.settings.model.path

    @cached_property
    def hf(self) -> Any:
        """The pretrained model's backend (``model: {path: DIR}``), or None for the built-in model."""
        if self.settings.model is None:
            return None
        from sweep.families._text.hf import HFBackend

        return HFBackend(self.settings.model.path, self.device)

    @property
    def bos(self) -> int:
        return self.corpus.size if self.hf is None else self.hf.bos(self.corpus.size)

    def check_cell(self, point: Any) -> None:
        super().check_cell(point)
        sampled = point.temperature != 1.0 or self.text.top_k or self.text.top_p < 1.0
        if self.settings.num_beams > 1 and sampled:
            raise SpecError(
                point.where("family.num_beams"),
                "1 when the cell samples with a temperature, top_k or top_p (beam search is deterministic)",
                self.settings.num_beams,
            )

    @cached_property
    def shape(self) -> Any:
        from sweep.families._text.torch_model import Shape

        s = self.settings
        return Shape(vocab=self.corpus.size, context=s.context, width=s.width, heads=s.heads, layers=s.layers)

    @property
    def device(self) -> str:
        import torch

        if self.settings.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.settings.device

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("shape", None)
        state.pop("hf", None)
        return state

    # -- the text-family hooks ----------------------------------------------------------------
    def fit_model(self, blocks: np.ndarray, previous: Any, rng: Any) -> tuple[Any, np.ndarray]:
        from sweep.families._text import torch_model as tm

        s, B = self.settings, blocks.shape[0]
        inputs, targets = tm.windows(blocks, s.context, self.bos)
        with tm.deterministic():
            if self.hf is not None:
                order = rng.random((B, s.epochs, inputs.shape[1])).argsort(axis=2)
                fitted = self.hf.fit(
                    inputs,
                    targets,
                    order,
                    previous,
                    warm_start=s.warm_start,
                    batch_size=s.batch_size,
                    learning_rate=s.learning_rate,
                )
                finite = np.isfinite(fitted.loss)
                for b, state in enumerate(fitted.states):
                    finite[b] &= all(bool(torch_finite(v[None]).all()) for v in state.values() if v.is_floating_point())
                return fitted, finite
            if previous is None:
                init = tm.initial_weights(
                    self.shape, rng.standard_normal((B, self.shape.parameters()), dtype=np.float32), self.device
                )
            else:
                init = previous.init
            start = previous.weights if (s.warm_start and previous is not None) else init
            weights = {k: v.detach().clone().to(self.device) for k, v in start.items()}
            order = rng.random((B, s.epochs, inputs.shape[1])).argsort(axis=2)
            loss = tm.train(
                weights, self.shape, inputs, targets, order, batch_size=s.batch_size, learning_rate=s.learning_rate
            )
        finite = np.isfinite(loss)
        for w in weights.values():
            finite &= torch_finite(w)
        return Weights(weights, None if s.warm_start else init, loss), finite

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> Any:
        params = super().fit(data, previous=previous, rng=rng)
        params.extra = {"train_loss": params.model.loss}
        return params

    def generate(
        self, model: Any, blocks: int, *, rng: np.random.Generator, temperature: float, prompts: np.ndarray | None
    ) -> np.ndarray:
        from sweep.families._text import torch_model as tm

        B = model.loss.shape[0]
        uniforms = rng.random((B, blocks, self.length))  # drawn whatever the decoding: one draw per generation
        if self.hf is None:
            weights = {k: v.to(self.device) for k, v in model.weights.items()}
            return self._decode(
                lambda tokens: tm.forward(weights, self.shape, tokens, last=True), uniforms, prompts, temperature
            )
        return np.concatenate(
            [
                self._decode(
                    self.hf.runner(state),
                    uniforms[b : b + 1],
                    None if prompts is None else prompts[b : b + 1],
                    temperature,
                )
                for b, state in enumerate(model.states)
            ]
        )

    def _decode(self, run: Any, uniforms: np.ndarray, prompts: np.ndarray | None, temperature: float) -> np.ndarray:
        """Blocks (B', S, L) from a decoding model (B' chains) by sampling or beam search."""
        from sweep.families._text import decoding
        from sweep.families._text import torch_model as tm

        s = self.settings
        common = dict(
            vocab=self.corpus.size,
            context=s.context,
            prompts=prompts,
            repetition_penalty=s.repetition_penalty,
            device=self.device,
            bos=self.bos,
        )
        with tm.deterministic():
            if s.num_beams > 1:
                return decoding.beam_search(
                    run, length=self.length, shape=uniforms.shape[:2], num_beams=s.num_beams, **common
                )
            return decoding.sample(
                run, uniforms=uniforms, temperature=temperature, top_k=self.text.top_k, top_p=self.text.top_p, **common
            )

    def log_probs(self, model: Any, blocks: np.ndarray) -> np.ndarray:
        from sweep.families._text import torch_model as tm

        with tm.deterministic():
            if self.hf is not None:
                inputs, targets = tm.windows(blocks, self.settings.context, self.bos)
                B, S, L = blocks.shape
                return self.hf.log_probs(model.states, inputs, targets).reshape(B, S, L)
            return tm.log_probs({k: v.to(self.device) for k, v in model.weights.items()}, self.shape, blocks)

    def heldout_perplexity(self, model: Weights) -> tuple[np.ndarray, None]:
        held = self.corpus.heldout
        blocks = held[: held.size // self.length * self.length].reshape(1, -1, self.length)
        B = model.loss.shape[0]
        logp = self.log_probs(model, np.broadcast_to(blocks, (B,) + blocks.shape[1:]))
        return np.exp(-logp.mean(axis=(1, 2))), None

    def block_width(self, n: int, policy: Any) -> float:
        # a chain's training step touches its whole model: blocks of a few chains already fill a core
        return float(2**17)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        s = self.settings
        params = s.width * (self.corpus.size + 12 * s.width * s.layers)
        tokens = n * (4 if policy.grows else 1)
        flops = 6.0 * params * tokens * s.epochs + 2.0 * params * n * s.context / 2 * s.num_beams
        return Cost(flops / 5e9, 16.0 * params + 8.0 * tokens, width=2**17)


def torch_finite(tensor: Any) -> np.ndarray:
    """Per chain: every value of a (B, ...) tensor is finite."""
    import torch

    return torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1).cpu().numpy()
