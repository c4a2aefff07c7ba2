"""The three theory vignettes: marginal stability, CliffLQR, the OU limit."""
import jax
import numpy as np
import pytest
import scipy.stats

from gvatheory import presets
from gvatheory.core import averaging
from gvatheory.theory import cliff, linear, ou, sgd
from gvatheory.theory import marginal as mg


# --- vignette 1: marginal stability -------------------------------------------------------------
def test_marginal_expert_is_marginally_stable_and_open_loop_unstable():
    sys, K = mg.marginal_system(presets.MARGINAL["quick"])
    M = linear.closed_loop(sys, K)
    np.testing.assert_allclose(M @ M.T, np.eye(sys.n), atol=1e-12)  # orthogonal: all |λ| = 1
    assert linear.spectral_radius(sys.A) > 1.05


def test_spectral_radius_gradient_matches_finite_differences():
    sys, K = mg.marginal_system(presets.MARGINAL["quick"])
    K = K + 0.01 * np.random.default_rng(0).standard_normal(K.shape)  # a point with a simple top eigenvalue pair
    G = mg.spectral_radius_gradient(sys, K)
    eps = 1e-6
    for E in np.eye(K.size).reshape(-1, *K.shape):
        fd = (linear.spectral_radius(linear.closed_loop(sys, K + eps * E)) - linear.spectral_radius(linear.closed_loop(sys, K - eps * E))) / (2 * eps)
        assert np.sum(G * E) == pytest.approx(fd, abs=1e-5)


