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


# ---------------------------------------------------------------------------------------------------
# The reference implementations' conventions, each re-stated here in numpy from its documented update rule
# and fed the same parameter sequence as this package's averager.


def _sequence(T=400, d=3, seed=7):
    """A drifting, noisy parameter sequence θ_0..θ_T [T+1, d] (float64)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(0.1 * rng.standard_normal((T + 1, d)), 0) + np.linspace(0, 2, T + 1)[:, None]


def trl_bema(thetas, *, update_freq, ema_power, bias_power, lag, update_after, multiplier, min_ema_multiplier=0.0):
    """TRL's BEMACallback: θ_0 and the EMA snapshot at step == update_after; at (step − update_after) % update_freq
    == 0 later, EMA ← (1 − β) EMA + β θ_t and BEMA ← EMA + α (θ_t − θ_0), with β = max((ρ + γ t)^−κ, min),
    α = (ρ + γ t)^−η and t the global step. Returns the BEMA weights after each step (None before the first update)."""
    out, theta0, ema, bema_w = [None], thetas[0].copy(), thetas[0].copy(), None
    for step in range(1, len(thetas)):
        th = thetas[step]
        if step < update_after:
            out.append(bema_w)
            continue
        if step == update_after:
            theta0, ema = th.copy(), th.copy()
        elif (step - update_after) % update_freq == 0:
            beta = max((lag + multiplier * step) ** (-ema_power), min_ema_multiplier)
            alpha = (lag + multiplier * step) ** (-bias_power)
            ema = (1 - beta) * ema + beta * th
            bema_w = ema + alpha * (th - theta0)
        out.append(bema_w)
    return out


def authors_bema(thetas, *, ema_power, eta_power, scaling_lag, ema_gamma=1.0):
    """abblock/bema's core_online.py with update_freq = 1: θ_0 = the initial weights; at every step t >= 1,
    t_eff = max(0, t − lag), β = γ (1 + t_eff)^−κ, α = γ (1 + t_eff)^−η, EMA ← (1 − β) EMA + β θ_t,
    BEMA = EMA + α (θ_t − θ_0)."""
    theta0, ema, out = thetas[0].copy(), thetas[0].copy(), [thetas[0].copy()]
    for t in range(1, len(thetas)):
        te = max(0, t - scaling_lag)
        beta, alpha = ema_gamma * (1.0 + te) ** (-ema_power), ema_gamma * (1.0 + te) ** (-eta_power)
        ema = (1 - beta) * ema + beta * thetas[t]
        out.append(ema + alpha * (thetas[t] - theta0))
    return out


def ema_pytorch(thetas, *, beta, update_after_step, update_every, inv_gamma, power, min_value=0.0):
    """ema-pytorch's EMA.update() called once per iterate: the first call copies θ_0; call c copies θ_c while
    c <= update_after_step (on calls divisible by update_every), then lerps ema toward θ_c by 1 − decay,
    decay = clamp(1 − (1 + e / inv_gamma)^−power, min_value, beta), e = c − update_after_step."""
    ema, out = thetas[0].copy(), [thetas[0].copy()]
    for c in range(1, len(thetas)):
        if c % update_every == 0:
            if c <= update_after_step:
                ema = thetas[c].copy()
            else:
                e = c - update_after_step
                decay = min(max(1 - (1 + e / inv_gamma) ** (-power), min_value), beta)
                ema = decay * ema + (1 - decay) * thetas[c]
        out.append(ema)
    return out


def edm2_power_ema(thetas, *, exponent):
    """EDM2's power-function EMA (training loop with t_delta = one step): at step t >= 1,
    β = (1 − 1/t)^(γ+1) and p_ema ← p_ema.lerp(p_net, 1 − β)."""
    ema, out = thetas[0].copy(), [thetas[0].copy()]
    for t in range(1, len(thetas)):
        b = (1 - 1 / t) ** (exponent + 1)
        ema = ema + (1 - b) * (thetas[t] - ema)
        out.append(ema)
    return out


@pytest.mark.parametrize("freq, after, lag, mult", [(1, 0, 10, 1.0), (25, 0, 10, 1.0), (20, 60, 10, 1.0), (1, 30, 4, 0.5)])
def test_bema_matches_trl_bemacallback(freq, after, lag, mult):
    thetas = _sequence().astype(np.float32)
    ref = trl_bema(thetas.astype(np.float64), update_freq=freq, ema_power=0.5, bias_power=0.2, lag=lag, update_after=after, multiplier=mult)
    # TRL counts t from the start of training, this package from the end of burn-in: ρ absorbs γτ
    ours = run(av.bema(lag=lag + mult * after, gamma=mult, burn_in=after, every=freq), thetas)
    checked = [t for t in range(len(thetas)) if ref[t] is not None]
    assert len(checked) > 10
    for t in checked:
        np.testing.assert_allclose(ours[t], ref[t], rtol=2e-5, atol=2e-5, err_msg=f"step {t}")


def test_bema_matches_the_authors_core_online_after_the_lag():
    thetas = _sequence().astype(np.float32)
    rho = 10
    ref = authors_bema(thetas.astype(np.float64), ema_power=0.5, eta_power=0.2, scaling_lag=rho)
    ours = run(av.averager(av.AveragingConfig(power=0.5, bias_power=0.2, lag=1.0, gamma=1.0, burn_in=rho, anchor="init")), thetas)
    for t in range(rho + 1, len(thetas)):
        np.testing.assert_allclose(ours[t], ref[t], rtol=2e-5, atol=2e-5, err_msg=f"step {t}")
    # inside the lag the two differ, as documented: the reference outputs 2θ_t − θ_0, this package θ_t
    np.testing.assert_allclose(ref[5], 2 * thetas[5] - thetas[0], rtol=1e-6)
    np.testing.assert_allclose(ours[5], thetas[5], rtol=1e-6)
    # and the default anchor (end of burn-in, TRL's) is a different average after it
    other = run(av.averager(av.AveragingConfig(power=0.5, bias_power=0.2, lag=1.0, burn_in=rho)), thetas)
    assert np.abs(other[-1] - ref[-1]).max() > 1e-2


# beta = 0.95 in the second case: the clamp on the decay acts from e = 55 on
@pytest.mark.parametrize("after, every, inv_gamma, power, beta", [(0, 1, 1.0, 2 / 3, 0.9999), (100, 1, 1.0, 0.75, 0.95), (100, 10, 3.0, 2 / 3, 0.9999)])
def test_polynomial_ema_matches_ema_pytorch(after, every, inv_gamma, power, beta):
    thetas = _sequence().astype(np.float32)
    ref = ema_pytorch(thetas.astype(np.float64), beta=beta, update_after_step=after, update_every=every, inv_gamma=inv_gamma, power=power)
    ours = run(av.polynomial_ema(power, gamma=1 / inv_gamma, lag=1.0, beta_min=1 - beta, burn_in=after, every=every), thetas)
    for t in range(after, len(thetas)):
        np.testing.assert_allclose(ours[t], ref[t], rtol=2e-5, atol=2e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("exponent", [6.94, 16.97])
def test_power_function_ema_matches_edm2_and_its_profile_width(exponent):
    thetas = _sequence().astype(np.float32)
    ref = edm2_power_ema(thetas.astype(np.float64), exponent=exponent)
    np.testing.assert_allclose(run(av.power_function_ema(exponent), thetas), np.stack(ref), rtol=2e-5, atol=2e-5)
    # the weight profile over θ_0..θ_T has EDM2's relative standard deviation √((γ+1)/((γ+2)²(γ+3))) (their Eq. 123)
    from gvatheory.core import posthoc

    T = 20_000
    w = posthoc.weights(av.power_function_ema(exponent).config, T)
    tau = np.arange(T + 1) / T
    mean = (w * tau).sum()
    std = np.sqrt((w * (tau - mean) ** 2).sum())
    assert w.sum() == pytest.approx(1.0, rel=1e-9)
    assert std == pytest.approx(np.sqrt((exponent + 1) / ((exponent + 2) ** 2 * (exponent + 3))), rel=1e-3)


def test_anchor_and_exponent_are_validated():
    with pytest.raises(ValueError, match="anchor"):
        av.AveragingConfig(bias_power=0.2, anchor="start")
    with pytest.raises(ValueError, match="exponent"):
        av.AveragingConfig(exponent=-1.0)
    with pytest.raises(ValueError, match="exponent"):
        av.AveragingConfig(exponent=3.0, decay=0.9)
