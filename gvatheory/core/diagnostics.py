"""GVA diagnostics for any series of checkpoints, and every claim check of the repository.

Inputs are plain arrays (one row per checkpoint), so they work on checkpoints from any training
code: closed-loop control (:func:`gva_summary`) or long generations (:func:`generation_summary`).
Fluctuation is measured between *adjacent* checkpoints, which is what GVA is about: a smooth drift of
the mean is not an oscillation. The claim checks (``c1_holds``, ``c2_holds``, ``gva_visible``,
``c8_holds``) read these summaries; the claims are those of Block et al., Butterfly Effects of SGD Noise
(ICLR 2024): C1, a calm loss with an oscillating return (gradient variance amplification); C2, the EMA
of the iterates removes it; C8, the same for the validity of long generations of a language model.
"""
from __future__ import annotations

import numpy as np


def adjacent_change(series, *, relative: bool = False) -> np.ndarray:
    """|x_c − x_{c−1}| along the first axis (÷ |x_{c−1}| if ``relative``), shape [C − 1, ...]."""
    x = np.asarray(series, np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 checkpoints, got {x.shape[0]}")
    d = np.abs(np.diff(x, axis=0))
    return d / np.abs(x[:-1]) if relative else d


def checkpoint_stats(returns, failed, expert_return: float) -> dict:
    """Per-checkpoint statistics of rollouts [C, N]: ``mean``, ``median``, ``excess`` (expert − mean)
    and ``fail_fraction``, each [C]."""
    R = np.asarray(returns, np.float64)
    return dict(
        mean=R.mean(-1),
        median=np.median(R, -1),
        excess=expert_return - R.mean(-1),
        fail_fraction=np.asarray(failed, bool).mean(-1),
    )


def gva_summary(loss, returns, failed, expert_return: float) -> dict:
    """The GVA metrics of one variant over a window of checkpoints.

    Args:
        loss: [C] validation BC loss per checkpoint.
        returns: [C, N] rollout return per checkpoint and start state.
        failed: [C, N] bool, the rollout was lost.
        expert_return: the expert's mean return from the same starts.

    Returns:
        dict with ``loss_change`` (median relative adjacent change of the loss), ``mean_return``,
        ``excess`` (mean excess cost over the expert), ``return_change`` (mean |adjacent change| of the
        mean return), ``return_change_rel`` (÷ mean excess), ``fail_rate`` (fraction of rollouts
        lost), ``fail_checkpoints`` (fraction of checkpoints losing at least one rollout),
        ``amplification`` (return_change_rel / loss_change).
    """
    loss = np.asarray(loss, np.float64)
    R = np.asarray(returns, np.float64).mean(-1)
    failed = np.asarray(failed, bool)
    excess = expert_return - R
    loss_change = float(np.median(adjacent_change(loss, relative=True)))
    ret_change = float(adjacent_change(R).mean())
    rel = ret_change / max(float(excess.mean()), 1e-12)
    return dict(
        loss_change=loss_change,
        mean_return=float(R.mean()),
        excess=float(excess.mean()),
        return_change=ret_change,
        return_change_rel=rel,
        fail_rate=float(failed.mean()),
        fail_checkpoints=float(failed.any(-1).mean()),
        amplification=rel / max(loss_change, 1e-12),
    )


def c1_holds(raw: dict) -> bool:
    """Claim C1 (GVA exists): the loss moves < 5% between checkpoints while the excess return moves > 50% of
    its mean, or at least 1% of checkpoints lose a rollout."""
    return raw["loss_change"] < 0.05 and (raw["return_change_rel"] > 0.5 or raw["fail_checkpoints"] >= 0.01)


def gva_visible(raw: dict, rel_tol: float = 1e-3) -> bool:
    """C1 holds and the raw iterates show a GVA one can see: a rollout lost at ≥ 1% of the checkpoints, or a
    mean return that moves between checkpoints by at least ``rel_tol`` of itself.

    C1's relative branch divides the change of return by the mean excess cost over the expert; a clone as
    good as its expert has a tiny excess, and then a wobble of a few parts in a million passes it. This
    tells such a pass apart from the phenomenon.
    """
    lost = raw["fail_checkpoints"] >= 0.01
    moves = raw["return_change"] >= rel_tol * abs(raw["mean_return"])
    return c1_holds(raw) and (lost or moves)


def c2_holds(raw: dict, avg: dict) -> bool:
    """Claim C2 (the EMA cures it): the average cuts the adjacent change of return ≥ 10x and its mean return is ≥ the raw's."""
    return raw["return_change"] >= 10 * avg["return_change"] and avg["mean_return"] >= raw["mean_return"]


def gradient_noise(per_example_grads, batch_size: int, top: int = 5) -> tuple[float, np.ndarray]:
    """Trace and top eigenvalues of the minibatch-gradient covariance from per-example gradients [B, P].

    Covariance of a minibatch mean of ``batch_size`` i.i.d. examples = per-example covariance / batch_size.
    The eigenvalues come from the B × B Gram matrix (B ≪ P).
    """
    g = np.asarray(per_example_grads, np.float64)
    g = g - g.mean(0)
    gram = g @ g.T / len(g)
    ev = np.linalg.eigvalsh(gram)[::-1][:top] / batch_size
    return float(np.trace(gram) / batch_size), ev


def valid_fraction(first_error, horizon: int, prompt_len: int):
    """Fraction of generations whose first ``horizon`` generated tokens are all valid, [...] from [..., n].

    ``first_error`` [..., n]: index of each generation's first invalid token (its length if none).
    """
    return (np.asarray(first_error) >= prompt_len + horizon).mean(-1)


def generation_summary(out: dict, variant: int, *, n_gen: int, prompt_len: int, horizon: int, prefix: str = "") -> dict:
    """GVA metrics of one variant (0 raw, 1 EMA, 2 BEMA) of a language-model run over the second half of
    its constant-rate checkpoints (:func:`gvatheory.language.lm.run`'s result ``out``).

    Returns ``loss_change`` (mean relative change of the validation loss between adjacent checkpoints),
    ``swing`` (mean absolute change of the valid fraction of the ``n_gen`` sampled generations at
    ``horizon``, in fractions), ``valid`` (its mean), ``noise`` (the mean absolute difference that
    binomial sampling alone gives two independent checkpoints with that mean: √(2p(1 − p)/n)·√(2/π)),
    ``kl`` and ``forbidden`` (means over generations and checkpoints). ``prefix="cool_"`` reads the
    cooldown branch (all its checkpoints).
    """
    loss = out[prefix + "val_loss"][variant]
    first = out[prefix + "first_error"][variant][:, :n_gen]
    h = 0 if prefix else len(loss) // 2
    v = valid_fraction(first, horizon, prompt_len)
    p = v[h:].mean()
    return dict(
        loss_change=float(np.mean(np.abs(np.diff(loss[max(h - 1, 0) :])) / loss[max(h - 1, 0) : -1])),
        swing=float(np.mean(np.abs(np.diff(v[max(h - 1, 0) :])))),
        valid=float(p),
        noise=float(np.sqrt(2 * p * (1 - p) / n_gen) * np.sqrt(2 / np.pi)),
        kl=float(out[prefix + "kl"][variant][h:].mean()),
        forbidden=float(out[prefix + "forbidden"][variant][h:].mean()),
    )


def c8_holds(raw: dict, ema: dict) -> bool:
    """Claim C8 (GVA in long generations): the raw loss moves < 5% between checkpoints while validity swings
    ≥ 10 points; the EMA cuts the swing ≥ 5x and is valid at least as often as the raw iterates."""
    return raw["loss_change"] < 0.05 and raw["swing"] >= 0.10 and ema["swing"] * 5 <= raw["swing"] and ema["valid"] >= raw["valid"]
