"""The loss and return landscapes around a trained policy, and the learned closed loop's local stability.

Slices (the paper's "fractal" reward landscape, Block et al. 2024): BC loss and rollout return along a line
θ + t d through trained parameters θ, for a stochastic-gradient direction and a random one. The
closed-loop Jacobian J_t = ∂/∂x step(x, π(x)) along rollouts tells how the learned loop amplifies
perturbations: a spectral radius above one is local instability.
"""
from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from gvatheory.control import bc


def directions(cfg: bc.BCConfig, flat_params, *, key, ev: bc.Evaluator | None = None) -> dict:
    """Unit directions in flat parameter space at θ: a minibatch gradient ("sgd"; the full gradient if ``cfg.batch_size`` is 0) and a Gaussian ("random").
    ``ev``: ``cfg``'s evaluator, if the caller has built it already (:func:`gvatheory.control.bc.make_evaluator`)."""
    ev = ev if ev is not None else bc.make_evaluator(cfg)
    params = bc.unravel(cfg, flat_params)
    X, U = jnp.asarray(ev.data["X"]), jnp.asarray(ev.data["U"])
    k1, k2 = jax.random.split(key)
    idx = jax.random.randint(k1, (cfg.batch_size,), 0, X.shape[0]) if cfg.batch_size else jnp.arange(X.shape[0])
    g = jax.flatten_util.ravel_pytree(jax.grad(ev.loss)(params, X[idx], U[idx]))[0]
    r = jax.random.normal(k2, g.shape)
    return {"sgd": np.asarray(g / jnp.linalg.norm(g)), "random": np.asarray(r / jnp.linalg.norm(r))}


def slice_along(cfg: bc.BCConfig, flat_params, direction, ts, *, batch: int = 8, progress: bool = False, ev: bc.Evaluator | None = None) -> dict:
    """BC loss and rollouts at θ + t d for every t in ``ts`` [T], on either backend.

    Returns ``loss`` [T] (held-out BC loss), ``ret``, ``failed`` and ``diverged`` [T, N]. Points are
    evaluated ``batch`` at a time with vmap (one compiled function for the whole slice); ``progress`` shows
    a bar over the time steps of rollouts that run on the host (MuJoCo); ``ev``: as in :func:`directions`.
    """
    ev = ev if ev is not None else bc.make_evaluator(cfg)
    theta, d = jnp.asarray(flat_params), jnp.asarray(direction)

    @jax.jit
    def score(t):
        return jax.vmap(lambda ti: ev.evaluate(ev.unravel(theta + ti * d)))(t)

    ts = np.asarray(ts, np.float32)
    pad = (-len(ts)) % batch
    tt = np.concatenate([ts, np.full(pad, ts[-1])]).reshape(-1, batch)
    outs = [score(jnp.asarray(t)) for t in tt]
    res = {k: np.concatenate([np.asarray(o[k]) for o in outs])[: len(ts)] for k in outs[0]}
    # rollouts that the backend runs on the host (C MuJoCo) take the same points, formed on the host
    flats = np.asarray(flat_params, np.float32)[None] + ts[:, None] * np.asarray(direction, np.float32)[None]
    res.update(ev.backend.after(bc.batched_policy(ev), flats, progress=progress))
    return {"loss": res["val_loss"], "ret": res["ret"], "failed": res["failed"], "diverged": res["diverged"]}


