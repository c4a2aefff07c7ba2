"""The TD3 experts shipped with the package (``td3_experts/``: an actor ``.npz`` and its record ``.json`` per task).

:func:`load_expert` reads a shipped expert whose recipe matches :data:`gvatheory.control.rl.EXPERTS`, else the
one ``make experts`` trained into the cache; :func:`promote` (``python -m gvatheory.control.rl --task T
--promote``) ships a trained one with its evaluation, learning curve and published comparison.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import mujoco as mjenv, rl

# the trained experts shipped with the package (one actor .npz and its record .json per task): what
# load_expert reads first, so that nobody retrains an hour-long expert to see a figure
SHIPPED_DIR = Path(__file__).resolve().parent / "td3_experts"
EVAL_SEED, EVAL_EPISODES = 123, 20  # the shipped record's evaluation: episodes from reset_states(rng=default_rng(EVAL_SEED))


def shipped(task: str) -> dict | None:
    """The record of ``task``'s shipped expert (algorithm, configuration, training, evaluation, learning curve,
    published comparison), or None if none is shipped."""
    path = SHIPPED_DIR / f"{task}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _dims(task: str) -> tuple[int, int]:
    env = mjenv.BatchEnv(task, 1, threads=1)
    return env.obs_dim, env.act_dim


def _recipe(task: str, seed: int | None) -> rl.TD3Config:
    """``rl.EXPERTS[task]``, at ``seed`` if one is given (None: the recipe's own seed, the one shipped)."""
    return rl.EXPERTS[task] if seed is None else dataclasses.replace(rl.EXPERTS[task], seed=seed)


def _matches(rec: dict | None, cfg: rl.TD3Config) -> bool:
    """Whether a shipped record was trained with the recipe ``cfg`` and this ``ALGO_VERSION`` (else it is stale)."""
    return rec is not None and rec["config"] == dataclasses.asdict(cfg) and rec["algo_version"] == rl.ALGO_VERSION


def _shipped_actor(task: str, cfg: rl.TD3Config):
    template = rl._init(cfg, *_dims(task), jax.random.key(0))["actor"]
    with np.load(SHIPPED_DIR / f"{task}.npz", allow_pickle=False) as f:
        leaves = [jnp.asarray(f[f"a{i}"]) for i in range(len(jax.tree.leaves(template)))]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def expert_actor(task: str, *, seed: int | None = None):
    """The expert's actor parameters and where they came from ("shipped" or the cache's run folder).

    The shipped expert is used when its recorded configuration is ``rl.EXPERTS[task]`` (at ``seed``, if given) and
    ``ALGO_VERSION`` (a changed recipe makes it stale); otherwise the cache's trained run (``make experts``).

    Raises:
        ValueError: for a task without an expert configuration.
        FileNotFoundError: if neither a matching shipped expert nor a trained run exists.
    """
    if task not in rl.EXPERTS:
        raise ValueError(f"no expert configuration for {task!r}; known: {sorted(rl.EXPERTS)}")
    cfg = _recipe(task, seed)
    rec = shipped(task)
    if _matches(rec, cfg):
        return _shipped_actor(task, cfg), "shipped"
    if not (rl.run_dir(cfg) / "final.npz").exists():
        stale = " (the shipped one was trained with another configuration)" if rec is not None else ""
        raise FileNotFoundError(f"no trained expert for {task}{stale} (looked in {SHIPPED_DIR} and {rl.run_dir(cfg)}): run `make experts` "
                                f"or `python -m gvatheory.control.rl --task {task}`")
    return rl.train(cfg, progress=False)["actor"], str(rl.run_dir(cfg))


def expert_id(task: str, *, seed: int | None = None) -> str:
    """Which expert :func:`expert_actor` would load, as a cache key: the shipped actor's content hash, or the trained run's folder name."""
    cfg = _recipe(task, seed)
    if _matches(shipped(task), cfg):
        return "shipped-" + hashlib.sha256((SHIPPED_DIR / f"{task}.npz").read_bytes()).hexdigest()[:12]
    return rl.run_dir(cfg).name


def load_expert(task: str, *, seed: int | None = None):
    """The expert of ``task`` as ``expert(obs, state) -> action`` (the shipped one if it matches, else the cache's; see :func:`expert_actor`)."""
    cfg = _recipe(task, seed) if task in rl.EXPERTS else None
    actor, _ = expert_actor(task, seed=seed)
    act = jax.jit(lambda o: rl._actor(cfg, actor, o))
    return lambda obs, state: np.asarray(act(jnp.asarray(obs, jnp.float32)), float)


def expert_summary(task: str, *, seed: int | None = None) -> dict:
    """What :func:`expert_actor` would load, in numbers: ``source`` ("shipped" or the run folder), ``env_steps``,
    ``minutes`` of training, ``last_eval`` (mean return of the learning curve's last evaluation)."""
    _, source = expert_actor(task, seed=seed)
    if source == "shipped":
        rec = shipped(task)
        return dict(source=source, env_steps=rec["training"]["env_steps"], minutes=rec["training"]["minutes"], last_eval=rec["curve"]["mean"][-1])
    out = rl.train(_recipe(task, seed), progress=False)
    return dict(source=source, env_steps=rl.EXPERTS[task].steps, minutes=out["train_s"] / 60, last_eval=float(np.mean(out["curve_return"][-1])))


def promote(task: str, *, seed: int | None = None) -> Path:
    """Copies the cache's trained expert of ``task`` into the package (``SHIPPED_DIR``) with its record:
    the algorithm and its version, the configuration, training steps and time, the learning curve, an
    evaluation over ``EVAL_EPISODES`` episodes from the seeded starts (every return kept; TD3's target actor, the
    EMA of the actor's iterates, on the same episodes beside it, not shipped), the actor's actions
    at those starts (``probe``: what a test reproduces exactly) and where the mean return lies against the
    published TD3 results. Returns the record's path."""
    import platform

    if task not in rl.EXPERTS:
        raise ValueError(f"no expert configuration for {task!r}; known: {sorted(rl.EXPERTS)}")
    cfg = _recipe(task, seed)
    if not (rl.run_dir(cfg) / "final.npz").exists():
        raise FileNotFoundError(f"nothing to promote: {task} is not trained (run `python -m gvatheory.control.rl --task {task}`)")
    out = rl.train(cfg, progress=False)
    r = rl.evaluate(cfg, out["actor"], EVAL_EPISODES, seed=EVAL_SEED)
    rt = rl.evaluate(cfg, out["actor_t"], EVAL_EPISODES, seed=EVAL_SEED)  # TD3's target actor (an EMA of the actor) on the same starts
    # the actor's actions at the evaluation's start states: a check of the actor itself that, unlike a
    # 1000-step closed loop through contacts, does not amplify last-bit rounding differences
    env = mjenv.BatchEnv(task, EVAL_EPISODES, threads=1)
    probe_obs = env.reset(*mjenv.reset_states(task, EVAL_EPISODES, rng=np.random.default_rng(EVAL_SEED)))
    probe_act = np.asarray(jax.jit(lambda o: rl._actor(cfg, out["actor"], o))(jnp.asarray(probe_obs, jnp.float32)))
    SHIPPED_DIR.mkdir(exist_ok=True)
    np.savez_compressed(SHIPPED_DIR / f"{task}.npz", **{f"a{i}": np.asarray(x, np.float32) for i, x in enumerate(jax.tree.leaves(out["actor"]))})
    cr, crt = np.asarray(out["curve_return"]), out["curve_return_t"]
    episodes = lambda x: dict(returns=[float(v) for v in x.ret], failed=[bool(v) for v in x.failed], mean=float(x.ret.mean()), std=float(x.ret.std()))
    rec = dict(task=task, algorithm="TD3 (Fujimoto et al. 2018; gvatheory.control.rl)", algo_version=rl.ALGO_VERSION, config=dataclasses.asdict(cfg),
               training=dict(env_steps=cfg.steps, minutes=out["train_s"] / 60, machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
                             threads=os.cpu_count(), jax=jax.__version__, mujoco=__import__("mujoco").__version__),
               evaluation=dict(seed=EVAL_SEED, episodes=EVAL_EPISODES, horizon=cfg.episode_steps, **episodes(r)),
               # not shipped, for comparison: TD3's target actor, the EMA of the actor's iterates (weight tau per update)
               target_evaluation=episodes(rt),
               probe=dict(obs=np.asarray(probe_obs, np.float32).tolist(), actions=probe_act.tolist()),
               curve=dict(steps=[int(x) for x in out["curve_steps"]], mean=[float(x) for x in cr.mean(-1)], std=[float(x) for x in cr.std(-1)],
                          **({} if crt is None else dict(target_mean=[float(x) for x in crt.mean(-1)], target_std=[float(x) for x in crt.std(-1)]))),
               published={src: dict(mean=m, std=sd, where=rl.compare_published(task, float(r.ret.mean()))[src]) for src, (m, sd) in rl.PUBLISHED.get(task, {}).items()})
    path = SHIPPED_DIR / f"{task}.json"
    path.write_text(json.dumps(rec, indent=1) + "\n")
    return path
