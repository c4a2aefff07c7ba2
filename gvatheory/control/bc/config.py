"""The configuration of one behavior-cloning experiment: a frozen dataclass, validated on construction."""
from __future__ import annotations

import dataclasses

import numpy as np

from gvatheory.control import policies, systems
from gvatheory.control.mujoco.tasks import TASKS
from gvatheory.core import averaging
from gvatheory.core.schedules import SCHEDULES
from gvatheory.infra.validate import require_ints


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """One behavior-cloning experiment (system, data, policy, optimiser, averaging, evaluation)."""

    system: str = "double_pendulum"  # a registered JAX system (cartpole | double_pendulum | quadrotor | your own) or a MuJoCo task, e.g. "InvertedDoublePendulum-v5"
    # demonstrations
    n_demos: int = 64  # expert trajectories to train on
    n_val: int = 16  # held-out expert trajectories for the validation BC loss
    demo_horizon: int = 500  # steps per demonstration
    action_noise: float = 0.3  # std of the expert's executed-action noise
    clean_labels: bool = False  # label with the clean expert action (the loss itself becomes jumpy)
    start_scale: float = 1.0  # multiplies the system's start box, for demonstrations and evaluation
    data_seed: int = 0  # demonstrations and evaluation starts depend on this only
    # policy
    policy: policies.PolicyConfig = policies.PolicyConfig()
    # optimisation
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3  # (initial) learning rate
    schedule: str = "constant"  # constant | cosine | exponential | inverse_time | step (gvatheory.core.schedules.make_schedule)
    decay_steps: int = 1000  # time scale of the exponential / inverse_time schedules
    batch_size: int = 64  # minibatch size (with replacement); 0 = full-batch gradient descent on all training pairs
    steps: int = 20_000  # training steps
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) or L2 (SGD)
    grad_clip: float = 0.0  # clip each minibatch gradient to this global norm (0 = off)
    dropout: float = 0.0  # inverted dropout on hidden activations during training (evaluation is deterministic)
    state_noise: float = 0.0  # std of Gaussian noise added to each minibatch's normalised states, labels kept
    init_seed: int | None = None  # if set, the initialisation comes from this seed and the run key only orders minibatches
    # averaging
    ema_decay: float = 0.999  # the EMA evaluated next to the raw iterate
    bema: bool = False  # also evaluate BEMA (Block & Zhang defaults)
    extra_averages: tuple = ()  # more (name, AveragingConfig) pairs tracked and evaluated in the same run
    store_params: bool | tuple = False  # keep flat parameters at every checkpoint (post-hoc EMA): True = every variant, or a tuple of variant names
    # evaluation
    eval_every: int = 200  # steps between checkpoints
    eval_start: int = 0  # first checkpoint at eval_start + eval_every (dense windows: eval_every = 1)
    n_eval: int = 64  # evaluation start states
    horizon: int = 1000  # rollout length H
    fail_cost: float = 20.0  # cost charged per step after a failure
    grad_samples: int = 0  # per-example gradients per checkpoint for the gradient-noise covariance (0 = off)

    def __post_init__(self):
        if self.system not in systems.SYSTEMS and self.system not in TASKS:
            raise ValueError(f"system must be a registered system {sorted(systems.SYSTEMS)} or a MuJoCo task {sorted(TASKS)}, got {self.system!r}")
        require_ints(self, ("n_demos", "n_val", "demo_horizon", "steps", "eval_every", "n_eval", "horizon", "decay_steps"))
        require_ints(self, ("eval_start", "grad_samples", "batch_size"), minimum=0)
        if (self.steps - self.eval_start) % self.eval_every or self.eval_start >= self.steps:
            raise ValueError(f"steps - eval_start ({self.steps - self.eval_start}) must be a positive multiple of eval_every ({self.eval_every})")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.action_noise < 0 or self.weight_decay < 0 or self.fail_cost < 0:
            raise ValueError("action_noise, weight_decay and fail_cost must be >= 0")
        if self.grad_clip < 0 or self.state_noise < 0:
            raise ValueError(f"grad_clip and state_noise must be >= 0, got {self.grad_clip}, {self.state_noise}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.init_seed is not None:
            require_ints(self, ("init_seed",), minimum=0)
        if self.start_scale <= 0:
            raise ValueError(f"start_scale must be > 0, got {self.start_scale}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        names = [n for n, _ in self.extra_averages]
        if len(set(names)) != len(names) or set(names) & {"raw", "ema", "bema"}:
            raise ValueError(f"extra_averages names must be unique and not raw/ema/bema, got {names}")
        if not all(isinstance(c, averaging.AveragingConfig) for _, c in self.extra_averages):
            raise ValueError("extra_averages must hold (name, AveragingConfig) pairs")
        if not isinstance(self.store_params, bool) and (not isinstance(self.store_params, tuple) or not set(self.store_params) <= set(self.variants)):
            raise ValueError(f"store_params must be a bool or a tuple of tracked variant names {self.variants}, got {self.store_params!r}")

    @property
    def backend(self) -> str:
        """Where the closed-loop rollouts run: "jax" (inside the compiled scan) or "mujoco" (C MuJoCo, after it)."""
        return "mujoco" if self.system in TASKS else "jax"

    @property
    def variants(self) -> tuple[str, ...]:
        """The iterates evaluated at each checkpoint."""
        return ("raw", "ema") + (("bema",) if self.bema else ()) + tuple(n for n, _ in self.extra_averages)

    @property
    def stored(self) -> tuple[str, ...]:
        """The variants whose parameters ``store_params`` keeps at every checkpoint (rows of ``out["params"]``)."""
        if self.store_params is True:
            return self.variants
        return tuple(self.store_params) if self.store_params else ()

    @property
    def examples_per_step(self) -> int:
        """State-action pairs whose gradient one training step evaluates (the whole set for full batch)."""
        return self.batch_size or self.n_demos * self.demo_horizon

    @property
    def grad_evals(self) -> int:
        """Per-example gradient evaluations of the whole run: the compute axis of the ablations."""
        return self.steps * self.examples_per_step

    @property
    def checkpoints(self) -> np.ndarray:
        """Training step of each checkpoint, [C]."""
        return np.arange(self.eval_start + self.eval_every, self.steps + 1, self.eval_every)