def roughness(y) -> float:
    """Mean |second difference| of a sampled curve ÷ its range: near 0 for a smooth curve sampled finely
    (a parabola on n points symmetric about its vertex gives 8/(n − 1)²), of order 1 for one that jumps
    between neighbouring points."""
    y = np.asarray(y, np.float64)
    if y.ndim != 1 or y.size < 3:
        raise ValueError(f"roughness needs a 1-d curve of at least 3 points, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("roughness of a curve with non-finite values")
    return float(np.mean(np.abs(np.diff(y, 2))) / max(np.ptp(y), 1e-12))


def slices(cfg: bc.BCConfig, flat_params, *, key, n_points: int, names=("sgd", "random"), rise: float = 0.1, progress: bool = False) -> dict:
    """:func:`slice_along` each named direction of :func:`directions` through θ, on ``n_points`` points over
    the window ±t of :func:`span_for_loss_rise` (the loss rises by at most ``rise`` there).

    Returns a flat dict (cacheable): ``<name>_ts`` [T], ``<name>_span`` (t of the window's edge) and
    ``<name>_loss`` [T], ``<name>_ret``, ``<name>_failed``, ``<name>_diverged`` [T, N].
    """
    if n_points < 3:
        raise ValueError(f"n_points must be >= 3 (a second difference), got {n_points}")
    ev = bc.make_evaluator(cfg)  # built once for the directions, the windows and the slices
    dirs = directions(cfg, flat_params, key=key, ev=ev)
    if unknown := set(names) - set(dirs):
        raise ValueError(f"unknown directions {sorted(unknown)}: choose from {sorted(dirs)}")
    out = {}
    for name in names:
        span = span_for_loss_rise(cfg, flat_params, dirs[name], rise=rise, ev=ev)
        ts = np.linspace(-span, span, n_points)
        out.update({f"{name}_ts": ts, f"{name}_span": np.float64(span)})
        out.update({f"{name}_{k}": v for k, v in slice_along(cfg, flat_params, dirs[name], ts, progress=progress, ev=ev).items()})
    return out


def closed_loop_spectral_radii(cfg: bc.BCConfig, flat_params=None, *, policy=None, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ρ(∂/∂x step(x, π(x))) along the rollouts of π from the evaluation starts.

    π is the network with parameters ``flat_params``, or any ``policy(x) -> u`` (e.g. the expert).

    Returns:
        rho [N, H] and alive [N, H] (False from the step a rollout failed; mask rho with it). The
        Jacobians come from JAX autodiff, their eigenvalues from numpy (JAX's non-symmetric
        eigensolver is CPU-only, this runs unchanged on a GPU).
    """
    ev = bc.make_evaluator(cfg)
    if policy is None:
        params = bc.unravel(cfg, flat_params)
        policy = lambda x: ev.policy(params, x)
    H = horizon or cfg.horizon
    system = ev.system
    closed = lambda x: system.step(x, policy(x))

    def one(x0):
        def step(carry, _):
            x, alive = carry
            alive = alive & ~system.failed(x)
            J = jax.jacfwd(closed)(x)
            x = jnp.where(alive, closed(x), x)
            return (x, alive), (J, alive)

        return jax.lax.scan(step, (x0, jnp.array(True)), None, length=H)[1]

    J, alive = jax.jit(jax.vmap(one))(jnp.asarray(ev.data["x0"]))
    rho = np.abs(np.linalg.eigvals(np.asarray(J, np.float64))).max(-1)
    return rho, np.asarray(alive)


def span_for_loss_rise(cfg: bc.BCConfig, flat_params, direction, rise: float = 0.1, *, ev: bc.Evaluator | None = None) -> float:
    """The largest t (on a factor-√2 grid) with BC loss at θ ± t d at most (1 + rise) × the loss at θ.

    Slices are drawn over ±t: a window in which the *loss* barely changes — of the size of the loss
    fluctuations between SGD iterates — so any structure in the return is not a loss effect. ``ev``: as in
    :func:`directions`.
    """
    if not rise > 0:
        raise ValueError(f"rise must be > 0, got {rise}")
    ev = ev if ev is not None else bc.make_evaluator(cfg)
    Xv, Uv = jnp.asarray(ev.data["X_val"]), jnp.asarray(ev.data["U_val"])
    theta, d = jnp.asarray(flat_params), jnp.asarray(direction)
    ts = 2.0 ** (np.arange(-40, 21) / 2)  # 1e-6 ... 1e3
    loss = jax.jit(jax.vmap(lambda t: ev.loss(bc.unravel(cfg, theta + t * d), Xv, Uv)))
    l0 = float(loss(jnp.zeros(1))[0])
    worst = np.maximum(np.asarray(loss(jnp.asarray(ts, jnp.float32))), np.asarray(loss(jnp.asarray(-ts, jnp.float32))))
    ok = np.flatnonzero(worst <= (1 + rise) * l0)
    return float(ts[ok[-1]]) if ok.size else float(ts[0])
