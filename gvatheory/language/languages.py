"""Synthetic languages with a known generator and an exact validity checker: Dyck, flip-flop, random automaton.

Each language is a finite-state (or stack) process, so for any prefix the generator's exact
next-token distribution is known, and a generation of any length can be checked exactly. Sampling,
checking and the exact probabilities are ``lax.scan``s over positions, vmapped over sequences, so they
run jitted on model generations.

- ``dyck``: k bracket types, depth at most D. At depth 0 an opening bracket (uniform type); at depth D
  the closing bracket of the top; otherwise open (probability p_open, uniform type) or close the top.
  A sequence is valid when every prefix is: no closing bracket that mismatches the top, depth in [0, D].
- ``flipflop`` (Liu et al. 2023, "Exposing attention glitches with flip-flop language modeling"):
  pairs (instruction, bit) with instructions w(rite), r(ead), i(gnore); a read must repeat the last
  written bit, and the first instruction is a write. Tokens: 0 = w, 1 = r, 2 = i, 3 = bit 0, 4 = bit 1.
- ``automaton``: a random probabilistic automaton whose state is the last ``order`` tokens; each state
  allows ``n_allowed`` of the ``vocab`` tokens (drawn once from ``seed``), uniformly. The first
  ``order`` tokens are uniform. A sequence is valid when it never takes a forbidden transition, so a
  model's validity over H tokens is Π(1 − forbidden mass): exponentially sensitive to a mass that
  barely moves the loss.

References: Liu, Ash, Goel, Krishnamurthy, Zhang. Exposing Attention Glitches with Flip-Flop Language Modeling. NeurIPS 2023.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.infra.validate import require_int


@dataclasses.dataclass(frozen=True)
class Dyck:
    """Bounded-depth Dyck language over ``k`` bracket types (tokens 0..k−1 open, k..2k−1 close)."""

    k: int = 2  # bracket types
    depth: int = 8  # maximum nesting depth D
    p_open: float = 0.5  # probability of opening when 0 < depth < D

    def __post_init__(self):
        require_int("k", self.k, 1)
        require_int("depth", self.depth, 1)
        if not 0 < self.p_open < 1:
            raise ValueError(f"p_open must lie in (0, 1), got {self.p_open}")

    @property
    def vocab(self) -> int:
        """Number of token ids."""
        return 2 * self.k


@dataclasses.dataclass(frozen=True)
class FlipFlop:
    """Flip-flop language: (instruction, bit) pairs; reads repeat the last written bit."""

    p_write: float = 0.1  # instruction probabilities after the first (a write)
    p_read: float = 0.1  # the rest is "ignore"; rare writes make long-range dependencies

    def __post_init__(self):
        if not (0 < self.p_write < 1 and 0 < self.p_read < 1 and self.p_write + self.p_read < 1):
            raise ValueError(f"need p_write, p_read in (0, 1) with p_write + p_read < 1, got {self.p_write}, {self.p_read}")

    @property
    def vocab(self) -> int:
        """Number of token ids."""
        return 5


@dataclasses.dataclass(frozen=True)
class Automaton:
    """Random order-k Markov language with forbidden transitions (a probabilistic finite automaton)."""

    vocab_size: int = 8  # tokens
    order: int = 2  # the state is the last `order` tokens
    n_allowed: int = 3  # tokens allowed after each state (uniform among them)
    seed: int = 0  # draws the allowed sets

    def __post_init__(self):
        for f in ("vocab_size", "order", "n_allowed"):
            v = getattr(self, f)
            require_int(f, v, 1)
        if not self.n_allowed <= self.vocab_size:
            raise ValueError(f"n_allowed ({self.n_allowed}) must be <= vocab_size ({self.vocab_size})")
        if self.vocab_size**self.order > 1 << 20:
            raise ValueError(f"vocab_size ** order = {self.vocab_size ** self.order} states is too many (max 2^20)")

    @property
    def vocab(self) -> int:
        """Number of token ids."""
        return self.vocab_size

    def table(self) -> np.ndarray:
        """Transition probabilities [vocab^order, vocab]; row s is the state whose last tokens read s in base vocab."""
        return _automaton_table(self.vocab_size, self.order, self.n_allowed, self.seed)


@functools.cache
def _automaton_table(V: int, k: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.zeros((V**k, V), np.float32)
    for s in range(V**k):
        T[s, rng.choice(V, n, replace=False)] = 1.0 / n
    return T


W, R, I, B0, B1 = range(5)


def _dyck_step_probs(lang: Dyck, stack, depth):
    """Exact next-token distribution [2k] of the Dyck generator at a state (stack [D], depth)."""
    k = lang.k
    top = stack[jnp.maximum(depth - 1, 0)]
    close = jax.nn.one_hot(k + top, 2 * k)
    open_ = jnp.concatenate([jnp.full(k, 1.0 / k), jnp.zeros(k)])
    mid = lang.p_open * open_ + (1 - lang.p_open) * close
    return jnp.where(depth == 0, open_, jnp.where(depth >= lang.depth, close, mid))


def _dyck_advance(lang: Dyck, stack, depth, tok):
    """(stack, depth, ok) after token ``tok``; ok is False on a mismatch, underflow or overflow."""
    k = lang.k
    is_open = tok < k
    top = stack[jnp.maximum(depth - 1, 0)]
    ok = jnp.where(is_open, depth < lang.depth, (depth > 0) & (top == tok - k))
    stack = jnp.where(is_open, stack.at[jnp.minimum(depth, lang.depth - 1)].set(tok), stack)
    depth = jnp.clip(jnp.where(is_open, depth + 1, depth - 1), 0, lang.depth)
    return stack, depth, ok


def _ff_step_probs(lang: FlipFlop, pos, instr, last):
    """Exact next-token distribution [5] of the flip-flop generator."""
    instr_p = jnp.where(pos == 0, jax.nn.one_hot(W, 5), jnp.array([lang.p_write, lang.p_read, 1 - lang.p_write - lang.p_read, 0, 0]))
    bit_p = jnp.where(instr == R, jax.nn.one_hot(B0 + last, 5), jnp.array([0, 0, 0, 0.5, 0.5]))
    return jnp.where(pos % 2 == 0, instr_p, bit_p)


def next_token_probs(lang, tokens):
    """Exact generator probabilities of each next token given the prefix, [..., L, V] for tokens [..., L].

    Row t is the distribution of token t given tokens 0..t−1 (row 0: the first token). After an invalid
    token the state is clamped, so rows beyond the first error are not meaningful; use :func:`check`.
    """
    flat = jnp.reshape(jnp.asarray(tokens), (-1, jnp.shape(tokens)[-1]))
    return jax.vmap(lambda s: _scan(lang, s)[1])(flat).reshape(jnp.shape(tokens) + (lang.vocab,))


def check(lang, tokens):
    """Exact validity of sequences [..., L]: returns (valid [...] bool, first_error [...] int, L if none)."""
    flat = jnp.reshape(jnp.asarray(tokens), (-1, jnp.shape(tokens)[-1]))
    ok = jax.vmap(lambda s: _scan(lang, s)[0])(flat).reshape(jnp.shape(tokens))
    first = jnp.where(ok.all(-1), ok.shape[-1], jnp.argmin(ok, -1))
    return ok.all(-1), first


def _init(lang):
    """The generator's state before the first token."""
    if isinstance(lang, Automaton):
        return (jnp.array(0, jnp.int32), jnp.array(0, jnp.int32))  # position, state index (last tokens in base V)
    if isinstance(lang, Dyck):
        return (jnp.zeros(lang.depth, jnp.int32), jnp.array(0, jnp.int32))  # stack, depth
    return (jnp.array(0, jnp.int32), jnp.array(W, jnp.int32), jnp.array(0, jnp.int32))  # position, instruction, last bit


