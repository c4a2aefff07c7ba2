"""gvatheory: gradient variance amplification (GVA) in behavior cloning, and iterate averaging that cures it.

The paper this repository reproduces and tests: Block, Foster, Krishnamurthy, Simchowitz and Zhang,
*Butterfly Effects of SGD Noise: Error Amplification in Behavior Cloning and Autoregression*, ICLR 2024.
Its claims, each tested by a numbered notebook:

* GVA exists (notebooks 04, 11): training a policy by behavior cloning with minibatch SGD, the BC loss
  barely moves between nearby iterates while the closed-loop return over a long horizon swings wildly.
* The return landscape along a stochastic-gradient direction is jagged where the loss is smooth (05).
* The cause is computational (the optimiser's gradient noise), not statistical (the finite data): more
  data does not remove it, less gradient noise does but at a large compute cost (07); standard
  mitigations fail (08).
* An exponential moving average (EMA) of the iterates removes most of it, at no extra gradient cost
  (04, 08, 09, 11); the same holds for the validity of long generations of a language model (10).
* Three linear-theory vignettes explain it: marginal stability amplifies parameter noise (01), a cliff
  in the cost of a linear-quadratic regulator (02), and the Ornstein–Uhlenbeck limit in which the EMA
  matches learning-rate decay (03); the variance chain links gradient noise to rollout variance (06).

Each claim is made measurable once, in :mod:`gvatheory.core.claims` (its statistic, threshold and
testbeds); the notebooks record their measurements there and ``make figures`` collects the verdicts,
with bootstrap intervals across seeds, into ``figures/CLAIMS.md``.

The public core, imported from here: iterate averaging for JAX pytrees (:mod:`gvatheory.core.averaging`:
EMA, polynomial EMA, BEMA), post-hoc EMA (:mod:`gvatheory.core.posthoc`) and GVA diagnostics for any
series of checkpoints (:mod:`gvatheory.core.diagnostics`). The experiments live in the subpackages
``theory`` (01-03), ``control`` (systems, LQR, policies, rollout backends, the BC engine, ablations,
landscape, RL experts), ``language`` (synthetic languages, a transformer, the LM experiment) and
``infra`` (result cache, notebook runner, figure style); their presets in :mod:`gvatheory.presets`.
"""
from gvatheory.core import claims, diagnostics, posthoc
from gvatheory.core.averaging import Averager, AveragerState, AveragingConfig, averager, bema, ema, polynomial_ema, power_function_ema
from gvatheory.core.diagnostics import adjacent_change, checkpoint_stats, gradient_noise, gva_summary

__all__ = [
    "Averager", "AveragerState", "AveragingConfig", "adjacent_change", "averager", "bema", "checkpoint_stats", "claims", "diagnostics",
    "ema", "gradient_noise", "gva_summary", "polynomial_ema", "posthoc", "power_function_ema",
]
__version__ = "0.1.0"
