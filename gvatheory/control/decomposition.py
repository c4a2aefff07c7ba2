"""Variance or bias: are a behavior clone's falls the variance SGD noise adds, or the error of an imperfect clone?

An average of the iterates removes the variance that minibatch noise adds to them; it cannot remove the
bias of a clone that is wrong on average (imitation error, compounding over the horizon). Where the raw
iterates fall, four measurements on the runs of one task tell the two apart:

1. **Low-variance references** (:func:`with_long_averages`, :func:`decayed`): long averages tracked in the
   very run whose raw iterates fall (EMA 0.9999, the polynomial schedule with burn-in, a uniform average of
   the second half), and a branch of that run whose learning rate decays linearly to zero over its second
   half (same key: same initialisation and minibatches, identical up to the branch point). If the best of
   them still falls as often as the raw iterates, the falls are bias; if it does not, variance.
   :func:`fall_share` is the share of the raw fall rate the best reference removes (a reference competes only
   if its mean return is at least the raw iterates').
2. **The start × checkpoint matrix** (:func:`start_concentration`): bias falls from the same starts at every
   checkpoint, variance from different starts at different checkpoints. Caveat: in a chaotic closed loop a
   slowly moving average also changes which starts fall, so this is read with the next test.
3. **The path** θ_avg + s (θ_raw − θ_avg), s in [0, 1.5] (:func:`path_flats`, :func:`path_rollouts`): if the
   fall rate grows with s, the distance SGD noise moved the iterate is what makes it fall.
4. **Clean labels** (:func:`clean`): the expert's own action as the label instead of the executed noisy
   one, one change at a time.

This decomposition is this repository's; the claim it tests (the EMA's cure, Block et al., *Butterfly
Effects of SGD Noise*, ICLR 2024) is the paper's.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gvatheory.control import bc
from gvatheory.core import claims
from gvatheory.core.averaging import AveragingConfig
from gvatheory.infra import cache

REFERENCE_NAMES = ("ema 0.9999", "poly p=0.67, burn-in", "uniform, second half", "LR decayed to 0")
S_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # the path's points: 0 = the average, 1 = the raw iterate


def long_averages(cfg: bc.BCConfig) -> tuple:
    """The long-horizon averages tracked next to ``cfg``'s raw iterate: EMA 0.9999; the polynomial schedule
    β_k = (1 + k)^(−0.67) after a burn-in of min(1000, eval_start) steps; the uniform average of the steps after
    ``eval_start`` (the second half of training, where the checkpoints are)."""
    return (
        (REFERENCE_NAMES[0], AveragingConfig(decay=0.9999)),
        (REFERENCE_NAMES[1], AveragingConfig(power=0.67, burn_in=min(1000, cfg.eval_start))),
        (REFERENCE_NAMES[2], AveragingConfig(power=1.0, burn_in=cfg.eval_start)),
    )


def with_long_averages(cfg: bc.BCConfig) -> bc.BCConfig:
    """``cfg`` tracking :func:`long_averages` as well, and keeping the raw and EMA parameters at every
    checkpoint (for the path). The raw iterates are those of ``cfg`` itself: averages do not feed back."""
    if not cfg.eval_start:
        raise ValueError("the decomposition needs eval_start > 0: the uniform average covers the steps after it")
    return dataclasses.replace(cfg, extra_averages=long_averages(cfg), store_params=("raw", "ema"))


def decayed(cfg: bc.BCConfig, n_checkpoints: int = 10) -> bc.BCConfig:
    """The learning-rate-decay branch of ``cfg``: constant until ``eval_start``, then linear to zero at the last
    step; evaluated at ``n_checkpoints`` checkpoints spread over the last quarter of the decay, where the
    step size is at most a quarter of its initial value. Same key as ``cfg``: the same run up to the branch."""
    window = cfg.steps - cfg.eval_start
    every = max(1, window // (4 * n_checkpoints))
    return dataclasses.replace(cfg, schedule="cooldown", decay_steps=window, eval_start=cfg.steps - n_checkpoints * every, eval_every=every,
                               extra_averages=(), store_params=False, bema=False)


def clean(cfg: bc.BCConfig) -> bc.BCConfig:
    """``cfg`` labelled with the expert's clean action instead of the executed noisy one (nothing else changes)."""
    return dataclasses.replace(cfg, clean_labels=True, extra_averages=(), store_params=False, bema=False)


def path_flats(raw, avg, s_values=S_VALUES) -> np.ndarray:
    """θ_avg + s (θ_raw − θ_avg) for each s [S] of flat vectors ``raw``, ``avg`` [P]: [S, P] (s = 0 and 1 exact)."""
    raw, avg = np.asarray(raw, np.float32), np.asarray(avg, np.float32)
    if raw.shape != avg.shape or raw.ndim != 1:
        raise ValueError(f"raw and avg must be flat vectors of one shape, got {raw.shape} and {avg.shape}")
    s = np.asarray(s_values, np.float32)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise ValueError(f"s_values must be a finite 1-d sequence, got {s_values!r}")
    out = avg[None] + s[:, None] * (raw - avg)[None]
    out[s == 0], out[s == 1] = avg, raw
    return out


