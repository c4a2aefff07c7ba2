"""The MuJoCo backend against Gymnasium itself, the LQR expert against finite differences and the Riccati equation,
divergence handling, and the BC engine on the MuJoCo backend."""
import dataclasses

import gymnasium as gym
import jax
import mujoco
import numpy as np
import pytest
import scipy.linalg

from gvatheory import presets
from gvatheory.control import bc, mujoco as mjenv

IDP = "InvertedDoublePendulum-v5"


@pytest.mark.parametrize("name", list(mjenv.TASKS))
def test_backend_matches_gymnasium_step_for_step(name):
    """Same start (Gymnasium's reset), same random actions: the same observations and rewards (to 1e-12: the same
    MuJoCo quantities, summed in possibly another order) and identical terminations, over several episodes (each
    restarted from Gymnasium's next reset), in a batch of 3 environments."""
    envs = [gym.make(name) for _ in range(3)]
    be = mjenv.BatchEnv(name, 3, threads=2)
    rng = np.random.default_rng(0)
    n_term = 0
    obs = [e.reset(seed=10 * i)[0] for i, e in enumerate(envs)]
    o = be.reset(np.stack([e.unwrapped.data.qpos for e in envs]), np.stack([e.unwrapped.data.qvel for e in envs]))
    np.testing.assert_allclose(o, np.stack(obs), rtol=1e-12, atol=1e-12)
    for t in range(150):
        a = rng.uniform(-1.5, 1.5, (3, be.act_dim))  # beyond the control range too: MuJoCo clamps, the cost does not
        o, r, term, div = be.step(a)
        for i, e in enumerate(envs):
            ob, rew, te, tr, _ = e.step(a[i])
            np.testing.assert_allclose(o[i], ob, rtol=1e-12, atol=1e-12, err_msg=f"{name} env {i} step {t}")
            np.testing.assert_allclose(r[i], rew, rtol=1e-12, atol=1e-12, err_msg=f"{name} env {i} step {t}")
            assert bool(term[i]) == te and not div[i], (name, i, t)
            if te or tr:
                n_term += te
                ob, _ = e.reset(seed=1000 + t)
                qp, qv = be.raw["qpos"].copy(), be.raw["qvel"].copy()
                qp[i], qv[i] = e.unwrapped.data.qpos, e.unwrapped.data.qvel
                keep = [j for j in range(3) if j != i]  # only environment i restarts
                before = {k: v[keep].copy() for k, v in be.raw.items()}
                o = be.reset(qp, qv, which=[i])
                np.testing.assert_allclose(o[i], ob, rtol=1e-12, atol=1e-12)
                for k, v in before.items():
                    np.testing.assert_array_equal(be.raw[k][keep], v)
    if name != "HalfCheetah-v5":
        assert n_term > 0, "random actions should end some episodes: the termination rule was not exercised"


def test_reset_distribution_matches_gymnasium_moments():
    """Monte Carlo, 20,000 starts: mean and variance of the backend's reset equal the closed forms of Gymnasium's
    reset_model (uniform ±s: variance s²/3; normal: s²) within 5 standard errors."""
    n = 20_000
    for name, spec in mjenv.TASKS.items():
        m = mjenv.load_model(name)
        qpos, qvel = mjenv.reset_states(name, n, rng=np.random.default_rng(1))
        s = spec.reset_noise
        var_v = s**2 / 3 if spec.qvel_noise == "uniform" else s**2
        for x, mean, var, fourth in ((qpos, m.qpos0, s**2 / 3, s**4 / 5), (qvel, 0.0, var_v, 3 * var_v**2 if spec.qvel_noise == "normal" else s**4 / 5)):
            assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n)), name
            assert np.all(np.abs(x.var(0) - var) < 5 * np.sqrt((fourth - var**2) / n)), name


def test_lqr_expert_riccati_finite_differences_and_balance():
    ex = mjenv.lqr_expert(IDP)
    A, B, K = ex.A, ex.B, ex.K
    # the DARE solution in the package's convention u = K (x - x_eq): K = -(R + B'PB)^-1 B'PA with P from scipy,
    # and the closed loop A + B K is stable
    P = scipy.linalg.solve_discrete_are(A, B, np.eye(6), np.eye(1))
    np.testing.assert_allclose(K, -np.linalg.solve(np.eye(1) + B.T @ P @ B, B.T @ P @ A), rtol=1e-8)
    assert np.abs(np.linalg.eigvals(A + B @ K)).max() < 1
    # the lifted linearisation against central differences of the true (RK4) env step
    m = mjenv.load_model(IDP)
    d = mujoco.MjData(m)

    def env_step(x, u):
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:], d.ctrl[:] = x[:3], x[3:], u
        mujoco.mj_step(m, d, nstep=5)
        return np.concatenate([d.qpos, d.qvel])

    h = 1e-6
    A_fd = np.stack([(env_step(h * e, 0.0) - env_step(-h * e, 0.0)) / (2 * h) for e in np.eye(6)], 1)
    B_fd = ((env_step(np.zeros(6), h) - env_step(np.zeros(6), -h)) / (2 * h))[:, None]
    np.testing.assert_allclose(A, A_fd, atol=0.02 * np.abs(A_fd).max())  # implicitfast vs RK4: close, not equal
    np.testing.assert_allclose(B, B_fd, atol=0.02 * np.abs(B_fd).max())
    # and it balances Gymnasium's task for the whole episode
    qpos, qvel = mjenv.reset_states(IDP, 8, rng=np.random.default_rng(0))
    r = mjenv.rollout(IDP, ex, qpos, qvel, 1000)
    assert not r.failed.any() and r.ret.min() > 9000


