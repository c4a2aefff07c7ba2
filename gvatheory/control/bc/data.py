"""Demonstrations for behavior cloning, from either backend, checked before anything trains on them.

The demonstrations and the evaluation starts depend on ``cfg.data_seed`` and the data fields only
(never on the run's key), and are cached under exactly those fields.

What is refused, and what is kept:

* A JAX system's trajectories run for the whole horizon even after the expert has lost the episode
  (the state keeps integrating a fallen pendulum), so a failed demonstration would teach the clone
  what the expert does *after* failing. Any failed training or validation demonstration is refused:
  :class:`DemonstrationError` names them, before any compute is spent training.
* A MuJoCo episode ends where the task terminates, so a demonstration that falls keeps only the steps
  before its fall — valid expert behaviour. Those episodes are counted (``expert_failed``) and a
  warning names how many; more than half of them falling is refused as an expert that fails.
* Non-finite states or labels are refused on either backend.
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import lqr, rollout, systems
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.mujoco import env as mjenv
from gvatheory.control.mujoco import tasks
from gvatheory.control.mujoco.lqr import lqr_expert as mujoco_lqr_expert
from gvatheory.infra.cache import cached

FIELDS = ("system", "n_demos", "n_val", "demo_horizon", "action_noise", "clean_labels", "start_scale", "data_seed", "n_eval")
MAX_FALLING = 0.5  # a MuJoCo expert that falls in more than this fraction of its demonstrations is refused


class DemonstrationError(ValueError):
    """The expert's demonstrations cannot be trained on (failed episodes, or non-finite states or labels)."""


def mujoco_expert(name: str):
    """The expert of a MuJoCo task: the LQR gain for InvertedDoublePendulum, the trained TD3 agent otherwise."""
    if tasks.task(name).expert == "lqr":
        return mujoco_lqr_expert(name)
    from gvatheory.control import experts

    return experts.load_expert(name)


def _mujoco(cfg: BCConfig) -> dict:
    # starts from the task's reset distribution, their spread (around qpos0, qvel = 0) times start_scale;
    # training, validation and evaluation draw from their own streams, so the evaluation starts depend on
    # (data_seed, n_eval, start_scale) only and do not move when the number or length of demonstrations does
    rng_train, rng_val, rng_eval = (np.random.default_rng([cfg.data_seed, 20_261_125, k]) for k in range(3))
    model = tasks.load_model(cfg.system)
    expert = mujoco_expert(cfg.system)

    def starts(n, rng):
        qpos, qvel = tasks.reset_states(cfg.system, n, rng=rng)
        return model.qpos0 + cfg.start_scale * (qpos - model.qpos0), cfg.start_scale * qvel

    kw = dict(noise=cfg.action_noise, clean_labels=cfg.clean_labels)
    X, U, _, f1 = mjenv.demonstrations(cfg.system, expert, *starts(cfg.n_demos, rng_train), cfg.demo_horizon, rng=rng_train, **kw)
    Xv, Uv, Uc, f2 = mjenv.demonstrations(cfg.system, expert, *starts(cfg.n_val, rng_val), cfg.demo_horizon, rng=rng_val, **kw)
    qpos0, qvel0 = starts(cfg.n_eval, rng_eval)
    return dict(X=X, U=U, X_val=Xv, U_val=Uv, U_val_clean=Uc, qpos0=qpos0, qvel0=qvel0, expert_failed=np.concatenate([f1, f2]))


def _jax(cfg: BCConfig) -> dict:
    system = systems.make(cfg.system)
    expert = lqr.lqr_expert(system)
    k_tr, k_val, k_ev = jax.random.split(jax.random.key(cfg.data_seed), 3)
    kw = dict(noise=cfg.action_noise, clean_labels=cfg.clean_labels, scale=cfg.start_scale)
    X, U, f1 = rollout.demonstrations(expert, cfg.n_demos, cfg.demo_horizon, key=k_tr, **kw)
    # held-out trajectories labelled like the training set: the validation loss is the BC loss itself
    Xv, Uv, f2 = rollout.demonstrations(expert, cfg.n_val, cfg.demo_horizon, key=k_val, **kw)
    x0 = rollout.start_states(system, cfg.n_eval, key=k_ev, scale=cfg.start_scale)
    return dict(X=X, U=U, X_val=Xv, U_val=Uv, U_val_clean=expert(Xv), x0=x0, K=expert.K, expert_failed=jnp.concatenate([f1, f2]))


def _names(idx, cfg: BCConfig) -> str:
    """Readable names of demonstrations by index into [training..., validation...]."""
    names = [f"train #{i}" if i < cfg.n_demos else f"validation #{i - cfg.n_demos}" for i in idx]
    return ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def check(cfg: BCConfig, d: dict) -> dict:
    """Refuses demonstrations that cannot be trained on (see the module docstring); returns ``d`` unchanged.

    Raises:
        DemonstrationError: naming the failed or non-finite demonstrations and what to change.
    """
    bad = [k for k in ("X", "U", "X_val", "U_val", "U_val_clean") if not np.all(np.isfinite(d[k]))]
    if bad:
        raise DemonstrationError(f"{cfg.system}: the expert's demonstrations hold non-finite values in {bad}; "
                                 "the expert blew up — shrink start_scale or action_noise, or fix the expert")
    failed = np.flatnonzero(np.asarray(d["expert_failed"]))
    n = cfg.n_demos + cfg.n_val
    if cfg.backend == "jax" and failed.size:
        raise DemonstrationError(
            f"{cfg.system}: the expert failed {failed.size} of {n} demonstrations ({_names(failed, cfg)}) at "
            f"start_scale={cfg.start_scale}, action_noise={cfg.action_noise}; a failed trajectory would teach the "
            "clone what happens after a fall — shrink start_scale or action_noise, or fix the expert")
    if failed.size > MAX_FALLING * n:
        raise DemonstrationError(f"{cfg.system}: the expert fell in {failed.size} of {n} demonstrations ({_names(failed, cfg)}): "
                                 "an expert that fails this often cannot be cloned — check the expert or shrink action_noise")
    if failed.size:
        warnings.warn(f"{cfg.system}: {failed.size} of {n} demonstrations fell ({_names(failed, cfg)}); "
                      "each is kept up to its fall (the steps before it are the expert's own)", stacklevel=3)
    return d


def demonstrations(cfg: BCConfig) -> dict:
    """Training and validation demonstrations and evaluation starts of ``cfg``, checked (:func:`check`) and cached.

    Returns a dict: ``X`` [M, n] and ``U`` [M, m] training pairs, ``X_val``, ``U_val`` (labelled like the
    training set) and ``U_val_clean`` (the clean expert action), ``expert_failed`` [n_demos + n_val], and
    the evaluation starts: ``x0`` [N, n] and the expert's gain ``K`` for a JAX system, ``qpos0`` and
    ``qvel0`` for a MuJoCo task.
    """
    key_parts = {f: getattr(cfg, f) for f in FIELDS}
    if cfg.backend == "mujoco":
        if tasks.task(cfg.system).expert == "rl":  # the demonstrations depend on which trained expert made them
            from gvatheory.control import experts

            key_parts["expert"] = experts.expert_id(cfg.system)
        d = cached("demos-mujoco", lambda: _mujoco(cfg), key_parts, code=__name__)
    else:
        d = cached("demos", lambda: _jax(cfg), key_parts, code=__name__)
    return check(cfg, d)
