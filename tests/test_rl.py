"""TD3: the update against a numpy re-derivation of its targets, delayed and soft target updates, checkpoint/resume."""
import dataclasses

import jax
import jax.flatten_util
import numpy as np
import pytest

from gvatheory.control import experts, rl

TINY = rl.TD3Config(task="InvertedDoublePendulum-v5", steps=300, start_steps=100, chunk=50, eval_every=100, checkpoint_every=100,
                    eval_episodes=2, width=16, batch_size=8)


def _np_mlp(p, x):  # an independent numpy forward pass of policies.apply's MLP (ReLU hidden layers, linear output)
    h = np.asarray(x, np.float64)
    for layer in p["hidden"]:
        h = np.maximum(h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64), 0)
    return h @ np.asarray(p["out"]["w"], np.float64) + np.asarray(p["out"]["b"], np.float64)


def _batch(rng, b, od, ad):
    return (rng.normal(size=(b, od)).astype(np.float32), rng.uniform(-1, 1, (b, ad)).astype(np.float32), rng.normal(size=b).astype(np.float32),
            rng.normal(size=(b, od)).astype(np.float32), (rng.uniform(size=b) < 0.3).astype(np.float32))


def test_critic_target_delayed_actor_and_soft_updates():
    cfg, od, ad = TINY, 9, 1
    state0 = rl._init(cfg, od, ad, jax.random.key(0))
    batch = _batch(np.random.default_rng(0), cfg.batch_size, od, ad)
    keys = jax.random.split(jax.random.key(1), 2)
    update = rl._make_update(cfg)
    # the first critic loss against the TD target recomputed in numpy with the same smoothing noise
    s1, (loss1,) = update(state0, tuple(x[None] for x in batch), keys[:1])
    obs, act, rew, nobs, done = (np.asarray(x, np.float64) for x in batch)
    noise = np.clip(cfg.policy_noise * np.asarray(jax.random.normal(keys[0], act.shape)), -cfg.noise_clip, cfg.noise_clip)
    nact = np.clip(np.tanh(_np_mlp(state0["actor_t"], nobs)) + noise, -1, 1)
    crit = lambda P, o, a: np.stack([_np_mlp(jax.tree.map(lambda x: x[i], P), np.concatenate([o, a], 1))[:, 0] for i in range(2)])
    y = rew + cfg.gamma * (1 - done) * crit(state0["critic_t"], nobs, nact).min(0)
    expected = np.mean(np.sum((crit(state0["critic"], obs, act) - y) ** 2, 0))
    np.testing.assert_allclose(float(loss1), expected, rtol=1e-4)
    # update 1 (n = 1): critics move, actor and targets do not (policy_delay = 2)
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not same(s1["critic"], state0["critic"])
    assert same(s1["actor"], state0["actor"]) and same(s1["actor_t"], state0["actor_t"]) and same(s1["critic_t"], state0["critic_t"])
    # update 2 (n = 2): actor moves, targets move by tau towards the new networks
    s2, _ = update(s1, tuple(x[None] for x in batch), keys[1:])
    assert not same(s2["actor"], s1["actor"])
    for t_new, t_old, net in ((s2["actor_t"], s1["actor_t"], s2["actor"]), (s2["critic_t"], s1["critic_t"], s2["critic"])):
        for a, b, c in zip(jax.tree.leaves(t_new), jax.tree.leaves(t_old), jax.tree.leaves(net)):
            np.testing.assert_allclose(a, (1 - cfg.tau) * b + cfg.tau * c, rtol=1e-5, atol=1e-7)


