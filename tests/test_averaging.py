"""The averaging API against explicit weighted sums, a linear trend, and its own resumption."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvatheory.core import averaging as av


def run(avg, thetas):
    """Feeds iterates θ_0..θ_T (θ_0 to init) and returns the average after each, [T+1, ...]."""
    state = avg.init(thetas[0])
    outs = [state.average]
    for th in thetas[1:]:
        state = avg.update(state, th)
        outs.append(state.average)
    return np.stack([np.asarray(o) for o in outs])


def explicit_weights(beta):
    """Weights w[n, j] of θ_j in the EMA after iterate n, from the β_n of each update (β_0 := 1)."""
    T = len(beta)
    w = np.zeros((T + 1, T + 1))
    w[0, 0] = 1.0
    for n in range(1, T + 1):
        w[n] = (1 - beta[n - 1]) * w[n - 1]
        w[n, n] += beta[n - 1]
    return w


@pytest.mark.parametrize(
    "avg, beta_fn",
    [
        (av.ema(0.9), lambda n: 0.1),
        (av.polynomial_ema(1.0), lambda n: 1.0 / (1 + n)),  # uniform average of θ_0..θ_n
        (av.polynomial_ema(0.7, gamma=0.5, lag=2.0, beta_min=0.05), lambda n: max(0.05, (2 + 0.5 * n) ** -0.7)),
    ],
)
def test_ema_equals_explicit_weighted_sum(avg, beta_fn):
    rng = np.random.default_rng(0)
    thetas = rng.standard_normal((60, 3)).astype(np.float32)
    beta = np.array([beta_fn(n) for n in range(1, 60)])
    # independent ground truth: closed-form weights, e.g. constant EMA is Σ_j β (1−β)^(n−j) θ_j + (1−β)^n θ_0
    w = explicit_weights(beta)
    np.testing.assert_allclose(run(avg, thetas), w @ thetas, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)


def test_uniform_average_is_the_mean():
    thetas = np.random.default_rng(1).standard_normal((40, 2)).astype(np.float32)
    out = run(av.polynomial_ema(1.0), thetas)
    np.testing.assert_allclose(out, np.cumsum(thetas, 0) / np.arange(1, 41)[:, None], rtol=1e-5, atol=1e-6)


def test_constant_ema_closed_form():
    d = 0.8
    thetas = np.random.default_rng(2).standard_normal(30).astype(np.float32)
    out = run(av.ema(d), thetas)
    n = 29
    expected = d**n * thetas[0] + sum((1 - d) * d ** (n - j) * thetas[j] for j in range(1, n + 1))
    assert out[-1] == pytest.approx(expected, rel=1e-5)


def test_burn_in_and_every():
    thetas = np.arange(20, dtype=np.float32)
    avg = av.ema(0.5, burn_in=5, every=3)
    out = run(avg, thetas)
    np.testing.assert_array_equal(out[:6], thetas[:6])  # burn-in: the average is the iterate
    # updates at n = 8, 11, 14, ...; held in between
    expected = [5.0]
    for n in range(6, 20):
        prev = expected[-1]
        expected.append(0.5 * prev + 0.5 * n if (n - 5) % 3 == 0 else prev)
    np.testing.assert_allclose(out[5:], expected)


def test_bema_equals_ema_plus_correction():
    rng = np.random.default_rng(3)
    thetas = rng.standard_normal((50, 2)).astype(np.float32)
    cfg = dict(ema_power=0.5, bias_power=0.2, lag=10.0, gamma=1.0)
    beta = np.array([(10 + k) ** -0.5 for k in range(1, 50)])
    alpha = np.array([(10 + k) ** -0.2 for k in range(1, 50)])
    ema_part = explicit_weights(beta) @ thetas
    expected = ema_part.copy()
    expected[1:] += alpha[:, None] * (thetas[1:] - thetas[0])
    np.testing.assert_allclose(run(av.bema(**cfg), thetas), expected, rtol=1e-5, atol=1e-5)


def test_bema_tracks_a_linear_trend_without_lag():
    """θ_k = v k: a power-κ EMA lags by ~ (ρ + k)^κ steps; BEMA with η_B = 1 − κ cancels that lag to O(1)."""
    v, T, kappa = 1.0, 5_000, 0.5
    thetas = jnp.arange(T + 1, dtype=jnp.float32) * v
    ema_ = av.polynomial_ema(kappa, lag=10.0)
    bema_ = av.bema(ema_power=kappa, bias_power=1 - kappa, lag=10.0)

    def final(avg):
        s = jax.lax.scan(lambda s, th: (avg.update(s, th), None), avg.init(thetas[0]), thetas[1:])[0]
        return float(s.average)

    lag_ema = (float(thetas[-1]) - final(ema_)) / v  # in steps
    lag_bema = abs(float(thetas[-1]) - final(bema_)) / v
    assert lag_ema == pytest.approx(np.sqrt(10 + T), rel=0.05)  # EMA lag ≈ 1/β_T = (ρ + T)^κ ≈ 71 steps
    assert lag_bema < 2.0  # BEMA: within two steps of the iterate
    assert lag_bema < 0.03 * lag_ema


def test_pytree_jit_vmap_and_resume():
    avg = av.bema(burn_in=3, every=2)
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    keys = jax.random.split(jax.random.key(0), 10)
    seq = [jax.tree.map(lambda p, k=k: p + jax.random.normal(k, p.shape), params) for k in keys]

    @jax.jit
    def go(state, xs):
        return jax.lax.scan(lambda s, x: (avg.update(s, x), None), state, xs)[0]

    stacked = jax.tree.map(lambda *x: jnp.stack(x), *seq)
    full = go(avg.init(params), stacked)
    half = go(avg.init(params), jax.tree.map(lambda x: x[:5], stacked))
    resumed = go(half, jax.tree.map(lambda x: x[5:], stacked))  # a checkpointed state resumes exactly
    assert int(resumed.count) == 10
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # vmap over a batch of runs
    batch = jax.vmap(lambda p: avg.update(avg.init(p), p).average)(jax.tree.map(lambda x: jnp.stack([x, 2 * x]), params))
    assert batch["w"].shape == (2, 2, 3)


def test_schedule_matches_update():
    cfg = av.AveragingConfig(power=0.6, gamma=2.0, lag=3.0, burn_in=4, every=3, bias_power=0.3)
    beta, alpha, refresh, reset = av.schedule(cfg, 30)
    thetas = np.random.default_rng(4).standard_normal(31)
    w = explicit_weights(beta)
    got = run(av.averager(cfg), thetas.astype(np.float32))
    ema_part = w @ thetas
    assert reset[:4].all() and not reset[4:].any()
    assert refresh.sum() == len(range(7, 31, 3))
    # after the last refresh BEMA = EMA + α (θ − anchor), anchor = θ_burn_in
    n = np.flatnonzero(refresh)[-1] + 1
    assert got[n] == pytest.approx(ema_part[n] + alpha[n - 1] * (thetas[n] - thetas[4]), abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(decay=1.0), "decay"),
        (dict(decay=-0.1), "decay"),
        (dict(power=-1.0), "power"),
        (dict(gamma=0.0), "gamma"),
        (dict(beta_min=1.5), "beta_min"),
        (dict(burn_in=-1), "burn_in"),
        (dict(every=0), "every"),
        (dict(bias_power=-0.5), "bias_power"),
        (dict(lag=0.0, gamma=0.5), "lag"),
    ],
)
def test_invalid_parameters_raise(kwargs, field):
    with pytest.raises(ValueError, match=field):
        av.AveragingConfig(**kwargs)
