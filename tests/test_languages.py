"""Synthetic languages: exact checkers on known strings, generator samples valid, exact probabilities."""
import jax
import numpy as np
import pytest

from gvatheory.language import languages as lg


@pytest.mark.parametrize(
    "lang, text, valid, first_error",
    [
        (lg.Dyck(k=2, depth=3), "([])[]", True, 6),
        (lg.Dyck(k=2, depth=3), "([)]", False, 2),  # mismatched close
        (lg.Dyck(k=2, depth=3), "())", False, 2),  # closes below depth 0
        (lg.Dyck(k=2, depth=3), "((((", False, 3),  # exceeds depth 3
        (lg.Dyck(k=2, depth=3), "(([", True, 3),  # an unfinished word is a valid prefix
        (lg.FlipFlop(), "w1i0i1r1w0r0", True, 12),
        (lg.FlipFlop(), "w1i0i1r0", False, 7),  # read returns 0 but the last write was 1
        (lg.FlipFlop(), "r0w1", False, 0),  # must start with a write
        (lg.FlipFlop(), "w0w", True, 3),
    ],
)
def test_known_strings(lang, text, valid, first_error):
    ok, first = lg.check(lang, lg.encode(lang, text))
    assert bool(ok) == valid and int(first) == first_error
    assert lg.decode(lang, lg.encode(lang, text)) == text


@pytest.mark.parametrize("lang", [lg.Dyck(k=3, depth=5, p_open=0.6), lg.FlipFlop(p_write=0.2, p_read=0.3), lg.Automaton(vocab_size=5, order=2, n_allowed=3)])
def test_samples_are_valid_and_probabilities_exact(lang):
    seqs = lg.sample(lang, 400, 64, key=jax.random.key(0))
    ok, _ = lg.check(lang, seqs)
    assert bool(ok.all())
    p = np.asarray(lg.next_token_probs(lang, seqs))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    s = np.asarray(seqs)
    taken = np.take_along_axis(p, s[..., None], -1)[..., 0]
    assert np.all(taken > 0)
    # Monte Carlo: the empirical frequency of each token given the generator's own probability row
    # matches it — group positions by their exact distribution and compare counts (4.5 s.e.)
    rows, inv = np.unique(p.reshape(-1, lang.vocab).round(6), axis=0, return_inverse=True)
    counts = np.zeros_like(rows)
    np.add.at(counts, (inv.ravel(), s.ravel()), 1)
    n = counts.sum(1, keepdims=True)
    se = np.sqrt(rows * (1 - rows) / n) + 1e-12
    assert np.max(np.abs(counts / n - rows) / se) < 4.5


def test_invalid_token_breaks_the_sequence():
    lang = lg.Dyck(k=2, depth=4)
    s = np.array(lg.sample(lang, 1, 30, key=jax.random.key(1)))[0]
    depth = np.cumsum(np.where(s < 2, 1, -1))
    t = int(np.argmax(depth > 0))  # a position after which the stack is not empty
    bad = s.copy()
    top_open = s[: t + 1][np.where(s[: t + 1] < 2)[0][-1]]
    bad[t + 1] = 2 + (1 - top_open)  # the wrong closing bracket
    ok, first = lg.check(lang, bad)
    assert not bool(ok) and int(first) == t + 1


def test_invalid_parameters():
    with pytest.raises(ValueError, match="depth"):
        lg.Dyck(depth=0)
    with pytest.raises(ValueError, match="p_open"):
        lg.Dyck(p_open=1.0)
    with pytest.raises(ValueError, match="p_write"):
        lg.FlipFlop(p_write=0.6, p_read=0.5)
    with pytest.raises(ValueError, match="alphabet"):
        lg.encode(lg.FlipFlop(), "w2")
    with pytest.raises(ValueError, match="length"):
        lg.sample(lg.FlipFlop(), 2, 0, key=jax.random.key(0))


def test_automaton_table_and_known_strings():
    lang = lg.Automaton(vocab_size=4, order=2, n_allowed=2, seed=3)
    T = lang.table()
    assert T.shape == (16, 4) and np.all((T > 0).sum(1) == 2) and np.allclose(T.sum(1), 1.0)
    # walk the table by hand (state = 4 * previous + current token): a valid string, then a forbidden step
    seq = [1, 2]
    for _ in range(20):
        seq.append(int(np.flatnonzero(T[4 * seq[-2] + seq[-1]])[-1]))
    ok, first = lg.check(lang, np.array(seq))
    assert bool(ok) and int(first) == len(seq)
    bad = seq[:10] + [int(np.flatnonzero(T[4 * seq[8] + seq[9]] == 0)[0])]
    ok, first = lg.check(lang, np.array(bad))
    assert not bool(ok) and int(first) == 10
    assert lg.decode(lang, lg.encode(lang, "abca")) == "abca"
    with pytest.raises(ValueError, match="n_allowed"):
        lg.Automaton(vocab_size=3, n_allowed=4)
