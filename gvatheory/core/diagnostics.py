"""GVA diagnostics for any series of checkpoints: every metric the notebooks and the claims ledger read.

Inputs are plain arrays (one row per checkpoint), so they work on checkpoints from any training
code: closed-loop control (:func:`gva_summary`) or long generations (:func:`generation_summary`).
Fluctuation is measured between *adjacent* checkpoints, which is what GVA is about: a smooth drift of
the mean is not an oscillation. The per-run values of the ledger's claims (:func:`claim_values`,
:func:`excess_swing`) are computed here; their thresholds, intervals and verdicts live in
:mod:`gvatheory.core.claims`.
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


def normalized_score(returns, expert_return, reference_return):
    """The D4RL normalised score 100 (R − R_0) / (R_expert − R_0), same shape as ``returns``.

    ``reference_return`` R_0 is the return of a policy that does not control (a uniform random policy, or
    no control: :func:`gvatheory.control.bc.baseline.reference_returns`) from the same starts.
    """
    gap = float(expert_return) - float(reference_return)
    if not gap > 0:
        raise ValueError(f"the expert's return ({expert_return:.6g}) must exceed the reference's ({reference_return:.6g})")
    return 100.0 * (np.asarray(returns, np.float64) - float(reference_return)) / gap


def score_amplification(loss, returns, expert_return, reference_return) -> float:
    """The amplification of one run: mean adjacent |Δ score| ÷ 100, over the median adjacent relative |Δ loss|.

    ``loss`` [C] validation BC loss, ``returns`` [C, N] per checkpoint and start. Both changes are shares of
    the quantity's own scale (the score's 0-to-expert range, the loss's value): above 1 the closed-loop
    return moves by more of its range than the loss moves of itself — the paper's claim 1. NaN if the loss
    does not move at all (nothing to divide by).
    """
    score = normalized_score(np.asarray(returns, np.float64).mean(-1), expert_return, reference_return)
    d_score = float(adjacent_change(score).mean()) / 100.0
    d_loss = float(np.median(adjacent_change(loss, relative=True)))
    return d_score / d_loss if d_loss > 0 else float("nan")


def variance_share(raw_returns, avg_returns, expert_return, reference_return) -> tuple[float, float]:
    """(closed, gap): how much of the raw iterates' gap to the expert their average closes, in score points.

    ``closed`` = mean score of the average − that of the raw iterates; ``gap`` = 100 − the raw iterates' mean
    score ([C, N] returns each). ``closed / gap`` near 1: the gap was variance, which averaging removes;
    near 0: bias, which it cannot.
    """
    s_raw = normalized_score(raw_returns, expert_return, reference_return).mean()
    s_avg = normalized_score(avg_returns, expert_return, reference_return).mean()
    return float(s_avg - s_raw), float(100.0 - s_raw)


def claim_values(loss, returns, failed, expert_return: float, reference_return: float, *, raw: int = 0, avg: int = 1) -> dict:
    """One run's values for the ledger's claims 1 (``amplification``), 5 (``osc_raw`` ÷ ``osc_avg``) and R3
    (``closed`` ÷ ``gap``), from its checkpoints: ``loss`` [V, C], ``returns`` and ``failed`` [V, C, N], variants
    ``raw`` and ``avg`` (indices into V).

    ``osc_*`` is the mean adjacent-checkpoint change of the mean return. Where both variants lose every
    rollout at every checkpoint there is no closed loop to compare: claims 5 and R3 get NaN (not applicable),
    never a pass; so does R3 where the raw iterates score at or above the expert (no gap to split).
    """
    loss, R, F = np.asarray(loss, np.float64), np.asarray(returns, np.float64), np.asarray(failed, bool)
    amp = score_amplification(loss[raw], R[raw], expert_return, reference_return)
    osc = [float(adjacent_change(R[i].mean(-1)).mean()) for i in (raw, avg)]
    closed, gap = variance_share(R[raw], R[avg], expert_return, reference_return)
    if F[raw].all() and F[avg].all():
        osc, closed, gap = [float("nan")] * 2, float("nan"), float("nan")
    if not gap > 0:  # the raw iterates score at or above the expert: no gap to split into variance and bias
        closed = gap = float("nan")
    return dict(amplification=amp, osc_raw=osc[0], osc_avg=osc[1], closed=closed, gap=gap)


def dominant_period(series) -> dict:
    """The strongest periodic component of a series sampled every step: ``period`` (steps), ``amplitude`` (the
    standard deviation of the linearly detrended series) and ``share`` (the fraction of its power in the peak
    frequency bin and its two neighbours: a pure sine puts nearly all there, white noise of 200 points about
    0.1 — the largest of its 100 bins).

    ``series`` [T], T ≥ 8. A Hann window limits leakage; the zero frequency is excluded.
    """
    y = np.asarray(series, np.float64)
    if y.ndim != 1 or len(y) < 8:
        raise ValueError(f"need a 1-d series of at least 8 points, got shape {y.shape}")
    t = np.arange(len(y))
    r = y - np.polyval(np.polyfit(t, y, 1), t)
    p = np.abs(np.fft.rfft(r * np.hanning(len(r)))) ** 2
    p[0] = 0.0
    k = int(np.argmax(p))
    total = p.sum()
    share = float(p[max(k - 1, 1) : k + 2].sum() / total) if total > 0 else 0.0
    return dict(period=float(len(y) / k) if k > 0 else float("inf"), amplitude=float(r.std()), share=share)


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


def excess_swing(summary: dict) -> float:
    """The valid fraction's adjacent-checkpoint swing beyond binomial sampling noise (:func:`generation_summary`).

    For Gaussian differences a mean absolute difference is √(2/π) times the standard deviation, so the
    swing of the true validity is √(swing² − noise²) (0 where the measured swing is within the noise).
    """
    return float(np.sqrt(max(summary["swing"] ** 2 - summary["noise"] ** 2, 0.0)))
