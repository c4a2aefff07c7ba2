"""The paper's claims as measurable statements, and the verdict of one measurement: the registry behind the ledger.

Each :class:`Claim` carries the paper's words (Block et al., *Butterfly Effects of SGD Noise*, ICLR 2024),
the statistic that makes them measurable, the band in which that statistic must lie for the claim to hold,
and the testbeds (notebooks) that check it. The thresholds were set from the paper's wording before any
ledger existed and are never tuned to make a claim pass.

A notebook measures a statistic once per seed and calls :func:`record`; :func:`assess` turns the per-seed
values into an estimate, a 95% bootstrap confidence interval across seeds (``scipy.stats.bootstrap``,
percentile method, paired over seeds where the statistic is a ratio of two per-seed quantities) and a
verdict:

* ``holds`` — the whole interval lies inside the claim's band;
* ``fails`` — the whole interval lies outside it;
* ``inconclusive`` — the interval straddles the band's edge, or there are fewer than ``MIN_SEEDS`` seeds
  for an interval;
* ``not applicable`` — nothing to compare (no value, or every value undefined: e.g. a ratio of two zero
  oscillations, when both policies lose every rollout). Never a pass.

Across testbeds one would aggregate with stratified bootstrap (``rliable``); every verdict here is per
claim and testbed, across seeds, which ``scipy.stats.bootstrap`` covers without another dependency.

References: Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13 (percentile interval);
Agarwal et al., *Deep RL at the Edge of the Statistical Precipice*, NeurIPS 2021 (rliable).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

VERDICTS = ("holds", "fails", "inconclusive", "not applicable")
MIN_SEEDS = 3  # fewer seeds give no interval worth the name: the verdict is then inconclusive
CONFIDENCE = 0.95
N_RESAMPLES = 9999
INF = math.inf


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper (or of this repository), made measurable."""

    key: str  # short identifier used by record(): "gva", "ema_cures", ...
    number: str  # its place in the ledger, ordered as the paper: "1", "3a", ..., "T1" (theory), "R1" (this repository)
    name: str  # a few words
    paper: str  # what the paper says (our reconstruction of its wording)
    statistic: str  # what one measured value is
    band: tuple[float, float]  # the claim holds when the statistic lies in [band[0], band[1]]
    testbeds: tuple[str, ...]  # the notebooks that record it
    ratio: bool = False  # the statistic is mean(numerator) / mean(denominator) over seeds (paired bootstrap)

    def __post_init__(self):
        lo, hi = self.band
        if not lo < hi:
            raise ValueError(f"claim {self.key}: band must be (low, high) with low < high, got {self.band}")

    @property
    def threshold(self) -> str:
        """The band as text: "≥ 10", "< 3", "in [0.5, 2]"."""
        lo, hi = self.band
        if hi == INF:
            return f"≥ {lo:g}"
        if lo == -INF or (lo == 0 and self.ratio):
            return f"≤ {hi:g}"
        return f"in [{lo:g}, {hi:g}]"


_AMP = ("mean adjacent-checkpoint change of the closed-loop score (a share of its full range: 0 = no control or a "
        "random policy, 1 = the expert, from the same starts) ÷ median adjacent relative change of the validation BC loss")

