"""The optimisers of tests/neural's families: FusedAdam and ForeachRMSprop step the parameters
to exactly the bits torch.optim's fused Adam and foreach RMSprop give; BatchIndexer's epochs."""

from __future__ import annotations

import pytest
import torch

from sweep.families._neural.torchkit import BatchIndexer, ChainRandom, ForeachRMSprop, FusedAdam

CPU = torch.device("cpu")


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_optimisers_step_like_torch_optim_bit_for_bit(kind):
    """Ten steps on random gradients: every parameter equal bit for bit to torch.optim's."""
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 5, 4, generator=gen).requires_grad_(), torch.randn(3, 1, 4, generator=gen).requires_grad_()]
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    start = [t.detach().clone() for t in ours]
    if kind == "adam":
        mine, ref = FusedAdam(ours, 1e-2, (0.5, 0.9)), torch.optim.Adam(theirs, lr=1e-2, betas=(0.5, 0.9), fused=True)
    else:
        mine, ref = ForeachRMSprop(ours, 1e-2), torch.optim.RMSprop(theirs, lr=1e-2, foreach=True)
    for _ in range(10):
        grads = [torch.randn(t.shape, generator=gen) for t in ours]
        for a, b, g in zip(ours, theirs, grads):
            a.grad, b.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
    for a, b, c in zip(ours, theirs, start):
        assert torch.equal(a, b) and not torch.equal(a, c)  # the same bits, and they did move


def test_batch_indexer_cycles_through_permutations():
    """Every chain's stream is a sequence of permutations of range(m), the same however it is
    taken (one large take or several small ones)."""
    m = 7
    big = BatchIndexer(ChainRandom([1, 2], CPU), m).take(30)
    small = BatchIndexer(ChainRandom([1, 2], CPU), m)
    pieces = torch.cat([small.take(k) for k in (3, 10, 1, 16)], dim=1)
    assert torch.equal(big, pieces)
    for row in big:
        for epoch in range(4):
            assert sorted(row[epoch * m : (epoch + 1) * m].tolist()) == list(range(m))
