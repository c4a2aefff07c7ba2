"""Learning-rate schedules shared by every training loop of the package (optax, plus inverse-time decay)."""
from __future__ import annotations

import optax

SCHEDULES = ("constant", "cosine", "exponential", "inverse_time", "step", "cooldown")


def make_schedule(kind: str, lr: float, steps: int, decay_steps: int) -> optax.Schedule:
    """A step-size schedule η_t from optax: constant, cosine (to 0 at max(steps, decay_steps)),
    exponential (halves every decay_steps), step (×0.1 at 50% and 75% of steps), inverse_time
    η / (1 + t/τ) with τ = decay_steps (Robbins–Monro; written here, optax has no builtin), or cooldown:
    constant, then linear to 0 over the last decay_steps of the steps (warmup-stable-decay without the warmup)."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    if kind == "constant":
        return optax.constant_schedule(lr)
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, max(steps, decay_steps))
    if kind == "exponential":
        return optax.exponential_decay(lr, decay_steps, 0.5)
    if kind == "step":
        return optax.piecewise_constant_schedule(lr, {steps // 2: 0.1, (3 * steps) // 4: 0.1})
    if kind == "cooldown":
        if not 0 < decay_steps <= steps:
            raise ValueError(f"the cooldown schedule needs 0 < decay_steps <= steps, got decay_steps={decay_steps}, steps={steps}")
        return optax.join_schedules([optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay_steps)], [steps - decay_steps])
    tau = float(decay_steps)
    return lambda t: lr / (1.0 + t / tau)
