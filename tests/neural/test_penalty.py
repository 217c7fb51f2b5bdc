"""The written-out gradient penalty: per-row input gradient norms of a batched leaky-ReLU MLP
critic and their gradients with respect to the weights equal autograd's double backward."""

from __future__ import annotations

import pytest
import torch

from sweep.families._neural import layers as L
from sweep.families._neural.penalty import mlp_gradient_norms
from sweep.families._neural.torchkit import ChainRandom

CPU = torch.device("cpu")


def autograd_norms(critic, x, weights=None):
    """The textbook penalty: torch.autograd.grad with create_graph (what mlp_gradient_norms replaces)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(L.forward(critic, x, L.leaky_relu, weights).sum(), x, create_graph=True)
    return grad.norm(dim=-1)


@pytest.mark.parametrize("sizes", [(6, 9, 7, 1), (6, 5, 1), (6, 1)])
def test_norms_and_weight_gradients_equal_autograd(sizes):
    """Norms and the gradients of a penalty sum (|g| - 1)^2 with respect to every weight and bias
    match autograd's double backward per chain (3 chains, 2-3 layers, and no hidden layer)."""
    random = ChainRandom([1, 2, 3], CPU)
    critic = [(3 * w.detach(), b.detach()) for w, b in L.init_mlp(sizes, random)]  # steep: slopes of both signs
    critic = [(w.requires_grad_(), b.requires_grad_()) for w, b in critic]
    x = random.normal(11, sizes[0])
    expected = autograd_norms(critic, x)
    ours = mlp_gradient_norms(critic, x)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    assert expected.std() > 0.05 or len(sizes) == 2  # not vacuous: rows see different slopes
    params = L.parameters(critic)
    want = torch.autograd.grad(((expected - 1) ** 2).sum(), params, allow_unused=True)
    got = torch.autograd.grad(((ours - 1) ** 2).sum(), params, allow_unused=True)
    for w, g, p in zip(want, got, params):
        if w is None:  # autograd leaves biases out only when they do not reach the gradient at all
            assert g is None or float(g.abs().max()) == 0
        else:
            torch.testing.assert_close(g if g is not None else torch.zeros_like(p), w, rtol=1e-4, atol=1e-6)
    assert float(got[0].abs().max()) > 1e-3  # the first layer's weights do get a gradient


def test_replaced_weights_are_used():
    """With ``weights`` (spectrally normalised ones) the norms are those of the replaced critic,
    and the gradient reaches the tensors the replacements were computed from."""
    random = ChainRandom([4, 5], CPU)
    critic = L.init_mlp((5, 8, 1), random)
    x = random.normal(7, 5)
    scaled = [2.0 * w for w, _ in critic]
    ours = mlp_gradient_norms(critic, x, scaled)
    torch.testing.assert_close(ours, autograd_norms(critic, x, scaled), rtol=1e-5, atol=1e-6)
    assert (ours - mlp_gradient_norms(critic, x)).abs().min() > 1e-3  # the replacements, not the stored weights
    ours.sum().backward()
    assert critic[0][0].grad is not None and float(critic[0][0].grad.abs().max()) > 0