def test_divergence_is_detected_and_counted():
    """A non-finite state makes MuJoCo reset the simulation silently; the backend reports a divergence and a
    failure, returns stay finite, and the healthy environment in the same batch is unaffected."""
    qpos, qvel = mjenv.reset_states(IDP, 2, rng=np.random.default_rng(0))
    qvel[1, 1] = np.nan
    ex = mjenv.lqr_expert(IDP)
    r = mjenv.rollout(IDP, lambda o, s: np.nan_to_num(ex(o, s)), qpos, qvel, 50)
    assert r.diverged.tolist() == [False, True] and r.failed.tolist() == [False, True]
    assert np.all(np.isfinite(r.ret)) and r.steps[0] == 50 and r.steps[1] == 1


def test_threads_do_not_change_results():
    qpos, qvel = mjenv.reset_states("Hopper-v5", 6, rng=np.random.default_rng(3))
    policy = lambda o, s: np.sin(np.arange(3) + o[:, :3] * 5)  # a deterministic closed-loop policy
    a = mjenv.rollout("Hopper-v5", policy, qpos, qvel, 200, threads=1)
    b = mjenv.rollout("Hopper-v5", policy, qpos, qvel, 200, threads=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_load_model_gives_each_caller_its_own_copy():
    # the model is compiled once per process; lqr_expert switches its copy to implicitfast, which must not
    # leak into the RK4 model every environment steps
    a = mjenv.load_model(IDP)
    mass = a.body_mass.copy()
    a.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    a.body_mass[1] += 1.0
    mjenv.lqr_expert(IDP)
    b = mjenv.BatchEnv(IDP, 1).model
    assert b is not a and b.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_array_equal(b.body_mass, mass)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown MuJoCo task"):
        mjenv.task("Hopper-v2")
    with pytest.raises(ValueError, match="threads"):
        mjenv.BatchEnv(IDP, 2, threads=0)
    env = mjenv.BatchEnv(IDP, 2)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="system must be"):
        bc.BCConfig(system="Pendulum-v1")


def test_bc_on_mujoco_matches_reevaluation_of_stored_parameters(tmp_path, monkeypatch):
    """The rollouts evaluated after the scan belong to the parameters the scan produced: re-evaluating the stored
    parameters of one checkpoint from scratch gives the same returns; the run is deterministic."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    cfg = dataclasses.replace(presets.MUJOCO["smoke"], store_params=("ema",), n_eval=3, horizon=120)
    run = bc.make_run(cfg)
    out = bc.finish(cfg, run(jax.random.key(0)))
    V, C, N = len(cfg.variants), len(cfg.checkpoints), cfg.n_eval
    assert out["ret"].shape == (V, C, N) and out["failed"].shape == (V, C, N) and out["diverged"].shape == (V, C, N)
    assert out["params"].shape[:2] == (1, C) and np.all(np.isfinite(out["val_loss"]))
    ev = bc.make_evaluator(cfg)
    r = bc.evaluate_flat(cfg, out["params"][0, -1:], ev=ev)
    np.testing.assert_array_equal(r["ret"][0], out["ret"][1, -1])
    np.testing.assert_allclose(r["val_loss"][0], out["val_loss"][1, -1], rtol=1e-6)
    np.testing.assert_array_equal(out["params"][0, -1], out["final_params"][1])
    again = bc.finish(cfg, run(jax.random.key(0)))
    np.testing.assert_array_equal(again["ret"], out["ret"])
    # the expert's own rollouts from the same starts all stand for the whole (short) horizon
    assert out["expert_ret"].shape == (N,) and out["expert_ret"].min() > 10 * cfg.horizon * 0.9


def test_mujoco_evaluation_starts_do_not_depend_on_the_demonstrations(tmp_path, monkeypatch):
    """Training, validation and evaluation draw from separate streams: more training demonstrations leave the
    validation set and the evaluation starts as they were, longer ones the evaluation starts; another data
    seed moves them."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    cfg = dataclasses.replace(presets.MUJOCO["smoke"], n_eval=5)
    base = bc.demonstrations(cfg)
    more = bc.demonstrations(dataclasses.replace(cfg, n_demos=cfg.n_demos + 3))
    longer = bc.demonstrations(dataclasses.replace(cfg, demo_horizon=cfg.demo_horizon + 20))
    other = bc.demonstrations(dataclasses.replace(cfg, data_seed=1))
    assert len(more["X"]) > len(base["X"]) and len(longer["X"]) > len(base["X"])
    np.testing.assert_array_equal(base["X_val"], more["X_val"])
    for d in (more, longer):
        np.testing.assert_array_equal(base["qpos0"], d["qpos0"])
        np.testing.assert_array_equal(base["qvel0"], d["qvel0"])
    assert not np.array_equal(base["qpos0"], other["qpos0"])