def test_actor_step_ascends_the_first_critic():
    """The delayed actor step against a numpy finite-difference gradient of -mean Q1(s, π(s)) in float64: Adam's first
    step moves each parameter by -lr g / (|g| + eps), so by -lr sign(g) wherever |g| is clear of eps and of the
    finite-difference error."""
    cfg, od, ad = TINY, 9, 1
    state = rl._init(cfg, od, ad, jax.random.key(3))
    obs = np.random.default_rng(4).normal(size=(cfg.batch_size, od)).astype(np.float32)
    q1 = jax.tree.map(lambda x: np.asarray(x[0]), state["critic"])
    flat, unravel = jax.flatten_util.ravel_pytree(state["actor"])
    flat = np.asarray(flat, np.float64)

    def loss(v):
        p = jax.tree.map(np.asarray, unravel(v))
        return -np.mean(_np_mlp(q1, np.concatenate([obs, np.tanh(_np_mlp(p, obs))], 1))[:, 0])

    h = 1e-6
    g = np.array([(loss(flat + h * e) - loss(flat - h * e)) / (2 * h) for e in np.eye(len(flat))])
    new = rl._actor_step(cfg, state, obs)
    delta = np.asarray(jax.flatten_util.ravel_pytree(new["actor"])[0], np.float64) - flat
    clear = np.abs(g) > 1e-4
    assert clear.mean() > 0.5  # the check covers most parameters
    np.testing.assert_allclose(delta[clear], -cfg.lr * np.sign(g[clear]), rtol=1e-3)
    for t_new, t_old, net in ((new["actor_t"], state["actor_t"], new["actor"]), (new["critic_t"], state["critic_t"], state["critic"])):
        for a, b, c in zip(jax.tree.leaves(t_new), jax.tree.leaves(t_old), jax.tree.leaves(net)):
            np.testing.assert_allclose(a, (1 - cfg.tau) * b + cfg.tau * c, rtol=1e-5, atol=1e-7)


def test_acting_fn_is_the_actor():
    cfg = dataclasses.replace(TINY, width=32)
    actor = rl._init(cfg, 9, 1, jax.random.key(5))["actor"]
    obs = np.random.default_rng(6).normal(size=9).astype(np.float32)
    np.testing.assert_allclose(np.asarray(rl.acting_fn(cfg, 9, 1)(actor, obs)), np.tanh(_np_mlp(actor, obs[None])[0]), rtol=1e-5, atol=1e-6)


def test_checkpoint_resume_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    assert rl.train(TINY, progress=False, until=200) is None
    d = rl.run_dir(TINY)
    assert (d / "checkpoint.npz").exists() and not (d / "final.npz").exists()
    with np.load(d / "checkpoint.npz") as f:
        assert int(f["t"]) == 200 and f["buf_obs"].shape == (200, 9)
    out = rl.train(TINY, progress=False)  # resumes at 200
    assert (d / "final.npz").exists() and not (d / "checkpoint.npz").exists()
    assert out["curve_steps"].tolist() == [100, 200, 300] and out["curve_return"].shape == (3, 2)
    again = rl.train(TINY, progress=False)  # loads
    for a, b in zip(jax.tree.leaves(out["actor"]), jax.tree.leaves(again["actor"])):
        np.testing.assert_array_equal(a, b)
    # the target actor is evaluated on the same starts as the actor at every evaluation, across the resume
    assert again["curve_return_t"].shape == (3, 2)
    np.testing.assert_array_equal(again["curve_return_t"][-1], rl.evaluate(TINY, again["actor_t"], 2, seed=10_000 + 300).ret)
    np.testing.assert_array_equal(again["curve_return"][-1], rl.evaluate(TINY, again["actor"], 2, seed=10_000 + 300).ret)