def _probs(lang, state):
    """Exact next-token distribution [V] at ``state``."""
    if isinstance(lang, Automaton):
        pos, idx = state
        return jnp.where(pos < lang.order, jnp.full(lang.vocab, 1.0 / lang.vocab), jnp.asarray(lang.table())[idx])
    return _dyck_step_probs(lang, *state) if isinstance(lang, Dyck) else _ff_step_probs(lang, *state)


def _advance(lang, state, tok):
    """(next state, ok): the one transition shared by the checker and the sampler."""
    if isinstance(lang, Automaton):
        pos, idx = state
        ok = _probs(lang, state)[tok] > 0
        return (pos + 1, (idx * lang.vocab + tok) % (lang.vocab**lang.order)), ok
    if isinstance(lang, Dyck):
        stack, depth, ok = _dyck_advance(lang, *state, tok)
        return (stack, depth), ok
    pos, instr, last = state
    ok = _ff_step_probs(lang, pos, instr, last)[tok] > 0
    instr = jnp.where(pos % 2 == 0, tok, instr)
    last = jnp.where((pos % 2 == 1) & (instr == W), tok - B0, last)
    return (pos + 1, instr, last), ok


def _scan(lang, seq):
    """(ok [L], probs [L, V]) along one sequence."""

    def step(state, tok):
        p = _probs(lang, state)
        state, ok = _advance(lang, state, tok)
        return state, (ok, p)

    _, (ok, p) = jax.lax.scan(step, _init(lang), jnp.asarray(seq, jnp.int32))
    return ok, p


def sample(lang, n: int, length: int, *, key) -> jax.Array:
    """``n`` sequences of ``length`` tokens from the generator, [n, length] int32."""
    require_int("n", n, 1)
    require_int("length", length, 1)

    def one(key):
        def step(state, k):
            tok = jax.random.categorical(k, jnp.log(_probs(lang, state))).astype(jnp.int32)
            return _advance(lang, state, tok)[0], tok

        return jax.lax.scan(step, _init(lang), jax.random.split(key, length))[1]

    return jax.jit(jax.vmap(one))(jax.random.split(key, n))


def encode(lang, text: str) -> np.ndarray:
    """Token ids of a human-readable string: Dyck "([)]" style for k <= 4, flip-flop "w0i1r0", automaton "abc"."""
    if isinstance(lang, Automaton):
        table = {c: i for i, c in enumerate(_letters(lang))}
    elif isinstance(lang, Dyck):
        opens, closes = "([{<"[: lang.k], ")]}>"[: lang.k]
        if lang.k > 4:
            raise ValueError("text form is defined for k <= 4")
        table = {c: i for i, c in enumerate(opens)} | {c: lang.k + i for i, c in enumerate(closes)}
    else:
        table = {"w": W, "r": R, "i": I, "0": B0, "1": B1}
    try:
        return np.array([table[c] for c in text], np.int32)
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} is not in the language's alphabet {sorted(table)}") from None


def decode(lang, tokens) -> str:
    """The human-readable string of token ids [L] (inverse of :func:`encode`)."""
    if isinstance(lang, Automaton):
        alphabet = _letters(lang)
    else:
        alphabet = ("([{<"[: lang.k] + ")]}>"[: lang.k]) if isinstance(lang, Dyck) else "wri01"
    return "".join(alphabet[int(t)] for t in np.asarray(tokens))


def _letters(lang: Automaton) -> str:
    if lang.vocab_size > 26:
        raise ValueError("text form is defined for vocab_size <= 26")
    return "abcdefghijklmnopqrstuvwxyz"[: lang.vocab_size]


LANGUAGES = (Automaton, Dyck, FlipFlop)  # the language classes every function here accepts
