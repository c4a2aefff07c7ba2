"""Every scale preset of the repository in one file: what ``SCALE=smoke|quick|paper`` means, notebook by notebook.

``notebook("04", scale)`` returns the whole configuration of one notebook at one scale (configs, seeds,
windows, sizes) as a :class:`Preset`; the notebooks read nothing else. ``smoke`` is what the tests run
(seconds per notebook), ``quick`` fits a 2-core laptop CPU (the default build, 25–45 minutes from an empty cache), ``paper``
is the paper's scale, for a GPU. The experiment modules hold no presets of their own: they define the
configuration dataclasses, this file their values.
"""
from __future__ import annotations

import dataclasses
import types

from gvatheory.control import decomposition, policies
from gvatheory.control.ablations import EMA_SUITE, SNAPSHOTS
from gvatheory.control.bc.config import BCConfig
from gvatheory.language import languages
from gvatheory.language import transformer as tf
from gvatheory.language.lm import LMConfig
from gvatheory.theory.cliff import CliffExperiment
from gvatheory.theory.marginal import MarginalConfig
from gvatheory.theory.ou import OUExperiment

SCALES = ("smoke", "quick", "paper")


class Preset(types.SimpleNamespace):
    """The configuration of one notebook at one scale: read-only attributes (``P.cfg``, ``P.seeds``, ...)."""

    def __setattr__(self, name, value):
        raise AttributeError(f"a preset is read-only; copy it with dataclasses.replace on its configs instead (tried to set {name!r})")


