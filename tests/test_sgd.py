"""Noisy SGD: exact stationary covariances (generalised Lyapunov) against Monte Carlo."""
import jax
import numpy as np
import pytest
import scipy.linalg

from gvatheory.core import averaging
from gvatheory.theory import sgd


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 3)) * np.array([1.0, 0.5, 0.2]) + 0.3
    K_true = np.array([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3]])
    Y = X @ K_true.T + 0.5 * rng.standard_normal((500, 2))
    return sgd.LeastSquares(X, Y)


def test_minimiser_and_hessian(problem):
    K_hat = problem.minimiser
    K_lstsq = np.linalg.lstsq(problem.X, problem.Y, rcond=None)[0].T
    np.testing.assert_allclose(K_hat, K_lstsq, rtol=1e-10)
    # the gradient 2 H vec(K − K̂) of the empirical loss, checked by central differences
    K = K_hat + 0.1
    g = 2 * problem.hessian() @ (K - K_hat).reshape(-1)
    eps = 1e-6
    fd = np.array([(problem.loss(K + eps * E) - problem.loss(K - eps * E)) / (2 * eps) for E in np.eye(6).reshape(6, 2, 3)])
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_gaussian_noise_covariance_is_scipy_lyapunov(problem):
    lr, b = 0.05, 4
    S = sgd.stationary_covariance(problem, lr, b, noise="gaussian")
    F = np.eye(6) - 2 * lr * problem.hessian()
    S_ref = scipy.linalg.solve_discrete_lyapunov(F, lr**2 * problem.noise_at_minimiser() / b)
    np.testing.assert_allclose(S, S_ref, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("noise", ["minibatch", "gaussian"])
def test_stationary_covariance_matches_simulation(problem, noise):
    lr, b, d = 0.05, 4, 0.95
    cfg = sgd.SGDConfig(lr=lr, steps=1500, batch_size=b, n_runs=4000, record_every=1500, noise=noise)
    tr = sgd.run_sgd(problem, cfg, problem.minimiser, {"ema": averaging.ema(d)}, key=jax.random.key(1))
    e = np.asarray(tr.raw[:, -1], np.float64).reshape(cfg.n_runs, -1) - problem.minimiser.reshape(-1)
    eb = np.asarray(tr.averages["ema"][:, -1], np.float64).reshape(cfg.n_runs, -1) - problem.minimiser.reshape(-1)
    S = sgd.stationary_covariance(problem, lr, b, noise=noise, ema_decay=d)
    emp = np.cov(np.hstack([e, eb]).T)
    # sample-covariance entries have s.e. sqrt((S_ii S_jj + S_ij²) / n); allow 4.5 s.e. over the 78 distinct entries
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / cfg.n_runs)
    assert np.max(np.abs(emp - S) / se) < 4.5
    # the EMA shrinks the total variance (least in the slow directions, whose correlation time is long)
    assert np.trace(S[6:, 6:]) < 0.7 * np.trace(S[:6, :6])


def test_minibatch_noise_exceeds_gaussian_away_from_optimum(problem):
    S_mb = sgd.stationary_covariance(problem, 0.05, 4)
    S_g = sgd.stationary_covariance(problem, 0.05, 4, noise="gaussian")
    assert np.trace(S_mb) > np.trace(S_g)  # the multiplicative part only adds variance


def test_too_large_step_is_refused(problem):
    lam = np.linalg.eigvalsh(problem.hessian()).max()
    with pytest.raises(ValueError, match="learning rate too large"):
        sgd.stationary_covariance(problem, 1.05 / lam, 4)


def test_schedules_from_optax():
    c = sgd.SGDConfig(lr=0.1, steps=100, schedule="cosine", decay_steps=100)
    lrs = c.learning_rates()
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] < 1e-3 and lrs.shape == (100,)
    e = sgd.SGDConfig(lr=0.1, steps=100, schedule="exponential", decay_steps=10).learning_rates()
    assert e[10] == pytest.approx(0.05, rel=1e-5)
    i = sgd.SGDConfig(lr=0.1, steps=100, schedule="inverse_time", decay_steps=10).learning_rates()
    assert i[10] == pytest.approx(0.05)


def test_cooldown_schedule_closed_form():
    # constant 0.1 for 60 steps, then linear to 0 over the last 40: eta_t = 0.1 * (100 - t) / 40 for t >= 60
    from gvatheory.core.schedules import make_schedule

    f = make_schedule("cooldown", 0.1, 100, 40)
    t = np.arange(101)
    want = np.where(t < 60, 0.1, 0.1 * (100 - t) / 40)
    np.testing.assert_allclose([float(f(k)) for k in t], want, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="decay_steps"):
        make_schedule("cooldown", 0.1, 100, 200)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(lr=-0.1), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(noise="laplace"), "noise"),
        (dict(steps=0), "steps"),
        (dict(steps=100, record_every=30), "record_every"),
        (dict(schedule="warmup"), "schedule"),
        (dict(n_runs=0), "n_runs"),
    ],
)
def test_invalid_config_raises(kwargs, field):
    with pytest.raises(ValueError, match=field):
        sgd.SGDConfig(**kwargs)


def test_invalid_problem_raises():
    with pytest.raises(ValueError, match="share N"):
        sgd.LeastSquares(np.ones((5, 2)), np.ones((4, 1)))