REGISTRY: tuple[Claim, ...] = (
    Claim("gva", "1", "GVA exists",
          "per-iterate rollout return oscillates while the behavior-cloning loss is smooth (H = 1000, Walker2d first)",
          "amplification: " + _AMP + ", per seed; above 1 the return moves by more of its range than the loss moves of itself",
          (1.0, INF), ("04", "11")),
    Claim("landscape", "2", "jagged return landscape",
          "along a stochastic-gradient direction through an iterate the BC loss is a smooth parabola while the return is jagged (\"fractal\")",
          "roughness of the return ÷ roughness of the loss along the direction (roughness: mean |second difference| ÷ range)",
          (5.0, INF), ("05",)),
    Claim("more_data", "3a", "more data does not remove it",
          "the cause is computational, not statistical: more data does not remove the oscillation",
          "oscillation (mean |Δ return| between adjacent checkpoints) with the base data ÷ with 4x the demonstrations",
          (0.5, 2.0), ("07",), ratio=True),
    Claim("less_variance", "3b", "less gradient variance removes it",
          "reducing the gradient variance (larger batches, smaller learning rate) reduces the oscillation, at a large compute cost",
          "oscillation of the base run ÷ that of the run with 8x less gradient variance (8x the batch, or 1/8 the learning rate "
          "for 8x the steps: the same compute), same seeds",
          (3.0, INF), ("07",), ratio=True),
    Claim("mitigations", "4", "standard mitigations do not help",
          "architecture changes, model size and regularisers (weight decay, dropout, noise injection) do not remove the oscillation",
          "oscillation of the base run ÷ that with the mitigation; the claim holds while it stays below 3",
          (0.0, 3.0), ("08",), ratio=True),
    Claim("ema_cures", "5", "the EMA removes it",
          "an exponential moving average of the iterates removes most of the oscillation, with no change to learning rate or batch size",
          "oscillation of the raw iterates ÷ that of their EMA, same runs (not applicable when neither moves)",
          (10.0, INF), ("04", "08", "10", "11"), ratio=True),
    Claim("language", "6", "GVA in long generations",
          "the same in autoregressive language models: the model's own past tokens are its state",
          "amplification for generations: mean adjacent change of the valid fraction of long generations, in excess of binomial "
          "sampling noise ÷ mean adjacent relative change of the validation loss, at a plateau of constant learning rate",
          (1.0, INF), ("10",)),
    Claim("marginal", "T1", "marginal stability amplifies",
          "with marginally stable linear dynamics a δ-perturbation of the expert costs O(Hδ²) in BC loss but e^{Ω(Hδ)} in rollout cost",
          "growth rate of the log rollout cost in H ÷ its first-order prediction 2gδ (exact Lyapunov values)",
          (0.5, 2.0), ("01",)),
    Claim("cliff", "T2", "constant-step SGD falls off a cliff, its EMA does not",
          "with a convex BC loss and a cliff in the reward, a constant fraction of SGD iterates falls off; an EMA stays on the plateau",
          "fraction of raw iterates past the cliff ÷ that of the EMA at the same step size (Monte Carlo; 95% upper bound where the EMA never falls)",
          (10.0, INF), ("02",)),
    Claim("ou", "T3", "tuned EMA ≈ tuned learning-rate decay on a quadratic",
          "in the Ornstein–Uhlenbeck limit a tuned EMA and a tuned learning-rate decay give comparable variance reduction",
          "MSE of the tuned constant EMA ÷ MSE of the tuned learning-rate decay at the budget T (exact moments)",
          (0.5, 2.0), ("03",)),
    Claim("validity", "R1", "long-horizon validity is exact",
          "(this repository) validity of an H-token generation is predicted by the per-token forbidden mass m as (1 − m)^H",
          "mean |(1 − m)^H − measured valid fraction| over checkpoints ÷ the binomial error of a measured fraction",
          (0.0, 2.0), ("10",), ratio=True),
    Claim("chain", "R2", "the EMA stops the parameter motion",
          "(this repository) gradient noise → parameter change → loss change → return change: the average cuts the chain at its first link",
          "‖θ_c − θ_{c−1}‖ of the raw iterates ÷ that of their EMA, mean over the second half of training",
          (10.0, INF), ("06",), ratio=True),
    Claim("variance_share", "R3", "the gap to the expert is variance",
          "(this repository) an average removes the variance that SGD noise adds, not the bias of an imperfect clone",
          "share of the raw iterates' gap to the expert (in normalised score) that their EMA closes: "
          "(score_EMA − score_raw) ÷ (100 − score_raw); above 1/2 the gap is mostly variance, below it mostly bias",
          (0.5, INF), ("04", "11"), ratio=True),
    Claim("falls_variance", "R4", "the falls are variance",
          "(this repository) where the raw iterates of a clone fall, a low-variance version of the same run does not: the falls are the "
          "variance SGD noise adds, not the imitation error of the clone",
          "share of the raw iterates' fall rate that the best low-variance reference of the same run removes (a long average, or the "
          "learning rate decayed to 0; only one whose mean return is at least the raw iterates' competes): (rate_raw − rate_best) ÷ "
          "rate_raw; above 1/2 the falls are mostly variance, below it mostly bias",
          (0.5, INF), ("12",), ratio=True),
)
CLAIMS = {c.key: c for c in REGISTRY}


def get(key: str) -> Claim:
    """The registered claim ``key``; a ``KeyError`` lists the keys."""
    if key not in CLAIMS:
        raise KeyError(f"no claim {key!r}; claims: {sorted(CLAIMS)}")
    return CLAIMS[key]