def _check(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


# --------------------------------------------------------------------------------------------------
# 01-03: the linear-theory vignettes

MARGINAL = {  # 01
    "smoke": MarginalConfig(horizons=(10, 50, 200), deltas=(0.01,), delta_grid=(0.005, 0.02), n_random=50, n_rollouts=200),
    "quick": MarginalConfig(),
    "paper": MarginalConfig(horizons=(10, 20, 50, 100, 200, 400, 700, 1000), n_random=5000, n_rollouts=20000),
}
CLIFF = {  # 02
    "smoke": CliffExperiment(steps=2000, n_runs=64, record_every=50, lr_grid=(0.05,), decay_grid=(0.9,)),
    "quick": CliffExperiment(),
    "paper": CliffExperiment(steps=50_000, n_runs=4000, lr_grid=(0.01, 0.02, 0.05, 0.1, 0.15), decay_grid=(0.5, 0.8, 0.9, 0.95)),
}
OU = {  # 03
    "smoke": OUExperiment(steps=200, n_runs=200, grid=8),
    "quick": OUExperiment(),
    "paper": OUExperiment(steps=5000, n_runs=10000, grid=60),
}

# --------------------------------------------------------------------------------------------------
# 04-06: deep BC on the JAX systems

BC = {
    "smoke": BCConfig(n_demos=8, n_val=4, demo_horizon=100, policy=policies.PolicyConfig(width=32), steps=200, eval_every=25, n_eval=8, horizon=100, grad_samples=16),
    # the paper's recipe (MLP 2x256, Adam 1e-3, batch 64, 20k steps, H = 1000, action noise 0.3, noisy
    # labels); checkpoints every 400 steps and 32 starts keep a run near 20 s on 2 cores
    "quick": BCConfig(eval_every=400, n_eval=32, grad_samples=64),
    "paper": BCConfig(
        n_demos=256, policy=policies.PolicyConfig(depth=4, width=256), steps=100_000, eval_every=250, n_eval=20, horizon=1000, grad_samples=256, bema=True
    ),
}
# 04: the two pendulums carry the claims (5 seeds at quick scale, for an interval); the quadrotor is shown with one seed
BC_SEEDS = {
    "smoke": {"double_pendulum": 2, "cartpole": 1, "quadrotor": 1},
    "quick": {"double_pendulum": 5, "cartpole": 5, "quadrotor": 1},
    "paper": {"double_pendulum": 5, "cartpole": 5, "quadrotor": 5},
}
# 04's every-iterate window: (first step, length, evaluation starts)
ZOOM = {"smoke": (100, 20, 8), "quick": (15_000, 100, 16), "paper": (50_000, 400, 20)}
LANDSCAPE_POINTS = {"smoke": 8, "quick": 81, "paper": 401}  # 05: points per slice
LANDSCAPE_SEEDS = {"smoke": 1, "quick": 3, "paper": 5}  # 05: final iterates of 04's double-pendulum seeds sliced for the verdict
LOCO_LANDSCAPE_POINTS = {"smoke": 5, "quick": 41, "paper": 201}  # 05: points per slice through a locomotion iterate (8 rollouts of H = 1000 each at quick)

# --------------------------------------------------------------------------------------------------
# 07-09: causes, mitigations and averaging ablations. Quick: the double pendulum, the paper's optimiser
# (Adam 1e-3, batch 64) but a 2x64 MLP, 10k steps and demonstrations of 125 steps (8,000 training pairs),
# so that ~20 arms x 3 seeds, full-batch gradient descent included, fit in ~12 minutes on 2 CPU cores.

_ABLATION_QUICK = BCConfig(
    n_demos=64, demo_horizon=125, policy=policies.PolicyConfig(width=64), steps=10_000, eval_every=250, eval_start=2000,
    n_eval=32, horizon=1000, bema=True, extra_averages=EMA_SUITE, store_params=SNAPSHOTS + ("ema",),
)
ABLATION = {
    "smoke": dataclasses.replace(
        _ABLATION_QUICK, n_demos=8, n_val=4, demo_horizon=50, policy=policies.PolicyConfig(width=16), steps=300, eval_every=25, eval_start=100,
        n_eval=4, horizon=100,
    ),
    "quick": _ABLATION_QUICK,
    # the paper's recipe (4x256 MLP, 100k steps, H = 1000, 20 starts), on every system
    "paper": dataclasses.replace(
        _ABLATION_QUICK, n_demos=256, demo_horizon=500, policy=policies.PolicyConfig(depth=4, width=256), steps=100_000, eval_every=1000,
        eval_start=20_000, n_eval=20,
    ),
}
ABLATION_SYSTEMS = {"smoke": ("double_pendulum",), "quick": ("double_pendulum",), "paper": ("double_pendulum", "cartpole", "quadrotor")}
ABLATION_SEEDS = {"smoke": 2, "quick": 3, "paper": 5}


def ablation_base(scale: str = "quick", system: str = "double_pendulum") -> BCConfig:
    """The base configuration of notebooks 07-09 at ``scale`` for ``system``."""
    return dataclasses.replace(ABLATION[_check(scale)], system=system)


# --------------------------------------------------------------------------------------------------
# 10: the language model

LM = {
    "smoke": LMConfig(
        lang=languages.Automaton(vocab_size=4, order=2, n_allowed=2),
        n_train_tokens=20_000, stream_len=512, n_val=8,
        model=tf.TransformerConfig(d_model=16, n_heads=2, context=16),
        seq_len=24, batch_size=8, steps=40, warmup=10, cooldown=0.25, eval_every=10,
        n_gen=16, n_greedy=2, gen_len=64, horizons=(16, 32, 64), n_examples=2,
    ),
    # a 4-token order-2 automaton (16 states, 2 allowed tokens each) is learned by a 2-layer, width-32
    # model within 2000 steps on 2 cores, leaving the forbidden mass where validity over 1024 tokens is
    # near 50%: the regime where it is most sensitive. 256 sampled generations per checkpoint put the
    # binomial noise of an adjacent-checkpoint difference near 3.5 points. About 90 s per seed on 2 cores.
    "quick": LMConfig(
        lang=languages.Automaton(vocab_size=4, order=2, n_allowed=2),
        model=tf.TransformerConfig(d_model=32, n_heads=2, context=32),
        seq_len=48, batch_size=32, lr=3e-3, steps=2000, eval_every=100, n_gen=256,
    ),
    # flip-flop with sparse writes (Liu et al. 2023's p_w = p_r = 0.1): long-range memory, for a GPU.
    # Sizes follow Liu et al.'s small models.
    "paper": LMConfig(
        lang=languages.FlipFlop(p_write=0.1, p_read=0.1),
        n_train_tokens=20_000_000, n_val=256,
        model=tf.TransformerConfig(d_model=128, n_layers=4, n_heads=4, context=256),
        seq_len=320, batch_size=64, lr=1e-3, warmup=500, steps=20_000, eval_every=500, ema_decay=0.999, n_gen=512, n_greedy=32,
    ),
}
# quick: 3 seeds, the fewest that give the ledger an interval (5 took ~9 of the quick build's ~45 minutes on 2 cores)
LM_SEEDS = {"smoke": 1, "quick": 3, "paper": 5}

# --------------------------------------------------------------------------------------------------
# 11: MuJoCo. InvertedDoublePendulum-v5 with its LQR expert: Gymnasium's task as it is (reset noise 0.1,
# H = 1000); executed-action noise 0.1 in control units, the largest of {0.02, 0.05, 0.1, 0.2} under which
# the expert never fell (notebook 11 measures its losses at each level); otherwise the recipe of 04.
# Checkpoints cover the second half of training only (where the metrics are read): the rollouts run in C
# MuJoCo, ~13k env steps/s on 2 cores. The quick scale trains with batch 16, not 64 (4x the gradient
# noise, the paper's own knob): at batch 64 its 400 rollouts per variant miss the raw iterates' rarer falls.
# Paper scale keeps 64.

MUJOCO = {
    "smoke": BCConfig(
        system="InvertedDoublePendulum-v5", n_demos=8, n_val=4, demo_horizon=100, action_noise=0.1,
        policy=policies.PolicyConfig(width=32), steps=200, eval_start=100, eval_every=25, n_eval=4, horizon=200,
    ),
    "quick": BCConfig(system="InvertedDoublePendulum-v5", action_noise=0.1, batch_size=16, eval_start=10_000, eval_every=400, n_eval=16),
    "paper": BCConfig(
        system="InvertedDoublePendulum-v5", action_noise=0.1, n_demos=256, policy=policies.PolicyConfig(depth=4, width=256),
        steps=100_000, eval_start=50_000, eval_every=1000, n_eval=32, bema=True,
    ),
}
MUJOCO_SEEDS = {"smoke": 2, "quick": 5, "paper": 5}
# the locomotion suite (TD3 experts shipped with the package): demonstrations of 1000 steps, the expert's
# action plus noise (LOCOMOTION_NOISE, below). Quick: Hopper and Walker2d, 3 seeds, checkpoints every
# 1000 steps over the second half, 8 starts each; every run also tracks the long averages of notebook 12
# (the decomposition reads these same runs), so each run rolls out 5 iterates x 10 checkpoints x 8 starts
# of H = 1000: ~40 s on 2 cores, most of it in C MuJoCo. Paper scale adds HalfCheetah, Ant and Humanoid.
LOCOMOTION = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5")
LOCOMOTION_TASKS = {"smoke": LOCOMOTION[:2], "quick": LOCOMOTION[:2], "paper": LOCOMOTION}
LOCOMOTION_SEEDS = {"smoke": 1, "quick": 3, "paper": 5}
# the demonstrations' executed-action noise (std): a tenth of half the width of each task's action box, the same
# relative noise on every task (the tests check it against the models' ctrlrange). Humanoid's actions lie in
# [-0.4, 0.4], the others' in [-1, 1]: an absolute 0.1 would give Humanoid 2.5 times the others' relative noise.
LOCOMOTION_NOISE = {"Hopper-v5": 0.1, "Walker2d-v5": 0.1, "HalfCheetah-v5": 0.1, "Ant-v5": 0.1, "Humanoid-v5": 0.04}


def locomotion_tasks(tasks=None, scale: str = "quick") -> tuple[str, ...]:
    """The locomotion tasks notebooks 11 and 12 run: ``tasks`` checked (one name or a list of names from
    ``LOCOMOTION``, no repeats), or the scale's own (``LOCOMOTION_TASKS``) when None. Raises ValueError."""
    _check(scale)
    if tasks is None:
        return LOCOMOTION_TASKS[scale]
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [t for t in names if t not in LOCOMOTION]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"tasks must be None or distinct names from {LOCOMOTION}, got {tasks!r}")
    return names


