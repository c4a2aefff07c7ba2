"""The behavior-cloning engine, the GVA diagnostics and the landscape tools."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvatheory import presets
from gvatheory.control import bc, landscape, lqr, policies, systems
from gvatheory.core import diagnostics
from gvatheory.theory import linear

SMOKE = dataclasses.replace(presets.BC["smoke"], system="cartpole")


def run(cfg, key):
    """One run of ``cfg``, completed on the host (steps, expert returns), as a numpy dict."""
    return bc.finish(cfg, bc.make_run(cfg)(key))


@pytest.fixture(scope="module")
def run_smoke():
    r = bc.make_run(SMOKE)
    return r, bc.finish(SMOKE, r(jax.random.key(0)))


def test_run_shapes_and_determinism(run_smoke):
    r, out = run_smoke
    C, V, N = len(SMOKE.checkpoints), len(SMOKE.variants), SMOKE.n_eval
    assert out["ret"].shape == (V, C, N) and out["failed"].shape == (V, C, N) and out["diverged"].shape == (V, C, N)
    assert out["val_loss"].shape == (V, C) and out["grad_top"].shape == (C, 5)
    assert np.all(np.isfinite(out["ret"])) and np.all(np.isfinite(out["val_loss"]))
    again = bc.finish(SMOKE, r(jax.random.key(0)))
    for k in out:
        np.testing.assert_array_equal(out[k], again[k], err_msg=k)  # same seed, same numbers (CPU)
    other = r(jax.random.key(1))
    assert not np.array_equal(out["val_loss"], other["val_loss"])
    assert out["val_loss"][0, -1] < 0.5 * out["val_loss"][0, 0]  # it learns


def test_ema_with_zero_decay_is_the_raw_iterate():
    out = run(dataclasses.replace(SMOKE, ema_decay=0.0), jax.random.key(0))
    np.testing.assert_allclose(out["val_loss"][1], out["val_loss"][0], rtol=1e-6)
    np.testing.assert_allclose(out["final_params"][1], out["final_params"][0], rtol=1e-6)


def test_extra_averages_are_tracked_in_the_same_run():
    from gvatheory.core import averaging

    extra = (("ema0", averaging.ema(0.0).config), ("poly", averaging.polynomial_ema(0.8, lag=1.0).config))
    cfg = dataclasses.replace(SMOKE, steps=100, eval_every=50, extra_averages=extra, store_params=True)
    out = run(cfg, jax.random.key(0))
    assert cfg.variants == ("raw", "ema", "ema0", "poly") and out["params"].shape[:2] == (4, 2)
    np.testing.assert_allclose(out["val_loss"][2], out["val_loss"][0], rtol=1e-6)  # EMA(0) is the raw iterate
    np.testing.assert_allclose(out["params"][:, -1], out["final_params"], rtol=1e-6)
    with pytest.raises(ValueError, match="extra_averages"):
        dataclasses.replace(SMOKE, extra_averages=(("raw", averaging.ema(0.5).config),))


def test_dense_window_reproduces_the_same_iterates():
    """Evaluating every step inside a window sees exactly the iterates of the sparse run."""
    sparse = run(dataclasses.replace(SMOKE, steps=100, eval_every=50), jax.random.key(3))
    dense = run(dataclasses.replace(SMOKE, steps=52, eval_start=48, eval_every=1), jax.random.key(3))
    assert list(dense["steps"]) == [49, 50, 51, 52]
    np.testing.assert_allclose(dense["val_loss"][:, 1], sparse["val_loss"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(dense["ret"][:, 1], sparse["ret"][:, 0], rtol=1e-5)


def test_normalizer_and_action_units():
    rng = np.random.default_rng(0)
    X, U = rng.normal(3.0, 2.0, (1000, 4)), rng.normal(-1.0, 0.5, (1000, 1))
    n = policies.Normalizer.from_data(X, U)
    np.testing.assert_allclose(n.x_mean, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(n.u_std, U.std(0), rtol=1e-5)
    cfg = policies.PolicyConfig(width=8)
    p = policies.init(cfg, 4, 1, key=jax.random.key(0))
    x = jnp.asarray(X[:5], jnp.float32)
    raw = policies.apply(cfg, p, (x - n.x_mean) / n.x_std)
    np.testing.assert_allclose(policies.act(cfg, p, n, x), n.u_mean + n.u_std * raw, rtol=1e-6)


def test_gradient_noise_against_numpy():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((40, 7)) @ rng.standard_normal((7, 7))
    tr, top = diagnostics.gradient_noise(g, batch_size=8, top=3)
    cov = np.cov(g.T, bias=True) / 8
    assert tr == pytest.approx(np.trace(cov))
    np.testing.assert_allclose(top, np.linalg.eigvalsh(cov)[::-1][:3], rtol=1e-10)


def test_gva_summary_on_known_series():
    loss = np.array([1.0, 1.01, 1.0, 1.01])
    R = np.array([[-10.0], [-20.0], [-10.0], [-20.0]])
    failed = np.zeros((4, 1), bool)
    m = diagnostics.gva_summary(loss, R, failed, expert_return=-5.0)
    assert m["loss_change"] == pytest.approx(np.median([0.01, 0.01 / 1.01, 0.01]))
    assert m["return_change"] == pytest.approx(10.0)
    assert m["excess"] == pytest.approx(10.0)  # mean excess cost over the expert: (5 + 15) / 2
    assert m["return_change_rel"] == pytest.approx(1.0)
    # a clone as good as its expert (excess 0.02) whose return wobbles by 0.02 in 9360 moves 1.0 of its excess
    # cost, but 0.02 / 9360 of the range from no control (return 0) to the expert: the amplification sees that
    wobble = np.array([[9359.99], [9359.97], [9359.99], [9359.97]])
    near = diagnostics.gva_summary(loss, wobble, failed, 9360.0)
    assert near["return_change_rel"] == pytest.approx(1.0)
    assert diagnostics.score_amplification(loss, wobble, 9360.0, 0.0) == pytest.approx((0.02 / 9360) / m["loss_change"])
    st = diagnostics.checkpoint_stats(np.array([[-1.0, -3.0, -8.0]]), np.array([[False, False, True]]), -1.0)
    assert st["median"][0] == -3.0 and st["excess"][0] == pytest.approx(3.0) and st["fail_fraction"][0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 checkpoints"):
        diagnostics.adjacent_change([1.0])


def test_slice_at_zero_is_the_iterate_and_expert_jacobian_is_the_lqr_loop(run_smoke):
    _, out = run_smoke
    theta = out["final_params"][0]
    d = landscape.directions(SMOKE, theta, key=jax.random.key(0))
    assert np.linalg.norm(d["sgd"]) == pytest.approx(1.0, rel=1e-5)
    sl = landscape.slice_along(SMOKE, theta, d["sgd"], [0.0, 1e-3], batch=2)
    assert sl["loss"][0] == pytest.approx(out["val_loss"][0, -1], rel=1e-5)
    np.testing.assert_allclose(sl["ret"][0], out["ret"][0, -1], rtol=1e-5)
    both = landscape.slices(SMOKE, theta, key=jax.random.key(0), n_points=3)  # the window's edges and θ itself
    for name in ("sgd", "random"):
        np.testing.assert_allclose(both[f"{name}_ts"], [-both[f"{name}_span"], 0.0, both[f"{name}_span"]])
        assert both[f"{name}_loss"][1] == pytest.approx(out["val_loss"][0, -1], rel=1e-5)
        assert both[f"{name}_loss"].max() <= 1.1 * both[f"{name}_loss"][1] * (1 + 1e-5), "the window keeps the loss within 10%"
    with pytest.raises(ValueError, match="unknown directions"):
        landscape.slices(SMOKE, theta, key=jax.random.key(0), n_points=3, names=("hessian",))
    # the expert's closed-loop Jacobian at the equilibrium is A + B K of the linearisation
    ev = bc.make_evaluator(SMOKE)
    expert = lqr.Expert(ev.system, ev.data["K"])
    A, B = lqr.linearize(ev.system)
    rho, alive = landscape.closed_loop_spectral_radii(dataclasses.replace(SMOKE, horizon=300), policy=expert)
    assert alive.all()
    # late in the rollout the state has converged to the equilibrium
    assert np.median(rho[:, -1]) == pytest.approx(linear.spectral_radius(A + B @ ev.data["K"]), rel=1e-3)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(system="pendulum"), "system"),
        (dict(steps=100, eval_every=30), "eval_every"),
        (dict(optimizer="lion"), "optimizer"),
        (dict(lr=0.0), "lr"),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(n_eval=0), "n_eval"),
        (dict(dropout=1.0), "dropout"),
        (dict(grad_clip=-1.0), "grad_clip"),
        (dict(init_seed=-1), "init_seed"),
        (dict(schedule="warm"), "schedule"),
        (dict(start_scale=0.0), "start_scale"),
    ],
)
def test_invalid_bc_config_raises(kwargs, field):
    with pytest.raises(ValueError, match=field):
        bc.BCConfig(**kwargs)


def test_invalid_policy_config_raises():
    with pytest.raises(ValueError, match="arch"):
        policies.PolicyConfig(arch="transformer")
    with pytest.raises(ValueError, match="activation"):
        policies.PolicyConfig(activation="swish2")


def test_resmlp_runs_and_counts():
    cfg = policies.PolicyConfig(arch="resmlp", depth=2, width=16)
    p = policies.init(cfg, 4, 1, key=jax.random.key(0))
    y = policies.apply(cfg, p, jnp.ones((3, 4)))
    assert y.shape == (3, 1)
    assert policies.n_params(p) == 4 * 16 + 16 + 2 * (16 * 16 + 16 + 32) + 16 + 1
    assert policies.flops_per_action(policies.PolicyConfig(depth=2, width=8), 4, 1) == 2 * (4 * 8 + 8 * 8 + 8)


def test_init_seed_fixes_the_initialisation_and_the_key_only_orders_minibatches(run_smoke):
    _, out = run_smoke
    same = run(dataclasses.replace(SMOKE, init_seed=0), jax.random.key(0))
    for k in out:  # init_seed = the run's own seed is the default run, number for number
        np.testing.assert_array_equal(out[k], same[k], err_msg=k)
    # a vanishing learning rate leaves the parameters at their initialisation: shared with init_seed, not without
    frozen = dataclasses.replace(SMOKE, lr=1e-12, grad_samples=0)
    a, b = (bc.make_run(dataclasses.replace(frozen, init_seed=5))(jax.random.key(s))["final_params"][0] for s in (1, 2))
    c, d = (bc.make_run(frozen)(jax.random.key(s))["final_params"][0] for s in (1, 2))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(c - d).max() > 0.1


def test_gradient_clipping_bounds_each_sgd_step():
    lr, clip = 0.1, 0.01
    cfg = dataclasses.replace(SMOKE, optimizer="sgd", lr=lr, grad_clip=clip, steps=20, eval_every=1, grad_samples=0, n_eval=2, horizon=10)
    out = run(cfg, jax.random.key(0))
    assert np.all(out["dparam"][0] <= lr * clip * (1 + 1e-4))
    assert np.max(out["dparam"][0]) > 0.5 * lr * clip  # the clip is active: unclipped steps are far larger here
    free = bc.make_run(dataclasses.replace(cfg, grad_clip=0.0))(jax.random.key(0))
    assert np.max(free["dparam"][0]) > 10 * lr * clip


def test_dropout_is_unbiased_and_off_at_evaluation():
    pcfg = policies.PolicyConfig(depth=1, width=64)
    params = policies.init(pcfg, 3, 2, key=jax.random.key(0))
    x = jnp.array([[0.3, -1.0, 0.5]])
    det = policies.apply(pcfg, params, x)
    np.testing.assert_array_equal(det, policies.apply(pcfg, params, x, dropout=0.5))  # no key: deterministic
    # one hidden layer, linear read-out: E[output] under inverted dropout is the deterministic output
    outs = jax.vmap(lambda k: policies.apply(pcfg, params, x, dropout=0.5, key=k))(jax.random.split(jax.random.key(1), 4000))[:, 0]
    se = outs.std(0) / np.sqrt(len(outs))
    assert np.all(np.abs(outs.mean(0) - det[0]) < 4.5 * se)
    with pytest.raises(ValueError, match="dropout"):
        policies.apply(pcfg, params, x, dropout=1.0)


def test_dropout_and_state_noise_change_training_deterministically(run_smoke):
    _, out = run_smoke
    for over in ({"dropout": 0.2}, {"state_noise": 0.1}):
        r = bc.make_run(dataclasses.replace(SMOKE, **over))
        a, b = r(jax.random.key(0)), r(jax.random.key(0))
        np.testing.assert_array_equal(a["val_loss"], b["val_loss"])
        assert not np.array_equal(a["val_loss"], out["val_loss"]) and np.all(np.isfinite(a["ret"]))


def test_make_run_is_pure_and_vmaps_over_keys(run_smoke):
    """``make_run(cfg)`` is the jitted ``run(key)`` itself: vmapped over two keys it gives the two single runs."""
    r, _ = run_smoke
    keys = jax.random.split(jax.random.key(7), 2)
    both = jax.vmap(r)(keys)
    for i in range(2):
        one = r(keys[i])
        for k in one:
            np.testing.assert_allclose(np.asarray(both[k][i]), np.asarray(one[k]), rtol=2e-5, atol=1e-6, err_msg=k)


def test_run_seeds_caches_and_times_outside_the_program(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    cfg = dataclasses.replace(SMOKE, steps=50, eval_every=25, grad_samples=0)
    assert not bc.is_cached(cfg, 0)
    (out,) = bc.run_seeds(cfg, [0])
    assert bc.is_cached(cfg, 0) and out["wall_s"] > 0
    direct = run(cfg, jax.random.key(0))
    for k in direct:
        np.testing.assert_array_equal(out[k], direct[k], err_msg=k)
    (again,) = bc.run_seeds(cfg, [0])  # from the cache
    np.testing.assert_array_equal(again["wall_s"], out["wall_s"])


def _pendulum(box):
    """A user's torque-limited pendulum on its own (not a registered module): balanced upright by LQR."""

    def step(x, u):
        th, om = x[0], x[1]
        return jnp.stack([th + 0.05 * om, om + 0.05 * (9.81 * jnp.sin(th) + u[0])])

    return systems.System(
        name="user_pendulum", step=step, x_eq=np.zeros(2), u_eq=np.zeros(1), Q=np.eye(2), R=0.1 * np.eye(1),
        failed=lambda x: (jnp.abs(x[0]) > 1.0) | ~jnp.all(jnp.isfinite(x)), start_box=np.array([box, box]), dt=0.05,
        labels=("θ", "ω"),
    )


