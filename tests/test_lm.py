"""Transformer LM: cached generation equals the full forward pass, exact generation metrics, training runs."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvatheory import presets
from gvatheory.core import diagnostics
from gvatheory.language import languages as lg
from gvatheory.language import lm
from gvatheory.language import transformer as tf


def _sharp_params(cfg, key):
    # scaled-up random weights: attention patterns far from uniform, so a wrong cache or position shows
    p = tf.init(cfg, key=key)
    return jax.tree.map(lambda x: 8 * x if x.ndim > 1 else x, p)


def test_generation_equals_forward_pass_beyond_the_window():
    cfg = tf.TransformerConfig(vocab=6, d_model=32, n_layers=3, n_heads=2, context=8)
    p = _sharp_params(cfg, jax.random.key(0))
    prompt = jax.random.randint(jax.random.key(1), (4, 3), 0, 6)
    greedy = jnp.array([True, False, False, True])
    toks, logp = tf.generate(cfg, p, prompt, 40, key=jax.random.key(2), greedy=greedy)
    assert toks.shape == (4, 40) and logp.shape == (4, 39, 6)
    np.testing.assert_array_equal(toks[:, :3], prompt)
    # sliding-window attention over the whole sequence, computed without a cache
    ref = jax.nn.log_softmax(tf.apply(cfg, p, toks))[:, :-1]
    np.testing.assert_allclose(logp, ref, atol=2e-4)
    # greedy rows take the argmax after the prompt; sampled rows do not always
    am = np.asarray(logp.argmax(-1))[:, 2:]
    assert np.all(np.asarray(toks)[[0, 3], 3:] == am[[0, 3]])
    assert np.any(np.asarray(toks)[[1, 2], 3:] != am[[1, 2]])


def test_rotary_attention_is_translation_invariant():
    # the same window of tokens gives the same last logits at any absolute offset (within the context)
    cfg = tf.TransformerConfig(vocab=5, d_model=16, n_layers=1, n_heads=2, context=64)
    p = _sharp_params(cfg, jax.random.key(3))
    x = jax.random.randint(jax.random.key(4), (1, 10), 0, 5)
    a = tf.apply(dataclasses.replace(cfg, context=10), p, x)[0, -1]
    b = tf.apply(dataclasses.replace(cfg, context=10), p, jnp.concatenate([jnp.zeros((1, 30), int), x], 1))[0, -1]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_generation_metrics_closed_form():
    lang = lg.Automaton(vocab_size=4, order=2, n_allowed=2)
    toks = lg.sample(lang, 8, 50, key=jax.random.key(0))
    true = lg.next_token_probs(lang, toks)[:, 1:]
    # the generator itself: no KL, no forbidden mass
    kl, fb = lm.generation_metrics(lang, toks, jnp.log(true + 1e-30), prompt_len=4)
    np.testing.assert_allclose(kl, 0, atol=1e-6) and np.testing.assert_allclose(fb, 0, atol=1e-6)
    # a uniform model past the first `order` tokens: KL = log(4/2) and forbidden mass 2/4 at every position
    kl, fb = lm.generation_metrics(lang, toks, jnp.full(true.shape, np.log(0.25)), prompt_len=4)
    np.testing.assert_allclose(kl, np.log(2), rtol=1e-5) and np.testing.assert_allclose(fb, 0.5, rtol=1e-5)


def test_valid_fraction_and_lr_schedule():
    first = np.array([[10, 30, 100, 5]])
    np.testing.assert_allclose(diagnostics.valid_fraction(first, 20, prompt_len=8), [0.5])  # 30 and 100 reach 28
    cfg = presets.LM["smoke"]
    c, d = lm._lr_schedule(cfg, False), lm._lr_schedule(cfg, True)
    np.testing.assert_allclose(c[: cfg.warmup], cfg.lr * np.arange(1, cfg.warmup + 1) / cfg.warmup, rtol=1e-6)
    np.testing.assert_allclose(c[cfg.warmup :], cfg.lr)
    s = cfg.cooldown_start
    np.testing.assert_array_equal(c[:s], d[:s])
    np.testing.assert_allclose(d[s:], cfg.lr * (cfg.steps - np.arange(s, cfg.steps)) / (cfg.steps - s), rtol=1e-6)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("GVATHEORY_CACHE", str(tmp_path_factory.mktemp("cache")))
    cfg = presets.LM["smoke"]
    return cfg, lm.run(cfg, 0, progress=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as m:
        yield m


def test_smoke_run_shapes_learning_and_determinism(smoke_run):
    cfg, out = smoke_run
    C, Cc, n = len(cfg.checkpoints), round(cfg.cooldown * cfg.steps) // cfg.eval_every, cfg.n_gen + cfg.n_greedy
    assert out["val_loss"].shape == (3, C) and out["first_error"].shape == (3, C, n)
    assert out["cool_val_loss"].shape == (3, Cc) and out["examples"].shape == (3, C, cfg.n_examples, cfg.prompt_len + cfg.gen_len)
    assert out["val_loss"][0, -1] < np.log(4) - 0.1  # learned something from a uniform start
    assert out["val_loss"][0, -1] > out["val_entropy"] - 1e-3  # never below the generator's entropy rate
    again = lm._train(cfg, 0, progress=False)  # recomputed, not read from the cache
    for k in out:
        np.testing.assert_array_equal(out[k], again[k], err_msg=k)
    # generations are checked by the exact checker: the stored first errors agree with check()
    ok, first = lg.check(cfg.lang, out["examples"][:, -1])
    np.testing.assert_array_equal(first, out["first_error"][:, -1, : cfg.n_examples])
    s = diagnostics.generation_summary(out, 1, n_gen=cfg.n_gen, prompt_len=cfg.prompt_len, horizon=cfg.gen_len)
    assert 0 <= s["valid"] <= 1 and s["noise"] >= 0 and s["forbidden"] >= 0


def test_character_loader_on_a_generated_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    words = ["the cat", "a dog", "sat", "ran", "on the mat", "away"]
    text = " ".join(rng.choice(words, 6000)) + ".\n"
    path = tmp_path / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    tokens, alphabet = lm.load_text(path)
    assert "".join(alphabet[t] for t in tokens) == text and alphabet == "".join(sorted(set(text)))
    cfg = dataclasses.replace(presets.LM["smoke"], text_file=str(path), steps=60, cooldown=0.0, eval_every=20)
    out = lm.run(cfg, 0, progress=False)
    assert "first_error" not in out and out["val_loss"].shape == (3, 3)
    assert out["val_loss"][0, -1] < 0.8 * np.log(len(alphabet))  # better than uniform over the characters
    assert out["examples"].max() < len(alphabet)


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="seq_len"):
        dataclasses.replace(presets.LM["smoke"], seq_len=4)
    with pytest.raises(ValueError, match="horizons"):
        dataclasses.replace(presets.LM["smoke"], horizons=(10_000,))
    with pytest.raises(ValueError, match="lang"):
        lm.LMConfig(lang="dyck")
    with pytest.raises(ValueError, match="d_model"):
        tf.TransformerConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="temperature"):
        tf.generate(tf.TransformerConfig(), tf.init(tf.TransformerConfig(), key=jax.random.key(0)), jnp.zeros((1, 2), int), 4, key=jax.random.key(0), temperature=0.0)


@pytest.mark.parametrize("lang", [lg.Dyck(k=2, depth=3), lg.FlipFlop(p_write=0.3, p_read=0.3)], ids=["dyck", "flipflop"])
def test_other_languages_run_end_to_end(lang, tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    cfg = dataclasses.replace(presets.LM["smoke"], lang=lang, steps=20, cooldown=0.5)
    out = lm.run(cfg, 1, progress=False)
    assert out["first_error"].shape == (3, 2, cfg.n_gen + cfg.n_greedy) and out["cool_first_error"].shape[1] == 1
    ok, first = lg.check(lang, out["examples"][:, -1])
    np.testing.assert_array_equal(first, out["first_error"][:, -1, : cfg.n_examples])
    assert np.all(out["kl"] >= -1e-6) and np.all((out["forbidden"] >= 0) & (out["forbidden"] <= 1 + 1e-6))
    assert out["val_loss"][0, -1] >= out["val_entropy"] - 1e-3