def path_rollouts(cfg: bc.BCConfig, out: dict, seed: int, checkpoints, s_values=S_VALUES) -> dict:
    """Rollouts along the path from the EMA to the raw iterate at the given checkpoint indices of a run of
    ``with_long_averages(cfg)`` (``out``: its result, holding ``params``), cached under (cfg, seed, checkpoints, s).

    Returns ``ret``, ``failed`` [C', S, N] and ``val_loss`` [C', S] (held-out BC loss), with ``s`` and ``steps``.
    """
    if tuple(cfg.stored) != ("raw", "ema") or "params" not in out:
        raise ValueError("path_rollouts needs a run of with_long_averages(cfg): raw and EMA parameters at every checkpoint")
    idx = [int(i) for i in checkpoints]
    if not all(0 <= i < out["params"].shape[1] for i in idx):
        raise ValueError(f"checkpoint indices must lie in [0, {out['params'].shape[1]}), got {idx}")
    s = tuple(float(v) for v in s_values)

    def compute():
        flats = np.concatenate([path_flats(out["params"][0, i], out["params"][1, i], s) for i in idx])
        r = bc.evaluate_flat(cfg, flats, batch=len(s), progress=True)
        shape = (len(idx), len(s))
        return {"ret": r["ret"].reshape(shape + (-1,)), "failed": r["failed"].reshape(shape + (-1,)),
                "val_loss": r["val_loss"].reshape(shape), "s": np.asarray(s), "steps": cfg.checkpoints[idx]}

    return cache.cached(f"path-{cfg.system}", compute, cfg, seed, idx, s, code=__name__)


def start_concentration(failed) -> float:
    """How much the falls of a start × checkpoint matrix ``failed`` [C, N] (bool) concentrate on fixed starts: the
    intraclass correlation of the outcome within a start, (var_n f_n − p(1 − p)/C) / (p(1 − p)(1 − 1/C)), f_n the
    fall frequency of start n over the C checkpoints and p the overall rate. 0: falls spread over the starts as
    independent draws would (variance-like); 1: the same starts fall at every checkpoint (bias-like). NaN when
    nothing or everything falls (no spread to split), or with fewer than 2 checkpoints."""
    F = np.asarray(failed, np.float64)
    if F.ndim != 2:
        raise ValueError(f"failed must be [checkpoints, starts], got shape {F.shape}")
    C = F.shape[0]
    p = F.mean()
    if C < 2 or p in (0.0, 1.0):
        return float("nan")
    f = F.mean(0)
    return float((f.var() - p * (1 - p) / C) / (p * (1 - p) * (1 - 1 / C)))


def fall_rate(failed) -> float:
    """The fraction of rollouts that ended early, over every axis of ``failed``."""
    return float(np.mean(np.asarray(failed, bool)))


def fall_share(raw: tuple[float, float], references: dict[str, tuple[float, float]]) -> tuple[float, float, str | None]:
    """(numerator, denominator, best): the raw fall rate the best low-variance reference removes, raw − best, over
    the raw rate, and the name of that reference. Their ratio is the share of the falls that is variance; both
    are 0 when the raw iterates never fall (nothing to split).

    ``raw`` and each of ``references`` (name -> value) are (fall rate, mean return) over their rollouts. Only a
    reference that keeps the raw iterates' mean return competes for best: one that falls less because it does
    less (an average still weighted on its initialisation, say) is not a low-variance version of the clone.
    When none does, nothing low-variance removes a fall: the numerator is 0 and ``best`` is None.
    """
    if not references:
        raise ValueError("fall_share needs at least one reference")
    raw_rate, raw_return = (float(v) for v in raw)
    eligible = {n: float(rate) for n, (rate, ret) in references.items() if ret >= raw_return}
    if not eligible:
        return 0.0, raw_rate, None
    best = min(eligible, key=eligible.get)
    return raw_rate - eligible[best], raw_rate, best


def path_slope(s, rates) -> float:
    """Least-squares slope of the fall rate along the path, per unit of s (``rates`` [S] at ``s`` [S])."""
    return float(np.polyfit(np.asarray(s, np.float64), np.asarray(rates, np.float64), 1)[0])


def conclusion(ci) -> str:
    """The pre-registered reading of the variance share of the falls, from its 95% interval ``ci``: variance-dominated
    when the interval lies above 1/2, bias-dominated when it lies below 1/2, mixed when it holds 1/2, and
    "no falls to split" when it is undefined (NaN). It is the ledger's verdict on claim R4 read in these words
    (holds, fails, inconclusive), so the two cannot disagree: an interval that ends exactly at 1/2 holds 1/2
    (mixed), as the ledger reads an interval touching the edge of any band (inconclusive)."""
    lo, hi = (float(v) for v in ci)
    if np.isnan(lo) or np.isnan(hi):
        return "no falls to split"
    v = claims.verdict((lo, hi), claims.CLAIMS["falls_variance"].band)
    return {"holds": "variance-dominated", "fails": "bias-dominated"}.get(v, "mixed")
