"""The networks of the neural families behind one interface: batched MLPs (:mod:`.layers`) and
small batched conv nets for square images (``architecture: conv``).

A conv net is B stacked networks like the MLPs: every weight has a leading chain axis, and a
block's B networks run as one grouped convolution (``groups=B``: chain b's channels see only
chain b's filters). Two directions:

- ``down`` (encoder, critic): an image (side S) through stride-2 4x4 convolutions (side halves
  at each, channels ``channels``), flattened, then an MLP head (``hidden`` then the output);
- ``up`` (decoder, generator): a latent through an MLP head (``hidden`` then C * s * s, s = S /
  2^L) and stride-2 4x4 transposed convolutions back to one channel of side S.

Activations follow every layer but the last. Weights start as PyTorch's defaults (uniform in
+-1/sqrt(fan_in), fan_in as ``nn.Conv2d`` and ``nn.ConvTranspose2d`` compute it), each chain
from its own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from sweep.families._neural import layers as L
from sweep.families._neural.torchkit import ChainRandom

KERNEL, STRIDE, PADDING = 4, 2, 1  # each convolution halves the side, each transposed one doubles it


class MLP:
    """A batched MLP (:mod:`.layers`) behind the network interface."""

    def __init__(self, layers: list[L.Layer]):
        self.layers = layers

    @classmethod
    def init(cls, sizes: Sequence[int], random: ChainRandom) -> MLP:
        return cls(L.init_mlp(sizes, random))

    def forward(self, x: torch.Tensor, activation: Callable, weights: Sequence[torch.Tensor] | None = None):
        return L.forward(self.layers, x, activation, weights)

    def parameters(self) -> list[torch.Tensor]:
        return L.parameters(self.layers)

    def matrices(self) -> list[torch.Tensor]:
        """Every weight as a (B, in, out) matrix (spectral normalisation), in ``forward``'s order."""
        return [w for w, _ in self.layers]

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return L.state(self.layers, prefix)


class ConvNet:
    """B stacked conv nets (see the module docstring); ``convs`` weights are (B, out, in, 4, 4)
    (``down``) or (B, in, out, 4, 4) (``up``), biases (B, out)."""

    def __init__(self, convs: list[L.Layer], head: list[L.Layer], side: int, up: bool):
        self.convs, self.head, self.side, self.up = convs, head, side, up

    @classmethod
    def init(
        cls, side: int, channels: Sequence[int], hidden: Sequence[int], out: int, random: ChainRandom, *, up: bool
    ) -> ConvNet:
        """A ``down`` net from 1 x side x side images to ``out`` values, or an ``up`` net from
        ``out`` latent values to such images."""
        small = side >> len(channels)
        flat = channels[-1] * small * small
        convs = []
        if up:
            head = L.init_mlp((out,) + tuple(hidden) + (flat,), random)
            path = tuple(channels[::-1]) + (1,)
            for c_in, c_out in zip(path[:-1], path[1:]):
                bound = 1.0 / math.sqrt(c_out * KERNEL * KERNEL)  # ConvTranspose2d's fan_in: weight.size(1) * k * k
                convs.append(_pair(random, (c_in, c_out, KERNEL, KERNEL), c_out, bound))
        else:
            path = (1,) + tuple(channels)
            for c_in, c_out in zip(path[:-1], path[1:]):
                bound = 1.0 / math.sqrt(c_in * KERNEL * KERNEL)
                convs.append(_pair(random, (c_out, c_in, KERNEL, KERNEL), c_out, bound))
            head = L.init_mlp((flat,) + tuple(hidden) + (out,), random)
        return cls(convs, head, side, up)

    def layers(self) -> list[L.Layer]:
        return self.head + self.convs if self.up else self.convs + self.head

    def parameters(self) -> list[torch.Tensor]:
        return L.parameters(self.layers())

    def matrices(self) -> list[torch.Tensor]:
        """Every weight as a (B, in, out) matrix: a convolution's (out, in * 4 * 4) reshaped, as
        Miyato et al. normalise it (``down`` nets)."""
        convs = [w.flatten(2).transpose(1, 2) for w, _ in self.convs]
        heads = [w for w, _ in self.head]
        return heads + convs if self.up else convs + heads

    def forward(self, x: torch.Tensor, activation: Callable, weights: Sequence[torch.Tensor] | None = None):
        """(B, k, in) to (B, k, out): images are rows of S * S pixels."""
        conv_weights = [w for w, _ in self.convs]
        head_weights = None
        if weights is not None:  # matrices (spectral normalisation) back to the convolutions' shapes
            split = len(self.head) if self.up else len(self.convs)
            convs, heads = (weights[split:], weights[:split]) if self.up else (weights[:split], weights[split:])
            conv_weights = [m.transpose(1, 2).reshape(w.shape) for m, (w, _) in zip(convs, self.convs)]
            head_weights = list(heads)
        batch, k = x.shape[:2]
        last = len(self.convs) - 1
        if self.up:
            h = activation(L.forward(self.head, x, activation, head_weights))
            channels = self.convs[0][0].shape[1]
            small = self.side >> len(self.convs)
            h = h.transpose(0, 1).reshape(k, batch * channels, small, small)
            for i, ((_, bias), weight) in enumerate(zip(self.convs, conv_weights)):
                h = F.conv_transpose2d(
                    h, weight.flatten(0, 1), bias.reshape(-1), stride=STRIDE, padding=PADDING, groups=batch
                )
                if i < last:
                    h = activation(h)
            return h.reshape(k, batch, self.side * self.side).transpose(0, 1).contiguous()
        h = x.transpose(0, 1).reshape(k, batch, self.side, self.side)
        for (_, bias), weight in zip(self.convs, conv_weights):
            h = F.conv2d(h, weight.flatten(0, 1), bias.reshape(-1), stride=STRIDE, padding=PADDING, groups=batch)
            h = activation(h)
        h = h.reshape(k, batch, -1).transpose(0, 1)
        return L.forward(self.head, h, activation, head_weights)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        tag = "up" if self.up else "down"
        out = {f"{prefix}.{tag}.{i}.{name}": t for i, pair in enumerate(self.convs) for name, t in zip("wb", pair)}
        out.update(L.state(self.head, prefix))
        return out


def _pair(random: ChainRandom, shape: tuple[int, ...], out: int, bound: float) -> L.Layer:
    weight = random.uniform(*shape, low=-bound, high=bound)
    bias = random.uniform(out, low=-bound, high=bound)
    return weight.requires_grad_(), bias.requires_grad_()


def from_state(
    tensors: dict[str, torch.Tensor], prefix: str, device: torch.device, *, side: int, trainable: bool = True
) -> MLP | ConvNet:
    """A network back from its ``state(prefix)`` (copies on ``device``); ``side``: the images'."""
    head = L.from_state(tensors, prefix, device, trainable=trainable)
    for tag in ("down", "up"):
        if f"{prefix}.{tag}.0.w" in tensors:
            convs = L.from_state(tensors, f"{prefix}.{tag}", device, trainable=trainable)
            return ConvNet(convs, head, side, tag == "up")
    return MLP(head)
