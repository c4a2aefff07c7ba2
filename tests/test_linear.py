"""Linear systems against scipy and Monte Carlo: Riccati, Lyapunov cost, covariance, divergence."""
import jax
import numpy as np
import pytest
import scipy.linalg

from gvatheory.theory import linear


@pytest.fixture
def sys():
    A = np.array([[1.1, 0.3, 0.0], [0.0, 0.9, 0.2], [0.1, 0.0, 0.7]])
    B = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    return linear.LinearSystem(A=A, B=B, Q=np.diag([1.0, 2.0, 0.5]), R=np.eye(2) * 0.3, W=0.05 * np.eye(3), Sigma0=np.eye(3))


def test_lqr_gain_solves_riccati_and_stabilises(sys):
    K, P = linear.lqr_gain(sys)
    A, B, Q, R = sys.A, sys.B, sys.Q, sys.R
    riccati = Q + A.T @ P @ A - A.T @ P @ B @ np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(P, riccati, rtol=1e-9, atol=1e-9)
    assert linear.spectral_radius(linear.closed_loop(sys, K)) < 1
    # optimality: the infinite-horizon noise-free cost x0ᵀ P x0 equals the Lyapunov cost of u = Kx
    M = linear.closed_loop(sys, K)
    P_lyap = scipy.linalg.solve_discrete_lyapunov(M.T, Q + K.T @ R @ K)
    np.testing.assert_allclose(P_lyap, P, rtol=1e-8)
    # and any perturbation costs more
    for D in np.random.default_rng(0).standard_normal((5, 2, 3)):
        Mp = linear.closed_loop(sys, K + 0.05 * D)
        Pp = scipy.linalg.solve_discrete_lyapunov(Mp.T, Q + (K + 0.05 * D).T @ R @ (K + 0.05 * D))
        assert np.trace(Pp) > np.trace(P)


def test_exact_cost_against_closed_form(sys):
    K, _ = linear.lqr_gain(sys)
    M = linear.closed_loop(sys, K)
    C = sys.Q + K.T @ sys.R @ K
    # long-horizon average cost per step -> tr(C Σ∞), Σ∞ from scipy's Lyapunov solver
    S_inf = scipy.linalg.solve_discrete_lyapunov(M, sys.W)
    c = linear.cost_exact(sys, K, 400)
    assert c[-1] == pytest.approx(np.trace(C @ S_inf), rel=1e-8)
    np.testing.assert_allclose(linear.stationary_covariance(M, sys.W), S_inf, rtol=1e-10)
    # batched gains give the same per-gain answer
    Ks = np.stack([K, K + 0.01])
    np.testing.assert_allclose(linear.cost_exact(sys, Ks, 50)[1], linear.cost_exact(sys, K + 0.01, 50), rtol=1e-12)


def test_monte_carlo_cost_matches_lyapunov(sys):
    K, _ = linear.lqr_gain(sys)
    H, N = 60, 20_000
    exact = linear.cost_exact(sys, K, H).sum()
    r = linear.simulate(sys, K, H, N, key=jax.random.key(0))
    cost = np.asarray(r.cost, np.float64)
    se = cost.std(ddof=1) / np.sqrt(N)
    assert not r.diverged.any()
    assert abs(cost.mean() - exact) < 4 * se  # 4 standard errors: fails by chance with prob. < 1e-4


def test_bc_loss_population_vs_empirical(sys):
    K_star, _ = linear.lqr_gain(sys)
    K = K_star + 0.1
    X, Y = linear.bc_dataset(sys, K_star, 50, 400, key=jax.random.key(1), label_noise=0.0)
    X = np.asarray(X, np.float64)
    np.testing.assert_allclose(np.asarray(Y), X @ K_star.T, atol=1e-4)  # noise-free labels are the expert's
    Sigma_avg = linear.state_covariances(sys, K_star, 50).mean(0)
    emp = np.mean(np.sum((X @ (K - K_star).T) ** 2, -1))
    pop = linear.bc_loss(K, K_star, Sigma_avg)
    assert emp == pytest.approx(pop, rel=0.05)  # 20k correlated samples: a few % statistical error


def test_divergent_rollout_is_flagged_not_nan():
    sys = linear.LinearSystem(A=np.array([[1.5]]), B=np.array([[1.0]]), Q=np.eye(1), R=np.eye(1))
    r = linear.simulate(sys, np.array([[0.0]]), 200, 100, key=jax.random.key(0), threshold=1e6)
    assert bool(r.diverged.all())
    assert np.all(np.isfinite(np.asarray(r.cost)))
    # 1.5^t |x0| crosses 1e6 after about log(1e6/|x0|)/log 1.5 ≈ 34 steps, long before H
    assert np.asarray(r.steps).max() < 60
    assert np.isinf(linear.cost_exact(sys, np.array([[0.0]]), 2000)[-1])
    r_stable = linear.simulate(sys, np.array([[-1.0]]), 200, 100, key=jax.random.key(0))
    assert not bool(r_stable.diverged.any())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(A=np.eye(2), B=np.ones((3, 1))), "B"),
        (dict(A=np.ones((2, 3)), B=np.ones((2, 1))), "A"),
        (dict(A=np.eye(2), B=np.ones((2, 1)), Q=np.eye(3)), "Q"),
        (dict(A=np.eye(2), B=np.ones((2, 1)), R=np.zeros((1, 1))), "R"),
        (dict(A=np.eye(2), B=np.ones((2, 1)), W=-np.eye(2)), "W"),
        (dict(A=np.eye(2), B=np.ones((2, 1)), Q=np.array([[1.0, 2.0], [0.0, 1.0]])), "Q"),
    ],
)
def test_invalid_system_raises(kwargs, field):
    base = dict(Q=np.eye(2), R=np.eye(1))
    with pytest.raises(ValueError, match=field):
        linear.LinearSystem(**(base | kwargs))


def test_invalid_arguments_raise(sys):
    K, _ = linear.lqr_gain(sys)
    with pytest.raises(ValueError, match="horizon"):
        linear.cost_exact(sys, K, 0)
    with pytest.raises(ValueError, match="horizon"):
        linear.simulate(sys, K, 0, 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="n_rollouts"):
        linear.simulate(sys, K, 10, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="K"):
        linear.simulate(sys, np.zeros((3, 3)), 10, 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="label_noise"):
        linear.bc_dataset(sys, K, 10, 10, key=jax.random.key(0), label_noise=-1.0)
    with pytest.raises(ValueError, match="stable"):
        linear.stationary_covariance(np.eye(2) * 1.1, np.eye(2))
