"""The vae and wgan families run in-process: chains independent of their block, bit-for-bit
replays, per-chain divergence, tempered sampling, warm starts, every policy, and the critic's
Lipschitz constraint for each method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.engine import simulate_block
from sweep.grid import block_rng, cells
from sweep.spec import parse_spec
from tests.neural.conftest import TINY_VAE, TINY_WGAN, tiny_spec


def run_block(raw: dict, block: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec = parse_spec(raw)
    cell = cells(spec)[0]
    traj, events = simulate_block(
        cell.family,
        cell,
        block,
        generations=spec.generations,
        recorded=spec.record.generations(spec.generations),
        events_spec=spec.events,
        rng=block_rng(spec.seed, cell, block),
    )
    return pd.DataFrame(traj), pd.DataFrame(events)


FAMILIES = {
    "vae": TINY_VAE,
    "wgan-clip": {**TINY_WGAN, "lipschitz": "clip"},
    "wgan-gradient_penalty": {**TINY_WGAN, "lipschitz": "gradient_penalty"},
    "wgan-spectral_norm": {**TINY_WGAN, "lipschitz": "spectral_norm"},
}


@pytest.mark.parametrize("name", FAMILIES)
def test_a_chain_does_not_depend_on_its_block(name):
    """The first 3 chains of a block of 4 equal, bit for bit, a (partial) block of 3: training,
    sampling and evaluation of a chain use only its own random stream; a rerun is identical."""
    full = run_block(tiny_spec(FAMILIES[name], replicates=4, block_size=4))[0]
    part = run_block(tiny_spec(FAMILIES[name], replicates=3, block_size=4))[0]
    assert len(part) == 3 * 3
    pd.testing.assert_frame_equal(full[full.replicate < 3].reset_index(drop=True), part, check_exact=True)
    if name == "vae":
        pd.testing.assert_frame_equal(
            run_block(tiny_spec(FAMILIES[name], replicates=3, block_size=4))[0], part, check_exact=True
        )
    assert full.drop(columns=["replicate", "generation"]).iloc[3:].nunique().min() > 1  # chains do differ


def test_divergence_is_per_chain():
    """A learning rate of 0.5 makes one VAE chain's loss non-finite: that chain gets a diverged
    event and NaN metrics, the other chains of its batch train on untouched."""
    traj, events = run_block(tiny_spec({**TINY_VAE, "epochs": 3, "lr": 0.5}, seed=5))
    diverged = events[events.event == "diverged"].set_index("replicate")
    assert diverged.observed.tolist() == [True, False, False] and diverged.generation[0] == 2
    last = traj[traj.generation == 2].set_index("replicate")
    assert np.isnan(last.frechet_distance[0]) and np.isfinite(last.frechet_distance[[1, 2]]).all()


@pytest.fixture(scope="module")
def vae_cell():
    spec = parse_spec(tiny_spec({**TINY_VAE, "epochs": 3}))
    return cells(spec)[0]


def test_temperature_scales_the_latent(vae_cell):
    """A VAE sample at temperature T decodes sqrt(T) times the prior draw, from the same stream."""
    from sweep.families._neural import layers as L
    from sweep.families._neural.torchkit import ChainRandom

    family = vae_cell.family
    params = family.fit(family.sample(family.truth(2), 200, rng=np.random.default_rng(1)), rng=np.random.default_rng(2))
    cpu = torch.device("cpu")
    tempered = family.generate(params, 50, ChainRandom([3, 4], cpu), 0.25)
    decoder = L.from_state(params.state, "dec", cpu, trainable=False)
    z = ChainRandom([3, 4], cpu).normal(50, family.spec.latent_dim)
    torch.testing.assert_close(tempered, torch.sigmoid(L.forward(decoder, 0.5 * z, torch.relu)), rtol=0, atol=0)
    assert not torch.equal(tempered, family.generate(params, 50, ChainRandom([3, 4], cpu), 1.0))


@pytest.mark.parametrize("warm", [True, False])
def test_warm_start_continues_from_the_previous_model(warm):
    """warm_start: true starts generation 2 from generation 1's weights (with a learning rate of
    1e-9 they barely move); false starts from fresh random weights."""
    spec = parse_spec(tiny_spec({**TINY_VAE, "lr": 1e-9, "warm_start": warm}))
    family = cells(spec)[0].family
    rng = np.random.default_rng(0)
    data = family.sample(family.truth(2), 200, rng=rng)
    first = family.fit(data, previous=family.truth(2), rng=rng)
    second = family.fit(family.sample(first, 200, rng=rng), previous=first, rng=rng)
    moved = max(float((first.state[k] - second.state[k]).abs().max()) for k in first.state)
    assert (moved < 1e-6) if warm else (moved > 1e-2)
    assert second.generation == 2 and set(second.gallery) == {1, 2}


def test_real_draws_are_without_replacement(vae_cell):
    """Real training sets are n distinct pool images per chain, different across chains."""
    family = vae_cell.family
    data = family.sample(family.truth(3), 500, rng=np.random.default_rng(0)).numpy()
    for chain in data:
        assert len(np.unique(chain, axis=0)) == len(np.unique(np.concatenate([chain, chain]), axis=0))
    pool_rows = {row.tobytes() for row in family.data.pool}
    assert all(row.tobytes() in pool_rows for row in data[0])
    assert not np.array_equal(data[0], data[1])


@pytest.mark.parametrize(
    "policy",
    ["accumulate", "accumulate_subsample", {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}}, {"fresh_real": 0.1}],
)
def test_every_policy_runs(policy):
    """Every mixing policy trains and evaluates (tensors on the device through the data hooks)."""
    traj, _ = run_block(tiny_spec(TINY_VAE, generations=3, replicates=2, n=100, policy=(policy,)))
    assert np.isfinite(traj.drop(columns=["elbo", "latent_std"]).to_numpy(float)).all()
    assert np.isfinite(traj[traj.generation > 0][["elbo", "latent_std"]].to_numpy()).all()


LIPSCHITZ = {"steps": 40, "hidden": [32, 32], "latent_dim": 4, "eval_samples": 200, "lr": 1e-3}


@pytest.mark.parametrize(
    "method, low, high",
    [
        ("gradient_penalty", 0.8, 1.3),  # the penalty pulls gradient norms on interpolates to 1
        ("spectral_norm", 0.5, 1.05),  # every layer has spectral norm 1: |f|_Lip <= 1
    ],
)
def test_critic_lipschitz_estimate_near_one(method, low, high):
    """Gradient penalty and spectral normalisation keep the critic's largest gradient norm on
    real-generated interpolates near 1; without the penalty (penalty: 0) it is over 10."""
    traj, _ = run_block(
        tiny_spec({"name": "wgan", "lipschitz": method, **LIPSCHITZ}, generations=1, replicates=2, n=300)
    )
    estimate = traj[traj.generation == 1].lipschitz_estimate
    assert ((low < estimate) & (estimate < high)).all(), estimate.tolist()
    if method == "gradient_penalty":
        free = run_block(
            tiny_spec(
                {"name": "wgan", "lipschitz": method, "penalty": 0.0, **LIPSCHITZ}, generations=1, replicates=2, n=300
            )
        )[0]
        assert (free[free.generation == 1].lipschitz_estimate > 10).all()


def test_clipped_critic_stays_within_its_bound():
    """With weights clipped to +-c the estimate is positive and below prod_l c sqrt(in_l out_l)."""
    raw = tiny_spec({"name": "wgan", "lipschitz": "clip", **LIPSCHITZ}, generations=1, replicates=2, n=300)
    traj, _ = run_block(raw)
    bound = cells(parse_spec(raw))[0].family.lipschitz_bound()
    estimate = traj[traj.generation == 1].lipschitz_estimate
    assert ((0 < estimate) & (estimate <= bound)).all()


def test_torch_runs_on_one_thread_inside_the_family(monkeypatch, vae_cell):
    """fit, sample and evaluation run torch on one thread (as a Ray task does), whatever the
    process's setting, which they restore: results never depend on the shell's thread count."""
    family = vae_cell.family
    seen = []
    original = type(family).train

    def spy(self, *args):
        seen.append(torch.get_num_threads())
        return original(self, *args)

    monkeypatch.setattr(type(family), "train", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        params = family.fit(family.sample(family.truth(2), 100, rng=rng), rng=rng)
        assert seen == [1] and torch.get_num_threads() == 2
        assert family.metrics(params)["frechet_distance"].shape == (2,)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", FAMILIES)
def test_batched_mlp_chains_equal_single_chain_runs(name):
    """Training B = 3 MLP chains as one batch (the written-out steps) gives each chain the weights
    that training it alone (a batch of one, the same seed and data) gives: bit for bit for a
    sub-batch of two, to float32 rounding alone (torch's bmm takes another kernel for a batch of
    one, whose last bits can differ)."""
    family = cells(parse_spec(tiny_spec({**FAMILIES[name], "hidden": [16, 8]})))[0].family
    data = family.sample(family.truth(3), 200, rng=np.random.default_rng(0))
    seeds = np.array([11, 12, 13])
    batched = family.train(data, seeds, None, family.truth(3)).state
    pair = family.train(data[:2], seeds[:2], None, family.truth(2)).state
    for key, tensor in pair.items():
        assert torch.equal(batched[key][:2], tensor), key
    for b in range(3):
        alone = family.train(data[b : b + 1], seeds[b : b + 1], None, family.truth(1)).state
        for key, tensor in alone.items():
            torch.testing.assert_close(batched[key][b : b + 1], tensor, rtol=1e-4, atol=1e-6)
    moved = family.train(data, seeds + 1, None, family.truth(3)).state
    assert max(float((moved[k] - batched[k]).abs().max()) for k in moved) > 1e-3  # seeds matter
