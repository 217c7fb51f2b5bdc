"""Input gradients of a batched leaky-ReLU MLP critic, written out (the WGAN-GP penalty).

For f(x) = a_L, a_i = h_{i-1} W_i + b_i, h_i = leaky_relu(a_i), the input gradient is
grad_x f = (((W_L^T * s_{L-1}) W_{L-1}^T) * s_{L-2}) ... W_1^T, with s_i the leaky ReLU's slope
at a_i (1 where a_i > 0, else 0.2, as ``leaky_relu_backward`` takes it). The slopes are piecewise
constant, so the penalty's gradient with respect to the weights flows only through the W's.

Why not ``torch.autograd.grad(..., create_graph=True)``: autograd's double backward also sends
(all-zero) gradients back through the forward pass at the interpolates (the slope's derivative
is zero but autograd still computes it) and keeps a graph of the forward. Written out, the
penalty costs one no-grad forward for the slopes and L - 1 matrix products with their backward
(with one critic pass over generated and real rows together, a 32-chain WGAN-GP training step
took 1.6x less time than autograd's penalty and two passes; bench/bench_neural.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sweep.families._neural.layers import Layer

SLOPE = 0.2  # the critic's leaky ReLU (layers.leaky_relu)


def mlp_gradient_norms(
    critic: Sequence[Layer], x: torch.Tensor, weights: Sequence[torch.Tensor] | None = None
) -> torch.Tensor:
    """|grad_x f(x)| for every row of x (B, k, D), as a (B, k) tensor differentiable with respect
    to the critic's weights (``weights`` replaces them when given), not to x.

    The critic is a batched MLP (:mod:`.layers`) with leaky ReLU (slope 0.2) activations and one
    output.
    """
    ws = [w for w, _ in critic] if weights is None else list(weights)
    slopes = []  # the pre-activations a_i at x
    with torch.no_grad():  # the slopes at x: a plain forward without a graph
        h = x
        for (_, bias), w in zip(critic[:-1], ws[:-1]):
            a = torch.bmm(h, w).add_(bias)
            slopes.append(a)
            h = torch.nn.functional.leaky_relu(a, SLOPE)
    grad = ws[-1].transpose(1, 2)  # (B, 1, H): d f / d h_{L-1}, the same for every row
    for a, w in zip(reversed(slopes), reversed(ws[:-1])):
        # leaky_relu_backward: grad where a > 0, else 0.2 grad, in one kernel; differentiable in
        # grad, and a (computed without a graph) gets no gradient
        grad = torch.bmm(torch.ops.aten.leaky_relu_backward(grad.expand_as(a), a, SLOPE, False), w.transpose(1, 2))
    return grad.norm(dim=-1).expand(x.shape[0], x.shape[1])  # (a critic without hidden layers: constant)
