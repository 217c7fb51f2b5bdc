"""A small causal transformer for B chains at once: every weight has the chain as its leading
dimension, so one batched matrix product trains or runs all the chains' models together.

Imported only by the transformer family (it imports torch). The model is GPT-style: token and
position embeddings, pre-norm blocks of causal multi-head attention and a 4x MLP, a final layer
norm, and an output layer tied to the token embedding. Its inputs are windows of ``context``
tokens; token id V is BOS (an input only, never predicted).

Randomness comes from numpy draws of the block's generator (initial weights, minibatch orders):
torch's own generators are never used, so a chain's weights depend only on its stream. The loss
of a block is the sum of its chains' mean losses and Adam is elementwise, so each chain trains as
it would alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

INIT_STD = 0.02
# cuBLAS is deterministic only with a fixed workspace; it reads this when a process first uses it
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass(frozen=True)
class Shape:
    vocab: int  # V predicted tokens (the input vocabulary is V + 1, with BOS)
    context: int
    width: int
    heads: int
    layers: int

    def sizes(self) -> dict[str, tuple[int, ...]]:
        """Every weight's shape for one chain, in a fixed order (the order of the initial draw)."""
        d, out = self.width, {"token": (self.vocab + 1, self.width), "position": (self.context, self.width)}
        for i in range(self.layers):
            out.update(
                {
                    f"{i}.norm1.w": (d,),
                    f"{i}.norm1.b": (d,),
                    f"{i}.qkv": (d, 3 * d),
                    f"{i}.qkv.b": (3 * d,),
                    f"{i}.proj": (d, d),
                    f"{i}.proj.b": (d,),
                    f"{i}.norm2.w": (d,),
                    f"{i}.norm2.b": (d,),
                    f"{i}.fc": (d, 4 * d),
                    f"{i}.fc.b": (4 * d,),
                    f"{i}.out": (4 * d, d),
                    f"{i}.out.b": (d,),
                }
            )
        out.update({"norm.w": (d,), "norm.b": (d,)})
        return out

    def parameters(self) -> int:
        return sum(math.prod(s) for s in self.sizes().values())


@contextmanager
def deterministic(threads: int = 1) -> Iterator[None]:
    """Deterministic algorithms on one thread (results independent of the machine's core count),
    restoring the caller's settings afterwards. With a GPU in use, an operation without a
    deterministic CUDA kernel warns instead of failing the run."""
    before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.set_num_threads(threads)
    _set_deterministic(True, warn_only=torch.cuda.is_available())
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        _set_deterministic(before[1], warn_only=before[2])


def _set_deterministic(mode: bool, warn_only: bool = False) -> None:
    # torch.use_deterministic_algorithms also sets the flag of the compiler (inductor), importing it
    # (seconds per process); no model here is compiled, so set the flag eager ops read directly.
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


