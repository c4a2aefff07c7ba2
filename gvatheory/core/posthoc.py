"""Post-hoc EMA: any averaging schedule, reconstructed after training from a few stored averages.

Every averager of gvatheory.core.averaging is linear in the iterates: its value after iterate T is
Σ_j w_j θ_j with weights w [T+1] that depend only on the schedule. Store S averages (snapshots, e.g.
two polynomial EMAs every K steps, as Karras et al. store two power-function EMAs); a target schedule
is then approximated by the combination Σ_i c_i snapshot_i whose weights best match the target's in
least squares. This is EDM2's post-hoc EMA (Karras et al. 2024, Sec. 3) with the continuous power
profiles replaced by the exact discrete weights, so any schedule — constant, polynomial, BEMA — can be
a snapshot or a target.

References: Karras, Aittala, Lehtinen, Hellsten, Aila, Laine. Analyzing and Improving the Training
Dynamics of Diffusion Models (EDM2), CVPR 2024.
"""
from __future__ import annotations

import jax
import numpy as np

from gvatheory.core.averaging import AveragingConfig, schedule


def weights(config: AveragingConfig, n_steps: int) -> np.ndarray:
    """w [T+1] with average_T = Σ_j w_j θ_j for ``averager(config)`` fed θ_0 (init) .. θ_T (updates).

    For BEMA the average is the value set at the last refresh n*: EMA weights at n* plus
    α_{n*} (e_{n*} − e_anchor).
    """
    T = int(n_steps)
    if T < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if T == 0:
        return np.ones(1)
    beta, alpha, refresh, reset = schedule(config, T)
    n_star = T
    if config.bias_power is not None:
        held = np.flatnonzero(refresh | reset) + 1  # iterates at which the BEMA output was (re)set
        n_star = int(held[-1]) if held.size else 0
    w = _ema_weights(beta[:n_star])
    if config.bias_power is not None and n_star > 0 and not reset[n_star - 1]:
        resets = np.flatnonzero(reset[:n_star]) + 1
        anchor = int(resets[-1]) if resets.size and config.anchor == "burn_in" else 0
        w[n_star] += alpha[n_star - 1]
        w[anchor] -= alpha[n_star - 1]
    out = np.zeros(T + 1)
    out[: n_star + 1] = w
    return out


def _ema_weights(beta) -> np.ndarray:
    """Weights over θ_0..θ_n of θ̄_n = (1 − β_n) θ̄_{n−1} + β_n θ_n, θ̄_0 = θ_0 (β_0 := 1)."""
    b = np.concatenate([[1.0], np.asarray(beta, np.float64)])
    keep = np.concatenate([np.cumprod((1 - b[1:])[::-1])[::-1], [1.0]])  # Π_{k>j} (1 − β_k)
    return b * keep


def snapshot_weights(configs, times, n_steps: int) -> np.ndarray:
    """Weights [S, T+1] of snapshots: average of ``configs[i]`` read after iterate ``times[i]``."""
    if len(configs) != len(times):
        raise ValueError(f"configs and times must have the same length, got {len(configs)} and {len(times)}")
    W = np.zeros((len(times), int(n_steps) + 1))
    for i, (c, t) in enumerate(zip(configs, times)):
        if not 0 <= t <= n_steps:
            raise ValueError(f"snapshot time must lie in [0, {n_steps}], got {t}")
        W[i, : int(t) + 1] = weights(c, int(t))
    return W


def solve(snapshots_w, target_w, ridge: float = 1e-10) -> tuple[np.ndarray, float]:
    """Coefficients c [S] minimising ‖Σ_i c_i w_i − w*‖² + ridge ‖c‖², and the relative residual.

    Args:
        snapshots_w: [S, T+1] weights of the stored averages. target_w: [T+1] weights of the target.
        ridge: Tikhonov term; snapshots of close schedules are nearly collinear.

    Returns:
        (c, ‖Σ c_i w_i − w*‖ / ‖w*‖).
    """
    A = np.asarray(snapshots_w, np.float64)
    b = np.asarray(target_w, np.float64)
    if A.ndim != 2 or b.shape != (A.shape[1],):
        raise ValueError(f"need snapshots_w [S, T+1] and target_w [T+1], got {A.shape} and {b.shape}")
    scale = np.linalg.norm(A, axis=1).max()
    c = np.linalg.solve(A @ A.T + ridge * scale**2 * np.eye(len(A)), A @ b)
    return c, float(np.linalg.norm(A.T @ c - b) / np.linalg.norm(b))


def combine(snapshots, c):
    """Σ_i c_i snapshot_i for a list of pytrees (or an array with the snapshots on axis 0)."""
    c = np.asarray(c)
    if isinstance(snapshots, (list, tuple)):
        if len(snapshots) != len(c):
            raise ValueError(f"{len(snapshots)} snapshots but {len(c)} coefficients")
        return jax.tree.map(lambda *xs: sum(ci * x for ci, x in zip(c, xs)), *snapshots)
    return np.tensordot(c, np.asarray(snapshots), axes=1)
