"""Batched MLPs: B stacked networks compute what B separate torch modules compute, draw their
initial weights from their own chains' generators, and spectral normalisation finds sigma_max."""

from __future__ import annotations

import torch

from sweep.families._neural import layers as L
from sweep.families._neural.torchkit import BatchIndexer, ChainRandom

CPU = torch.device("cpu")


def test_batched_equals_separate_modules():
    """Outputs and gradients of a 3-chain batched MLP equal those of 3 nn.Sequential copies."""
    random = ChainRandom([1, 2, 3], CPU)
    layers = L.init_mlp((5, 7, 2), random)
    x = random.normal(4, 5)
    out = L.forward(layers, x, torch.relu)
    (out**2).mean((1, 2)).sum().backward()
    for b in range(3):
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
        with torch.no_grad():
            for module, (w, bias) in zip((net[0], net[2]), layers):
                module.weight.copy_(w[b].T)
                module.bias.copy_(bias[b, 0])
        single = net(x[b])
        (single**2).mean().backward()
        torch.testing.assert_close(out[b], single, rtol=1e-6, atol=1e-6)
        for module, (w, bias) in zip((net[0], net[2]), layers):
            torch.testing.assert_close(w.grad[b], module.weight.grad.T, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(bias.grad[b, 0], module.bias.grad, rtol=1e-5, atol=1e-7)


def test_chain_draws_depend_only_on_the_chain_seed():
    """A chain's initial weights, noise and minibatches are the same alone or among others."""
    alone, among = ChainRandom([42], CPU), ChainRandom([7, 42, 9], CPU)
    for a, b in zip(L.init_mlp((4, 3, 2), alone), L.init_mlp((4, 3, 2), among)):
        assert torch.equal(a[0][0], b[0][1]) and torch.equal(a[1][0], b[1][1])
    assert torch.equal(alone.normal(5, 2)[0], among.normal(5, 2)[1])
    assert torch.equal(BatchIndexer(alone, 10).take(25)[0], BatchIndexer(among, 10).take(25)[1])


def test_minibatches_cycle_through_permutations():
    """Every run of m indices of a chain's stream is a permutation of its m samples."""
    index = BatchIndexer(ChainRandom([3, 4], CPU), 10).take(30)
    for row in index:
        for epoch in row.view(3, 10):
            assert sorted(epoch.tolist()) == list(range(10))


def test_spectral_norm_estimates_the_largest_singular_value():
    """After 300 power iterations (as many training steps) sigma matches torch.linalg.matrix_norm(ord=2) per chain, and the
    normalised weights have spectral norm 1."""
    random = ChainRandom([5, 6], CPU)
    layers = [(3 * w.detach(), b.detach()) for w, b in L.init_mlp((6, 9, 3), random)]
    norm = L.SpectralNorm(layers, random)
    for _ in range(300):
        weights = norm.weights(layers, update=True)
    for (w, _), normalised in zip(layers, weights):
        sigma = torch.linalg.matrix_norm(w, ord=2)
        torch.testing.assert_close(w / normalised, sigma[:, None, None].expand_as(w), rtol=1e-4, atol=0)
        torch.testing.assert_close(torch.linalg.matrix_norm(normalised, ord=2), torch.ones(2), rtol=1e-4, atol=0)
        assert sigma.min() > 1.5  # not vacuous: the raw weights are far from normalised
