"""Decoding a batched torch language model: sampling (temperature, top-k, top-p, repetition
penalty) and beam search, for B chains x S sequences at once.

``model(tokens)`` maps input windows (B, N, T) to the next-token logits of their last position
(B, N, 1, V) (or of every position, (B, N, T, V)). Sequences are
BOS + prompt + generated tokens, read in windows of ``context`` tokens cut at multiples of the
context, as in training, so a position sees exactly what it saw in training. Sampling draws one
uniform per token from the block's generator (passed in as ``uniforms``) and inverts the
cumulative distribution: no torch generator is involved. The processors follow Hugging Face's
(``RepetitionPenaltyLogitsProcessor``, ``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper``, in that order); beam search is deterministic and, without an end token,
returns each sequence's highest-scoring beam, as ``generate(num_beams=K)`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Model = Callable[[torch.Tensor], torch.Tensor]


def _last_logits(model: Model, sequence: torch.Tensor, context: int) -> torch.Tensor:
    """Next-token logits (B, N, V) of sequences (B, N, length) from their current window."""
    length = sequence.shape[-1]
    start = (length - 1) // context * context
    return model(sequence[..., start:length])[..., -1, :].float()


def penalise(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Hugging Face's repetition penalty: scores of tokens already in the sequence divided by the
    penalty where positive, multiplied where negative."""
    if penalty == 1.0:
        return scores
    return torch.where(seen, torch.where(scores < 0, scores * penalty, scores / penalty), scores)


def warp(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the smallest most-probable set of mass >= top_p)."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, index = torch.sort(logits, dim=-1, descending=True, stable=True)
        probs = ordered.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the more probable tokens
        drop = before >= top_p
        drop[..., 0] = False
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, index, drop), float("-inf"))
    return logits


def _start(
    prompts: np.ndarray | None,
    shape: tuple[int, int],
    bos: int,
    vocab: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    B, S = shape
    sequence = torch.full((B, S, 1), bos, dtype=torch.long, device=device)
    seen = torch.zeros((B, S, vocab), dtype=torch.bool, device=device)
    if prompts is not None and prompts.shape[-1]:
        prompt = torch.as_tensor(prompts, dtype=torch.long, device=device)
        sequence = torch.cat([sequence, prompt], dim=-1)
        seen.scatter_(-1, prompt, True)
    return sequence, seen


@torch.no_grad()
def sample(
    model: Model,
    *,
    vocab: int,
    context: int,
    uniforms: np.ndarray,
    prompts: np.ndarray | None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    device: torch.device | str = "cpu",
    bos: int | None = None,
) -> np.ndarray:
    """Blocks (B, S, L) sampled token by token, one uniform of ``uniforms`` (B, S, L) per token
    (``bos``: the start token, default V)."""
    B, S, L = uniforms.shape
    sequence, seen = _start(prompts, (B, S), vocab if bos is None else bos, vocab, torch.device(device))
    u = torch.as_tensor(uniforms, dtype=torch.float64, device=sequence.device)
    for j in range(L):
        logits = penalise(_last_logits(model, sequence, context), seen, repetition_penalty)
        probs = warp(logits, temperature, top_k, top_p).double().softmax(-1)
        cdf = probs.cumsum(-1)
        token = torch.searchsorted(cdf, (u[:, :, j] * cdf[..., -1]).unsqueeze(-1), right=True)
        token = token.clamp_(max=vocab - 1)
        # a token of probability 0 is never chosen: step back to the last one with mass
        token = torch.where(probs.gather(-1, token) > 0, token, probs.gt(0).long().cumsum(-1).argmax(-1, keepdim=True))
        sequence = torch.cat([sequence, token], dim=-1)
        seen.scatter_(-1, token, True)
    return sequence[..., -L:].cpu().numpy().astype(np.int32)


@torch.no_grad()
def beam_search(
    model: Model,
    *,
    vocab: int,
    context: int,
    length: int,
    prompts: np.ndarray | None,
    shape: tuple[int, int],
    num_beams: int,
    repetition_penalty: float = 1.0,
    device: torch.device | str = "cpu",
    bos: int | None = None,
) -> np.ndarray:
    """Blocks (B, S, L): each sequence's best of ``num_beams`` beams by summed log-probability
    (penalised log-probabilities, as Hugging Face's beam search scores them)."""
    B, S = shape
    K = num_beams
    sequence, seen = _start(prompts, (B, S), vocab if bos is None else bos, vocab, torch.device(device))
    sequence = sequence[:, :, None].expand(B, S, K, -1).reshape(B, S * K, -1)
    seen = seen[:, :, None].expand(B, S, K, vocab).reshape(B, S * K, vocab)
    score = torch.full((B, S, K), float("-inf"), dtype=torch.float64, device=sequence.device)
    score[:, :, 0] = 0.0  # one live beam at the start: the others are copies
    for _ in range(length):
        logp = penalise(_last_logits(model, sequence, context).double().log_softmax(-1), seen, repetition_penalty)
        candidates = (score[..., None] + logp.reshape(B, S, K, vocab)).reshape(B, S, K * vocab)
        best, index = torch.sort(candidates, dim=-1, descending=True, stable=True)
        score, index = best[..., :K], index[..., :K]
        beam, token = index // vocab, index % vocab
        rows = (beam + torch.arange(S, device=beam.device)[None, :, None] * K).reshape(B, S * K)
        chain = torch.arange(B, device=beam.device)[:, None]
        sequence = torch.cat([sequence[chain, rows], token.reshape(B, S * K, 1)], dim=-1)
        seen = seen[chain, rows].scatter(-1, token.reshape(B, S * K, 1), True)
    return sequence.reshape(B, S, K, -1)[:, :, 0, -length:].cpu().numpy().astype(np.int32)