def verdict(ci: tuple[float, float], band: tuple[float, float]) -> str:
    """``holds`` if the interval ``ci`` lies inside ``band``, ``fails`` if it lies outside, else ``inconclusive``.

    An interval that touches a finite edge of the band (its end equal to the threshold) cannot place the
    value on either side: ``inconclusive``, as one that straddles it. An infinite edge is reached by an
    interval that is unbounded on that side (an estimate divided by a zero upper bound). An undefined
    interval (NaN) is ``not applicable``.
    """
    lo, hi = (float(x) for x in ci)
    if math.isnan(lo) or math.isnan(hi):
        return "not applicable"
    if lo > hi:
        raise ValueError(f"ci must be (low, high), got {ci}")
    b0, b1 = band
    if (lo > b0 or math.isinf(b0)) and (hi < b1 or math.isinf(b1)):
        return "holds"
    if hi < b0 or lo > b1:
        return "fails"
    return "inconclusive"


def decide(band: tuple[float, float], ci, n: int | None = None) -> str:
    """The verdict of a measurement: :func:`verdict` of its interval ``ci`` on ``band``, except that an interval over
    fewer than ``MIN_SEEDS`` seeds (``n``, for per-seed values; None for an exact or Monte Carlo value) is
    ``inconclusive``. The one rule :func:`assess` applies and the ledger re-applies (:func:`current_verdict`)."""
    if n is not None and 0 < n < MIN_SEEDS:
        return "inconclusive"
    return verdict(ci, band)


