"""The ablations of notebooks 07–09: what causes GVA and what cures it, with compute on the x-axis.

One *base* configuration per scale, and every intervention as an edit of it (an :class:`Arm`: a
configuration plus the iterate that is scored). Each arm is trained with :func:`gvatheory.control.bc.run_seeds`,
so runs are cached and shared between the notebooks. The base run also tracks every averaging
schedule of notebook 09 (``EMA_SUITE``) and stores the averages at each checkpoint, so that the EMA
ablations and post-hoc EMA cost no extra gradient evaluations.

The *oscillation metric* of an arm is the mean absolute change of the mean rollout return between
adjacent checkpoints over the second half of training (``return_change`` of
:func:`gvatheory.core.diagnostics.gva_summary`), averaged over seeds. Compute is counted in per-example
gradient evaluations (steps × examples per step) and in measured seconds of the compiled run.

References: Block et al. 2024 (ICLR), the causes of GVA, the failed mitigations and the EMA cure; Karras et al. 2024 (post-hoc EMA); Laskey et al. 2017 (DART).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gvatheory.control import bc, policies
from gvatheory.core import diagnostics, posthoc
from gvatheory.core.averaging import AveragingConfig


def _karras_gamma(g: float) -> float:
    """γ' of our polynomial EMA β_k = 1/(1 + γ' k) whose weights grow like t^g, as Karras et al.'s power-function
    EMA of exponent g does: γ' = 1/(g + 1). (Not EDM2's exact discrete update, which is
    :func:`gvatheory.core.averaging.power_function_ema`; both give a profile ∝ t^g for large t.)"""
    return 1.0 / (g + 1.0)


# Averaging schedules tracked inside the base run (notebook 09). "ema" (constant 0.999) and "bema" are the
# run's own variants; the two "snap" averages are the stored snapshots that post-hoc EMA combines
# (profiles ∝ t^g like Karras et al.'s power-function EMAs with σ_rel ≈ 0.05 and 0.10, exponents 16.97 and 6.94).
EMA_SUITE = (
    ("ema 0.99", AveragingConfig(decay=0.99)),
    ("ema 0.995", AveragingConfig(decay=0.995)),
    ("ema 0.9995", AveragingConfig(decay=0.9995)),
    ("ema 0.9999", AveragingConfig(decay=0.9999)),
    ("poly p=0.5", AveragingConfig(power=0.5)),
    ("poly p=0.67", AveragingConfig(power=0.67)),
    ("poly p=0.8", AveragingConfig(power=0.8)),
    ("poly p=1 (uniform)", AveragingConfig(power=1.0)),
    ("poly p=0.67, burn-in 1000", AveragingConfig(power=0.67, burn_in=1000)),
    ("ema 0.999, burn-in 1000", AveragingConfig(decay=0.999, burn_in=1000)),
    ("ema 0.999, every 10", AveragingConfig(decay=0.999**10, every=10)),
    ("ema 0.999, every 100", AveragingConfig(decay=0.999**100, every=100)),
    ("ema 0.999, every 1000", AveragingConfig(decay=0.999**1000, every=1000)),
    ("snap σ=0.05", AveragingConfig(power=1.0, gamma=_karras_gamma(16.97))),
    ("snap σ=0.10", AveragingConfig(power=1.0, gamma=_karras_gamma(6.94))),
)
SNAPSHOTS = ("snap σ=0.05", "snap σ=0.10")



@dataclasses.dataclass(frozen=True)
class Arm:
    """One bar of a comparison: a training configuration and the iterate whose rollouts are scored."""

    label: str
    cfg: bc.BCConfig
    variant: str = "raw"  # raw | ema | bema | a name of EMA_SUITE

    def __post_init__(self):
        if self.variant not in self.cfg.variants:
            raise ValueError(f"variant {self.variant!r} is not tracked by this configuration; it tracks {self.cfg.variants}")


def lean(cfg: bc.BCConfig, **changes) -> bc.BCConfig:
    """``cfg`` without the averaging suite and stored parameters (raw and EMA only), with ``changes``."""
    return dataclasses.replace(cfg, bema=False, extra_averages=(), store_params=False, **changes)


SGD_LR = 0.05  # plain SGD's learning rate in notebook 07 (a common default for a small MLP on normalised inputs; not tuned)


def cause_arms(cfg: bc.BCConfig) -> dict[str, list[Arm]]:
    """Notebook 07: more data; same data and initialisation, other minibatch orders; batch and learning rate;
    plain SGD at two batch sizes; a small learning rate for proportionally more steps.

    Every arm is lean (raw and EMA only), so that their wall times compare like with like; the
    reference arm is ``lean(cfg)`` itself, shared by the three sweeps.
    """
    n, ref = cfg.n_demos, lean(cfg)
    return {
        "data": [Arm("1x data", ref), Arm("4x data", lean(cfg, n_demos=4 * n)), Arm("16x data", lean(cfg, n_demos=16 * n))],
        "order": [Arm("one init, other orders", lean(cfg, init_seed=12345))],
        "batch": [Arm(f"batch {b}" if b else f"full batch ({cfg.n_demos * cfg.demo_horizon})", lean(cfg, batch_size=b))
                  for b in (cfg.batch_size // 4, cfg.batch_size, 8 * cfg.batch_size, 0)],
        "lr": [Arm(f"lr {lr:.3g}", lean(cfg, lr=lr)) for lr in (cfg.lr, cfg.lr / 4, cfg.lr / 8)],
        # plain SGD, whose step shrinks with the gradient (Adam's does not): does 8x the batch help it more?
        "sgd": [Arm(f"SGD lr {SGD_LR:g}", lean(cfg, optimizer="sgd", lr=SGD_LR)),
                Arm(f"SGD lr {SGD_LR:g}, batch {8 * cfg.batch_size}", lean(cfg, optimizer="sgd", lr=SGD_LR, batch_size=8 * cfg.batch_size))],
        # 8x less gradient variance per unit of distance travelled at the compute of the 8x batch: lr / 8 for 8x the steps,
        # checkpoints 8x further apart in steps (the same distance lr x steps between them)
        "matched": [Arm(f"lr {cfg.lr / 8:.3g}, 8x steps", lean(cfg, lr=cfg.lr / 8, steps=8 * cfg.steps, eval_start=8 * cfg.eval_start,
                                                                  eval_every=8 * cfg.eval_every))],
    }


def mitigation_arms(cfg: bc.BCConfig) -> list[Arm]:
    """Notebook 08: the standard mitigations, each one edit of ``lean(cfg)``, then the averages.

    The EMA arm is the reference run's own EMA (the same run, the same gradient evaluations); BEMA is
    read from the base run ``cfg``, which tracks it (its wall time includes evaluating every average
    of ``EMA_SUITE``).
    """
    p, ref = cfg.policy, lean(cfg)
    return [
        Arm("none (raw iterate)", ref),
        Arm("weight decay 0.1", lean(cfg, weight_decay=0.1)),
        Arm("dropout 0.1", lean(cfg, dropout=0.1)),
        Arm(f"4x wider ({p.depth}x{4 * p.width})", lean(cfg, policy=dataclasses.replace(p, width=4 * p.width))),
        Arm(f"2x deeper ({2 * p.depth}x{p.width})", lean(cfg, policy=dataclasses.replace(p, depth=2 * p.depth))),
        Arm("residual MLP + LayerNorm", lean(cfg, policy=dataclasses.replace(p, arch="resmlp"))),
        Arm("state noise 0.01 (DART-style)", lean(cfg, state_noise=0.01)),
        Arm("state noise 0.1 (DART-style)", lean(cfg, state_noise=0.1)),
        Arm("gradient clipping 0.1", lean(cfg, grad_clip=0.1)),
        Arm("cosine LR decay", lean(cfg, schedule="cosine")),
        Arm("step LR decay", lean(cfg, schedule="step")),
        Arm(f"8x batch ({8 * cfg.batch_size})", lean(cfg, batch_size=8 * cfg.batch_size)),
        Arm(f"EMA {cfg.ema_decay}", ref, "ema"),
        Arm("BEMA", cfg, "bema"),
    ]


def run_arms(arms, seeds, *, desc: str = "") -> dict[str, list[dict]]:
    """Trains every distinct configuration of ``arms`` for ``seeds`` (cached) and returns label -> runs."""
    outs, by_cfg = {}, {}
    for arm in arms:
        if arm.cfg not in by_cfg:
            by_cfg[arm.cfg] = bc.run_seeds(arm.cfg, seeds, desc=f"{desc}{arm.label}")
        outs[arm.label] = by_cfg[arm.cfg]
    return outs


def score(arm: Arm, outs: list[dict]) -> dict:
    """The metrics of one arm over its seeds (second half of training).

    Returns a dict of per-seed arrays [S] — ``osc`` (the oscillation metric), ``mean_return``,
    ``fail_rate``, ``loss_change``, ``val_loss`` (mean over the window), ``wall_s`` — and the scalars
    ``grad_evals`` (per-example gradient evaluations of one run) and ``label``, ``variant``.
    """
    i = arm.cfg.variants.index(arm.variant)
    rows = []
    for out in outs:
        h = len(out["steps"]) // 2
        m = diagnostics.gva_summary(out["val_loss"][i, h:], out["ret"][i, h:], out["failed"][i, h:], out["expert_ret"].mean())
        rows.append((m["return_change"], m["mean_return"], m["fail_rate"], m["loss_change"], out["val_loss"][i, h:].mean(), float(out.get("wall_s", np.nan))))
    a = np.array(rows, np.float64)
    keys = ("osc", "mean_return", "fail_rate", "loss_change", "val_loss", "wall_s")
    return {k: a[:, j] for j, k in enumerate(keys)} | dict(grad_evals=arm.cfg.grad_evals, label=arm.label, variant=arm.variant)


def ratio(reference: dict, other: dict) -> tuple[float, float, float]:
    """How many times smaller ``other``'s oscillation is than ``reference``'s: the ratio of seed means,
    and the smallest and largest ratio over all seed pairs (a spread, not a confidence interval)."""
    r = reference["osc"].mean() / max(other["osc"].mean(), 1e-12)
    pairs = reference["osc"][:, None] / np.maximum(other["osc"][None, :], 1e-12)
    return float(r), float(pairs.min()), float(pairs.max())


# ---------------------------------------------------------------- post-hoc EMA (notebook 09)


def posthoc_params(cfg: bc.BCConfig, out: dict, target: AveragingConfig, at: int, snapshots=SNAPSHOTS) -> tuple[np.ndarray, float]:
    """The flat parameters of the ``target`` average after checkpoint ``at``, rebuilt from stored snapshots.

    The snapshots are the averages named in ``snapshots`` (tracked by ``cfg``), read at every checkpoint
    up to ``at`` (``out["params"]``, so ``cfg.store_params`` must include them); their exact weights over the
    iterates θ_0..θ_T (:func:`gvatheory.core.posthoc.weights`) are combined to match the target's in least
    squares (Karras et al. 2024). Returns (flat parameters [P], relative residual of the weight match).
    """
    if "params" not in out:
        raise ValueError("the run has no stored parameters: train it with store_params=True")
    steps = out["steps"][: at + 1]
    T = int(steps[-1])
    missing = set(snapshots) - set(cfg.stored)
    if missing:
        raise ValueError(f"snapshots {sorted(missing)} were not stored by this run; it stored {cfg.stored}")
    idx = [cfg.stored.index(s) for s in snapshots]
    confs = dict(cfg.extra_averages)
    W = posthoc.snapshot_weights([confs[s] for s in snapshots for _ in steps], [int(t) for _ in snapshots for t in steps], T)
    c, resid = posthoc.solve(W, posthoc.weights(target, T))
    P = np.concatenate([out["params"][i, : at + 1] for i in idx])  # [S * C', P], in the order of W
    return posthoc.combine(P.astype(np.float64), c).astype(np.float32), resid


def evaluate_flat(cfg: bc.BCConfig, flats) -> dict:
    """Validation BC loss [K] and rollout returns / failures / divergences [K, N] of K flat parameter vectors (either backend)."""
    out = bc.evaluate_flat(cfg, flats)
    return {k: out[k] for k in ("val_loss", "ret", "failed", "diverged")}