def locomotion_config(task: str, scale: str = "paper") -> BCConfig:
    """The BC experiment of notebooks 11 and 12 on a locomotion task (needs the task's expert), with the
    long averages of :func:`gvatheory.control.decomposition.with_long_averages`."""
    if task not in LOCOMOTION:
        raise ValueError(f"task must be one of {LOCOMOTION}, got {task!r}")
    noise = LOCOMOTION_NOISE[task]
    if _check(scale) == "smoke":
        base = dataclasses.replace(MUJOCO["smoke"], system=task, action_noise=noise)
    else:
        base = BCConfig(
            system=task, n_demos=64, n_val=8, demo_horizon=1000, action_noise=noise, policy=policies.PolicyConfig(depth=2, width=256),
            steps=20_000 if scale == "quick" else 100_000, eval_start=10_000 if scale == "quick" else 50_000,
            eval_every=1000, n_eval=8 if scale == "quick" else 16, horizon=1000,
        )
    return decomposition.with_long_averages(base)


def bc_config(system: str, scale: str = "quick") -> BCConfig:
    """The BC configuration of ``system`` at ``scale``: 04's for a JAX system, 11's for a MuJoCo task."""
    _check(scale)
    if system in LOCOMOTION:
        return locomotion_config(system, scale)
    if system == MUJOCO[scale].system:
        return MUJOCO[scale]
    return dataclasses.replace(BC[scale], system=system)