def _mean_ratio(num, den, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(num, axis=axis) / np.mean(den, axis=axis)


def bootstrap_ci(values, den=None, *, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): the mean of ``values`` [S] — or mean(values) / mean(den), resampling seeds in pairs —
    with its 95% percentile bootstrap interval over the seeds. Identical values give a zero-width interval."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    data = (x,) if den is None else (x, np.asarray(den, np.float64))
    stat = (lambda a, axis=-1: np.mean(a, axis=axis)) if den is None else _mean_ratio
    est = float(stat(*data))
    if all(np.ptp(d) == 0 for d in data):
        return est, est, est
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # a resample of seeds whose denominators are all 0 has an infinite ratio; interpolating between two such
        # resamples gives NaN, which here can only mean an infinite endpoint
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(data, stat, paired=den is not None, vectorized=True, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                              method="percentile", rng=np.random.default_rng(seed))
    lo, hi = (float(v) for v in (res.confidence_interval.low, res.confidence_interval.high))
    return est, (INF if math.isnan(lo) else lo), (INF if math.isnan(hi) else hi)


def assess(key: str, values=None, *, den=None, estimate=None, ci=None, exact: bool = False, note: str = "") -> dict:
    """The outcome of claim ``key`` from one set of measurements.

    Either per-seed ``values`` [S] (and, for a ratio claim, the per-seed denominators ``den`` [S]: the
    statistic is then mean(values) / mean(den)), or an ``estimate`` with its own ``ci`` (a Monte Carlo
    interval) or ``exact=True`` (a closed-form value: a zero-width interval). Seeds whose value is
    undefined (NaN, or a ratio whose numerator and denominator are both 0) are dropped and counted.

    Returns a dict: ``claim``, ``number``, ``values`` (per seed; per-seed ratios for a ratio claim),
    ``n`` (seeds used), ``dropped``, ``kind`` ("per seed", "exact" or "Monte Carlo": which rule :func:`decide` applies),
    ``basis`` (the same for a reader: "5 seeds", "exact", "Monte Carlo interval"), ``estimate``, ``ci``,
    ``verdict``, ``threshold``, ``note``.
    """
    c = get(key)
    dropped = 0
    if values is None:
        if estimate is None or (ci is None) == (not exact):
            raise ValueError("give per-seed values, or an estimate with ci=(low, high) or exact=True")
        est = float(estimate)
        lo, hi = (est, est) if exact else (float(ci[0]), float(ci[1]))
        per, n = [est], 1
        kind = "exact" if exact else "Monte Carlo"
        basis = "exact" if exact else "Monte Carlo interval"
    else:
        x = np.atleast_1d(np.asarray(values, np.float64))
        if c.ratio != (den is not None):
            raise ValueError(f"claim {key} {'is' if c.ratio else 'is not'} a ratio: {'give' if c.ratio else 'do not give'} den=")
        d = None if den is None else np.atleast_1d(np.asarray(den, np.float64))
        if d is not None and d.shape != x.shape:
            raise ValueError(f"values and den must have the same shape, got {x.shape} and {d.shape}")
        ok = np.isfinite(x) if d is None else np.isfinite(x) & np.isfinite(d) & ~((x == 0) & (d == 0))
        dropped = int((~ok).sum())
        x, d = x[ok], None if d is None else d[ok]
        n = int(len(x))
        kind, basis = "per seed", f"{n} seed{'s' if n != 1 else ''}" + (f", {dropped} undefined" if dropped else "")
        with np.errstate(divide="ignore", invalid="ignore"):
            per = (x if d is None else x / d).tolist()
        if n == 0:
            est, lo, hi = math.nan, math.nan, math.nan
        else:
            est, lo, hi = (INF, INF, INF) if d is not None and np.mean(d) == 0 else bootstrap_ci(x, d)
            if n < MIN_SEEDS:
                note = (note + "; " if note else "") + f"{n} seed{'s' if n > 1 else ''}: too few for an interval"
    v = decide(c.band, (lo, hi), n if values is not None else None)
    return dict(claim=key, number=c.number, values=[float(p) for p in per], n=n, dropped=dropped, kind=kind, basis=basis, estimate=float(est), ci=[float(lo), float(hi)],
                verdict=v, threshold=c.threshold, note=note)


def record(key: str, testbed: str, values=None, *, notebook: str, data_dir, **kwargs) -> dict:
    """Assesses claim ``key`` on ``testbed`` (:func:`assess`'s arguments) and writes the outcome where the ledger reads it.

    ``data_dir`` is the notebook's folder for plotted numbers (``build/<scale>/data``); the outcome goes to
    ``build/<scale>/claims/<notebook>__<key>__<testbed>-<hash>.json`` (one file per claim and testbed: a re-run overwrites it), which ``python -m gvatheory.infra.ledger``
    collects into ``CLAIMS.md``. Returns the outcome (with ``testbed`` and ``notebook``).
    """
    c = get(key)
    if notebook not in c.testbeds:
        raise ValueError(f"claim {key} is checked by notebooks {c.testbeds}, not {notebook!r}: add it to the registry first")
    out = assess(key, values, **kwargs) | dict(testbed=testbed, notebook=notebook)
    folder = Path(data_dir).parent / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-." else "_" for ch in testbed)[:60]
    tag = hashlib.sha256(testbed.encode()).hexdigest()[:6]  # two testbeds whose names differ only in other characters
    (folder / f"{notebook}__{key}__{safe}-{tag}.json").write_text(json.dumps(out, indent=1, allow_nan=True))
    return out


def current_verdict(o: dict) -> str:
    """The verdict today's registry gives a recorded outcome ``o`` (:func:`decide` on its stored interval and seed
    count, against the claim's current band). The ledger compares it with the verdict stored at record time: the
    two differ when the rule or a band changed after the notebook ran, and the notebook's text is then stale.
    Raises ValueError for an outcome without ``kind`` (recorded by an older version: its notebook must re-run)."""
    if o.get("kind") not in ("per seed", "exact", "Monte Carlo"):
        raise ValueError(f"outcome of claim {o['claim']!r} has no kind (per seed, exact or Monte Carlo): recorded by an older version")
    return decide(get(o["claim"]).band, o["ci"], o["n"] if o["kind"] == "per seed" else None)


def summary_line(o: dict) -> str:
    """One outcome as text: "holds: 23 [15, 31] (≥ 10; 5 seeds)"."""
    lo, hi = o["ci"]
    fmt = lambda x: "∞" if x == INF else f"{x:.3g}"
    ci = f" [{fmt(lo)}, {fmt(hi)}]" if o["verdict"] != "not applicable" and lo != hi else ""
    return f"{o['verdict']}: {fmt(o['estimate'])}{ci} ({o['threshold']}; {o['basis']})" + (f" — {o['note']}" if o["note"] else "")


def report(outcomes) -> str:
    """Markdown bullets for a notebook's Result cell: one line per recorded outcome."""
    return "\n".join(f"* claim {o['number']} ({get(o['claim']).name}) on **{o['testbed']}**: {summary_line(o)}" for o in outcomes)