def initial_weights(shape: Shape, normals: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    """Weights from standard normals (B, P): N(0, 0.02^2) matrices and embeddings (the residual
    projections scaled by 1/sqrt(2 layers), as GPT-2), unit norms, zero biases."""
    weights, offset = {}, 0
    for name, size in shape.sizes().items():
        count = math.prod(size)
        chunk = torch.as_tensor(normals[:, offset : offset + count], dtype=torch.float32).reshape((-1,) + size)
        offset += count
        if name.endswith(".w"):
            value = torch.ones_like(chunk)
        elif name.endswith(".b"):
            value = torch.zeros_like(chunk)
        else:
            std = INIT_STD / math.sqrt(2 * shape.layers) if name.endswith((".proj", ".out")) else INIT_STD
            value = chunk * std
        weights[name] = value.to(device)
    return weights


def _norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (w.shape[-1],)
    return (x - mean) / torch.sqrt(var + 1e-5) * w.reshape(shape) + b.reshape(shape)


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (B, ..., d) @ w (B, d, k) + b (B, k), one batched product over the chains."""
    B = x.shape[0]
    flat = torch.bmm(x.reshape(B, -1, x.shape[-1]), w) + b[:, None, :]
    return flat.reshape(x.shape[:-1] + (w.shape[-1],))


def forward(
    weights: dict[str, torch.Tensor], shape: Shape, tokens: torch.Tensor, *, last: bool = False
) -> torch.Tensor:
    """Logits (B, N, T, V) for input windows ``tokens`` (B, N, T), T <= context; ``last``: only
    the last position's (B, N, 1, V), which is all decoding needs (the output layer over the
    vocabulary is most of a word-level model's work)."""
    B, N, T = tokens.shape
    d, h = shape.width, shape.heads
    chain = torch.arange(B, device=tokens.device)[:, None, None]
    x = weights["token"][chain, tokens] + weights["position"][:, None, :T, :]
    mask = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
    for i in range(shape.layers):
        y = _norm(x, weights[f"{i}.norm1.w"], weights[f"{i}.norm1.b"])
        q, k, v = _linear(y, weights[f"{i}.qkv"], weights[f"{i}.qkv.b"]).reshape(B, N, T, 3, h, d // h).unbind(3)
        scores = torch.einsum("bnthe,bnshe->bnhts", q, k) / math.sqrt(d // h)
        attention = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        y = torch.einsum("bnhts,bnshe->bnthe", attention, v).reshape(B, N, T, d)
        x = x + _linear(y, weights[f"{i}.proj"], weights[f"{i}.proj.b"])
        y = _norm(x, weights[f"{i}.norm2.w"], weights[f"{i}.norm2.b"])
        y = torch.nn.functional.gelu(_linear(y, weights[f"{i}.fc"], weights[f"{i}.fc.b"]))
        x = x + _linear(y, weights[f"{i}.out"], weights[f"{i}.out.b"])
    if last:
        x, T = x[:, :, -1:, :], 1
    x = _norm(x, weights["norm.w"], weights["norm.b"])
    # tied output layer: the token embedding without BOS
    return torch.bmm(x.reshape(B, -1, d), weights["token"][:, : shape.vocab].transpose(1, 2)).reshape(
        B, N, T, shape.vocab
    )


def windows(blocks: np.ndarray, context: int, bos: int) -> tuple[np.ndarray, np.ndarray]:
    """Training windows of blocks (B, S, L): inputs and targets (B, S L / context, context) of the
    sequence BOS + block, cut at multiples of ``context`` (a window sees only its own tokens)."""
    B, S, L = blocks.shape
    sequence = np.concatenate([np.full((B, S, 1), bos, dtype=np.int64), blocks.astype(np.int64)], axis=2)
    inputs = sequence[:, :, :L].reshape(B, S * (L // context), context)
    targets = sequence[:, :, 1:].reshape(B, S * (L // context), context)
    return inputs, targets


def train(
    weights: dict[str, torch.Tensor],
    shape: Shape,
    inputs: np.ndarray,
    targets: np.ndarray,
    order: np.ndarray,
    *,
    batch_size: int,
    learning_rate: float,
) -> np.ndarray:
    """Train in place with Adam on windows (B, W, context) in the minibatch ``order`` (B, E, W):
    epochs of ceil(W / batch_size) steps; return each chain's mean loss over its last epoch."""
    device = weights["token"].device
    x, y = torch.as_tensor(inputs, device=device), torch.as_tensor(targets, device=device)
    params = [w.requires_grad_(True) for w in weights.values()]
    optimiser = torch.optim.Adam(params, lr=learning_rate, foreach=False)
    B, epochs, W = order.shape
    chain = torch.arange(B, device=device)[:, None]
    last = torch.zeros(B, dtype=torch.float64, device=device)
    for epoch in range(epochs):
        last.zero_()
        for start in range(0, W, batch_size):
            pick = torch.as_tensor(order[:, epoch, start : start + batch_size], device=device)
            logits = forward(weights, shape, x[chain, pick])
            loss = (
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, shape.vocab), y[chain, pick].reshape(-1), reduction="none"
                )
                .reshape(B, -1)
                .mean(1)
            )
            optimiser.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimiser.step()
            last += loss.detach().double() * pick.shape[1]
    for w in params:
        w.requires_grad_(False)
    return (last / W).cpu().numpy()


@torch.no_grad()
def log_probs(weights: dict[str, torch.Tensor], shape: Shape, blocks: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Log-probability of every token of blocks (B, S, L) under each chain's model (windows as in
    training), in chunks of ``chunk`` windows per chain."""
    inputs, targets = windows(blocks, shape.context, shape.vocab)  # BOS = V
    device = weights["token"].device
    out = []
    for start in range(0, inputs.shape[1], chunk):
        x = torch.as_tensor(inputs[:, start : start + chunk], device=device)
        y = torch.as_tensor(targets[:, start : start + chunk], device=device)
        logp = forward(weights, shape, x).log_softmax(-1).gather(-1, y[..., None])[..., 0]
        out.append(logp.double().cpu().numpy())
    B, S, L = blocks.shape
    return np.concatenate(out, axis=1).reshape(B, S, L)