# --------------------------------------------------------------------------------------------------
# one object per notebook and scale


def notebook(nb: str, scale: str) -> Preset:
    """The whole configuration of notebook ``nb`` ("01" .. "12") at ``scale``; see each entry's fields."""
    s = _check(scale)
    dp = dataclasses.replace(BC[s], system="double_pendulum")
    ablation = dict(systems=ABLATION_SYSTEMS[s], n_seeds=ABLATION_SEEDS[s], bases={k: ablation_base(s, k) for k in ABLATION_SYSTEMS[s]})
    table = {
        "01": lambda: Preset(cfg=MARGINAL[s]),
        "02": lambda: Preset(exp=CLIFF[s]),
        "03": lambda: Preset(exp=OU[s]),
        "04": lambda: Preset(base=BC[s], n_seeds=BC_SEEDS[s], zoom=ZOOM[s]),
        "05": lambda: Preset(
            cfg=dp, n_points=LANDSCAPE_POINTS[s], n_seeds=LANDSCAPE_SEEDS[s],
            tasks=LOCOMOTION_TASKS[s][:2], loco={t: locomotion_config(t, s) for t in LOCOMOTION_TASKS[s][:2]},  # Hopper, Walker2d: notebook 11's runs
            loco_points=LOCO_LANDSCAPE_POINTS[s], loco_seeds=LOCOMOTION_SEEDS[s],
        ),
        "06": lambda: Preset(cfg=dp, n_seeds=BC_SEEDS[s]["double_pendulum"]),
        "07": lambda: Preset(**ablation),
        "08": lambda: Preset(**ablation),
        "09": lambda: Preset(system=ABLATION_SYSTEMS[s][0], n_seeds=ABLATION_SEEDS[s], cfg=ablation_base(s, ABLATION_SYSTEMS[s][0])),
        "10": lambda: Preset(cfg=LM[s], n_seeds=LM_SEEDS[s]),
        "11": lambda: Preset(
            cfg=MUJOCO[s], n_seeds=MUJOCO_SEEDS[s],
            n_expert={"smoke": 8, "quick": 32, "paper": 64}[s],  # episodes of the expert's own evaluation
            n_noise={"smoke": 8, "quick": 32, "paper": 64}[s],  # episodes per executed-action noise level
            loco_seeds=LOCOMOTION_SEEDS[s],  # the tasks: locomotion_tasks(tasks, scale), each locomotion_config(task, scale)
        ),
        "12": lambda: Preset(
            n_seeds=LOCOMOTION_SEEDS[s],  # the tasks: locomotion_tasks(tasks, scale), each locomotion_config(task, scale)
            n_path=3 if s == "smoke" else 5,  # checkpoints whose path from the EMA to the raw iterate is rolled out
            s_values=decomposition.S_VALUES,
        ),
    }
    if nb not in table:
        raise ValueError(f"no notebook {nb!r}; notebooks: {sorted(table)}")
    return table[nb]()