def test_evaluating_the_target_actor_leaves_training_unchanged(tmp_path, monkeypatch):
    """A run resumed from a checkpoint without target evaluations (as one begun before they were recorded)
    stops evaluating the target, yet trains to the very same actor as a run that evaluated it throughout."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "full"))
    full = rl.train(TINY, progress=False)
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "old"))
    rl.train(TINY, progress=False, until=200)
    ckpt = rl.run_dir(TINY) / "checkpoint.npz"
    with np.load(ckpt) as f:
        kept = {k: f[k] for k in f.files if k != "curve_return_t"}
        assert len(kept) < len(f.files)
    np.savez(ckpt, **kept)
    old = rl.train(TINY, progress=False)
    assert old["curve_return_t"] is None
    for a, b in zip(jax.tree.leaves(full["actor"]) + jax.tree.leaves(full["actor_t"]), jax.tree.leaves(old["actor"]) + jax.tree.leaves(old["actor_t"])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full["curve_return"], old["curve_return"])


@pytest.mark.parametrize("task", ["InvertedDoublePendulum-v5", "Hopper-v5"])
def test_a_resumed_run_is_the_uninterrupted_one(tmp_path, monkeypatch, task):
    """Stopped at a checkpoint mid-episode (Hopper: with contacts, whose solver warm-starts) and resumed, a run
    trains to the very actor, targets and learning curve of the run that never stopped."""
    cfg = dataclasses.replace(TINY, task=task)
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "whole"))
    whole = rl.train(cfg, progress=False)
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "pieces"))
    assert rl.train(cfg, progress=False, until=100) is None and rl.train(cfg, progress=False, until=200) is None
    with np.load(rl.run_dir(cfg) / "checkpoint.npz") as f:
        assert 0 < int(f["ep_len"])  # stopped inside an episode
    pieces = rl.train(cfg, progress=False)
    for a, b in zip(jax.tree.leaves((whole["actor"], whole["actor_t"])), jax.tree.leaves((pieces["actor"], pieces["actor_t"]))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole["curve_return"], pieces["curve_return"])
    np.testing.assert_array_equal(whole["curve_return_t"], pieces["curve_return_t"])


def test_same_seed_same_actor(tmp_path, monkeypatch):
    cfg = dataclasses.replace(TINY, steps=200, checkpoint_every=200, eval_every=200)
    outs = []
    for sub in ("a", "b"):
        monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / sub))
        outs.append(rl.train(cfg, progress=False))
    for a, b in zip(jax.tree.leaves(outs[0]["actor"]), jax.tree.leaves(outs[1]["actor"])):
        np.testing.assert_array_equal(a, b)


def test_missing_expert_and_bad_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    monkeypatch.setattr(experts, "SHIPPED_DIR", tmp_path / "none shipped")
    with pytest.raises(FileNotFoundError, match="make experts"):
        experts.load_expert("Hopper-v5")
    with pytest.raises(ValueError, match="multiples of chunk"):
        rl.TD3Config(chunk=64)
    with pytest.raises(ValueError, match="start_steps"):
        rl.TD3Config(steps=1000, start_steps=1000)
    with pytest.raises(ValueError, match="until"):
        rl.train(TINY, progress=False, until=150)


def test_compare_published_one_std_band():
    # the band is [mean - std, mean + std] of each source, its edges inside; Hopper has two sources
    (m1, s1), (m4, s4) = rl.PUBLISHED["Hopper-v5"]["TD3 paper, Gym v1"], rl.PUBLISHED["Hopper-v5"]["CleanRL TD3, Gym v4"]
    assert rl.compare_published("Hopper-v5", m1 - s1) == {"TD3 paper, Gym v1": "inside", "CleanRL TD3, Gym v4": "inside"}
    assert rl.compare_published("Hopper-v5", m4 - s4 - 1e-6)["CleanRL TD3, Gym v4"] == "below"
    assert rl.compare_published("Hopper-v5", m1 + s1 + 1e-6)["TD3 paper, Gym v1"] == "above"
    assert "3564 ± 115: below" in rl.published_text("Hopper-v5", 3000.0)
    with pytest.raises(ValueError, match="task must be one of"):
        rl.compare_published("InvertedDoublePendulum-v5", 1.0)


SHIPPED = sorted(p.stem for p in experts.SHIPPED_DIR.glob("*.json"))


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_expert_reproduces_its_record(task, tmp_path, monkeypatch):
    """The shipped actor, loaded from the package with an empty cache, reproduces its record.

    Its actions at the recorded start states must agree to float32 rounding. Its 20 evaluation episodes
    cannot be replayed exactly here: a 1000-step closed loop through contacts amplifies last-bit rounding
    differences (the tests compile without LLVM optimisation; measured on Walker2d: 0.9% apart after 50 steps,
    whole episodes apart — one fall more or less — after 1000), so the replayed mean return is held to three
    standard errors of the difference of two 20-episode means, computed from the recorded spread. A wrong
    weight, observation layout or task version misses both by far."""
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path))
    rec = experts.shipped(task)
    cfg = rl.EXPERTS[task]
    assert rec["config"] == dataclasses.asdict(cfg) and rec["algo_version"] == rl.ALGO_VERSION, "stale: re-promote (rl --promote)"
    actor, source = experts.expert_actor(task)
    assert source == "shipped"
    act = np.asarray(rl._actor(cfg, actor, np.asarray(rec["probe"]["obs"], np.float32)))
    np.testing.assert_allclose(act, rec["probe"]["actions"], atol=1e-4)
    ev = rec["evaluation"]
    r = rl.evaluate(cfg, actor, ev["episodes"], seed=ev["seed"])
    assert abs(r.ret.mean() - ev["mean"]) <= 3 * np.sqrt(2 / ev["episodes"]) * ev["std"], (r.ret.mean(), ev["mean"])
    assert ev["mean"] == pytest.approx(np.mean(ev["returns"])) and len(ev["returns"]) == ev["episodes"] == len(ev["failed"])
    if "target_evaluation" in rec:  # recorded since target actors are evaluated (the actor itself is not shipped)
        te = rec["target_evaluation"]
        assert te["mean"] == pytest.approx(np.mean(te["returns"])) and len(te["returns"]) == ev["episodes"] == len(te["failed"])
    assert {src: v["where"] for src, v in rec["published"].items()} == rl.compare_published(task, ev["mean"])
    assert len(rec["curve"]["steps"]) == len(rec["curve"]["mean"]) and rec["curve"]["steps"][-1] == cfg.steps


def test_promote_ships_what_load_expert_reads_and_a_stale_one_is_refused(tmp_path, monkeypatch):
    """A tiny run promoted into a scratch package folder: loaded with no cache, the same actor; its record
    replays; a changed recipe makes it stale (not used, and the error says so)."""
    task = "InvertedDoublePendulum-v5"
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(experts, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setattr(experts, "EVAL_EPISODES", 3)
    monkeypatch.setitem(rl.EXPERTS, task, TINY)
    with pytest.raises(FileNotFoundError, match="nothing to promote"):
        experts.promote(task)
    out = rl.train(TINY, progress=False)
    trained = out["actor"]
    path = experts.promote(task)
    rec = experts.shipped(task)
    assert path.exists() and rec["config"] == dataclasses.asdict(TINY) and rec["published"] == {}
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "empty"))  # only the package has it now
    actor, source = experts.expert_actor(task)
    assert source == "shipped" and experts.expert_id(task).startswith("shipped-")
    for a, b in zip(jax.tree.leaves(actor), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(a, b)
    r = rl.evaluate(TINY, actor, 3, seed=rec["evaluation"]["seed"])
    np.testing.assert_array_equal(r.ret, rec["evaluation"]["returns"])
    # the target actor's episodes beside them, and its learning curve, as recorded in training
    np.testing.assert_array_equal(rl.evaluate(TINY, out["actor_t"], 3, seed=rec["evaluation"]["seed"]).ret, rec["target_evaluation"]["returns"])
    np.testing.assert_allclose(rec["curve"]["target_mean"], out["curve_return_t"].mean(-1))
    monkeypatch.setitem(rl.EXPERTS, task, dataclasses.replace(TINY, steps=400))
    with pytest.raises(FileNotFoundError, match="another configuration"):
        experts.load_expert(task)


def test_an_expert_is_its_recipes_seed(tmp_path, monkeypatch):
    """A recipe's own seed is the expert's: trained, promoted and loaded without naming it; another seed is another
    run (not the shipped one), and the command line refuses to ship a seed the recipe does not name."""
    task, cfg = "InvertedDoublePendulum-v5", dataclasses.replace(TINY, seed=3)
    monkeypatch.setenv("GVATHEORY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(experts, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setattr(experts, "EVAL_EPISODES", 2)
    monkeypatch.setitem(rl.EXPERTS, task, cfg)
    rl.train(cfg, progress=False)
    experts.promote(task)
    assert experts.shipped(task)["config"]["seed"] == 3 and rl.run_dir(cfg).name.startswith(f"{task}-seed3-")
    assert experts.expert_actor(task)[1] == "shipped" and experts.expert_actor(task, seed=3)[1] == "shipped"
    with pytest.raises(FileNotFoundError, match="another configuration"):
        experts.expert_actor(task, seed=0)
    with pytest.raises(SystemExit):
        rl.main(["--task", task, "--seed", "0", "--promote"])