def test_a_registered_user_system_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    systems.register_system("user_pendulum", lambda: _pendulum(0.1), replace=True)
    cfg = dataclasses.replace(SMOKE, system="user_pendulum", action_noise=0.05, steps=100, eval_every=50, grad_samples=0)
    (out,) = bc.run_seeds(cfg, [0])
    assert out["ret"].shape == (2, 2, cfg.n_eval) and np.all(np.isfinite(out["ret"]))
    assert out["val_loss"][0, -1] < out["val_loss"][0, 0]  # it learns
    ev = bc.make_evaluator(cfg)
    assert not ev.data["expert_failed"].any()  # the expert never fell
    with pytest.raises(ValueError, match="already registered"):
        systems.register_system("user_pendulum", lambda: _pendulum(0.1))


def test_a_failing_expert_is_refused_before_training_naming_its_demonstrations(tmp_path, monkeypatch):
    """From a wide start box the LQR expert cannot hold the pendulum: the demonstrations are refused with the
    failed ones named, before any training (and never trained on as NaN)."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    systems.register_system("user_pendulum_wide", lambda: _pendulum(3.0), replace=True)
    cfg = dataclasses.replace(SMOKE, system="user_pendulum_wide", steps=100, eval_every=50, grad_samples=0)
    with pytest.raises(bc.DemonstrationError, match=r"failed \d+ of 12 demonstrations \(train #\d+"):
        bc.run_seeds(cfg, [0])
    assert not bc.is_cached(cfg, 0)


def test_malformed_user_systems_are_refused():
    with pytest.raises(ValueError, match="Q must have shape"):
        systems.register_system("bad", lambda: dataclasses.replace(_pendulum(0.1), Q=np.eye(3)), replace=True)
    with pytest.raises(ValueError, match="must return a"):
        systems.register_system("bad", lambda: "pendulum", replace=True)
    assert "bad" not in systems.SYSTEMS


def test_roughness_against_closed_forms():
    """A parabola on n points symmetric about its vertex: 8/(n−1)² exactly; independent ±1 signs: E|a − 2b + c| / 2 = 1 (Monte Carlo, 4 standard errors)."""
    for n in (5, 41, 401):
        t = np.linspace(-1, 1, n)
        assert landscape.roughness(3 * t**2 + 7) == pytest.approx(8 / (n - 1) ** 2, rel=1e-9)
    y = np.random.default_rng(0).choice([-1.0, 1.0], size=200_001)
    assert abs(landscape.roughness(y) - 1.0) < 4 * 1.0 / np.sqrt(y.size)  # |a − 2b + c|/2 has variance ≤ 1
    with pytest.raises(ValueError, match="at least 3"):
        landscape.roughness([1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        landscape.roughness([1.0, np.nan, 2.0])
