"""Random streams whose values do not depend on how many chains a block simulates.

A block of chains shares one generator, so that every draw is one vectorised call across its
chains. For a chain's values to depend only on (root seed, cell, replicate), never on the
replicate count, every draw starts at its own fixed position of the block's stream: draw k of
the block starts k J steps into (J: the golden-ratio stride of ``PCG64.jumped``) ``PCG64(SeedSequence(root, spawn_key=(cell_key, block)))``.
Draws lay their values out chain by chain (the chain is the leading axis), so the first B' chains
of a draw for B chains equal a draw for B' chains: a cell's last, partial block simulates only
the chains that exist and still gives them the values they would have in a full block. Adding
replicates therefore leaves every existing chain bit-identical, at no cost.

What a family must do for this to hold: make every draw with the chain as the leading axis, and
make the *number* of draws per generation independent of the data (a loop that redraws until a
condition holds uses :meth:`BlockGenerator.substream` for its rounds). Repositioning costs about
2 us per draw.
"""

from __future__ import annotations

import numpy as np

# Distances between draws' starting points: odd multiples of the golden ratio of 2^128, the
# stride numpy's PCG64.jumped uses. A power of two would not do: an LCG modulo 2^128 keeps its
# low bits periodic, so states 2^64 apart share their low 64 bits and PCG64's outputs there are
# correlated (measured: collapse times of the Gaussian chain came out 8% off theory).
_MASK = (1 << 128) - 1
_DRAW_STRIDE = 0x9E3779B97F4A7C15F39CC0605CEDC835
_ROUND_STRIDE = 0xD1B54A32D192ED03AEF2C3D8A37C5D87

#: PCG64's 128-bit LCG multiplier (numpy's ``PCG64``: state = state * multiplier + increment).
PCG_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341


def _lcg_jump(steps: int) -> tuple[int, int]:
    """(a, g) such that ``steps`` LCG steps take state s to a s + g inc (mod 2^128), whatever the
    increment: the square-and-multiply of Brown (1994), as ``PCG64.advance`` computes it."""
    a, g = 1, 0
    multiplier, plus = PCG_MULTIPLIER, 1
    while steps:
        if steps & 1:
            a, g = (a * multiplier) & _MASK, (g * multiplier + plus) & _MASK
        plus, multiplier = ((multiplier + 1) * plus) & _MASK, (multiplier * multiplier) & _MASK
        steps >>= 1
    return a, g


_DRAW_JUMP = _lcg_jump(_DRAW_STRIDE)
_M64 = (1 << 64) - 1


def pcg_words(state: int, increment: int) -> np.ndarray:
    """A PCG64 state (128-bit state and increment) as the four uint64 words compiled code steps
    (:mod:`sweep._fastrng`): state high, state low, increment high, increment low."""
    return np.array([state >> 64, state & _M64, increment >> 64, increment & _M64], dtype=np.uint64)


_METHODS = (
    "random",
    "standard_normal",
    "normal",
    "integers",
    "standard_gamma",
    "gamma",
    "chisquare",
    "multinomial",
    "hypergeometric",
    "binomial",
    "poisson",
    "uniform",
    "exponential",
    "standard_exponential",
    "choice",
    "permutation",
    "permuted",
    "beta",
    "dirichlet",
    "multivariate_hypergeometric",
    "bytes",
    "shuffle",
)


class BlockGenerator(np.random.Generator):
    """A numpy Generator whose every draw starts at the next fixed position of the block's stream.

    It is a :class:`numpy.random.Generator` (so code that checks for one accepts it); only the
    drawing methods listed in ``_METHODS`` are repositioned.

    Parameters
    ----------
    sequence : numpy.random.SeedSequence
        The block's seed sequence.
    draws : int
        Draws already made (to continue a block from a saved state).
    """

    def __init__(self, sequence: np.random.SeedSequence, draws: int = 0):
        bit_generator = np.random.PCG64(sequence)
        super().__init__(bit_generator)
        self._base = bit_generator.state
        self.draws = draws
        self._round: int | None = None
        self._next: tuple[int, int] | None = None  # (draw, its starting state): see draw_state

    def _position(self) -> None:
        bit_generator = self.bit_generator
        bit_generator.state = self._base
        if self._round is None:
            bit_generator.advance((self.draws * _DRAW_STRIDE) & _MASK)
            self.draws += 1
        else:
            bit_generator.advance(((self.draws - 1) * _DRAW_STRIDE + (self._round + 1) * _ROUND_STRIDE) & _MASK)
            self._round += 1

    def begin_draw(self) -> None:
        """Move to the next draw's position, as every drawing method does first: for code that
        draws from ``bit_generator`` itself (compiled kernels, :mod:`sweep._fastrng`), so that
        its draw counts as one draw of the block, at the same position a numpy draw would take."""
        self._position()

    def draw_state(self) -> np.ndarray:
        """Start the next draw for compiled code that steps PCG64 itself (:mod:`sweep._fastrng`):
        its starting state as four uint64 words (state high, state low, increment high, increment
        low), the state ``begin_draw`` would give the bit generator.

        Draws follow each other by one fixed jump, so the next draw's state is kept: a run of
        compiled draws costs two 128-bit multiplies each and leaves the bit generator alone,
        instead of a repositioning each (about 10 us through the state dictionary). Compiled
        code never needs the bit generator's own position: every draw starts at its own."""
        if self._round is not None or self._next is None or self._next[0] != self.draws:
            self._position()  # the general way, e.g. after numpy draws or a restore
            state = self.bit_generator.state["state"]["state"]
        else:
            state = self._next[1]
            self.draws += 1
        increment = self._base["state"]["inc"]
        a, g = _DRAW_JUMP
        if self._round is None:
            self._next = (self.draws, (a * state + g * increment) & _MASK)
        return pcg_words(state, increment)

    def substream(self) -> _Rounds:
        """A context for a data-dependent number of draws (e.g. redraw until distinct): the
        whole loop counts as one draw of the block, and its rounds take fixed sub-positions."""
        return _Rounds(self)

    def __reduce__(self):  # a plain Generator at the same state: enough for pickling a snapshot
        return (_restore, (self.bit_generator.state, self._base, self.draws))


class _Rounds:
    def __init__(self, generator: BlockGenerator):
        self.generator = generator

    def __enter__(self) -> BlockGenerator:
        self.generator.draws += 1
        self.generator._round = 0
        return self.generator

    def __exit__(self, *exc) -> None:
        self.generator._round = None


def _restore(state, base, draws):
    generator = BlockGenerator.__new__(BlockGenerator)
    np.random.Generator.__init__(generator, np.random.PCG64())
    generator.bit_generator.state = state
    generator._base, generator.draws, generator._round, generator._next = base, draws, None, None
    return generator


def _repositioned(name: str):
    method = getattr(np.random.Generator, name)

    def draw(self, *args, **kwargs):
        self._position()
        return method(self, *args, **kwargs)

    draw.__name__ = name
    draw.__doc__ = method.__doc__
    return draw


for _name in _METHODS:
    if hasattr(np.random.Generator, _name):
        setattr(BlockGenerator, _name, _repositioned(_name))


def substream(rng: np.random.Generator):
    """``rng.substream()`` for a :class:`BlockGenerator`, a no-op context for any other generator."""
    if isinstance(rng, BlockGenerator):
        return rng.substream()
    return _Plain(rng)


class _Plain:
    def __init__(self, rng):
        self.rng = rng

    def __enter__(self):
        return self.rng

    def __exit__(self, *exc) -> None:
        return None