def test_proposition_3_1_scaling():
    """BC gap = O(H δ²); rollout gap along the worst direction grows like exp(2 g δ H)."""
    sys, K = mg.marginal_system(mg.MarginalConfig(process_noise=0.0))
    D = mg.worst_direction(sys, K)
    g = np.sum(mg.spectral_radius_gradient(sys, K) * D)
    H, delta = 2000, 0.01
    bc = mg.bc_gap(sys, K, D, [delta], H)[0]
    # noise-free, Σ_t = M^t Σ0 M^tᵀ = I for an orthogonal M: BC gap exactly δ² ‖D‖_F² per step
    np.testing.assert_allclose(bc, delta**2 * np.arange(1, H + 1), rtol=1e-9)
    J = np.cumsum(linear.cost_exact(sys, K + delta * D, H))
    slope = np.polyfit(np.arange(H // 2, H), np.log(J[H // 2 :]), 1)[0]
    rho = linear.spectral_radius(linear.closed_loop(sys, K + delta * D))
    assert slope == pytest.approx(2 * np.log(rho), rel=0.02)  # cost ∝ ρ^(2H)
    assert np.log(rho) == pytest.approx(g * delta, rel=0.02)  # first order in δ
    # the stabilising direction −D gives a negative gap
    assert mg.rollout_gap(sys, K, -D, [delta], 500)[0, -1] < 0


# --- vignette 2: CliffLQR -----------------------------------------------------------------------
def test_cliff_is_exactly_the_halfspace():
    exp = presets.CLIFF["smoke"]
    sys = cliff.cliff_system(exp.system)
    edge = cliff.cliff_edge(sys)
    K = np.tile(np.array([[0.0, -0.3, 0.4]]), (200, 1, 1))
    K[:, 0, 0] = np.linspace(edge - 0.05, edge + 0.05, 200)
    K[:, 0, 1:] += np.random.default_rng(0).standard_normal((200, 2))  # other entries do not matter
    np.testing.assert_array_equal(cliff.off_cliff(sys, K), K[:, 0, 0] >= edge - 1e-12)


def test_predicted_off_cliff_is_the_gaussian_tail():
    sys = cliff.cliff_system(cliff.CliffConfig())
    edge = cliff.cliff_edge(sys)
    cov = np.diag([0.01, 1.0, 1.0])
    p = cliff.predicted_off_cliff(sys, np.array([[edge - 0.15, 0, 0]]), cov)
    assert p == pytest.approx(scipy.stats.norm.sf(1.5))
    # and it is what a Gaussian sample gives (Monte Carlo, 4 s.e.)
    Ks = np.random.default_rng(0).multivariate_normal([edge - 0.15, 0, 0], cov, size=100_000)[:, None, :]
    frac = cliff.off_cliff(sys, Ks).mean()
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / 1e5)


def test_upper_bound_for_zero_events():
    assert cliff.upper_bound_zero(1000) == pytest.approx(1 - 0.05 ** (1 / 1000))
    # with the bound as the true rate, seeing zero in n trials has probability 5%
    assert (1 - cliff.upper_bound_zero(300)) ** 300 == pytest.approx(0.05)


def test_cliff_experiment_smoke():
    out = cliff.run_experiment(presets.CLIFF["smoke"], key=jax.random.key(0))
    assert out["off_raw"].shape == out["off_ema"].shape == (64, 40)
    assert 0 < out["pred_raw"] < 0.5 and out["pred_ema"] < out["pred_raw"]
    assert np.all(np.isfinite(out["cost_ema"]))


# --- vignette 3: the OU limit -------------------------------------------------------------------
def test_moments_reach_the_closed_form_stationary_variances():
    q = ou.QuadraticConfig(lambdas=(0.05, 0.5, 1.5), sigma=0.7, theta0=0.0)
    lr, d = 0.3, 0.97
    mo = ou.moments(q, np.full(5000, lr), averaging.ema(d).config)
    np.testing.assert_allclose(mo["var"][-1], ou.stationary_variance(q.lam, q.sigma, lr), rtol=1e-6)
    np.testing.assert_allclose(mo["ema_var"][-1], ou.stationary_ema_variance(q.lam, q.sigma, lr, d), rtol=1e-6)


def test_tuned_constant_ema_follows_the_log_law():
    """Notebook 03's log law, derived by hand: an EMA of window W >> 1/(ηλ) has variance s²/(2W) (s² = σ²/λ², the
    iterates' long-run variance) and keeps θ₀² e^{-2T/W} of its start, so the best W is 2T / ln(4Tθ₀²/s²) and
    T·MSE -> (s²/4)(1 + ln(4Tθ₀²/s²)): it grows like ln T, where tuned decay's T·MSE tends to s². The exact moments,
    minimised over W on a fine grid, agree within 3% (the law drops O(1/ln T) terms) at T = 4000."""
    q = ou.QuadraticConfig(lambdas=(0.1,), sigma=1.0, theta0=3.0)
    lr, T = 0.5, 4000
    s2 = q.sigma**2 / q.lam[0] ** 2
    w_star = 2 * T / np.log(4 * T * q.theta0**2 / s2)
    windows = np.geomspace(w_star / 2, 2 * w_star, 25)
    mse = []
    for w in windows:
        mo = ou.moments(q, np.full(T, lr), averaging.ema(1 - 1 / w).config)
        mse.append(mo["ema_mean"][-1, 0] ** 2 + mo["ema_var"][-1, 0])
    mse = np.array(mse)
    assert 0 < mse.argmin() < len(windows) - 1  # an interior minimum
    assert mse.min() == pytest.approx(s2 / 4 * (1 + np.log(4 * T * q.theta0**2 / s2)) / T, rel=0.03)
    assert windows[mse.argmin()] == pytest.approx(w_star, rel=0.1)


def test_closed_form_ema_variance_matches_sgd_module():
    """Two independent derivations: the AR(1) series formula and the joint Lyapunov solve."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 1))  # E x² ≈ 1: loss (kx − y)², curvature of ½λk² with λ = 2 Ê x²
    Y = 0.5 * rng.standard_normal((20_000, 1))
    problem = sgd.LeastSquares(X, Y)
    lam = 2 * problem.covariance[0, 0]
    sigma2 = problem.noise_at_minimiser()[0, 0]  # per-sample gradient variance at the minimiser
    lr, d = 0.05, 0.9
    S = sgd.stationary_covariance(problem, lr, 1, noise="gaussian", ema_decay=d)
    assert S[0, 0] == pytest.approx(ou.stationary_variance(lam, np.sqrt(sigma2), lr), rel=1e-9)
    assert S[1, 1] == pytest.approx(ou.stationary_ema_variance(lam, np.sqrt(sigma2), lr, d), rel=1e-9)


def test_moments_match_monte_carlo_with_decay_and_bema():
    q = ou.QuadraticConfig(lambdas=(0.1, 1.0), sigma=1.0, theta0=2.0)
    cfg = sgd.SGDConfig(lr=0.4, steps=300, n_runs=4000, record_every=100, schedule="inverse_time", decay_steps=50)
    avg = averaging.bema(burn_in=20, every=2)
    mo = ou.moments(q, cfg.learning_rates(), avg.config)
    tr = ou.simulate(q, cfg, {"b": avg}, key=jax.random.key(0))
    for sim, pre in ((tr.raw, ""), (tr.averages["b"], "bema_")):
        x = np.asarray(sim, np.float64)  # [runs, R, d]
        m, v = mo[pre + "mean"][cfg.record_every - 1 :: cfg.record_every], mo[pre + "var"][cfg.record_every - 1 :: cfg.record_every]
        assert np.max(np.abs(x.mean(0) - m) / np.sqrt(v / len(x))) < 4.5
        assert np.max(np.abs(x.var(0, ddof=1) / v - 1) / np.sqrt(2 / len(x))) < 4.5


@pytest.mark.parametrize(
    "ctor, kwargs, field",
    [
        (mg.MarginalConfig, dict(omegas=(4.0,)), "omegas"),
        (mg.MarginalConfig, dict(horizon=0), "horizon"),
        (mg.MarginalConfig, dict(deltas=(-0.1,)), "deltas"),
        (cliff.CliffConfig, dict(passive=(1.2,)), "passive"),
        (cliff.CliffConfig, dict(input_cost=0.0), "input_cost"),
        (cliff.CliffConfig, dict(horizon=0), "horizon"),
        (cliff.CliffExperiment, dict(ema_decay=1.0), "decays"),
        (cliff.CliffExperiment, dict(steps=1000, record_every=300), "steps"),
        (ou.QuadraticConfig, dict(lambdas=(0.1, -1.0)), "lambdas"),
        (ou.QuadraticConfig, dict(sigma=-1.0), "sigma"),
        (ou.OUExperiment, dict(lr=30.0), "lr"),
    ],
)
def test_invalid_vignette_configs_raise(ctor, kwargs, field):
    with pytest.raises(ValueError, match=field):
        ctor(**kwargs)
